"""Grading a class on a Dask cluster (``python -m course grade --scheduler``), for real.

Each test starts a ``dask scheduler`` and two ``dask worker`` processes of the venv on loopback
ports, and a PostgreSQL server (tests/postgres_server.py) as the gradebook, and grades the tiny
assignment of tests/tiny_assignment.py: the same grades, feedback and mistake report as the
local pool; a worker killed while it grades loses nothing and records nothing twice; a SQLite
gradebook is refused.
"""

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time

import nbformat
import pytest

from course import reports
from course.dev import scratch_course
from course.grading import dask_grading, grade_class
from tests import postgres_server
from tests.dask_cluster import DASK, START_SECONDS, WORKERS, Cluster
from tests.tiny_assignment import ASSIGNMENT, WRONG_SQUARE, answered, fresh_copy, scores, submit

# student -> (answers that differ from the model's, expected (double, square, halve)). No kernel
# that dies: whether its last cell shows an execution count is a race, with or without Dask.
CLASS = {
    "aaa-model": ({}, (1, 1, 1)),
    "bbb-wrong": ({"square": WRONG_SQUARE}, (1, 0, 1)),
    "ccc-raises": ({"square": "def square(x):\n    raise ValueError('not today')"}, (1, 0, 1)),
    "ddd-model": ({}, (1, 1, 1)),
}


@pytest.fixture(scope="module")
def postgres():
    with postgres_server.running_server() as server:
        yield server


@pytest.fixture
def cluster(tmp_path):
    """``start(course, **options)``: a Dask cluster whose workers import that course's package
    (options: environment variables of the last worker, ``last_worker_env``, and of the
    scheduler, ``scheduler_env``)."""
    started = []

    def start(course, **options):
        started.append(Cluster(course, tmp_path, **options))
        return started[-1]

    yield start
    for running in started:
        running.stop()


def _class_course(tiny_course, path, klass):
    """A fresh tiny course with the submissions of ``klass`` (student -> (answers, _))."""
    course = fresh_copy(tiny_course, path)
    for student, (answers, _) in klass.items():
        submit(course, student, {"tiny.ipynb": answered(course, **answers)})
    return course


def _files(course, step):
    folder = course / step
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _rows(url):
    """How many submissions and grades the gradebook holds, per student."""
    from nbgrader.api import Grade, Gradebook, SubmittedAssignment, SubmittedNotebook

    with Gradebook(url) as gradebook:
        submissions = {s.student.id: 0 for s in gradebook.db.query(SubmittedAssignment)}
        for s in gradebook.db.query(SubmittedAssignment):
            submissions[s.student.id] += 1
        grades = {student: 0 for student in submissions}
        for grade in gradebook.db.query(Grade):
            notebook = gradebook.db.get(SubmittedNotebook, grade.notebook_id)
            grades[notebook.assignment.student.id] += 1
    return submissions, grades


def _grade(course, **options):
    return grade_class.grade_class(course, ASSIGNMENT, progress=False, log=lambda *_: None,
                                   **options)


def test_dask_grades_as_the_local_pool(tiny_course, tmp_path, postgres, cluster, monkeypatch):
    monkeypatch.setenv("NBGRADER_DB_URL", postgres.new_database("local_pool"))
    local = _class_course(tiny_course, tmp_path / "local", CLASS)
    by_pool = _grade(local, workers=WORKERS)
    local_scores = {s: scores(local, s) for s in CLASS}

    url = postgres.new_database("on_dask")
    monkeypatch.setenv("NBGRADER_DB_URL", url)
    course = _class_course(tiny_course, tmp_path / "dask", CLASS)
    on_dask = _grade(course, scheduler=cluster(course).address)

    assert not by_pool.failed and not on_dask.failed
    assert {s: scores(course, s) for s in CLASS} == local_scores == {
        s: expected for s, (_, expected) in CLASS.items()}
    assert _rows(url) == ({s: 1 for s in CLASS}, {s: 3 for s in CLASS})
    assert _files(course, "feedback") == _files(local, "feedback")
    assert sorted(_files(course, "autograded")) == sorted(_files(local, "autograded"))
    assert reports.grade_table(on_dask.outcome) == reports.grade_table(by_pool.outcome)
    assert reports.collect(on_dask.outcome) == reports.collect(by_pool.outcome)
    for mine, theirs in zip(on_dask.mistakes, by_pool.mistakes):
        if mine.suffix in (".csv", ".html"):
            assert mine.read_text() == theirs.read_text().replace(str(local), str(course))


def _grading_child(pid):
    """Whether the process ``pid`` runs a sandboxed grading kernel (not the sandbox's check)."""
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                for child in handle.read().split():
                    with open(f"/proc/{child}/cmdline", "rb") as command:
                        if b"ipykernel" in command.read():
                            return True
    return False


def _wait_until_grading(pids):
    """The pid of a worker that runs a grading kernel, once one does."""
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        for pid in pids:
            if _grading_child(pid):
                return pid
        time.sleep(0.05)
    raise AssertionError("no worker started grading")


def _grade_killing_a_worker(course, running):
    """Grade ``course`` on the cluster ``running`` and SIGKILL the first worker seen running a
    grading kernel: (the class's result, the killed worker's pid)."""
    with running.client() as client:
        pids = client.run(os.getpid)
    graded = {}
    grading = threading.Thread(target=lambda: graded.update(
        result=_grade(course, scheduler=running.address)))
    grading.start()
    victim = _wait_until_grading(pids.values())
    os.kill(victim, signal.SIGKILL)
    grading.join(timeout=5 * START_SECONDS)
    return graded["result"], victim


def test_a_worker_killed_while_grading_loses_nothing(tiny_course, tmp_path, postgres, cluster,
                                                     monkeypatch):
    url = postgres.new_database("killed_worker")
    monkeypatch.setenv("NBGRADER_DB_URL", url)
    students = dict(CLASS)
    course = _class_course(tiny_course, tmp_path / "course", students)
    running = cluster(course)
    result, victim = _grade_killing_a_worker(course, running)
    with running.client() as client:
        assert victim not in client.run(os.getpid).values(), "the worker was not replaced"
    assert not result.failed
    assert {s: scores(course, s) for s in students} == {s: e for s, (_, e) in students.items()}
    assert _rows(url) == ({s: 1 for s in students}, {s: 3 for s in students})
    assert not list(course.rglob(".*.tmp")), "a half-written file was left"
    for student in students:
        assert (course / "feedback" / student / ASSIGNMENT / "tiny.html").is_file()
    rows = scratch_course.read_grades(result.grades_csv)
    assert {r["student_id"] for r in rows} == set(students)


def test_a_sqlite_gradebook_is_refused(tiny_course, tmp_path, cluster, monkeypatch, capsys):
    monkeypatch.delenv("NBGRADER_DB_URL", raising=False)
    course = _class_course(tiny_course, tmp_path / "course", {"aaa-model": CLASS["aaa-model"]})
    running = cluster(course)
    status = grade_class.main([ASSIGNMENT, "--scheduler", running.address,
                               "--course", str(course)])
    assert status == 2
    error = capsys.readouterr().err
    assert "Cannot grade on the cluster" in error and "PostgreSQL" in error
    assert "sqlite" in error and "Traceback" not in error
    assert not (course / "autograded").exists()


def test_a_submission_that_kills_its_worker_too_often_is_named(tiny_course, tmp_path, postgres,
                                                               cluster, monkeypatch):
    """With no failure allowed (the default allows three), one worker killed while it grades
    makes distributed give up its submissions (KilledWorker): they are named, the rest
    graded."""
    monkeypatch.setenv("NBGRADER_DB_URL", postgres.new_database("killed_worker_gives_up"))
    course = _class_course(tiny_course, tmp_path / "course", CLASS)
    running = cluster(course, scheduler_env={"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"})
    result, _ = _grade_killing_a_worker(course, running)
    assert result.failed and set(result.failed.values()) == {dask_grading.KILLED_NOTE}
    for student, (_, expected) in CLASS.items():
        if student not in result.failed:
            assert scores(course, student) == expected


def test_a_lost_scheduler_stops_grading_with_a_message(tiny_course, tmp_path, postgres, cluster,
                                                       monkeypatch):
    """The command itself, in a process of its own: what it prints is all the grader sees."""
    monkeypatch.setenv("NBGRADER_DB_URL", postgres.new_database("lost_scheduler"))
    course = _class_course(tiny_course, tmp_path / "course", CLASS)
    running = cluster(course)
    with running.client() as client:
        pids = client.run(os.getpid)
    command = subprocess.Popen(
        [sys.executable, "-m", "course", "grade", ASSIGNMENT, "--scheduler", running.address,
         "--course", str(course)], cwd=course, env=dict(os.environ, PYTHONPATH=str(course)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_until_grading(pids.values())
        running.kill_scheduler()
        _, error = command.communicate(timeout=3 * START_SECONDS)
    finally:
        command.kill()

    assert command.returncode == 2, error
    assert "lost the Dask scheduler" in error and "Traceback" not in error, error
    assert not list(course.rglob(".*.tmp")), "a half-written file was left"
    for notebook in (course / "autograded").rglob("*.ipynb"):
        nbformat.read(notebook, as_version=4)  # whole


def test_a_worker_without_bubblewrap_is_refused(tiny_course, tmp_path, postgres, cluster,
                                                monkeypatch, capsys):
    monkeypatch.setenv("NBGRADER_DB_URL", postgres.new_database("no_bubblewrap"))
    course = _class_course(tiny_course, tmp_path / "course", {"aaa-model": CLASS["aaa-model"]})
    running = cluster(course, last_worker_env={"PATH": str(DASK.parent)})  # no bwrap there
    with running.client() as client:
        last = sorted(client.scheduler_info()["workers"])
    status = grade_class.main([ASSIGNMENT, "--scheduler", running.address,
                               "--course", str(course)])
    assert status == 2
    error = capsys.readouterr().err
    assert "bubblewrap (bwrap) is not installed" in error and "Traceback" not in error
    assert any(worker in error for worker in last)
    assert not (course / "autograded").exists()
