"""course/grading/intake.py: what a student's notebook changed of the release's structure, said
in the grading notes at its top (each note once)."""

from nbformat.v4 import new_code_cell, new_notebook

from course.grading import intake


def _cell(grade_id, source="", **meta):
    cell = new_code_cell(source)
    cell.metadata["nbgrader"] = {"grade_id": grade_id, **meta}
    return cell


def _release():
    return new_notebook(cells=[
        _cell("setup", "import jax", locked=True),
        _cell("f", "raise NotImplementedError()", solution=True),
        _cell("f_tests", "adcheck.check_f(f)", grade=True, locked=True, points=1),
        _cell("g", "raise NotImplementedError()", solution=True),
        _cell("g_tests", "adcheck.check_g(g)", grade=True, locked=True, points=1)])


def _student(*order, edits=None):
    cells = {c.metadata["nbgrader"]["grade_id"]: c for c in _release().cells}
    nb = new_notebook(cells=[new_code_cell(cells[g].source, metadata=cells[g].metadata)
                             for g in order])
    for grade_id, source in (edits or {}).items():
        next(c for c in nb.cells if c.metadata["nbgrader"]["grade_id"] == grade_id).source = source
    return nb


def test_an_untouched_structure_has_no_notes():
    nb = _student("setup", "f", "f_tests", "g", "g_tests", edits={"f": "def f(x): return x"})
    assert intake._structure_notes(nb, _release()) == []


def test_each_change_is_named():
    nb = _student("setup", "f_tests", "f", "f", "g_tests", edits={"setup": "import numpy"})
    notes = intake._structure_notes(nb, _release())
    assert notes == [
        "Cell `f` appears 2 times; the last copy was graded as that cell, the others as ordinary "
        "code.",
        "The answer cell `g` was deleted, so its exercise scores zero.",
        "The locked cell `setup` was edited; the original was restored and graded.",
        "The assignment's cells are not in their original order. They ran in your order, so a "
        "test that runs before its answer fails."]


def test_a_deleted_test_cell_is_put_back():
    notes = intake._structure_notes(_student("setup", "f", "g", "g_tests"), _release())
    assert notes == ["The test cell `f_tests` was deleted; the original was put back and graded."]


def test_notes_are_added_once_at_the_top():
    nb = _student("setup", "f")
    intake.add_notes(nb, ["one", "two", "one"])
    intake.add_notes(nb, ["two", "three"])
    assert nb.cells[0].id == intake.NOTE_ID and len(nb.cells) == 3
    assert nb.cells[0].source.splitlines()[2:] == ["- one", "- two", "- three"]
    assert intake.add_notes(_student("setup"), []).cells[0].id != intake.NOTE_ID
