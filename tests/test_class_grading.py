"""The class-grading command (``python -m course grade``) on bad submissions, with real nbgrader.

A tiny assignment of three exercises (``double``, ``square``, ``halve``) keeps each grading to
seconds; the bad submissions break the second exercise, or the notebook, in every way the issue
names. Each case is submitted by two students: their grades must be equal (deterministic).
"""

import json
import os
import signal
import subprocess
import sys
import time
import traceback
import zipfile

import nbformat
import pytest

from course import paths, reports
from course.dev import scratch_course
from course.grading import grade_class, outcome
from tests.harness import ROOT, visible_text
from tests.tiny_assignment import (
    ASSIGNMENT,
    DEMO_OUTPUT,
    WRONG_SQUARE,
    answered,
    cells_of,
    demo_cell,
    fresh_copy,
    release,
    scores,
    submit,
)


def _without(nb, grade_id):
    nb.cells = [c for c in nb.cells if c not in cells_of(nb, grade_id)]
    return nb


def _edit_locked(nb):
    cells_of(nb, "square_tests")[0].source = "pass  # no tests here"
    return nb


def _duplicated(nb):
    index = nb.cells.index(cells_of(nb, "square")[0])
    wrong = nbformat.from_dict(nb.cells[index])
    wrong.source, wrong.id = "def square(x):\n    return 0", "copy"
    nb.cells.insert(index, wrong)  # a wrong first copy; the last copy (right) is graded
    return nb


def _reordered(nb):
    answer, test = cells_of(nb, "square")[0], cells_of(nb, "square_tests")[0]
    i, j = nb.cells.index(answer), nb.cells.index(test)
    nb.cells[i], nb.cells[j] = test, answer
    return nb


def _demo_edited(nb):
    demo = next(c for c in nb.cells if "demo" in c.metadata.get("tags", ()))
    demo.source = "print('an edited demo cell runs')"
    return nb


def _test_tagged_demo(nb):
    cells_of(nb, "square_tests")[0].metadata["tags"] = ["demo"]
    return nb


# name -> (files of the submission folder, expected (double, square, halve), words of the note
# or of the error the student reads in the feedback)
BAD = {
    "endless-loop": (lambda c: {"tiny.ipynb": answered(c, square="while True:\n    pass")},
                     (1, 0, 1), "CellTimeoutError"),
    "os-exit": (lambda c: {"tiny.ipynb": answered(c, square="import os\nos._exit(3)")},
                (1, 0, 0), "KernelDied"),
    "segfault": (lambda c: {"tiny.ipynb": answered(
        c, square="import ctypes\nctypes.string_at(0)")}, (1, 0, 0), "KernelDied"),
    # np.zeros reserves 15 GiB without touching it: without the cap it would succeed here.
    "memory-hog": (lambda c: {"tiny.ipynb": answered(
        c, square="import numpy as np\nbig = np.zeros(2 * 10**9)\ndef square(x):\n"
                  "    return x * x")}, (1, 0, 1), "MemoryError"),
    "huge-output": (lambda c: {"tiny.ipynb": answered(
        c, square="print('x' * 5_000_000)\ndef square(x):\n    return x * x")},
        (1, 1, 1), "Output truncated"),
    "deleted-test": (lambda c: {"tiny.ipynb": _without(answered(c, square=WRONG_SQUARE),
                                                       "square_tests")},
                     (1, 0, 1), "test cell `square_tests` was deleted"),
    "deleted-answer": (lambda c: {"tiny.ipynb": _without(answered(c), "square")},
                       (1, 0, 1), "answer cell `square` was deleted"),
    "duplicated": (lambda c: {"tiny.ipynb": _duplicated(answered(c))}, (1, 1, 1),
                   "appears 2 times"),
    "reordered": (lambda c: {"tiny.ipynb": _reordered(answered(c))}, (1, 0, 1),
                  "not in their original order"),
    "edited-locked": (lambda c: {"tiny.ipynb": _edit_locked(answered(c, square=WRONG_SQUARE))},
                      (1, 0, 1), "locked cell `square_tests` was edited"),
    "test-tagged-demo": (lambda c: {"tiny.ipynb": _test_tagged_demo(
        answered(c, square=WRONG_SQUARE))}, (1, 0, 1), "should be 9"),
    "demo-edited": (lambda c: {"tiny.ipynb": _demo_edited(answered(c))}, (1, 1, 1),
                    "an edited demo cell runs"),
    "corrupt-json": (lambda c: {"tiny.ipynb": nbformat.writes(answered(c))[:-200]},
                     (0, 0, 0), "is not a readable notebook"),
    "missing": (lambda c: {}, (0, 0, 0), "No notebook `tiny.ipynb` was found"),
    "misnamed": (lambda c: {"tiny (1).ipynb": answered(c)}, (1, 1, 1),
                 "was graded as `tiny.ipynb`"),
    "wrong-assignment": (lambda c: {"tiny.ipynb": nbformat.read(
        ROOT / "release" / "01_forward_reverse" / "forward_reverse.ipynb", as_version=4)},
        (0, 0, 0), "holds none of this assignment's exercises"),
}
GOOD = {"model": (lambda c: {"tiny.ipynb": answered(c)}, (1, 1, 1), None),
        "untouched": (lambda c: {"tiny.ipynb": release(c)}, (0, 0, 0), None)}


_gradebook_opened = []  # where the grading command's own process opened the gradebook


@pytest.fixture(scope="module")
def graded_tiny_class(tiny_course):
    from nbgrader.api import Gradebook

    for case, (files, _, _) in {**BAD, **GOOD}.items():
        for copy in "ab":
            submit(tiny_course, f"{case}-{copy}", files(tiny_course))
    opening = Gradebook.__init__

    def counted(self, *args, **kwargs):
        _gradebook_opened.append(traceback.extract_stack(limit=2)[0].name)
        opening(self, *args, **kwargs)

    Gradebook.__init__ = counted
    try:
        result = grade_class.grade_class(tiny_course, ASSIGNMENT, workers=2, progress=False,
                                        log=lambda *_: None)
    finally:
        Gradebook.__init__ = opening
    return tiny_course, result


def test_the_command_reads_the_gradebook_once(graded_tiny_class):
    """Besides nbgrader's own steps (its workers, export), the grading command opens the
    gradebook twice: to add the students before the workers start, and to read the outcome
    that every table, plot and report is drawn from."""
    assert _gradebook_opened == ["register_students", "read"], _gradebook_opened


@pytest.mark.parametrize("case", sorted({**BAD, **GOOD}))
def test_each_submission_is_graded_as_expected_and_deterministically(graded_tiny_class, case):
    course, result = graded_tiny_class
    assert not result.failed, f"nbgrader could not grade: {sorted(result.failed)}"
    expected = {**BAD, **GOOD}[case][1]
    assert scores(course, f"{case}-a") == expected
    assert scores(course, f"{case}-b") == expected, "the same submission graded differently"


@pytest.mark.parametrize("case", sorted(BAD))
def test_feedback_tells_the_student_what_happened(graded_tiny_class, case):
    course, _ = graded_tiny_class
    words = BAD[case][2]
    page = course / "feedback" / f"{case}-a" / ASSIGNMENT / "tiny.html"
    text = page.read_text()
    assert words.replace("`", "") in visible_text(text), f"{page.name} does not say {words!r}"
    assert len(text) < 2_000_000, f"feedback of {len(text):,} bytes"


def test_the_most_answered_submissions_are_graded_first(graded_tiny_class):
    course, _ = graded_tiny_class
    release_nbs = paths.release_notebooks(course, ASSIGNMENT)
    answered = {case: grade_class.answered_cells(course, ASSIGNMENT, f"{case}-a", release_nbs)
                for case in ("model", "untouched", "missing")}
    assert answered == {"model": 3, "untouched": 0, "missing": 0}


def test_demo_cells_of_the_source_are_not_run(graded_tiny_class):
    course, _ = graded_tiny_class
    for student in ("model-a", "untouched-a", "test-tagged-demo-a"):
        nb = nbformat.read(course / "autograded" / student / ASSIGNMENT / "tiny.ipynb",
                           as_version=4)
        demo = [c for c in nb.cells if c.source == demo_cell().source]
        assert len(demo) == 1 and demo[0].outputs == [], f"{student}: the demo cell ran"
        page = visible_text((course / "feedback" / student / ASSIGNMENT / "tiny.html")
                            .read_text())
        assert page.count(DEMO_OUTPUT) == 1, f"{student}: feedback shows the demo's output"


def test_originals_are_kept_before_anything_is_changed(graded_tiny_class):
    course, _ = graded_tiny_class
    originals = course / "originals" / ASSIGNMENT
    assert (originals / "corrupt-json-a" / "tiny.ipynb").read_text().startswith("{")
    assert (originals / "misnamed-a" / "tiny (1).ipynb").exists()
    assert not (originals / "model-a").exists(), "a sound submission was touched"


def test_export_and_plot(graded_tiny_class):
    course, result = graded_tiny_class
    rows = {r["student_id"]: r for r in scratch_course.read_grades(result.grades_csv)}
    assert len(rows) == 2 * len({**BAD, **GOOD})
    assert float(rows["model-a"]["score"]) == 3 and float(rows["missing-a"]["score"]) == 0
    assert result.plot.read_bytes().startswith(b"\x89PNG")


def test_hidden_tests_stay_out_of_the_feedback(graded_tiny_class):
    course, _ = graded_tiny_class
    for page in (course / "feedback").glob(f"*/{ASSIGNMENT}/*.html"):
        assert "square(-1.5)" not in page.read_text(), f"{page} shows a hidden test"


def test_zip_collect_from_an_lms_download(tiny_course, tmp_path):
    course = fresh_copy(tiny_course, tmp_path / "course")
    archive = course / "downloaded" / ASSIGNMENT / "archive"
    archive.mkdir(parents=True)
    with zipfile.ZipFile(archive / "submissions.zip", "w") as download:
        download.writestr("lovelaceada_1001_5001_tiny.ipynb", nbformat.writes(answered(course)))
        download.writestr("turingalan_LATE_1002_5002_tiny-1.ipynb",
                          nbformat.writes(answered(course, halve="def halve(x):\n    return x")))
    result = grade_class.grade_class(course, ASSIGNMENT, workers=1, collect="zip",
                                    progress=False, log=lambda *_: None)
    assert result.students == ["lovelaceada", "turingalan"]
    assert scores(course, "lovelaceada") == (1, 1, 1)
    assert scores(course, "turingalan") == (1, 1, 0)
    assert any("was graded as `tiny.ipynb`" in n for n in result.notes["turingalan"]["tiny"])


def test_corrupt_file_reason_is_quoted(tiny_course, tmp_path):
    from course.grading import intake

    folder = tmp_path / "sub"
    folder.mkdir()
    (folder / "tiny.ipynb").write_text(json.dumps({"cells": "not a list"}))
    notes = intake.inspect(folder, {"tiny": release(tiny_course)}, tmp_path / "kept")
    assert "not a readable notebook" in notes["tiny"][0]
    assert (tmp_path / "kept" / "tiny.ipynb").exists()


def test_the_mistake_report_of_bad_submissions(graded_tiny_class):
    """``python -m course grade`` writes the report; every student who lost points appears in
    it under the exercise they lost, each case's two identical submissions under the same
    mistake; the model's students nowhere; written again, it is the same."""
    course, result = graded_tiny_class
    csv_path, png, page = result.mistakes.csv, result.mistakes.png, result.mistakes.html
    assert png.read_bytes().startswith(b"\x89PNG") and "<script" not in page.read_text()
    assert "square(-1.5)" not in page.read_text() + csv_path.read_text(), "a hidden test shown"
    found = {(exercise.name, student): code for exercise in reports.collect(result.outcome)
             for code, pairs in exercise.mistakes.items() for student, _ in pairs}
    for case, (_, marks, _) in {**BAD, **GOOD}.items():
        for exercise, mark in zip(("double", "square", "halve"), marks):
            codes = [found.get((exercise, f"{case}-{copy}")) for copy in "ab"]
            assert (codes[0] is None) == (mark == 1), f"{case}/{exercise}: {codes}, mark {mark}"
            assert codes[0] == codes[1], f"{case}/{exercise}: graded twice, reported {codes}"
    before = [path.read_bytes() for path in result.mistakes]
    again = reports.write_report(course, outcome.read(course, [ASSIGNMENT])[ASSIGNMENT],
                                 log=lambda text: None)
    assert [path.read_bytes() for path in again] == before


def _children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return [int(child) for child in handle.read().split()]
    except FileNotFoundError:
        return []


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ")[-1][0] != "Z"
    except FileNotFoundError:
        return False


def test_a_killed_command_leaves_no_worker_behind(tiny_course, tmp_path):
    """SIGTERM (or SIGKILL) to ``python -m course grade`` while it grades: its pool cannot pass
    the signal on, and its workers end within seconds instead of waiting for work forever."""
    course = fresh_copy(tiny_course, tmp_path / "course")
    for k in range(6):
        submit(course, f"s{k}", {"tiny.ipynb": answered(course)})
    command = subprocess.Popen([sys.executable, "-m", "course", "grade", ASSIGNMENT,
                                "--workers", "2"], cwd=course, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline, workers = time.monotonic() + 60, []
    while time.monotonic() < deadline and len(workers) < 2:
        time.sleep(0.2)
        workers = [pid for pid in _children(command.pid)
                   if b"spawn_main" in open(f"/proc/{pid}/cmdline", "rb").read()]
    assert len(workers) == 2, f"the command started workers {workers}"
    command.send_signal(signal.SIGTERM)
    command.wait(timeout=30)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(map(_alive, workers)):
        time.sleep(0.2)
    left = [pid for pid in workers if _alive(pid)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"workers {left} outlived the killed command"
