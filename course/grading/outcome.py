"""What grading decided, read once: per assignment, student and exercise, the score, the maximum,
the code of the mistake and what the student was told.

The scores come from the gradebook, opened once for every assignment a command needs. The
mistakes come from the autograded notebooks, where the judge (course/checks/judge.py) leaves its
verdict on every test cell as data (``cell.metadata["verdict"]``), so nothing parses a message.
A failed test cell without a verdict (graded with the judge turned off) is named by its error's
kind: ``<exercise>/unnamed`` for an assertion, ``<exercise>/error:<kind>`` for anything else.

Every table, plot, CSV and page of course/reports.py is rendered from a :class:`ClassOutcome`.
"""

import dataclasses
from pathlib import Path

import nbformat
from nbgrader import utils as nbgrader_utils

from course import paths
from course.checks.judge import VERDICT
from course.grading import submission_files


@dataclasses.dataclass(frozen=True)
class Mark:
    """One test cell of one submission."""

    score: float
    max_score: float
    mistake: str = None  # "our_jacfwd/transposed", when it lost points
    said: str = ""  # what the student was told, without the mistake's code

    @property
    def full(self):
        return self.score >= self.max_score


@dataclasses.dataclass(frozen=True)
class Submission:
    """One student's graded submission of an assignment."""

    student: str
    score: float
    max_score: float
    marks: dict  # test grade_id -> Mark
    refused: int = 0  # files left out of the submission (see course/grading/submission_files.py)


@dataclasses.dataclass(frozen=True)
class ClassOutcome:
    """One assignment: its test cells in notebook order, every student of the gradebook, and
    the submissions graded (a student without one has none here)."""

    assignment: str
    exercises: list  # test grade_ids, in notebook order
    students: list  # every student of the gradebook, sorted
    submissions: dict  # student -> Submission


def exercise_name(grade_id):
    return grade_id.removesuffix("_tests")


def _failure(cell):
    """``(code, what was said)`` of a failed test cell: its verdict, or its error's kind."""
    found = cell.get("metadata", {}).get(VERDICT)
    if isinstance(found, dict) and isinstance(found.get("mistake"), str):
        return found["mistake"], str(found.get("said", ""))
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            ename = str(output.get("ename", ""))
            return ("unnamed" if ename == "AssertionError" else f"error:{ename}",
                    str(output.get("evalue", "")))
    return "unnamed", "no error shown (output on stderr, or the cell was emptied)"


def _test_cells(path):
    """The test cells of an autograded notebook (nbgrader's own output), by grade id."""
    if not path.exists():
        return {}
    nb = nbformat.read(path, as_version=4)
    return {cell.metadata["nbgrader"]["grade_id"]: cell for cell in nb.cells
            if nbgrader_utils.is_grade(cell) and not nbgrader_utils.is_solution(cell)}


def _submission(course, assignment, submission):
    student, marks = submission.student.id, {}
    for notebook in submission.notebooks:
        cells = _test_cells(course / "autograded" / student / assignment
                            / f"{notebook.name}.ipynb")
        for grade in notebook.grades:
            mistake, said = None, ""
            if grade.score < grade.max_score:
                cell = cells.get(grade.name)
                mistake, said = _failure(cell) if cell else ("unnamed", "no graded notebook")
                if "/" not in mistake:
                    mistake = f"{exercise_name(grade.name)}/{mistake}"
            marks[grade.name] = Mark(grade.score, grade.max_score, mistake, said)
    refused = submission_files.refused_in(course / "submitted" / student / assignment)
    return Submission(student, submission.score, submission.max_score, marks, len(refused))


def read(course, assignments):
    """``{assignment: ClassOutcome}`` of ``course``, from one opening of its gradebook."""
    from nbgrader.api import Gradebook

    course = Path(course)
    outcomes = {}
    with Gradebook(paths.db_url(course)) as gradebook:
        students = sorted(student.id for student in gradebook.students)
        for assignment in assignments:
            submissions = {s.student.id: _submission(course, assignment, s)
                           for s in gradebook.assignment_submissions(assignment)}
            outcomes[assignment] = ClassOutcome(
                assignment, paths.graded_cells(course, assignment), students,
                dict(sorted(submissions.items())))
    return outcomes
