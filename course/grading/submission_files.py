"""Only regular files get in: what the grader takes of a student's submission folder.

A student decides what the folder they hand in holds. A symbolic link there (to
``source/<assignment>/<notebook>.ipynb``, to another student's submission, to the gradebook, to
``/proc/self/environ``) hands the student whatever it points to as soon as the grader copies or
reads the folder with its own rights, and makes the grader write where it points; a hard link
is a second name of a file of the course; a named pipe (FIFO) or a device (``/dev/ptmx``,
``/dev/zero``) blocks whoever opens it, or never ends. So every step that takes a submission in
keeps its regular files of one name only, and refuses everything else:

- ``nbgrader collect`` (``course.grading.exchange.CollectRegularFiles``) copies a submission
  from the exchange with :func:`copy_folder`;
- before ``nbgrader autograde`` (also formgrader's, and ``python -m course grade``'s) reads a
  submission, and before the intake (``course/grading/intake.py``) does, :func:`secure` removes from
  ``submitted/<student>/<assignment>/`` everything else: links are removed, never followed;
  nbgrader's own copies then see regular files only (:func:`install_autograde_guard`);
- the sandbox copies the submission into the kernel's view the same way
  (``course/grading/sandbox.py``).

Each refusal is listed in the submission folder's ``refused-files.txt`` and said in the "Grading
notes" at the top of the student's notebook (``NoteRefusedFiles`` in
``course/grading/preprocessors.py``), so the student reads it in the feedback; ``python -m
course grade`` marks the student in its grade table.

How: a walk never follows a link. Each folder is opened with ``O_NOFOLLOW`` and what it holds is
looked at (``lstat``) and opened relative to that open folder, so a name swapped for a link while
the walk runs is refused too. A file is opened with ``O_NOFOLLOW | O_NONBLOCK`` (a FIFO never
blocks) and checked again once open: a regular file, one name, the very file that was looked
at. Every copy has a time limit, and sizes the limits of nbgrader's ``CourseDirectory``.
"""

import dataclasses
import json
import os
import re
import shutil
import stat
import time
from pathlib import Path

REFUSED_LIST = "refused-files.txt"  # in a submission folder: what the grader refused there
COPY_SECONDS = 120  # time limit of one copy of a submission folder
MAX_DEPTH = 16  # folders nested deeper than this are refused
_CHUNK = 1 << 20
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC

# why a name was refused -> what the student reads
KINDS = {
    "symlink": "a symbolic link",
    "hardlink": "a hard link (one more name of a file that has others)",
    "fifo": "a named pipe (FIFO)",
    "device": "a device",
    "socket": "a socket",
    "special": "not a regular file",
    "too-large": "larger than the grader's size limit for one file",
    "folder-too-large": "past the grader's size limit for a whole submission",
    "too-deep": "a folder nested too deep",
    "changed": "changed while the grader was reading it",
    "timeout": "not copied within the grader's time limit",
    "reserved": f"named like the grader's own list of refused files ({REFUSED_LIST})",
    "unreadable": "unreadable by the grader",
}


@dataclasses.dataclass(frozen=True)
class Refused:
    path: str  # relative to the submission folder, "/"-separated; "." is the folder itself
    kind: str  # a key of KINDS

    def note(self):
        """What the student reads in the grading notes."""
        words = KINDS.get(self.kind, KINDS["special"])
        if self.path == ".":
            return (f"Your submission folder is {words}, not a folder: the grader refused it, "
                    "and nothing in it was graded.")
        return (f"`{shown(self.path)}` was refused: it is {words}. Only regular files are taken "
                "from a submission; it was neither read nor copied.")


class Refusal(Exception):
    def __init__(self, kind):
        super().__init__(kind)
        self.kind = kind


class CopyTimeout(Exception):
    pass


def shown(path):
    """A name the student chose, safe to put between backquotes in a Markdown note."""
    text = re.sub(r"[^\w .,+()=@/-]", "?", path)
    return text if len(text) <= 120 else text[:117] + "..."


def kind_of(st):
    """Why the entry that ``st`` (an ``lstat``) describes is refused; None for a folder or a
    regular file with one name."""
    mode = st.st_mode
    if stat.S_ISREG(mode):
        return "hardlink" if st.st_nlink > 1 else None
    if stat.S_ISDIR(mode):
        return None
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "special"


def _same(a, b):
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _open(name, flags, dir_fd, otherwise):
    """``os.open``; a failure is a :class:`Refusal` named by what ``name`` is (its ``lstat``),
    or ``otherwise``."""
    try:
        return os.open(name, flags, dir_fd=dir_fd)
    except OSError as error:
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except OSError:
            raise Refusal("unreadable") from error
        raise Refusal(kind_of(st) or otherwise) from error


def open_folder(name, dir_fd=None, seen=None):
    """A descriptor of the folder ``name`` (relative to ``dir_fd``), never through a link."""
    fd = _open(name, _DIR_FLAGS, dir_fd, "changed")
    if seen is not None and not _same(os.fstat(fd), seen):
        os.close(fd)
        raise Refusal("changed")
    return fd


def open_regular(name, dir_fd=None, seen=None):
    """A descriptor of the regular file of one name ``name`` (relative to ``dir_fd``): never a
    link, a FIFO or a device, and, if ``seen`` (its ``lstat``) is given, that very file."""
    fd = _open(name, _FILE_FLAGS, dir_fd, "unreadable")
    try:
        st = os.fstat(fd)
        kind = kind_of(st) or ("special" if stat.S_ISDIR(st.st_mode) else None)
        if kind is None and seen is not None and not _same(st, seen):
            kind = "changed"
        if kind:
            raise Refusal(kind)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular(path, max_bytes):
    """The bytes of the regular file ``path`` (its last component never a link), at most
    ``max_bytes`` of them; raises Refusal or OSError."""
    fd = open_regular(path)
    try:
        data = b""
        while len(data) < max_bytes:
            chunk = os.read(fd, min(_CHUNK, max_bytes - len(data)))
            if not chunk:
                break
            data += chunk
        return data
    finally:
        os.close(fd)


def write_replacing(path, data):
    """Write ``data`` (bytes or text) as the file ``path``: a new file put in place of whatever
    the name was (a link is replaced, never written through)."""
    path = Path(path)
    data = data.encode() if isinstance(data, str) else data
    temporary = path.with_name(f".{path.name}.{os.urandom(6).hex()}.tmp")
    fd = os.open(temporary, _NEW_FILE_FLAGS, 0o644)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)
    except BaseException:
        if os.path.lexists(temporary):
            os.unlink(temporary)
        raise


def _copy_file(dir_fd, name, seen, target, deadline, limit):
    source = open_regular(name, dir_fd, seen)
    try:
        out = os.open(target, _NEW_FILE_FLAGS, 0o644)
        try:
            copied = 0
            while True:
                if time.monotonic() > deadline:
                    raise CopyTimeout()
                try:
                    chunk = os.read(source, _CHUNK)
                except OSError as error:
                    raise Refusal("unreadable") from error
                if not chunk:
                    return copied
                copied += len(chunk)
                if limit is not None and copied > limit:
                    raise Refusal("too-large")
                os.write(out, chunk)
        except BaseException:
            os.close(out)
            out = None
            os.unlink(target)
            raise
        finally:
            if out is not None:
                os.close(out)
    finally:
        os.close(source)


def copy_folder(source, target, seconds=COPY_SECONDS, ignore=None, max_file_bytes=None,
                max_total_bytes=None):
    """Copy the regular files of one name of the folder ``source``, and its folders, into the
    new folder ``target``; return the :class:`Refused` (also written to ``target``'s
    refused-files.txt). ``ignore(relative path, is_folder)`` leaves out names silently (as
    nbgrader's ignore and include patterns do). A ``source`` that is not a folder gives an
    empty ``target``. Never raises for what the student put in ``source``."""
    deadline = time.monotonic() + seconds
    os.makedirs(target)
    refused, total = [], [0]

    def walk(dir_fd, out, prefix, depth):
        try:
            names = sorted(os.listdir(dir_fd))
        except OSError:
            refused.append(Refused(prefix.rstrip("/") or ".", "unreadable"))
            return
        for name in names:
            path = prefix + name
            if time.monotonic() > deadline:
                refused.append(Refused(path, "timeout"))
                continue
            try:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(st.st_mode):
                if ignore is not None and ignore(path, True):
                    continue
                if depth >= MAX_DEPTH:
                    refused.append(Refused(path, "too-deep"))
                    continue
                try:
                    sub = open_folder(name, dir_fd, st)
                except Refusal as refusal:
                    refused.append(Refused(path, refusal.kind))
                    continue
                try:
                    os.mkdir(os.path.join(out, name))
                    walk(sub, os.path.join(out, name), path + "/", depth + 1)
                finally:
                    os.close(sub)
                continue
            kind = kind_of(st)
            if kind is None and not prefix and name == REFUSED_LIST:
                kind = "reserved"
            if kind is None and ignore is not None and ignore(path, False):
                continue
            if kind is None and max_file_bytes is not None and st.st_size > max_file_bytes:
                kind = "too-large"
            if kind is None and max_total_bytes is not None and (
                    total[0] + st.st_size > max_total_bytes):
                kind = "folder-too-large"
            if kind is not None:
                refused.append(Refused(path, kind))
                continue
            try:
                total[0] += _copy_file(dir_fd, name, st, os.path.join(out, name), deadline,
                                       max_file_bytes)
            except Refusal as refusal:
                refused.append(Refused(path, refusal.kind))
            except CopyTimeout:
                refused.append(Refused(path, "timeout"))

    try:
        top = open_folder(source)
    except Refusal as refusal:
        refused.append(Refused(".", refusal.kind))
    else:
        try:
            walk(top, str(target), "", 0)
        finally:
            os.close(top)
    if refused:
        record(target, refused)
    return refused


def _remove_refused(folder, seconds, max_file_bytes):
    """Remove from ``folder`` (a real folder) every entry that is not a folder or a regular
    file of one name; the :class:`Refused` of what was removed."""
    deadline = time.monotonic() + seconds
    refused = []

    def walk(dir_fd, prefix, depth):
        for name in sorted(os.listdir(dir_fd)):
            if time.monotonic() > deadline:
                raise CopyTimeout(f"checking {folder} took more than {seconds} s")
            try:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            path = prefix + name
            if stat.S_ISDIR(st.st_mode) and depth < MAX_DEPTH:
                sub = open_folder(name, dir_fd, st)
                try:
                    walk(sub, path + "/", depth + 1)
                finally:
                    os.close(sub)
                continue
            if stat.S_ISDIR(st.st_mode):
                kind = "too-deep"
            else:
                kind = kind_of(st)
            if kind is None and max_file_bytes is not None and st.st_size > max_file_bytes:
                kind = "too-large"
            if kind is None:
                continue
            if kind == "too-deep":
                shutil.rmtree(name, dir_fd=dir_fd)
            else:
                os.unlink(name, dir_fd=dir_fd)
            if not (prefix == "" and name == REFUSED_LIST):
                refused.append(Refused(path, kind))

    top = open_folder(folder)
    try:
        walk(top, "", 0)
    finally:
        os.close(top)
    return refused


def secure(folder, parents=0, seconds=COPY_SECONDS, max_file_bytes=None):
    """Make the submission folder ``folder`` hold regular files of one name and folders only,
    before anything reads it: remove every other entry (a link, never followed; a hard link's
    name; a FIFO, a device, a socket) and record it in the folder's refused-files.txt. The
    folder itself and its ``parents`` nearest parents (``submitted/<student>``) must be real
    folders: one that is a link is replaced by an empty folder. Returns what it refused this
    time, and raises (an OSError, or CopyTimeout) when it cannot make sure."""
    folder = Path(folder)
    refused = []
    for path in [folder.parents[k] for k in reversed(range(parents))] + [folder]:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return refused
        if not stat.S_ISDIR(st.st_mode):
            os.unlink(path)
            os.makedirs(folder)
            refused.append(Refused(".", kind_of(st) or "special"))
            break
    refused += _remove_refused(folder, seconds, max_file_bytes)
    if refused:
        record(folder, refused)
    return refused


def refused_in(folder):
    """The :class:`Refused` listed in ``folder``'s refused-files.txt."""
    try:
        text = read_regular(os.path.join(folder, REFUSED_LIST), 1 << 16).decode(
            "utf-8", "replace")
    except (OSError, Refusal):
        return []
    found = []
    for line in text.splitlines():
        try:
            kind, path = json.loads(line)
        except (ValueError, TypeError):
            continue
        if kind in KINDS and isinstance(path, str):
            found.append(Refused(path, kind))
    return list(dict.fromkeys(found))


def record(folder, refused):
    """Add ``refused`` to ``folder``'s refused-files.txt (one JSON ``[kind, path]`` a line)."""
    every = list(dict.fromkeys(refused_in(folder) + list(refused)))
    write_replacing(os.path.join(folder, REFUSED_LIST), "".join(
        json.dumps([r.kind, r.path]) + "\n" for r in every))


def notes(folder):
    """What the grading notes say about the files refused in ``folder``."""
    return [r.note() for r in refused_in(folder)]


def _guard_autograde(converter, assignment_id, student_id):
    """Before nbgrader's Autograde takes in a submission: :func:`secure` it, and put the
    release notebook (scoring zero, with a note) where a notebook was refused."""
    from nbgrader.converters.base import NbGraderException

    from course.grading import intake

    coursedir = converter.coursedir
    folder = os.path.normpath(converter._format_source(assignment_id, student_id))
    base = os.path.normpath(os.path.join(coursedir.root, coursedir.submitted_directory))
    relative = os.path.relpath(folder, base)
    parents = 0 if relative.startswith("..") else len(Path(relative).parts) - 1
    try:
        refused = secure(folder, parents, max_file_bytes=coursedir.max_file_size * 1000)
    except (OSError, CopyTimeout, Refusal) as error:
        raise NbGraderException(
            f"cannot check that {folder} holds regular files only ({error}); it was not "
            "graded") from error
    for item in refused:
        converter.log.warning("Refused in %s: %s is %s", folder, item.path, KINDS[item.kind])
    release = coursedir.format_path(coursedir.release_directory, ".", assignment_id)
    for notebook in converter.notebooks:
        try:
            if stat.S_ISREG(os.lstat(notebook).st_mode):
                continue
        except FileNotFoundError:
            pass
        name = os.path.basename(notebook)
        try:
            nb = intake.read_notebook(os.path.join(release, name))
        except Exception as error:
            raise NbGraderException(f"{notebook} was refused, and no release notebook can "
                                    f"stand in for it ({error})") from error
        intake.add_notes(nb, notes(folder) + [
            f"The notebook `{shown(name)}` was graded as the unanswered release."])
        intake.write_notebook(nb, notebook)
        converter.log.warning("Graded the release notebook in place of the refused %s",
                              notebook)


def install_autograde_guard():
    """Make nbgrader's Autograde :func:`secure` each submission before it reads it.

    nbgrader 0.9.6 reads a submission folder first in ``Autograde.init_destination`` (the
    timestamp) and ``init_assignment`` (``shutil.copy`` of every other file, which follows
    links and opens FIFOs and devices), before any preprocessor runs; its pre_convert_hook runs
    later than the first and swallows errors, and the converter's class cannot be configured.
    So this wraps ``init_destination``, the first step nbgrader takes for each submission, once
    per process; nbgrader_config.py calls it, so ``nbgrader autograde``, formgrader and
    ``python -m course grade`` are all covered. A submission it cannot check fails alone
    (nbgrader reports it and grades the others)."""
    from nbgrader.converters.autograde import Autograde

    if getattr(Autograde.init_destination, "regular_files_only", False):
        return
    original = Autograde.init_destination

    def init_destination(self, assignment_id, student_id):
        _guard_autograde(self, assignment_id, student_id)
        return original(self, assignment_id, student_id)

    init_destination.regular_files_only = True
    init_destination.__doc__ = original.__doc__
    Autograde.init_destination = init_destination
