"""Hostile submissions (tests/answers/hostile.py) graded for real: by plain ``nbgrader autograde``
and by ``python -m course grade``, each in a course of its own beside a class of honest students.

For each attack: it gains no points, every other student's grade and files are unchanged byte
for byte, the batch finishes, the course folder is untouched, and the attacker's feedback says
what was blocked.
"""

import hashlib
import os
import shutil
import socket
import threading

import pytest

from course import build, classgrade, grading
from tests.answers.hostile import HOSTILE
from tests.conftest import visible_text
from tests.tiny_assignment import ASSIGNMENT, WRONG_SQUARE, answered, fresh_copy, scores, submit

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")

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
    def __init__(self, course, secret, exchange, listener):
        self.course = course
        facts = dict(course=str(course), secret=str(secret), exchange=str(exchange),
                     port=listener.port, grader_pid=os.getpid(), marker=MARKER)
        for student, answers in HONEST.items():
            submit(course, student, {"tiny.ipynb": answered(course, **answers)})
        for hostile in HOSTILE:
            submit(course, hostile.name,
                   {"tiny.ipynb": answered(course, square=hostile.answer(**facts))})
        self.submitted = tree_digest(course / "submitted")
        self.course_files = {name: tree_digest(course / name)
                             for name in ("source", "release", "course")}


@pytest.fixture(scope="module", params=["nbgrader autograde", "course grade"])
def hostile_class(request, tiny_course, tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    secret, exchange = folder / "secret.txt", folder / "exchange"
    secret.write_text("the grader's own file")
    secret.chmod(0o644)
    exchange.mkdir()
    listener = Listener()
    course = fresh_copy(tiny_course, folder / "course")
    graded = HostileClass(course, secret, exchange, listener)
    try:
        if request.param == "nbgrader autograde":
            result = build.nbgrader("autograde", ASSIGNMENT, "--force", root=course, check=False)
            graded.finished = result.returncode == 0
            graded.log = result.stdout + result.stderr
            build.nbgrader("generate_feedback", ASSIGNMENT, "--force", root=course)
        else:
            result = classgrade.grade_class(course, ASSIGNMENT, workers=2, progress=False,
                                            log=lambda *_: None)
            graded.finished, graded.log = not result.failed, str(result.failed)
    finally:
        listener.stop()
    graded.connections = listener.connections
    graded.exchange_exists, graded.secret_text = exchange.exists(), secret.read_text()
    return graded


def test_the_batch_finishes_and_grades_everyone(hostile_class):
    assert hostile_class.finished, hostile_class.log[-3000:]
    graded = set(grading.cell_scores(hostile_class.course, ASSIGNMENT))
    assert graded == set(HONEST) | {h.name for h in HOSTILE}


@pytest.mark.parametrize("hostile", HOSTILE, ids=lambda h: h.name)
def test_an_attack_gains_nothing(hostile_class, hostile):
    assert scores(hostile_class.course, hostile.name) == hostile.scores, hostile.reason


@pytest.mark.parametrize("hostile", [h for h in HOSTILE if h.says], ids=lambda h: h.name)
def test_the_attacker_reads_what_was_blocked(hostile_class, hostile):
    page = hostile_class.course / "feedback" / hostile.name / ASSIGNMENT / "tiny.html"
    assert hostile.says in visible_text(page.read_text()), f"{page.name}: no {hostile.says!r}"


def test_honest_students_keep_their_grades_and_files(hostile_class):
    course = hostile_class.course
    for student, expected in HONEST_SCORES.items():
        assert scores(course, student) == expected, student
        graded = (course / "autograded" / student / ASSIGNMENT / "tiny.ipynb").read_text()
        assert "return x * x" in graded or "return 2 * x" in graded, f"{student}: not theirs"
    assert tree_digest(course / "submitted") == hostile_class.submitted


def test_the_course_folder_and_the_machine_are_untouched(hostile_class):
    course = hostile_class.course
    for name, digest in hostile_class.course_files.items():
        assert tree_digest(course / name) == digest, f"{name}/ changed"
    assert hostile_class.connections == 0, "a kernel reached the grader's loopback"
    assert hostile_class.exchange_exists and hostile_class.secret_text == "the grader's own file"
    assert not leftover_processes(), "a process started by a submission outlived its kernel"
    assert not list((course / "autograded").glob(f"*/{ASSIGNMENT}/big.bin"))
