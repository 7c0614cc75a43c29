"""The answer libraries themselves: every answer is valid Python aimed at a real exercise.

A wrong answer with a syntax error would lose its points for the wrong reason and prove
nothing about the hidden tests, so this is checked before anything is graded.
"""

import ast

import nbformat
import pytest

from course.authoring import notebooks
from tests import answers
from tests.harness import answer_to_test_cell, notebook_name, source_notebooks


@pytest.mark.parametrize("text_path", [p for _, p in source_notebooks()],
                         ids=lambda p: p.parent.name)
def test_answers_parse_and_target_answer_cells(text_path):
    library = answers.for_notebook(notebook_name(text_path))
    nb = nbformat.read(notebooks.notebook_path(text_path), as_version=4)
    exercises = set(answer_to_test_cell(nb))
    every = library.WRONG + library.ALTERNATIVES + [
        a for tampering in library.TAMPERING for a in tampering.answers]
    for answer in every:
        assert answer.grade_id in exercises, f"{answer.reason!r}: no answer cell {answer.grade_id}"
        try:
            ast.parse(answer.code)
        except SyntaxError as error:
            pytest.fail(f"{answer.grade_id}: {answer.reason!r} is not valid Python: {error}")
    for answer in library.WRONG:
        assert answer.says, f"{answer.grade_id}: {answer.reason!r} names no expected message"
    for exercise in exercises:
        assert any(a.grade_id == exercise for a in library.WRONG), f"{exercise}: no wrong answer"
        assert any(a.grade_id == exercise for a in library.ALTERNATIVES), (
            f"{exercise}: no alternative solution")
