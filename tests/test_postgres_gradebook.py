"""A PostgreSQL gradebook (nbgrader's ``db_url``), written by parallel grading workers at once.

The test starts its own PostgreSQL server from Debian's packages (``.ci/run`` installs them) on
a free loopback port, points ``NBGRADER_DB_URL`` at it, and grades a class with several
workers: every grade of every student must arrive.
"""

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from course import paths
from course.dev import scratch_course
from course.grading import grade_class
from tests.tiny_assignment import ASSIGNMENT, WRONG_SQUARE, answered, fresh_copy, scores, submit

WORKERS = 3


def _postgres_bin():
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if found:
        return found[-1].parent
    if os.environ.get("CI"):
        pytest.fail("PostgreSQL is not installed; .ci/run installs Debian's postgresql")
    pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    bindir = _postgres_bin()
    folder = Path(tempfile.mkdtemp(prefix="gradebook-pg-"))
    data, port = folder / "data", _free_port()
    as_user = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(folder, "postgres")
        folder.chmod(0o700)
        as_user = ["runuser", "-u", "postgres", "--"]

    def run(*args):
        subprocess.run(as_user + [str(bindir / args[0]), *args[1:]], check=True,
                       capture_output=True, text=True)

    run("initdb", "-D", str(data), "-U", "grader", "--auth=trust", "-E", "UTF8")
    run("pg_ctl", "-D", str(data), "-l", str(folder / "server.log"), "-w", "start", "-o",
        f"-p {port} -k {folder} -c listen_addresses=127.0.0.1")
    try:
        run("createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "grader", "gradebook")
        yield f"postgresql://grader@127.0.0.1:{port}/gradebook"
    finally:
        run("pg_ctl", "-D", str(data), "-w", "-m", "fast", "stop")
        shutil.rmtree(folder, ignore_errors=True)


def test_parallel_workers_lose_no_grade_in_postgresql(tiny_course, tmp_path, postgres_url,
                                                      monkeypatch):
    monkeypatch.setenv("NBGRADER_DB_URL", postgres_url)
    course = fresh_copy(tiny_course, tmp_path / "course")  # registered in PostgreSQL
    assert paths.db_url(course) == postgres_url
    expected = {}
    for k in range(4 * WORKERS):
        student = f"student{k:02d}"
        wrong = {"square": WRONG_SQUARE} if k % 3 == 0 else {}
        submit(course, student, {"tiny.ipynb": answered(course, **wrong)})
        expected[student] = (1, 0 if wrong else 1, 1)

    result = grade_class.grade_class(course, ASSIGNMENT, workers=WORKERS, progress=False,
                                    log=lambda *_: None)

    assert not result.failed
    assert not (course / "gradebook.db").exists(), "grades went to SQLite, not PostgreSQL"
    assert sorted(scratch_course.cell_scores(course, ASSIGNMENT)) == sorted(expected)
    for student in expected:
        assert scores(course, student) == expected[student]
    rows = scratch_course.read_grades(result.grades_csv)
    assert {r["student_id"]: float(r["score"]) for r in rows} == {
        s: float(sum(e)) for s, e in expected.items()}
