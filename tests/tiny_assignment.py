"""A tiny assignment of three exercises (``double``, ``square``, ``halve``) for the tests of
class grading: it grades in seconds, so that each bad submission can be tried for real."""

import shutil

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from course import build, grading

ASSIGNMENT = "00_tiny"
EXERCISES = {"double": "2 * x", "square": "x * x", "halve": "x / 2"}
CELL_TIMEOUT = 10  # seconds, instead of the course's 180, so that the endless loop ends soon


def _cell(source, **nbgrader):
    cell = new_code_cell(source)
    if nbgrader:
        cell.metadata["nbgrader"] = {"grade": False, "locked": False, "solution": False,
                                     "schema_version": 3, "task": False, **nbgrader}
        cell.id = nbgrader["grade_id"]
    return cell


def tiny_notebook():
    cells = [_cell("import math", grade_id="setup", locked=True),
             new_markdown_cell("Three small functions.")]
    for name, body in EXERCISES.items():
        cells.append(_cell(f"def {name}(x):\n    ### BEGIN SOLUTION\n    return {body}\n"
                           "    ### END SOLUTION", grade_id=name, solution=True))
        x = 3
        cells.append(_cell(
            f"assert {name}({x}) == {eval(body)}, '{name}({x}) should be {eval(body)}'\n"
            f"### BEGIN HIDDEN TESTS\nassert {name}(-1.5) == {eval(body, {'x': -1.5})}\n"
            "### END HIDDEN TESTS", grade_id=f"{name}_tests", grade=True, locked=True,
            points=1))
    return new_notebook(cells=cells, metadata={"kernelspec": {
        "name": "python3", "display_name": "Python 3", "language": "python"}})


def release(course):
    return nbformat.read(course / "release" / ASSIGNMENT / "tiny.ipynb", as_version=4)


def answered(course, **answers):
    """The release with every exercise answered correctly, except those given."""
    code = {name: f"def {name}(x):\n    return {body}" for name, body in EXERCISES.items()}
    code.update(answers)
    return grading.submission(release(course), code)


def cells_of(nb, grade_id):
    return [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id]


WRONG_SQUARE = "def square(x):\n    return 2 * x"


def submit(course, student, files):
    """Put ``{file name: notebook or text}`` where ``nbgrader collect`` would."""
    folder = course / "submitted" / student / ASSIGNMENT
    folder.mkdir(parents=True)
    for name, content in files.items():
        text = content if isinstance(content, str) else nbformat.writes(content)
        (folder / name).write_text(text)
    (folder / "timestamp.txt").write_text("2026-01-15 12:00:00.000000 UTC")


def scores(course, student, db_url=None):
    """A student's marks on the three exercises, in order."""
    cells = grading.cell_scores(course, ASSIGNMENT, db_url=db_url)[student]
    return tuple(cells[f"{name}_tests"][0] for name in EXERCISES)


def fresh_copy(tiny_course, path):
    """A copy of the tiny course without any submission or grade, its assignment registered
    (again) in the gradebook that nbgrader_config.py names."""
    shutil.copytree(tiny_course, path, ignore=shutil.ignore_patterns(
        "submitted", "autograded", "feedback", "originals", "gradebook.db*", "reports"))
    build.build_release(ASSIGNMENT, root=path)
    return path
