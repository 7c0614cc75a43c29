"""A PostgreSQL gradebook (nbgrader's ``db_url``), written by parallel grading workers at once.

The test starts its own PostgreSQL server from Debian's packages (``.ci/run`` installs them) on
a free loopback port, points ``NBGRADER_DB_URL`` at it, and grades a class with several
workers: every grade of every student must arrive.
"""

import pytest

from course import paths
from course.dev import scratch_course
from course.grading import grade_class
from tests import postgres_server
from tests.tiny_assignment import ASSIGNMENT, WRONG_SQUARE, answered, fresh_copy, scores, submit

WORKERS = 3


@pytest.fixture(scope="module")
def postgres_url():
    with postgres_server.running_server() as server:
        yield server.new_database("gradebook")


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
