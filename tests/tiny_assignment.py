"""A tiny assignment of three exercises (``double``, ``square``, ``halve``) for the tests of
class grading: it grades in seconds, so that each bad submission can be tried for real."""

import shutil

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from course.authoring import build
from course.checks import bundle
from course.dev import scratch_course

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
    cells = [_cell("import adcheck\nadcheck.setup()", grade_id="setup", locked=True),
             new_markdown_cell("Three small functions."), demo_cell()]
    for name, body in EXERCISES.items():
        cells.append(_cell(f"def {name}(x):\n    ### BEGIN SOLUTION\n    return {body}\n"
                           "    ### END SOLUTION", grade_id=name, solution=True))
        cells.append(_cell(
            f"adcheck.check_{name}({name})\n"
            f"### BEGIN HIDDEN TESTS\nadcheck.check_{name}({name}, cases=[-1.5])\n"
            "### END HIDDEN TESTS", grade_id=f"{name}_tests", grade=True, locked=True,
            points=1))
    return new_notebook(cells=cells, metadata={"kernelspec": {
        "name": "python3", "display_name": "Python 3", "language": "python"}})


TINY_CHECKS = '''
class Exercise:
    """One tiny exercise: the student's function against ``oracle`` on each case (x = 3 in the
    visible test, the hidden test names its own)."""

    def __init__(self, name, oracle):
        self.name, self.oracle = name, oracle

    def __call__(self, answer, cases=(3,)):
        _active.append(self)
        try:
            facts = {"visible": cases == (3,), "jit": False, "cases": [repr(x) for x in cases]}
            with _checking(self.name, facts):
                try:
                    for index, x in enumerate(cases):
                        _at("case", index)
                        got = _observe(self.name, lambda: answer(x))
                        want = _oracle(lambda: self.oracle(x))
                        if not _probing() and got != want:
                            where = f"({x!r})" if facts["visible"] else " on a hidden case"
                            raise Failed(f"{self.name}{where} should be {want!r}"
                                         if facts["visible"] else f"{self.name} is wrong"
                                         f"{where}", _code("wrong-values"))
                except AssertionError as failure:
                    raise _told(failure) from None
        finally:
            _active.pop()
        if not _probing():
            print(f"{self.name} passed")


def setup():
    import os

    if os.environ.get("NBGRADER_EXECUTION") == "autograde":
        _Evidence.mode = "probe"


check_double = Exercise("double", lambda x: 2 * x)
check_square = Exercise("square", lambda x: x * x)
check_halve = Exercise("halve", lambda x: x / 2)
'''


def tiny_checks():
    """The tiny assignment's checks module: the course's evidence section (the kernel observes,
    the judge decides) and three exercises, with no JAX, so that it grades in seconds."""
    return bundle.bundle(ASSIGNMENT, parts=("evidence",)) + TINY_CHECKS


DEMO_OUTPUT = "the demo cell ran"


def demo_cell():
    """A cell tagged demo: grading does not run it (unless a submission changed it)."""
    cell = new_code_cell(f"print({DEMO_OUTPUT!r})")
    cell.metadata["tags"] = ["demo"]
    return cell


def release(course):
    return nbformat.read(course / "release" / ASSIGNMENT / "tiny.ipynb", as_version=4)


def answered(course, **answers):
    """The release with every exercise answered correctly, except those given."""
    code = {name: f"def {name}(x):\n    return {body}" for name, body in EXERCISES.items()}
    code.update(answers)
    return scratch_course.submission(release(course), code)


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


def scores(course, student):
    """A student's marks on the three exercises, in order."""
    cells = scratch_course.cell_scores(course, ASSIGNMENT)[student]
    return tuple(cells[f"{name}_tests"][0] for name in EXERCISES)


def make_tiny_course(course, root):
    """A course of the tiny assignment only at ``course``, generated by nbgrader, with the
    configuration and extensions of the course at ``root`` and a short cell timeout."""
    course.mkdir(parents=True)
    shutil.copy(root / "nbgrader_config.py", course)
    shutil.copytree(root / "course", course / "course",
                    ignore=shutil.ignore_patterns("__pycache__"))
    with open(course / "nbgrader_config.py", "a") as config:
        config.write(f"\nc.Execute.timeout = {CELL_TIMEOUT}\n")
    (course / "source" / ASSIGNMENT).mkdir(parents=True)
    nbformat.write(tiny_notebook(), course / "source" / ASSIGNMENT / "tiny.ipynb")
    (course / "source" / ASSIGNMENT / "adcheck.py").write_text(tiny_checks())
    build.build_release(ASSIGNMENT, root=course)
    return course


def fresh_copy(tiny_course, path):
    """A copy of the tiny course without any submission or grade, its assignment registered
    (again) in the gradebook that nbgrader_config.py names."""
    shutil.copytree(tiny_course, path, ignore=shutil.ignore_patterns(
        "submitted", "autograded", "feedback", "originals", "gradebook.db*", "reports"))
    build.build_release(ASSIGNMENT, root=path)
    return path
