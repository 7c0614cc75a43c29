"""Answers to grade: wrong answers that must lose points, correct alternatives that must not.

One module per notebook, named like it, with two lists of ``Answer``: ``WRONG`` and
``ALTERNATIVES``. ``TAMPERING`` holds whole extra cells that try to fool the grader; each comes
with wrong answers it tries to rescue.
"""

import dataclasses
import importlib
import textwrap


@dataclasses.dataclass(frozen=True)
class Answer:
    grade_id: str  # the answer cell it replaces
    reason: str  # what is wrong, or how it differs from the reference
    code: str

    def __post_init__(self):
        object.__setattr__(self, "code", textwrap.dedent(self.code).strip() + "\n")


@dataclasses.dataclass(frozen=True)
class Tampering:
    reason: str
    answers: tuple  # Answer objects: the wrong answers, with the tampering code in front


def for_notebook(name):
    return importlib.import_module(f"{__name__}.{name}")
