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
    says: str = ""  # for a wrong answer: words the message of its test cell must contain

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


def calls_the_builtin(exercise, builtin):
    """The wrong answer of ``exercise`` (a function of f) that returns ``jax.<builtin>(f)``, the
    function of JAX that the exercise asks to write and forbids."""
    return Answer(exercise, f"calls the built-in jax.{builtin}", f"""
        def {exercise}(f):
            return jax.{builtin}(f)
    """, says=f"{exercise} must not call jax.{builtin}.")


def tampered(grade_id, tampering_code, wrong_answer):
    """A wrong answer with tampering code in front of it, in the same answer cell."""
    return (Answer(grade_id, "", tampering_code + "\n" + wrong_answer.code),)


def tampering_of(reason, tampering_code, wrong, wrong_reason):
    """The Tampering ``reason``: ``tampering_code`` in front of the answer of the list ``wrong``
    whose reason is ``wrong_reason``, in its answer cell."""
    wrong_answer = by_reason(wrong, wrong_reason)
    return Tampering(reason, tampered(wrong_answer.grade_id, tampering_code, wrong_answer))


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


# An answer that uses whatever the shipped checks module holds: it tries every function of
# adcheck (and what each one returns when called with no argument or with 1.0) on the visible
# check of its exercise, and submits the first that passes. If any function of the module that
# students receive solved an exercise, this would find it.
_SEARCH_THE_CHECKS = """
import contextlib, io
import adcheck


def _candidates():
    for _name, _value in list(vars(adcheck).items()):
        if _name.startswith("check_") or _name in ("setup", "restore") or not callable(_value):
            continue
        if isinstance(_value, type):
            continue
        yield _value
        for _args in ((), (1.0,)):
            try:
                _made = _value(*_args)
            except BaseException:
                continue
            if callable(_made):
                yield _made


def _search(check, seconds=60):
    import time

    deadline = time.monotonic() + seconds  # within the grader's time limit for a cell
    for _candidate in _candidates():
        if time.monotonic() > deadline:
            return None
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                check(_candidate)
            return _candidate
        except BaseException:
            pass
    return None
"""


def search_the_checks(exercises):
    """One answer per exercise: the search above, then the exercise bound to what it found."""
    return tuple(Answer(exercise, "", _SEARCH_THE_CHECKS + f"""
{exercise} = _search(adcheck.check_{exercise}) or (lambda *args, **kwargs: None)
""") for exercise in exercises)


# Tampering beyond monkeypatching, each put in front of a wrong answer of its own exercise.
SWAP_CODE_THROUGH_GC = """
import gc
_noop = (lambda *args, **kwargs: None).__code__
for _obj in gc.get_objects():
    if callable(_obj) and getattr(_obj, "__name__", "").startswith(("check_", "_compare")):
        try:
            _obj.__code__ = _noop
        except (AttributeError, TypeError, ValueError):
            pass
"""

SWAP_CODE_DIRECTLY = """
import adcheck
adcheck._compare.__code__ = (lambda *args, **kwargs: None).__code__
"""

FAKE_CHECKS_MODULE = """
import builtins, sys, types

class _Anything(types.ModuleType):
    def __getattr__(self, name):
        return lambda *args, **kwargs: None

_fake = _Anything("adcheck")
sys.modules["adcheck"] = _fake
_real_import = builtins.__import__
builtins.__import__ = lambda name, *args, **kwargs: (
    _fake if name == "adcheck" else _real_import(name, *args, **kwargs))
adcheck = _fake
"""

DISABLE_JIT = """
jax.config.update("jax_disable_jit", True)
jax.disable_jit().__enter__()
"""

REPATCHING_THREAD = """
import sys, threading, time

def _repatch():
    while True:
        checks = sys.modules["adcheck"]
        for _name in dir(checks):
            if _name.startswith("check_"):
                setattr(checks, _name, lambda *args, **kwargs: None)
        time.sleep(0.001)

threading.Thread(target=_repatch, daemon=True).start()
"""

_IN_PROCESS = (SWAP_CODE_THROUGH_GC, SWAP_CODE_DIRECTLY, FAKE_CHECKS_MODULE, DISABLE_JIT,
               REPATCHING_THREAD)


def in_process_attacks(wrong):
    """One submission: the first wrong answer of every exercise, each behind one of the
    tamperings above (in turn)."""
    firsts = list({answer.grade_id: answer for answer in reversed(wrong)}.values())[::-1]
    return tuple(Answer(answer.grade_id, "", _IN_PROCESS[k % len(_IN_PROCESS)] + "\n" + answer.code)
                 for k, answer in enumerate(firsts))


def exercises(wrong):
    return list(dict.fromkeys(answer.grade_id for answer in wrong))


def attacks_on_the_checks(wrong):
    """The tamperings every library ends with, on the exercises of its wrong answers ``wrong``:
    the search through the shipped checks module, and the in-process attacks."""
    return [
        Tampering("calls whatever the shipped checks module exposes, found by the visible checks",
                  search_the_checks(exercises(wrong))),
        Tampering("swaps the checks' code (through gc and directly), fakes the checks module, "
                  "turns jit off, starts a re-patching thread", in_process_attacks(wrong)),
    ]
