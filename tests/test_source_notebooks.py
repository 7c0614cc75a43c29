"""Every source notebook is a valid nbgrader assignment that passes its own tests."""

import re
import shutil

import nbformat
import pytest
from nbgrader import utils as nbgrader_utils

from course.authoring import build, notebooks
from course.checks import bundle, guard
from tests.harness import SHOW_DEPRECATIONS, answer_to_test_cell, deprecations, source_notebooks

NOTEBOOKS = source_notebooks()


def _cells(text_path):
    nb = nbformat.read(notebooks.notebook_path(text_path), as_version=4)
    return nb, [(c, c.metadata.get("nbgrader", {})) for c in nb.cells]


@pytest.mark.parametrize("assignment,text_path", NOTEBOOKS)
def test_nbgrader_metadata(assignment, text_path):
    nb, cells = _cells(text_path)
    ids = [meta["grade_id"] for _, meta in cells if meta]
    assert len(ids) == len(set(ids)), f"duplicate grade ids: {ids}"
    for cell, meta in cells:
        if cell.cell_type == "code":
            assert not cell.outputs, "source notebooks are stored without outputs"
        if not meta:
            continue
        where = f"{text_path.name}: cell {meta['grade_id']}"
        if meta["grade"]:
            assert meta.get("points", 0) > 0, f"{where} is graded but has no points"
        if meta["grade"] and not meta["solution"]:
            assert meta["locked"], f"{where}: test cells must be locked"
            assert guard.TEST_CELL_MARK in cell.source, (
                f"{where}: a test cell calls adcheck.check_..., so that grading guards it")
            assert "### BEGIN HIDDEN TESTS" in cell.source, f"{where} has no hidden tests"
        if meta["solution"]:
            assert "### BEGIN SOLUTION" in cell.source, f"{where} has no solution region"
            assert not meta["grade"], f"{where}: answer cells are graded by their test cell"


@pytest.mark.parametrize("assignment,text_path", NOTEBOOKS)
def test_every_answer_is_followed_by_its_test_cell(assignment, text_path):
    nb, cells = _cells(text_path)
    answers = [meta["grade_id"] for _, meta in cells if meta.get("solution")]
    assert answers, "a notebook of the course has exercises"
    assert sorted(answer_to_test_cell(nb)) == sorted(answers)
    for answer, test in notebooks.test_cells(nb).items():
        assert f"adcheck.check_{answer}({answer}" in test.source, (
            f"{answer}'s test cell must call adcheck.check_{answer}({answer}, ...)")
        declared = bundle.declarations(assignment).read_text()
        assert f"check_{answer} = " in declared, (
            f"{bundle.declarations(assignment).name} declares no check_{answer}")


@pytest.mark.parametrize("assignment,text_path", NOTEBOOKS)
def test_first_code_cell_guards_the_notebook(assignment, text_path):
    _, cells = _cells(text_path)
    cell, meta = next((c, m) for c, m in cells if c.cell_type == "code")
    assert meta.get("locked") and "adcheck.setup()" in cell.source


@pytest.mark.parametrize("assignment,text_path", NOTEBOOKS)
def test_source_passes_its_own_tests_hidden_ones_included(assignment, text_path, tmp_path):
    source_dir = text_path.parent
    for path in build.support_files(source_dir):
        shutil.copy(path, tmp_path / path.name)
    nb = nbformat.read(notebooks.notebook_path(text_path), as_version=4)
    build.execute(nb, tmp_path, env={"NBGRADER_EXECUTION": "autograde", **SHOW_DEPRECATIONS})
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors
    found = deprecations(nb)
    assert not found, "a deprecated API while grading: " + "; ".join(
        f"cell {index}: {text.strip()[:300]}" for index, text in found)


@pytest.mark.parametrize("assignment,text_path", NOTEBOOKS)
def test_every_exercise_has_a_numbered_header_with_its_points(assignment, text_path):
    nb, _ = _cells(text_path)
    header = re.compile(r"^### Exercise (\d+): (.+) \((?:design, )?(\d+) points?\)$",
                        re.MULTILINE)
    tests_of = answer_to_test_cell(nb)
    points = {c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"].get("points")
              for c in nb.cells if nbgrader_utils.is_grade(c)}
    last, numbers = None, []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            last = header.findall(cell.source)[-1] if header.search(cell.source) else last
            if re.search(r"^### Exercise\b", cell.source, re.MULTILINE):
                assert header.search(cell.source), (
                    f"an exercise header not of the form '### Exercise N: name (k points)' or "
                    f"'(design, k points)' in "
                    f"{cell.source[:80]!r}")
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in tests_of:
            assert last is not None, f"{grade_id}: no '### Exercise N: ...' header before it"
            number, name, stated = last
            assert int(stated) == points[tests_of[grade_id]], (
                f"{grade_id}: the header says {stated} points, its test cell gives "
                f"{points[tests_of[grade_id]]}")
            numbers.append(int(number))
            last = None
    assert numbers == list(range(1, len(numbers) + 1)), f"exercises numbered {numbers}"


def test_a_third_of_the_exercises_are_design_problems():
    """A design exercise gives the goal and the constraints, not the code; its header says so:
    ``### Exercise 8: `logdet` (design, 3 points)``."""
    header = re.compile(r"^# ### Exercise \d+: .+ \((design, )?\d+ points?\)$", re.MULTILINE)
    kinds = [bool(design) for _, text_path in NOTEBOOKS
             for design in header.findall(text_path.read_text())]
    assert 3 * sum(kinds) >= len(kinds), (
        f"{sum(kinds)} design exercises of {len(kinds)}: at least a third must be")
