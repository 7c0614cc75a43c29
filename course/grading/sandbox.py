"""The sandbox of a grading kernel: a bubblewrap (``bwrap``) command line around the kernel's own.

Inside it the kernel sees the system (``/usr``, ``/etc``, as an unprivileged user) and the
Python environment read-only, a copy of its own submission folder on a small private tmpfs as its
working directory, and a private ``/tmp``. It cannot see the course folder (``source/``, the
gradebook, ``submitted/``, ``autograded/``, ``feedback/``, ``release/``, ``originals/``), the
exchange, any home folder or ``/run``; it has no network (a namespace of its own, not even the
host's loopback), its own PID namespace (it cannot see or signal the grader or other kernels, and
every process it starts dies with it), no capabilities, and the limits of :class:`Limits`.
Under a root grader, each kernel runs as a user of its own (:func:`kernel_uid`), so that the
limit on processes of one kernel is never used up by another's.

The grader reaches the kernel over the Unix sockets of its connection folder, the one place the
two share: a small tmpfs that bwrap makes inside the sandbox (``Limits.connection_kb``), which
the grader reaches through ``/proc/<sandbox pid>/root``. Nothing of the host is writable from
the sandbox, and the sandbox's own root and ``/dev`` are read-only: the kernel writes only to its
size-limited tmpfs folders (``/tmp``, its working directory, its connection folder).

Only regular files of one name are copied into the kernel's view of its submission, never
following a link, never opening a FIFO or a device, within a time limit
(see course/grading/submission_files.py).
"""

import dataclasses
import functools
import itertools
import json
import os
import resource
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

INSTALL_HINT = ("install bubblewrap (Debian or Ubuntu: `apt-get install bubblewrap`; Fedora: "
                "`dnf install bubblewrap`)")
SUBMISSION = "/submission"  # the kernel's working directory, a private copy of its submission
ORIGINAL = "/grading/original"  # the submission folder, read-only, copied from at start
MPL_CACHE = "/grading/matplotlib"  # the grader's matplotlib font cache, read-only
PROGRAMS = "/grading/programs"  # the model solution's compiled programs (compiled_programs.py)
# where the kernel's adcheck.setup() finds that folder (course/checks/guard.py reads the same)
COMPILED_PROGRAMS_ENV = "ADCOURSE_COMPILED_PROGRAMS"
COMPILED_PROGRAMS_WRITE_ENV = "ADCOURSE_COMPILED_PROGRAMS_WRITE"
CONNECTION = "/grading/kernel.json"  # the grader's connection file, read-only, copied at start
COPY_SECONDS = 60  # time limit of each copy the sandbox makes when it starts
NOBODY = 65534
# A root grader runs each kernel as a user of its own, taken from this range (no account has
# these ids): RLIMIT_NPROC counts every process and thread of a user, so kernels that shared one
# user would share that limit, and one student's fork bomb would kill another's kernel.
KERNEL_UIDS = range(2**30, 2**30 + 2**27)
_kernels_started = itertools.count()
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
PASSED_ENV = ("PATH", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TZ", "NBGRADER_EXECUTION",
              "OMP_NUM_THREADS", "PYTHONHASHSEED")
PASSED_ENV_PREFIXES = ("JAX_", "XLA_")

# Runs first in the sandbox: copy the submission into the private tmpfs (as the grader's user,
# who can read it), become the kernel's own user if that user is root (see KERNEL_UIDS), copy the
# connection file into the connection folder's tmpfs, then start the kernel. Copies take regular
# files of one name only, never through a link, never opening a FIFO or a device, each within a
# time limit.
LAUNCHER = f"""
import os, runpy, signal, stat, sys

CODE_SUFFIXES = (".py", ".pyc", ".pyw", ".so", ".pyd", ".pth")
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY


def copy_file(source, target):
    try:
        seen = os.lstat(source)
        if not stat.S_ISREG(seen.st_mode) or seen.st_nlink != 1:
            return
        fd = os.open(source, FILE_FLAGS)
    except OSError:
        return
    try:
        now = os.fstat(fd)
        if (now.st_dev, now.st_ino) != (seen.st_dev, seen.st_ino) or now.st_nlink != 1:
            return
        with open(target, "xb") as out:
            while True:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    break
                out.write(chunk)
    finally:
        os.close(fd)


def copy(source, target, keep=None):
    for top, folders, names in os.walk(source):
        folder = os.path.join(target, os.path.relpath(top, source))
        os.makedirs(folder, exist_ok=True)
        if keep is not None:  # the submission: no folder, no importable file but the course's
            folders.clear()
            names = [n for n in names if n in keep or not n.endswith(CODE_SUFFIXES)]
        for name in names:
            copy_file(os.path.join(top, name), os.path.join(folder, name))


def out_of_time(signum, frame):
    raise TimeoutError("it took more than {COPY_SECONDS} s")


def within_time(what, function, *args, **kwargs):
    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm({COPY_SECONDS})
    try:
        function(*args, **kwargs)
    except (OSError, TimeoutError) as error:
        print(f"grading: {{what}} was not copied whole: {{error}}", file=sys.stderr)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)


if os.path.isdir({ORIGINAL!r}):
    within_time("the submission", copy, {ORIGINAL!r}, {SUBMISSION!r},
                keep=set(sys.argv[1].split("/")))
if os.getuid() == 0:  # a root grader's sandbox: become the kernel's user, with no capability
    os.setgroups([])
    os.setgid(int(sys.argv[3]))
    os.setuid(int(sys.argv[3]))
if sys.argv[2]:
    within_time("the connection file", copy_file, {CONNECTION!r}, sys.argv[2])
for folder in ("/tmp/home", "/tmp/ipython", "/tmp/matplotlib"):
    os.makedirs(folder, exist_ok=True)
if os.path.isdir({MPL_CACHE!r}):
    within_time("the matplotlib cache", copy, {MPL_CACHE!r}, "/tmp/matplotlib")
os.chdir({SUBMISSION!r})
module, sys.argv = sys.argv[4], sys.argv[4:]
sys.path[0] = {SUBMISSION!r}
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing or cannot create namespaces on this machine."""


@dataclasses.dataclass(frozen=True)
class Limits:
    memory_mb: int = 8192  # RLIMIT_DATA of the kernel
    processes: int = 256  # processes and threads beyond what the grader's user runs already
    file_size_mb: int = 256  # largest file it may write (RLIMIT_FSIZE)
    open_files: int = 1024  # RLIMIT_NOFILE
    cpu_seconds: int = 1800  # CPU time of the whole kernel, all threads (RLIMIT_CPU)
    tmp_mb: int = 512  # size of each private tmpfs (/tmp, the submission copy)
    connection_kb: int = 1024  # size of the connection folder's tmpfs (sockets, verdict)


@functools.lru_cache(maxsize=None)
def bwrap_path():
    """The bwrap executable, once it has shown that it can build a sandbox here."""
    path = shutil.which("bwrap")
    if path is None:
        raise SandboxUnavailable(f"bubblewrap (bwrap) is not installed: {INSTALL_HINT}")
    probe = subprocess.run([path, *_namespace_args(), "--ro-bind", "/", "/", "--proc", "/proc",
                            "--dev", "/dev", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        raise SandboxUnavailable(
            f"bubblewrap cannot create a sandbox on this machine ({probe.stderr.strip()}): "
            "user namespaces may be disabled (sysctl kernel.unprivileged_userns_clone=1), or "
            "this is a container without them; see the README for the alternatives")
    return path


def _namespace_args():
    """As root, the kernel keeps only the capabilities to become its own user (its first act),
    since limits on processes never apply to root; otherwise it runs in a user namespace of its
    own."""
    args = ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--hostname",
            "grading", "--unshare-cgroup-try", "--die-with-parent"]
    if os.geteuid() == 0:
        return args + ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    return args + ["--unshare-user", "--disable-userns"]


def _python_dirs():
    """Folders the kernel's Python needs: its prefixes (the virtualenv, the installation it was
    made from) and the site-packages folders of ``sys.path``. Never the other entries of
    ``sys.path``: the grader's may name the course folder."""
    paths = {os.path.realpath(p) for p in (
        sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
        os.path.dirname(os.path.realpath(sys.executable)))}
    for entry in sys.path:
        real = os.path.realpath(entry or ".")
        if os.path.basename(real) in ("site-packages", "dist-packages") and os.path.isdir(real):
            paths.add(real)
    return sorted(p for p in paths if p != "/" and not any(
        within(p, q) and p != q for q in paths))  # parents cover their children


def within(path, folder):
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def host_folders():
    """The grader's folders a sandboxed kernel can read (besides the submission it grades and
    the folder of compiled programs): the system's, Python's, and Matplotlib's cache."""
    return [*SYSTEM_DIRS, *_python_dirs(), os.path.realpath(_mpl_cache())]


def _mpl_cache():
    configured = os.environ.get("MPLCONFIGDIR")
    if configured:
        return configured
    return os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
                        "matplotlib")


def kernel_uid():
    """The user a root grader's next kernel runs as: its own, since no other live kernel has it
    (one grader process starts its kernels one after another, and a kernel's processes end with
    its sandbox). Other graders run their kernels as themselves."""
    if os.geteuid() != 0:
        return os.getuid()
    slot = (os.getpid() * 16 + next(_kernels_started) % 16) % len(KERNEL_UIDS)
    return KERNEL_UIDS[slot]


def command(kernel_cmd, submission_dir, connection_dir, limits=Limits(), env=None,
            importable=("adcheck.py",), connection_file=None, info_fd=None, uid=None,
            programs=None, write_programs=False):
    """The bwrap command that runs ``kernel_cmd`` (``python -m <module> ...``) in a sandbox whose
    working directory is a private copy of ``submission_dir`` (empty if None). Inside, the path
    ``connection_dir`` is a tmpfs of its own (``limits.connection_kb``) into which the grader's
    ``connection_file`` (by default ``connection_dir/kernel.json``) is copied; the grader
    reaches it through ``/proc/<pid>/root`` (:func:`link_sockets`), the pid that bwrap writes to
    ``info_fd``. Of the submission's Python files, only those named in ``importable`` are
    copied. Under a root grader the kernel runs as ``uid`` (by default :func:`kernel_uid`).
    The folder ``programs`` of compiled programs (course/grading/compiled_programs.py), if any,
    is at :data:`PROGRAMS`: read-only, unless ``write_programs`` (the model solution's run).
    """
    if len(kernel_cmd) < 3 or kernel_cmd[1] != "-m":
        raise SandboxUnavailable(f"cannot sandbox the kernel command {kernel_cmd!r}: expected "
                                 "`python -m <module> ...`")
    env = os.environ if env is None else env
    connection_dir = os.path.abspath(connection_dir)
    connection_file = os.path.abspath(connection_file or os.path.join(connection_dir,
                                                                      "kernel.json"))
    if os.path.dirname(connection_file) != connection_dir:
        raise SandboxUnavailable(f"the connection file {connection_file} must be in the "
                                 f"connection folder {connection_dir}")
    args = [bwrap_path(), *_namespace_args(), "--clearenv"]
    for name, value in sorted(env.items()):
        if name in PASSED_ENV or name.startswith(PASSED_ENV_PREFIXES):
            args += ["--setenv", name, value]
    args += ["--setenv", "HOME", "/tmp/home", "--setenv", "IPYTHONDIR", "/tmp/ipython",
             "--setenv", "MPLCONFIGDIR", "/tmp/matplotlib", "--setenv", "PYTHONNOUSERSITE", "1",
             # ipykernel watches no parent when it is pid 1 (its parent, bwrap, is pid 1 here)
             "--setenv", "JPY_PARENT_PID", "1"]
    if programs is not None:
        args += ["--setenv", COMPILED_PROGRAMS_ENV, PROGRAMS]
        if write_programs:
            args += ["--setenv", COMPILED_PROGRAMS_WRITE_ENV, "1"]
    for folder in SYSTEM_DIRS:
        if os.path.islink(folder):
            args += ["--symlink", os.readlink(folder), folder]
        elif os.path.isdir(folder):
            args += ["--ro-bind", folder, folder]
    size = str(limits.tmp_mb * 2**20)
    args += ["--proc", "/proc", "--dev", "/dev",
             "--size", size, "--perms", "1777", "--tmpfs", "/tmp",
             "--size", size, "--perms", "1777", "--tmpfs", SUBMISSION]
    binds = [(folder, folder) for folder in _python_dirs()
             if not any(within(folder, s) for s in SYSTEM_DIRS)]
    if submission_dir is not None:
        binds.append((str(submission_dir), ORIGINAL))
    if os.path.isdir(_mpl_cache()):
        binds.append((_mpl_cache(), MPL_CACHE))
    if programs is not None:
        binds.append((str(programs), PROGRAMS))
    binds.append((connection_file, CONNECTION))
    made = {"/", "/tmp"}
    # Folders bwrap would otherwise make on the way, private (0700).
    for target in [t for _, t in binds] + [connection_dir]:
        for parent in reversed(Path(target).parents):
            if str(parent) not in made:
                made.add(str(parent))
                args += ["--perms", "0755", "--dir", str(parent)]
    for source, target in binds:
        writable = target == PROGRAMS and write_programs
        args += ["--bind" if writable else "--ro-bind", source, target]
    # The connection folder: writable by the kernel (its own user, under a root grader), and small.
    args += ["--size", str(limits.connection_kb * 1024), "--perms", "1777", "--tmpfs",
             connection_dir]
    # Nothing else is writable: not the sandbox's root (a tmpfs as large as the machine's
    # memory allows, which the kernel's user owns when the grader is not root), not /dev.
    args += ["--remount-ro", "/", "--remount-ro", "/dev"]
    if info_fd is not None:
        args += ["--info-fd", str(info_fd)]
    uid = kernel_uid() if uid is None else uid
    args += ["--chdir", "/tmp", kernel_cmd[0], "-c", LAUNCHER, "/".join(importable),
             connection_file, str(uid), *kernel_cmd[2:]]
    return args


def read_child_pid(info_read, timeout=30):
    """The host pid of the sandbox's first process, from what bwrap writes to ``--info-fd``
    (None if bwrap ended first)."""
    data, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([info_read], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        chunk = os.read(info_read, 4096)
        if not chunk:
            break
        data += chunk
        try:
            return int(json.loads(data)["child-pid"])
        except (ValueError, KeyError, TypeError):
            continue
    return None


def inside(pid, path):
    """``path`` of the sandbox whose first process is ``pid``, as the grader reaches it."""
    return f"/proc/{pid}/root{path}"


def link_sockets(km, pid):
    """Let the grader reach the kernel's Unix sockets, which it binds in its connection folder's
    tmpfs: each socket's path in the grader's own folder becomes a link to that socket in the
    sandbox. (Only the grader writes to its folder; the kernel never sees it.)"""
    for port in (km.shell_port, km.iopub_port, km.stdin_port, km.hb_port, km.control_port):
        path = f"{km.ip}-{port}"
        os.symlink(inside(pid, path), path)


def open_connection_folder(pid, connection_dir, limits):
    """A descriptor of the sandbox's connection folder, which stays readable after the sandbox
    ends (the grader reads the kernel's verdict there); None if it is not the small tmpfs."""
    try:
        fd = os.open(inside(pid, connection_dir), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    found = os.fstatvfs(fd)
    if found.f_blocks * found.f_frsize > limits.connection_kb * 1024:
        os.close(fd)
        return None
    return fd


def _count_tasks(uid):
    """Processes and threads of ``uid`` (what RLIMIT_NPROC counts)."""
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if os.stat(entry.path).st_uid == uid:
                    count += len(os.listdir(os.path.join(entry.path, "task")))
            except OSError:
                pass
    return count


def _cap(kind, value):
    _, hard = resource.getrlimit(kind)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(kind, (value, value))


def cap_memory(memory_mb):
    """``preexec_fn`` of an unsandboxed kernel: cap its data memory (RLIMIT_DATA)."""
    _cap(resource.RLIMIT_DATA, memory_mb * 2**20)


def process_limit(limits, uid):
    """RLIMIT_NPROC for a sandboxed kernel that runs as ``uid``: it counts every process and
    thread of that user, so allow what the user runs already (none, for a root grader's kernel,
    whose user is its own; a grader that is not root shares its own user with its kernels)."""
    return _count_tasks(uid) + limits.processes


def prepare_child(limits, connection_file, nproc, uid):
    """Runs in the sandbox's first process before it starts (``preexec_fn``): set the limits,
    and, for a root grader, give the connection file to the kernel's user ``uid``. bwrap ignores
    the interrupts meant for the kernel (it would die of them, and the kernel with it); ipykernel
    installs its own handler."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if os.geteuid() == 0:
        os.chown(connection_file, uid, uid)
    if limits.memory_mb > 0:
        cap_memory(limits.memory_mb)
    _cap(resource.RLIMIT_FSIZE, limits.file_size_mb * 2**20)
    _cap(resource.RLIMIT_NOFILE, limits.open_files)
    _cap(resource.RLIMIT_CPU, limits.cpu_seconds)
    _cap(resource.RLIMIT_NPROC, nproc)
