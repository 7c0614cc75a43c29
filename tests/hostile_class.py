"""A class of honest students and the hostile submissions of tests/answers/hostile.py, graded
for real (by ``nbgrader autograde`` or by ``python -m course grade``) in a tiny course of its
own; shared by tests/test_hostile.py and the grader-quality report."""

import hashlib
import os
import re
import socket
import threading
from pathlib import Path

from course import paths
from course.grading import compiled_programs, grade_class, oracle_values
from tests.answers.hostile import HOSTILE
from tests.harness import visible_text
from tests.tiny_assignment import ASSIGNMENT, WRONG_SQUARE, answered, fresh_copy, scores, submit

MARKER = "hostile-leftover-7f3a"
HONEST = {"aaa-model": {}, "mmm-wrong": {"square": WRONG_SQUARE}, "zzz-model": {}}
HONEST_SCORES = {"aaa-model": (1, 1, 1), "mmm-wrong": (1, 0, 1), "zzz-model": (1, 1, 1)}


class Listener:
    """A TCP server on 127.0.0.1 that counts the connections it accepts."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self.connections = 0
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while self.running:
            try:
                connection, _ = self.server.accept()
            except OSError:
                continue
            self.connections += 1
            connection.close()

    def stop(self):
        self.running = False
        self.thread.join()
        self.server.close()


def tree_digest(folder):
    """``{relative path: sha256}`` of every file below ``folder``."""
    digests = {}
    for top, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(top, name)
            with open(path, "rb") as handle:
                digests[os.path.relpath(path, folder)] = hashlib.sha256(handle.read()).hexdigest()
    return digests


def programs_problems(base):
    """What is wrong with the folders of compiled programs (course/grading/compiled_programs.py)
    under ``base`` after grading: each must be sealed (unlistable) and hold only the programs
    that the model solution's run wrote before it was sealed, read-only."""
    folders = [p for p in base.iterdir() if p.is_dir()] if base.is_dir() else []
    problems = [] if folders else [f"grading made no folder of compiled programs in {base}"]
    for folder in folders:
        info = folder.stat()
        if info.st_mode & 0o777 != 0o111:
            problems.append(f"{folder.name} can be listed")
        # when it was sealed: the chmod below, to list it, would move its ctime
        sealed = _sealed_at.setdefault(folder, info.st_ctime)
        folder.chmod(0o700)
        try:
            for entry in os.scandir(folder):
                stat = entry.stat(follow_symlinks=False)
                if (not entry.name.endswith("-cache") or stat.st_mode & 0o777 != 0o444
                        or stat.st_mtime > sealed):
                    problems.append(f"{folder.name}/{entry.name} was written by a kernel")
        finally:
            folder.chmod(0o111)
    return problems


_sealed_at = {}  # folder of programs: its ctime when programs_problems first saw it


def oracle_problems(base):
    """What is wrong with the judge's folder of oracle values (course/grading/oracle_values.py)
    under ``base`` after grading: it must hold the tiny assignment's values, in folders and
    files the judge named (hashes), and nothing a kernel put there."""
    folders = list(base.iterdir()) if base.is_dir() else []
    if not any(folder.is_dir() and any(folder.glob("*.json")) for folder in folders):
        return [f"the judge kept no oracle values in {base}"]
    problems = []
    for folder in folders:
        if not (folder.is_dir() and re.fullmatch(rf"{ASSIGNMENT}--[0-9a-f]{{20}}", folder.name)):
            problems.append(f"{folder.name} was not made by the judge")
            continue
        problems += [f"{folder.name}/{path.name} was not written by the judge"
                     for path in folder.iterdir()
                     if not re.fullmatch(r"[0-9a-f]{64}\.(json|lock)", path.name)]
    return problems


def leftover_processes():
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(os.path.join(entry.path, "cmdline"), "rb") as handle:
                    if MARKER.encode() in handle.read():
                        found.append(int(entry.name))
            except OSError:
                pass
    return found


class HostileClass:
    def __init__(self, course, secret, exchange, listener, grader_pid):
        self.course = course
        facts = dict(course=str(course), secret=str(secret), exchange=str(exchange),
                     port=listener.port, grader_pid=grader_pid, marker=MARKER,
                     oracle_values=oracle_values.default_folder())
        for student, answers in HONEST.items():
            submit(course, student, {"tiny.ipynb": answered(course, **answers)})
        for hostile in HOSTILE:
            submit(course, hostile.name,
                   {"tiny.ipynb": answered(course, square=hostile.answer(**facts))})
        self.submitted = tree_digest(course / "submitted")
        self.course_files = {name: tree_digest(course / name)
                             for name in ("source", "release", "course")}




def grade(tiny_course, folder, how, grader_pid=None, scheduler=None):
    """Grade the hostile class in a copy of ``tiny_course`` under ``folder``; ``how`` is
    ``"nbgrader autograde"`` or ``"course grade"`` (on the Dask cluster of ``scheduler``, if
    given, with the gradebook of ``NBGRADER_DB_URL``); ``grader_pid`` is the process the
    kill-grader attack aims at (this one by default)."""
    secret, exchange = folder / "secret.txt", folder / "exchange"
    secret.write_text("the grader's own file")
    secret.chmod(0o644)
    exchange.mkdir()
    listener = Listener()
    course = fresh_copy(tiny_course, folder / "course")
    graded = HostileClass(course, secret, exchange, listener, grader_pid or os.getpid())
    graded.programs = Path(compiled_programs.default_folder())
    graded.oracle_values = Path(oracle_values.default_folder())
    try:
        if how == "nbgrader autograde":
            result = paths.nbgrader("autograde", ASSIGNMENT, "--force", root=course,
                                             check=False)
            graded.finished = result.returncode == 0
            graded.log = result.stdout + result.stderr
            paths.nbgrader("generate_feedback", ASSIGNMENT, "--force", root=course)
        else:
            result = grade_class.grade_class(course, ASSIGNMENT, workers=2, progress=False,
                                            log=lambda *_: None, scheduler=scheduler)
            graded.finished, graded.log = not result.failed, str(result.failed)
    finally:
        listener.stop()
    graded.connections = listener.connections
    graded.exchange_exists, graded.secret_text = exchange.exists(), secret.read_text()
    return graded


def feedback_text(graded, student):
    page = graded.course / "feedback" / student / ASSIGNMENT / "tiny.html"
    return visible_text(page.read_text()) if page.exists() else ""


def honest_problems(graded):
    """What went wrong for anyone but the attackers: [] when nothing did."""
    course, problems = graded.course, []
    for student, expected in HONEST_SCORES.items():
        if scores(course, student) != expected:
            problems.append(f"{student} scored {scores(course, student)}, not {expected}")
        notebook = course / "autograded" / student / ASSIGNMENT / "tiny.ipynb"
        text = notebook.read_text() if notebook.exists() else ""
        if "return x * x" not in text and "return 2 * x" not in text:
            problems.append(f"{student}'s graded notebook is not theirs")
    if tree_digest(course / "submitted") != graded.submitted:
        problems.append("a file under submitted/ changed")
    for name, digest in graded.course_files.items():
        if tree_digest(course / name) != digest:
            problems.append(f"{name}/ changed")
    if graded.connections:
        problems.append("a kernel reached the grader's loopback")
    if not graded.exchange_exists or graded.secret_text != "the grader's own file":
        problems.append("a file outside the course was changed or deleted")
    problems += programs_problems(graded.programs)
    problems += oracle_problems(graded.oracle_values)
    if leftover_processes():
        problems.append("a process started by a submission outlived its kernel")
    return problems


def outcomes(graded):
    """(name, reason, blocked) for every hostile submission: blocked when it scored no more
    than its wrong answer and its feedback says what stopped it, and nobody else suffered."""
    others_fine = graded.finished and not honest_problems(graded)
    return [(h.name, h.reason, others_fine and scores(graded.course, h.name) == h.scores
             and (h.says is None or h.says in feedback_text(graded, h.name)))
            for h in HOSTILE]


def render(how, rows):
    lines = [f"hostile submissions graded by {how}: "
             f"{sum(b for *_, b in rows)}/{len(rows)} blocked"]
    lines += [f"    {'blocked' if b else 'ESCAPED':>8}  {name:<15} {reason}"
              for name, reason, b in rows]
    return "\n".join(lines)
