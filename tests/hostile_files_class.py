"""A class of honest students and the hostile submission folders of
tests/answers/hostile_files.py, graded for real in a tiny course of its own: by ``nbgrader
autograde`` (then ``generate_feedback``), by ``python -m course grade``, or only collected from
the exchange by ``nbgrader collect``. Each command runs in a process of its own with a time
limit, so that a grader that hangs fails the test instead of hanging it."""

import dataclasses
import hashlib
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import nbformat

from tests.answers.hostile_files import BROKEN_METADATA, HOSTILE_FILES, LEAKS, available
from tests.harness import visible_text
from tests.tiny_assignment import ASSIGNMENT, WRONG_SQUARE, answered, fresh_copy, submit

OTHER = "aaa-model"  # the student whose files the attacks aim at
OTHER_MARKER = "aaa-model's own answer, 5521"
HONEST = {OTHER: {"square": f"def square(x):\n    return x * x  # {OTHER_MARKER}"},
          "mmm-wrong": {"square": WRONG_SQUARE}, "zzz-model": {}}
HONEST_SCORES = {OTHER: (1, 1, 1), "mmm-wrong": (1, 0, 1), "zzz-model": (1, 1, 1)}
SECRET_VARIABLE, SECRET = "HOSTILE_FILES_SECRET", "grader-only-7c41d9"
TIMESTAMP = "2026-01-15 12:00:00.000000 UTC"
ATTACKS = [h for h in HOSTILE_FILES if available(h)]
COMMAND_SECONDS = 900  # a batch that has not finished by then is taken to hang


def run(args, cwd, seconds=COMMAND_SECONDS):
    """Run ``python -m ARGS`` in ``cwd`` with the grader's secret in its environment; the
    CompletedProcess, or None if it did not finish in ``seconds``."""
    env = {k: v for k, v in os.environ.items() if k != "NBGRADER_EXCHANGE_ROOT"}
    env[SECRET_VARIABLE] = SECRET
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    try:
        return subprocess.run([sys.executable, "-m", *map(str, args)], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=seconds)
    except subprocess.TimeoutExpired:
        return None


def entry_digest(path):
    """What ``path`` is, without following it or opening anything but a regular file."""
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        return f"link to {os.readlink(path)}"
    if not stat.S_ISREG(st.st_mode):
        return f"mode {stat.filemode(st.st_mode)}"
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def tree_digest(folder):
    """``{relative path: digest}`` of everything below ``folder``, links never followed
    (Python's __pycache__ folders left out)."""
    folder = Path(folder)
    if not folder.is_dir() or folder.is_symlink():
        return {".": entry_digest(folder)} if os.path.lexists(folder) else {}
    digests = {}
    for top, folders, names in os.walk(folder):
        folders[:] = [f for f in folders if f != "__pycache__"]
        for name in folders + names:
            path = os.path.join(top, name)
            if name in names or os.path.islink(path):
                digests[os.path.relpath(path, folder)] = entry_digest(path)
    return digests


def texts_below(folder):
    """The text of every regular file below ``folder`` (links never followed)."""
    found = {}
    for path, digest in tree_digest(folder).items():
        full = Path(folder) / path
        if not digest.startswith(("link", "mode")):
            found[path] = full.read_bytes().decode("utf-8", "replace")
    return found


def special_entries(folder):
    """What below ``folder`` is not a folder or a regular file of one name."""
    found = []
    for top, folders, names in os.walk(folder):
        for name in folders + names:
            st = os.lstat(os.path.join(top, name))
            if stat.S_ISDIR(st.st_mode):
                continue
            if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
                found.append(os.path.relpath(os.path.join(top, name), folder))
    return found


def facts(course):
    return {"course": course, "other": course / "submitted" / OTHER / ASSIGNMENT,
            "other_marker": OTHER_MARKER, "secret": SECRET}


def leak_texts(course):
    return {name: find(facts(course)) for name, find in LEAKS.items()}


@dataclasses.dataclass
class Graded:
    course: Path
    how: str
    finished: bool = False
    returncode: int = None
    log: str = ""
    seconds: float = 0.0
    honest_before: dict = None
    course_before: dict = None
    gradebook_inode: tuple = None


def build_class(tiny_course, folder):
    """A copy of the tiny course with the honest class, every hostile folder and every
    broken-metadata notebook in submitted/."""
    course = fresh_copy(tiny_course, folder / "course")
    for student, answers in HONEST.items():
        submit(course, student, {"tiny.ipynb": answered(course, **answers)})
    for hostile in ATTACKS:
        submit(course, hostile.name, {"tiny.ipynb": answered(course, square=hostile.answer())})
        hostile.build(course / "submitted" / hostile.name / ASSIGNMENT, facts(course))
    for broken in BROKEN_METADATA:
        submit(course, broken.name, {"tiny.ipynb": broken.edit(
            answered(course, square=WRONG_SQUARE))})
    return course


def _before(graded):
    course = graded.course
    graded.honest_before = {s: tree_digest(course / "submitted" / s) for s in HONEST}
    graded.course_before = {name: tree_digest(course / name)
                            for name in ("source", "release", "course")}
    st = os.lstat(course / "gradebook.db")
    graded.gradebook_inode = (st.st_dev, st.st_ino)


def grade(tiny_course, folder, how):
    """Grade the class of :func:`build_class` by ``how``: "nbgrader autograde" or "course
    grade"."""
    graded = Graded(build_class(tiny_course, folder), how)
    _before(graded)
    start = time.monotonic()
    if how == "nbgrader autograde":
        steps = [("nbgrader", "autograde", ASSIGNMENT, "--force"),
                 ("nbgrader", "generate_feedback", ASSIGNMENT, "--force")]
    else:
        steps = [("course", "grade", ASSIGNMENT, "--workers", "2")]
    graded.finished = True
    for step in steps:
        result = run(step, graded.course)
        if result is None:
            graded.finished, graded.log = False, graded.log + f"\n{step} did not finish"
            break
        graded.returncode = result.returncode if graded.returncode in (None, 0) else (
            graded.returncode)
        graded.log += result.stdout + result.stderr
    graded.seconds = time.monotonic() - start
    return graded


def collect(tiny_course, folder):
    """Plant every hostile folder (and two submissions that are not folders) in the exchange's
    inbound folder, as students can, and run ``nbgrader collect``."""
    course = fresh_copy(tiny_course, folder / "course")
    for student, answers in HONEST.items():
        submit(course, student, {"tiny.ipynb": answered(course, **answers)})
    inbound = course / "exchange" / "jax-autodiff" / "inbound"
    inbound.mkdir(parents=True)
    for hostile in [h for h in ATTACKS if h.at_collect]:
        record = inbound / f"{hostile.name}+{ASSIGNMENT}+{TIMESTAMP}"
        record.mkdir()
        nbformat.write(answered(course, square=hostile.answer()), record / "tiny.ipynb")
        (record / "timestamp.txt").write_text(TIMESTAMP)
        hostile.build(record, facts(course))
    os.symlink(course / "source" / ASSIGNMENT, inbound / f"record-link+{ASSIGNMENT}+{TIMESTAMP}")
    os.mkfifo(inbound / f"record-fifo+{ASSIGNMENT}+{TIMESTAMP}")
    graded = Graded(course, "nbgrader collect")
    _before(graded)
    start = time.monotonic()
    result = run(("nbgrader", "collect", ASSIGNMENT, "--update"), course, seconds=300)
    graded.seconds = time.monotonic() - start
    graded.finished = result is not None
    if result is not None:
        graded.returncode, graded.log = result.returncode, result.stdout + result.stderr
    return graded


def feedback_text(graded, student):
    page = graded.course / "feedback" / student / ASSIGNMENT / "tiny.html"
    return visible_text(page.read_text()) if page.exists() else ""


def given_back(graded, student):
    """Everything the student gets back: the text of every file of theirs in autograded/ and
    feedback/ (the feedback page, the graded notebook, any file nbgrader copied there)."""
    found = {}
    for step in ("autograded", "feedback"):
        for path, text in texts_below(graded.course / step / student).items():
            found[f"{step}/{path}"] = text
    return found


def honest_problems(graded):
    """What went wrong for anyone but the attackers, or for the course: [] when nothing did."""
    from tests.tiny_assignment import scores

    course, problems = graded.course, []
    for student, expected in HONEST_SCORES.items():
        try:
            got = scores(course, student)
        except KeyError:
            got = None
        if got != expected and graded.how != "nbgrader collect":
            problems.append(f"{student} scored {got}, not {expected}")
        if tree_digest(course / "submitted" / student) != graded.honest_before[student]:
            problems.append(f"{student}'s submitted files changed")
    notebook = course / "autograded" / OTHER / ASSIGNMENT / "tiny.ipynb"
    if graded.how != "nbgrader collect" and OTHER_MARKER not in notebook.read_text():
        problems.append(f"{OTHER}'s graded notebook is not theirs")
    for name, digest in graded.course_before.items():
        if tree_digest(course / name) != digest:
            problems.append(f"{name}/ changed")
    st = os.lstat(course / "gradebook.db")
    if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != graded.gradebook_inode:
        problems.append("the gradebook was replaced")
    if graded.how != "nbgrader collect" and st.st_nlink != 1:
        problems.append("the gradebook still has another name (a hard link)")
    return problems
