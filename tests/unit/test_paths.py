"""course/paths.py: the course folder as nbgrader sees it."""

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from course import paths


def _cell(grade_id, **meta):
    cell = new_code_cell("")
    cell.metadata["nbgrader"] = {"grade_id": grade_id, **meta}
    return cell


def test_graded_cells_in_the_order_students_meet_them(tmp_path):
    folder = tmp_path / "release" / "01_a"
    folder.mkdir(parents=True)
    nbformat.write(new_notebook(cells=[
        _cell("setup", locked=True), _cell("g", solution=True),
        _cell("g_tests", grade=True, points=1), new_markdown_cell("text")]), folder / "b.ipynb")
    nbformat.write(new_notebook(cells=[
        _cell("f", solution=True), _cell("f_tests", grade=True, points=2),
        _cell("essay", solution=True, grade=True, points=1)]), folder / "a.ipynb")
    assert list(paths.release_notebooks(tmp_path, "01_a")) == ["a", "b"]
    assert paths.graded_cells(tmp_path, "01_a") == ["f_tests", "essay", "g_tests"]


def test_the_root_is_the_course_folder():
    assert (paths.ROOT / "nbgrader_config.py").is_file()
    assert (paths.ROOT / "course" / "paths.py").is_file()
