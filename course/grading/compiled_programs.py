"""The programs a notebook's grading kernels compile, compiled once per machine.

A grading kernel spends most of its time having XLA compile small programs: those of the checks
on the hidden cases, and those of the student's code, which for a right answer are mostly the
model solution's. So before a notebook's first submission is graded on a machine, the grader runs
the model solution's graded path (the setup, the model's answers and every test, hidden ones
included: instructor code only) in a sandboxed kernel like a student's, whose JAX writes each
program it compiles to a folder of its own (JAX's persistent compilation cache). Every later
grading kernel of that notebook reads that folder: a program the model's run compiled is loaded
instead of compiled again.

Why a kernel cannot use the folder to change a grade or to learn the model solution:

- it reads the folder through a read-only bind (sandbox.py), and its JAX never writes to it;
- the folder cannot be listed (mode 0111): a kernel opens an entry only by its name, which JAX
  computes from the program itself, so it reads only programs it already has;
- both runs compile without source locations, so an entry holds no file name, line or traceback
  of the model's code (course/checks/guard.py, ``_read_compiled_programs``);
- an entry is what XLA compiles from that very program, with the same flags, jaxlib and machine:
  a kernel that loads it computes what it would have computed.

The folder's name holds everything an entry depends on besides the program: the source notebook,
the checks, jaxlib, the flags, and the machine's CPU. A change to any of them makes a new folder
beside the notebook's others (the oldest beyond ``KEPT`` is removed).
"""

import contextlib
import fcntl
import hashlib
import os
import platform
import shutil
import stat
import tempfile

import nbformat

from course.authoring import notebooks

KEPT = 3  # folders kept per notebook: a new one replaces the oldest


def default_folder(variable="ADCOURSE_GRADING_PROGRAMS", name="grading-programs"):
    """``$ADCOURSE_GRADING_PROGRAMS`` (``variable``) if set (empty: none), else
    ``jax-autodiff-course/grading-programs`` (``name``) in the user's cache folder."""
    if variable in os.environ:
        return os.environ[variable]
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(cache, "jax-autodiff-course", name)


def model_graded_path(source_nb):
    """The cells a grading kernel runs that decide something: setup, the model's answers and
    the tests (hidden parts included), without nbgrader's solution markers."""
    nb = nbformat.from_dict(source_nb)
    nb.cells = [cell for cell in nb.cells if cell.metadata.get("nbgrader", {}).get("grade_id")]
    for cell in nb.cells:
        cell.source = notebooks.SOLUTION_MARKERS.sub("", cell.source)
    return nb


def machine():
    """What an executable compiled here may require of the processor that runs it."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith(("flags", "Features")):
                    return platform.machine() + " " + line
    except OSError:
        pass
    return platform.machine() + " " + platform.processor()


def folder_name(assignment, notebook, files):
    """``<assignment>--<notebook>--<hash>``: the hash of ``files`` (the source notebook, its
    checks), of jaxlib, of the JAX and XLA settings a kernel inherits, and of the machine."""
    import jaxlib

    digest = hashlib.sha256()
    settings = sorted((k, v) for k, v in os.environ.items() if k.startswith(("JAX_", "XLA_")))
    for part in (jaxlib.__version__, repr(settings), machine()):
        digest.update(part.encode() + b"\0")
    for path in files:
        with open(path, "rb") as handle:
            digest.update(hashlib.sha256(handle.read()).digest())
    return f"{assignment}--{notebook}--{digest.hexdigest()[:20]}"


def private(base):
    """``base``, made if missing, if only this user can reach into it."""
    os.makedirs(base, mode=0o700, exist_ok=True)
    info = os.lstat(base)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise PermissionError(f"{base} is not a folder of this user's")
    if info.st_mode & 0o077:
        os.chmod(base, 0o700)
    return base


def remove(folder):
    """Delete a folder of programs (sealed folders cannot be listed until opened again)."""
    with contextlib.suppress(OSError):
        os.chmod(folder, 0o700)
    shutil.rmtree(folder, ignore_errors=True)


def seal(folder):
    """Make what the model's kernel wrote the grader's and read-only, and the folder
    unlistable: a grading kernel can open an entry only by its name."""
    for entry in os.scandir(folder):
        if entry.is_file(follow_symlinks=False) and entry.name.endswith("-cache"):
            if os.geteuid() == 0:
                os.chown(entry.path, 0, 0, follow_symlinks=False)
            os.chmod(entry.path, 0o444)
        elif entry.is_dir(follow_symlinks=False):
            remove(entry.path)
        else:
            os.unlink(entry.path)
    os.chmod(folder, 0o111)


def ready(base, assignment, notebook, files, warm_up, log):
    """The folder of the programs that grading ``notebook`` of ``assignment`` compiles, made
    now by ``warm_up(folder)`` (which runs the model solution with ``folder`` writable) if this
    machine has none yet and ``warm_up`` is given. None while another grading process makes it
    (this submission then compiles its own programs), or if it cannot be made."""
    try:
        base = private(base)
        final = os.path.join(base, folder_name(assignment, notebook, files))
    except OSError as error:
        log.warning("Compiled programs not used: %s", error)
        return None
    if os.path.isdir(final) or warm_up is None:
        return final if os.path.isdir(final) else None
    prefix = f"{assignment}--{notebook}--"
    with open(os.path.join(base, prefix + "lock"), "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None
        if os.path.isdir(final):
            return final
        work = tempfile.mkdtemp(dir=base, prefix=os.path.basename(final) + ".warming-")
        os.chmod(work, 0o777)  # under a root grader the kernel is a user of its own; base is 0700
        try:
            log.info("Compiling the model solution's programs of %s/%s", assignment, notebook)
            warm_up(work)
            seal(work)
            os.rename(work, final)
        except Exception as error:  # noqa: BLE001 - grading goes on, compiling as before
            log.warning("Compiled programs not used: the model solution's run failed (%s)",
                        error)
            remove(work)
            return None
        keep_newest(base, prefix)
        return final


def keep_newest(base, prefix, kept=KEPT):
    """Remove all but the ``kept`` newest folders of ``base`` whose names start with
    ``prefix``."""
    found = sorted((entry for entry in os.scandir(base) if entry.name.startswith(prefix)
                    and entry.is_dir(follow_symlinks=False)),
                   key=lambda entry: entry.stat(follow_symlinks=False).st_mtime)
    for old in found[:-kept]:
        remove(old.path)
