"""Grade a class with the real nbgrader commands, in a course folder of its own.

Used by the demo and by the tests: they make submissions from the release notebooks by putting
answers into the answer cells, then run one ``nbgrader autograde`` over the whole class.
"""

import csv
import shutil
from pathlib import Path

import nbformat
from nbgrader import utils as nbgrader_utils
from nbgrader.api import Gradebook

from course import paths
from course.authoring import build, notebooks
from course.paths import db_url, nbgrader

COURSE_FILES = ("nbgrader_config.py", "course", "source", "release")


def new_course(path, root=paths.ROOT, files=COURSE_FILES):
    """A copy of the course at ``path`` (source and release only, or the ``files`` named),
    ready for nbgrader."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for name in files:
        src = Path(root) / name
        if src.is_dir():
            shutil.copytree(src, path / name, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
        else:
            shutil.copy(src, path / name)
    return path


def answer_cells(nb):
    """``{grade_id: source}`` of the answer cells of a notebook."""
    return {cell.metadata["nbgrader"]["grade_id"]: cell.source for cell in nb.cells
            if nbgrader_utils.is_solution(cell)}


def model_answers(source_nb):
    """The reference answers of a source notebook, without the solution markers."""
    return answer_cells(notebooks.solution_notebook(source_nb))


def submission(release_nb, answers):
    """The release notebook with some answer cells replaced, as a student would submit it."""
    nb = nbformat.from_dict(release_nb)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in answers:
            cell.source = answers[grade_id]
    return nb


def submit(course, assignment, student, notebooks_by_name):
    """Place a student's notebooks where ``nbgrader collect`` would have put them."""
    folder = Path(course) / "submitted" / student / assignment
    folder.mkdir(parents=True, exist_ok=True)
    for name, nb in notebooks_by_name.items():
        nbformat.write(nb, folder / f"{name}.ipynb")
    (folder / "timestamp.txt").write_text("2026-01-15 12:00:00.000000 UTC")


def autograde(course, assignment):
    """One ``nbgrader autograde`` process for every submission of the assignment."""
    build.build_release(assignment, root=course)  # registers the notebooks in the gradebook
    return nbgrader("autograde", assignment, "--force", root=course)


def cell_scores(course, assignment):
    """``{student: {grade_id: (score, max_score)}}`` from the course's gradebook."""
    scores = {}
    with Gradebook(db_url(course)) as gradebook:
        for sub in gradebook.assignment_submissions(assignment):
            scores[sub.student.id] = {
                grade.name: (grade.score, grade.max_score)
                for nb in sub.notebooks for grade in nb.grades}
    return scores


def read_grades(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def export_grades(course):
    """Run ``nbgrader export`` and return the rows of the grades CSV."""
    nbgrader("export", root=course)
    return read_grades(Path(course) / "grades.csv")
