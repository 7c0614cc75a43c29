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
    code: str  # or a tuple of code blocks, each dedented on its own and then joined

    def __post_init__(self):
        blocks = (self.code,) if isinstance(self.code, str) else self.code
        code = "\n\n".join(textwrap.dedent(block).strip() for block in blocks)
        object.__setattr__(self, "code", code + "\n")


@dataclasses.dataclass(frozen=True)
class Tampering:
    reason: str
    answers: tuple  # Answer objects: the wrong answers, with the tampering code in front


def by_reason(answers, reason):
    """The answer of a list with this reason."""
    return next(answer for answer in answers if answer.reason == reason)


def tampered(grade_id, tampering_code, wrong_answer):
    """A wrong answer with tampering code in front of it, in the same answer cell."""
    return (Answer(grade_id, "", tampering_code + "\n" + wrong_answer.code),)


# Tampering code that answer cells put in front of a wrong answer, hoping to rescue it.
PATCH_COMPARISONS = """
import numpy as np
np.testing.assert_allclose = lambda *args, **kwargs: None
np.allclose = lambda *args, **kwargs: True
np.isclose = lambda *args, **kwargs: np.True_
jnp.allclose = lambda *args, **kwargs: True
"""

SHADOW_BUILTINS = """
def isinstance(*args):
    return True

def all(*args):
    return True

def abs(x):
    return 0 * x

AssertionError = Warning
"""

PATCH_BUILTINS_MODULE = """
import builtins
builtins.all = lambda *args: True
builtins.any = lambda *args: False
builtins.abs = lambda x: 0 * x
"""

SILENCE_ERRORS = """
get_ipython().showtraceback = lambda *args, **kwargs: None
get_ipython()._showtraceback = lambda *args, **kwargs: None
"""

REPLACE_CHECKS = """
import adcheck
for _name in dir(adcheck):
    if _name.startswith("check_"):
        setattr(adcheck, _name, lambda *args, **kwargs: None)
"""


def for_notebook(name):
    return importlib.import_module(f"{__name__}.{name}")
