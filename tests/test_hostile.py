"""Hostile submissions (tests/answers/hostile.py) graded for real: by plain ``nbgrader autograde``
and by ``python -m course grade``, each in a course of its own beside a class of honest students.

For each attack: it gains no points, every other student's grade and files are unchanged byte
for byte, the batch finishes, the course folder is untouched, the attacker's feedback says
what was blocked, and it holds neither the hidden tests' text nor the base64 of a test cell's
source. (A submission runs in the kernel that later runs the hidden tests, so it can read them,
e.g. through IPython's ``pre_run_cell``; the judge keeps whatever the kernel printed in a test
cell out of the feedback. A search for known forms of the text is a floor, not a proof.)

Two attacks are exempt from the last check, by design: they print, from a later answer cell of
their own, what the kernel ran on. The kernel must see the hidden cases' inputs to run the
student's code on them, and a student's own cells may print anything into their own feedback;
what they learn is the inputs (a failing check names its case anyway), never an expected value,
which only the judge computes.
"""

import base64
import contextlib
import html
import shutil

import pytest

from course.dev import scratch_course
from tests import hostile_class as hostile_run
from tests.answers.hostile import HIDDEN_TEST_TEXT, HOSTILE
from tests.tiny_assignment import ASSIGNMENT, scores, tiny_notebook

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")

reports = []  # (how, outcomes), for the grader-quality report at the end of the run
PRINTS_WHAT_IT_RAN_ON = {"leak-later-cell", "leak-hidden-inputs"}


@pytest.fixture(scope="module",
                params=["nbgrader autograde", "course grade", "course grade on Dask"])
def hostile_class(request, tiny_course, tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    with contextlib.ExitStack() as running:  # the Dask run's gradebook, until its tests end
        patch = running.enter_context(pytest.MonkeyPatch.context())
        patch.setenv("ADCOURSE_GRADING_PROGRAMS", str(folder / "programs"))
        patch.setenv("ADCOURSE_ORACLE_VALUES", str(folder / "oracle-values"))
        if request.param.endswith("on Dask"):
            scheduler = running.enter_context(_dask_cluster(tiny_course, folder))
            graded = hostile_run.grade(tiny_course, folder, "course grade", scheduler=scheduler)
        else:
            graded = hostile_run.grade(tiny_course, folder, request.param)
        reports.append((request.param, hostile_run.outcomes(graded)))
        yield graded


@contextlib.contextmanager
def _dask_cluster(tiny_course, folder):
    """The address of a real Dask cluster (tests/dask_cluster.py) whose workers grade into a
    PostgreSQL gradebook of their own (tests/postgres_server.py), for the class graded in
    ``folder``/course."""
    from tests import postgres_server
    from tests.dask_cluster import Cluster

    (folder / "dask").mkdir()
    with postgres_server.running_server() as server, pytest.MonkeyPatch.context() as patch:
        patch.setenv("NBGRADER_DB_URL", server.new_database("hostile"))
        cluster = Cluster(tiny_course, folder / "dask")  # imports the course package from there
        try:
            yield cluster.address
        finally:
            cluster.stop()


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


def hidden_forms():
    """What the feedback must not hold: the hidden tests' text, and each test cell's source
    (hidden tests included, as the kernel receives it) in base64."""
    forms = {HIDDEN_TEST_TEXT: "the hidden tests"}
    for cell in tiny_notebook().cells:
        about = cell.metadata.get("nbgrader", {})
        if about.get("grade") and not about.get("solution"):
            forms[base64.b64encode(cell.source.encode()).decode()] = (
                f"the source of {about['grade_id']} in base64")
    return forms


def test_a_hidden_test_holds_the_hidden_text():
    sources = [cell.source for cell in tiny_notebook().cells]
    assert any(HIDDEN_TEST_TEXT in s.partition("### BEGIN HIDDEN TESTS")[2] for s in sources)
    assert not any(HIDDEN_TEST_TEXT in s.partition("### BEGIN HIDDEN TESTS")[0] for s in sources)
    assert not any(HIDDEN_TEST_TEXT in h.code for h in HOSTILE)


@pytest.mark.parametrize("hostile", [h for h in HOSTILE if h.name not in PRINTS_WHAT_IT_RAN_ON],
                         ids=lambda h: h.name)
def test_the_feedback_hides_the_hidden_tests(hostile_class, hostile):
    page = hostile_class.course / "feedback" / hostile.name / ASSIGNMENT / "tiny.html"
    assert page.exists(), f"{hostile.name} has no feedback page"
    raw = page.read_text()
    texts = (raw, html.unescape(raw), hostile_run.feedback_text(hostile_class, hostile.name))
    shown = [what for form, what in hidden_forms().items() if any(form in t for t in texts)]
    assert not shown, f"{hostile.name}'s feedback shows {', '.join(shown)}"
