"""Hostile submission folders: files that attack the grader when it collects, copies or reads a
student's folder, not when it runs the student's code.

Each is a submission of the tiny assignment (tests/tiny_assignment.py) whose ``square`` is wrong
and whose folder holds the attack, built by ``build(folder, facts)`` after the notebook is in
place. ``facts`` says what a real attacker could know or guess: ``course`` (the course folder),
``other`` (another student's submission folder) and ``fifo_ok`` / ``root`` (what the test
machine allows). The notebook's ``square`` answer (:data:`SNOOP`) prints every file of
``planted`` that it can read where it runs and runs any solution it finds there, so that what
got in shows in the feedback.

``scores`` are the marks on (double, square, halve) that the attacker must get; ``says`` the
words its feedback must show; ``leaks`` the texts (keys of :data:`LEAKS`) that must appear
nowhere the attacker gets back: its autograded notebook, its feedback, any file of its own in
``autograded/`` or ``feedback/``.

:data:`BROKEN_METADATA` are notebooks whose cells carry broken nbgrader metadata: each must be
graded (repaired, or the cell graded as ordinary code), and the class after it too.
"""

import dataclasses
import os
import shutil
import socket
import stat
import tempfile

import nbformat

# texts that must not reach an attacker: name -> how to find it (a callable of the facts)
LEAKS = {
    "solution": lambda facts: "### BEGIN SOLUTION",  # only the source notebook holds it
    "other-answer": lambda facts: facts["other_marker"],  # another student's own answer
    "gradebook": lambda facts: "SQLite format 3",  # the gradebook's first bytes
    "gradebook-schema": lambda facts: "CREATE TABLE",
    "environment": lambda facts: facts["secret"],  # an environment variable of the grader
}

# The notebook's square answer: print what the planted names hold where the kernel runs, and run
# any solution of square found there; else a wrong square.
SNOOP = '''
import json, os


def square(x):
    return 2 * x


for _name in {planted!r}:
    try:
        _fd = os.open(_name, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
        _text = os.read(_fd, 200_000).decode("utf-8", "replace")
        os.close(_fd)
    except OSError as _error:
        _text = f"unreadable: {{_error}}"
    print(f"== {{_name}} ==")
    print(_text)
    try:
        for _cell in json.loads(_text)["cells"]:
            _source = "".join(_cell["source"])
            if _source.startswith("def square"):
                exec(_source)
    except Exception:
        pass
'''


@dataclasses.dataclass(frozen=True)
class HostileFiles:
    name: str
    reason: str
    build: object  # build(folder, facts): plant the attack in the submission folder
    planted: tuple  # the names the attack plants (the snoop reads them)
    says: str  # words of the feedback page
    leaks: tuple = ()  # keys of LEAKS
    scores: tuple = (1, 0, 1)
    needs: str = ""  # "root": only where the tests run as root (mknod)
    at_collect: bool = True  # also planted in the exchange for nbgrader collect

    def answer(self):
        return SNOOP.format(planted=list(self.planted))


def _link(target, name):
    """build(): a symbolic link ``name`` to ``target(facts)``."""
    def build(folder, facts):
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if os.path.lexists(path):
            path.unlink()
        os.symlink(target(facts), path)
    return build


def _hard_link(target, name):
    def build(folder, facts):
        if os.path.lexists(folder / name):
            (folder / name).unlink()
        os.link(target(facts), folder / name)
    return build


def _fifo(name):
    def build(folder, facts):
        if os.path.lexists(folder / name):
            (folder / name).unlink()
        os.mkfifo(folder / name)
    return build


def _socket(name):
    def build(folder, facts):
        # bound at a short path (a socket's path has at most 107 bytes), then moved in place
        short = tempfile.mkdtemp(dir=folder.parent if len(str(folder)) < 90 else None)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            server.bind(os.path.join(short, "s"))
        finally:
            server.close()  # the socket file stays
        os.rename(os.path.join(short, "s"), folder / name)
        os.rmdir(short)
    return build


def _device(name):
    def build(folder, facts):
        os.mknod(folder / name, 0o666 | stat.S_IFCHR, os.makedev(1, 5))  # /dev/zero
    return build


def _folder_is_link(folder, facts):
    """The submission folder itself: a link to another student's."""
    shutil.rmtree(folder)
    os.symlink(facts["other"], folder)


def _notebook_link_and_broken_neighbour(folder, facts):
    """tiny.ipynb is a link to another student's notebook; an unreadable notebook beside it
    makes the intake write grading notes into tiny.ipynb (through the link, before)."""
    (folder / "tiny.ipynb").unlink()
    os.symlink(facts["other"] / "tiny.ipynb", folder / "tiny.ipynb")
    (folder / "broken.ipynb").write_text("{ not json")


def _both(*builds):
    def build(folder, facts):
        for one in builds:
            one(folder, facts)
    return build


def _source_notebook(facts):
    return facts["course"] / "source" / "00_tiny" / "tiny.ipynb"


HOSTILE_FILES = [
    HostileFiles("link-solution", "a link to source/<assignment>/<notebook>.ipynb beside the "
                 "notebook: the solutions and the hidden tests",
                 _link(_source_notebook, "solution.txt"), ("solution.txt",),
                 "solution.txt was refused: it is a symbolic link", ("solution",)),
    HostileFiles("link-other", "a link to another student's submitted notebook",
                 _link(lambda f: f["other"] / "tiny.ipynb", "friend.txt"), ("friend.txt",),
                 "friend.txt was refused: it is a symbolic link", ("other-answer",)),
    HostileFiles("link-gradebook", "a link to the gradebook (the class list, every grade)",
                 _link(lambda f: f["course"] / "gradebook.db", "grades.db"), ("grades.db",),
                 "grades.db was refused: it is a symbolic link",
                 ("gradebook", "gradebook-schema")),
    HostileFiles("link-environ", "a link to /proc/self/environ: the grader's environment",
                 _link(lambda f: "/proc/self/environ", "environ.txt"), ("environ.txt",),
                 "environ.txt was refused: it is a symbolic link", ("environment",)),
    HostileFiles("link-ptmx", "a link to /dev/ptmx, which blocks whoever reads it",
                 _link(lambda f: "/dev/ptmx", "terminal"), ("terminal",),
                 "terminal was refused: it is a symbolic link"),
    HostileFiles("link-zero", "a link to /dev/zero, which never ends",
                 _link(lambda f: "/dev/zero", "zeros.bin"), ("zeros.bin",),
                 "zeros.bin was refused: it is a symbolic link"),
    HostileFiles("link-in-subfolder", "a link inside a subfolder, to /proc/self/environ",
                 _link(lambda f: "/proc/self/environ", "data/environ.txt"),
                 ("data/environ.txt",), "data/environ.txt was refused: it is a symbolic link",
                 ("environment",)),
    HostileFiles("folder-link", "a subfolder that is a link to the course folder",
                 _link(lambda f: f["course"], "course"),
                 ("course/source/00_tiny/tiny.ipynb", "course/gradebook.db"),
                 "course was refused: it is a symbolic link", ("solution", "gradebook")),
    HostileFiles("hardlink-source", "a hard link to the source notebook",
                 _hard_link(_source_notebook, "copy.txt"), ("copy.txt",),
                 "copy.txt was refused: it is a hard link", ("solution",)),
    HostileFiles("hardlink-gradebook", "a hard link to the gradebook",
                 _hard_link(lambda f: f["course"] / "gradebook.db", "gb.bin"), ("gb.bin",),
                 "gb.bin was refused: it is a hard link", ("gradebook", "gradebook-schema"),
                 at_collect=False),  # the exchange's gradebook would be another file
    HostileFiles("fifo", "a named pipe (FIFO), which blocks whoever opens it",
                 _fifo("pipe"), ("pipe",), "pipe was refused: it is a named pipe"),
    HostileFiles("fifo-timestamp", "timestamp.txt is a named pipe (nbgrader reads it)",
                 _fifo("timestamp.txt"), ("timestamp.txt",),
                 "timestamp.txt was refused: it is a named pipe"),
    HostileFiles("socket", "a Unix socket", _socket("sock"), ("sock",),
                 "sock was refused: it is a socket"),
    HostileFiles("device", "a device file (/dev/zero's), made as root", _device("zero.dev"),
                 ("zero.dev",), "zero.dev was refused: it is a device", needs="root"),
    HostileFiles("notebook-link-source",
                 "the notebook itself is a link to the source notebook: full marks, and the "
                 "intake wrote through it", _link(_source_notebook, "tiny.ipynb"), (),
                 "tiny.ipynb was refused: it is a symbolic link", ("solution",), (0, 0, 0)),
    HostileFiles("notebook-link-other",
                 "the notebook is a link to another student's notebook, and an unreadable "
                 "notebook beside it makes the intake write notes through the link",
                 _notebook_link_and_broken_neighbour, (),
                 "tiny.ipynb was refused: it is a symbolic link", ("other-answer",), (0, 0, 0)),
    HostileFiles("notebook-hardlink-source",
                 "the notebook is a hard link to the source notebook",
                 _hard_link(_source_notebook, "tiny.ipynb"), (),
                 "tiny.ipynb was refused: it is a hard link", ("solution",), (0, 0, 0)),
    HostileFiles("notebook-fifo", "the notebook is a named pipe: reading it blocks",
                 _fifo("tiny.ipynb"), (), "tiny.ipynb was refused: it is a named pipe",
                 (), (0, 0, 0)),
    HostileFiles("submission-folder-link",
                 "the submission folder itself is a link to another student's",
                 _folder_is_link, (), "Your submission folder is a symbolic link",
                 ("other-answer",), (0, 0, 0), at_collect=False),
]


def available(hostile):
    return hostile.needs != "root" or os.geteuid() == 0


# -- broken nbgrader metadata: notebooks that nbgrader 0.9.6 cannot take -----------------------

def _set_meta(grade_id, change):
    def edit(nb):
        for cell in nb.cells:
            if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
                change(cell.metadata["nbgrader"])
        return nb
    return edit


def _add_cell(nbgrader_meta, source="print('an added cell')"):
    def edit(nb):
        cell = nbformat.v4.new_code_cell(source)
        cell.metadata["nbgrader"] = nbgrader_meta
        nb.cells.append(cell)
        return nb
    return edit


@dataclasses.dataclass(frozen=True)
class BrokenMetadata:
    name: str
    reason: str
    edit: object  # edit(nb) -> nb
    says: str
    scores: tuple = (1, 0, 1)


BROKEN_METADATA = [
    BrokenMetadata("meta-schema-new", "the answer cell of square says schema_version 4, which "
                   "nbgrader 0.9.6 does not know (it stopped the whole class)",
                   _set_meta("square", lambda m: m.update(schema_version=4)),
                   "The nbgrader metadata of cell square was changed"),
    BrokenMetadata("meta-schema-old", "the test cell of double says schema_version 1",
                   _set_meta("double_tests", lambda m: m.update(schema_version=1)),
                   "The nbgrader metadata of cell double_tests was changed"),
    BrokenMetadata("meta-missing-keys", "the test cell of square lost its points and flags",
                   _set_meta("square_tests", lambda m: [m.pop(k) for k in (
                       "points", "solution", "locked", "schema_version")]),
                   "The nbgrader metadata of cell square_tests was changed"),
    BrokenMetadata("meta-garbage", "an added cell whose nbgrader metadata is a string",
                   _add_cell("garbage"),
                   "had nbgrader metadata that matches no cell of the assignment"),
    BrokenMetadata("meta-bonus-cell", "an added test cell worth 100 points that the "
                   "assignment does not have",
                   _add_cell({"grade": True, "grade_id": "bonus", "points": 100,
                              "solution": False, "locked": True, "schema_version": 3},
                             "assert True"),
                   "Cell bonus had nbgrader metadata that matches no cell"),
]
