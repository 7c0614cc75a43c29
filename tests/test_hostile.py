"""Hostile submissions (tests/answers/hostile.py) graded for real: by plain ``nbgrader autograde``
and by ``python -m course grade``, each in a course of its own beside a class of honest students.

For each attack: it gains no points, every other student's grade and files are unchanged byte
for byte, the batch finishes, the course folder is untouched, and the attacker's feedback says
what was blocked.
"""

import shutil

import pytest

from course import scratch_course
from tests import hostile_class as hostile_run
from tests.answers.hostile import HOSTILE
from tests.tiny_assignment import ASSIGNMENT, scores

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")

reports = []  # (how, outcomes), for the grader-quality report at the end of the run


@pytest.fixture(scope="module", params=["nbgrader autograde", "course grade"])
def hostile_class(request, tiny_course, tmp_path_factory):
    graded = hostile_run.grade(tiny_course, tmp_path_factory.mktemp("hostile"), request.param)
    reports.append((request.param, hostile_run.outcomes(graded)))
    return graded


def test_the_batch_finishes_and_grades_everyone(hostile_class):
    assert hostile_class.finished, hostile_class.log[-3000:]
    graded = set(scratch_course.cell_scores(hostile_class.course, ASSIGNMENT))
    assert graded == set(hostile_run.HONEST) | {h.name for h in HOSTILE}


@pytest.mark.parametrize("hostile", HOSTILE, ids=lambda h: h.name)
def test_an_attack_gains_nothing(hostile_class, hostile):
    assert scores(hostile_class.course, hostile.name) == hostile.scores, hostile.reason


@pytest.mark.parametrize("hostile", [h for h in HOSTILE if h.says], ids=lambda h: h.name)
def test_the_attacker_reads_what_was_blocked(hostile_class, hostile):
    text = hostile_run.feedback_text(hostile_class, hostile.name)
    assert hostile.says in text, f"{hostile.name}'s feedback does not say {hostile.says!r}"


def test_everyone_and_everything_else_is_untouched(hostile_class):
    assert not hostile_run.honest_problems(hostile_class)
    assert not list((hostile_class.course / "autograded").glob(f"*/{ASSIGNMENT}/big.bin"))
