"""Evidence: the kernel observes, the judge decides (shipped; both sides).

A student's own run (and Validate) checks in the kernel, as a student expects. While grading,
the kernel runs the same checks in "probe" mode: every call of student code is an observation,
recorded as plain data (numbers, arrays, strings; never code). On the hidden cases, expected
values are not computed and nothing is compared; on the visible ones the kernel decides as in a
student's run (those values are no secret), so that a wrong answer stops its cell at once.
Each check call hands its record out of the kernel as a display output of type
``EVIDENCE_MIME``. The judge (course/checks/judge.py), a process that never runs student
code, runs the test cell's trusted source with the checks in "judge" mode: the observations are
replayed from the record in the same order, the oracle computes the expected values (once per
machine: the cases are the same for every student and every run), and the comparisons decide.
A record that is missing, malformed or out of order fails the check. This module needs only
numpy and the standard library.
"""

import base64
import contextlib
import json
import re
import sys

import numpy as np

EVIDENCE_MIME = "application/vnd.adcourse.evidence+json"


_active = []  # the exercise whose check is running: its forbids= hold for every call it makes


_ARRAY_DTYPES = frozenset({
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "bfloat16", "float32", "float64", "complex64", "complex128"})


_LIMITS = {"depth": 12, "items": 100_000, "text": 20_000, "bytes": 64 * 2**20}


class Mistake(str):
    """A named mistake: the message a student reads, with a short code that stays the same
    when the wording changes (``our_jacfwd/transposed``)."""

    def __new__(cls, code, message):
        mistake = super().__new__(cls, message)
        mistake.code = code
        return mistake

    def say(self, **fields):
        """This mistake, its message's ``{fields}`` filled in."""
        return Mistake(self.code, self.format(**fields))


class Failed(AssertionError):
    """A check's failure: the message, and the code of the mistake it names (or None)."""

    def __init__(self, message, code=None):
        super().__init__(message)
        self.code = code


def _code(mistake):
    """The code of a mistake of the running exercise: ``vgrad/python-loop``."""
    return f"{_active[-1].name}/{mistake}" if _active else mistake


def _told(failure):
    """What a student sees of a check's ``failure``: an AssertionError (the name students
    expect) whose message ends with the mistake's code. The code and the words also ride along
    as data, which the judge keeps as its verdict for the class's report."""
    code = getattr(failure, "code", None) or _code("unnamed")
    error = AssertionError(f"{failure} [mistake: {code}]")
    error.mistake, error.said = code, str(failure)
    return error


class _EvidenceState:
    """Where the checks run: ``mode`` is "run" (decide here), "probe" (record, while grading)
    or "judge" (replay a record in the grader). ``record`` is the running check's list of
    observations (probe) or an iterator over them (judge); ``oracles`` the judge's cache. One
    instance: the guard restores this module's classes, not an instance's state."""

    mode = "run"
    record = None
    oracle_key = None
    oracle_count = 0
    oracles = None  # judge: an _OracleValues (see the end of this module)
    pending = []  # judge: the records of the test cell being judged, in order
    cell_key = None  # judge: the test cell being judged (its oracle values are cached by it)
    depth = 0  # run, probe: how many observations are running (probe records the outermost)
    visible = False  # probe: the running check is on the visible cases (the kernel decides too)
    kept_key = None  # run, probe: the running check's, when on visible cases (see _kept_key)
    kept = {}  # run, probe: the expected values of visible cases this kernel computed
    position = None  # the case or requirement being checked, for the oracle values' keys
    calls_in_cell = 0
    stopped = None  # judge: how the test cell ended in the kernel (an exception's name)


_Evidence = _EvidenceState()


def _probing():
    """Whether the kernel only observes: while grading, in a check of hidden cases, outside an
    observation. Inside one (a check of the answer's form, say), what the kernel decides is what
    is recorded. On the visible cases the kernel also decides, as in the student's own run, so
    that a wrong answer stops its test cell there, at once: those expected values are no secret
    (the student has the same checks), and the judge decides on its own all the same."""
    return _Evidence.mode == "probe" and not _Evidence.depth and not _Evidence.visible


def _judging():
    return _Evidence.mode == "judge"


class _Replayed:
    """What student code gave, as the judge sees it: a name, never the object. The judge never
    calls it; reading its attributes gives more names (``logdet.fwd``)."""

    def __init__(self, name, kind="function"):
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_kind", kind)

    def __getattr__(self, attribute):
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        return _Replayed(f"{self._name}.{attribute}")

    def __setattr__(self, attribute, value):
        raise _JudgeError(f"the checks tried to change {self._name} in the judge")

    def __call__(self, *args, **kwargs):
        raise _JudgeError(f"the checks tried to call {self._name} in the judge")

    def __repr__(self):
        return self._name


class _ReplayedNamespace(dict):
    """The judge's stand-in for a student function's globals: every name is a ``_Replayed``,
    and changing one changes nothing."""

    def __missing__(self, name):
        return _Replayed(name)

    def get(self, name, default=None):
        return _Replayed(name)

    def __setitem__(self, name, value):
        pass

    def pop(self, name, *default):
        return None


class _JudgeError(Exception):
    """A check that does not keep observation and decision apart: a fault of the checks, not of
    the student (the judge reports it to the instructor)."""


def _opaque_type(name):
    """A class named like the object the student's code returned (``Dual``), so that messages
    name it: only its name crosses from the kernel."""
    name = name if isinstance(name, str) and name.isidentifier() and len(name) <= 60 else "object"
    return type(name, (_Replayed,), {})


def _encode(value, depth=0):
    """``value`` (what student code returned) as JSON data: arrays by dtype, shape and bytes,
    numbers, strings, containers of them; anything else by its kind only."""
    if depth > _LIMITS["depth"]:
        return {"object": "deep"}
    if value is None or isinstance(value, (bool, str)):
        return {"value": value[:_LIMITS["text"]] if isinstance(value, str) else value}
    if isinstance(value, (int, float)) and type(value) in (int, float):
        return {"number": repr(value), "type": type(value).__name__}
    if isinstance(value, complex) and type(value) is complex:
        return {"number": repr(value), "type": "complex"}
    if type(value) in (tuple, list):
        return {"sequence": type(value).__name__,
                "items": [_encode(v, depth + 1) for v in value[:_LIMITS["items"]]]}
    if type(value) is dict and all(isinstance(k, str) for k in value):
        return {"dict": {k: _encode(v, depth + 1) for k, v in value.items()}}
    array = _plain_array(value)
    if array is not None:
        return {"array": str(array.dtype), "shape": list(array.shape),
                "scalar": isinstance(value, np.generic),
                "data": base64.b64encode(array.tobytes()).decode()}
    kind = "function" if callable(value) else "object"
    return {kind: type(value).__name__}


def _plain_array(value):
    """A C-ordered NumPy copy of an array (NumPy's or JAX's) of numbers, or None."""
    if not (hasattr(value, "dtype") and hasattr(value, "shape") and hasattr(value, "__array__")):
        return None
    try:
        array = np.array(np.asarray(value), order="C", copy=True)
    except Exception:
        return None
    if array.dtype.name not in _ARRAY_DTYPES or array.nbytes > _LIMITS["bytes"]:
        return None
    return array


def _decode(data, depth=0):
    """What ``_encode`` wrote, back as Python and NumPy values; ``ValueError`` if malformed."""
    if not isinstance(data, dict) or len(data) == 0 or depth > _LIMITS["depth"] + 1:
        raise ValueError("not an encoded value")
    if "value" in data:
        value = data["value"]
        if value is not None and not isinstance(value, (bool, str)):
            raise ValueError("bad value")
        return value
    if "number" in data:
        kind = {"int": int, "float": float, "complex": complex}[data["type"]]
        text = str(data["number"])[:400]
        return kind(text) if kind is not complex else complex(text.strip("()"))
    if "sequence" in data:
        items = [_decode(item, depth + 1) for item in list(data["items"])[:_LIMITS["items"]]]
        return tuple(items) if data["sequence"] == "tuple" else items
    if "dict" in data:
        return {str(k): _decode(v, depth + 1) for k, v in dict(data["dict"]).items()}
    if "array" in data:
        dtype = str(data["array"])
        if dtype not in _ARRAY_DTYPES:
            raise ValueError("bad dtype")
        shape = tuple(int(n) for n in list(data["shape"])[:64])
        encoded = str(data["data"])
        if len(encoded) > _LIMITS["bytes"] * 4 // 3 + 4:
            raise ValueError("array too large")
        raw = base64.b64decode(encoded, validate=True)
        array = np.frombuffer(raw, dtype=np.dtype(dtype)).reshape(shape).copy()
        return array[()] if data.get("scalar") and array.ndim == 0 else array
    if "function" in data:
        return _opaque_type(data["function"])("what your code returned")
    if "object" in data:
        return _opaque_type(data["object"])("what your code returned", kind="object")
    raise ValueError("not an encoded value")


def _observe(name, thunk):
    """``thunk()``, which runs student code: the one door between the checks and the student.

    In a student's run it returns what ``thunk`` returns (or raises its ``Failed``). While
    grading, the kernel also records it; the judge replays it from the record instead."""
    if _Evidence.mode == "run":
        _Evidence.depth += 1
        try:
            return thunk()
        finally:
            _Evidence.depth -= 1
    if _Evidence.mode == "probe":
        if _Evidence.depth:  # inside another observation, which is recorded as a whole
            return thunk()
        _Evidence.depth += 1
        try:
            value = thunk()
        except AssertionError as failure:
            _Evidence.record.append({"name": name, "failed": str(failure)[:2000],
                                     "code": getattr(failure, "code", None)})
            raise
        finally:
            _Evidence.depth -= 1
        _Evidence.record.append({"name": name, "returned": _encode(value)})
        return value
    event = next(_Evidence.record, None)
    if not isinstance(event, dict) or event.get("name") != name:
        raise _missing_evidence(name)
    if "failed" in event:
        code = event.get("code")
        if not (isinstance(code, str) and re.fullmatch(r"[\w.:/-]{1,100}", code)):
            code = _code("unnamed")
        raise Failed(str(event["failed"])[:2000], code)
    try:
        return _decode(event["returned"])
    except (KeyError, TypeError, ValueError, OverflowError):
        raise _missing_evidence(name) from None


_STOPPED = {  # how a test cell ended in the kernel, for a record that stops short
    "CellTimeoutError": "the test cell ran past the grader's time limit and was stopped",
    "KernelDied": "the kernel died while this test cell ran",
    "NotRun": "this test cell did not run: the kernel had died or stopped in an earlier cell",
    "GradingStopped": "the grader stopped the kernel (a thread or process the notebook started "
                      "was still running)",
    "NameError": "a name the test cell uses is not defined: run the answer cell above it (and "
                 "every cell before) without errors",
}


def _missing_evidence(name):
    stopped = _Evidence.stopped
    if stopped:
        why = _STOPPED.get(stopped, "the test cell stopped before its checks finished")
        return Failed(f"{stopped}: {why}.", _code(f"error:{stopped}"))
    return Failed(f"The grader received no result of the checks of {name} from this test cell "
                  "(the notebook changed how its cells run, or what they print).",
                  _code("no-evidence"))


class _Unknown:
    """What the kernel has instead of an expected value while grading: every operation on it
    gives it back (as an array, it is nan), so the checks' code runs on to the next
    observation without computing anything."""

    def __getattr__(self, attribute):
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        return self

    def __call__(self, *args, **kwargs):
        return self

    def __getitem__(self, key):
        return self

    def __array__(self, dtype=None, copy=None):
        return np.array(np.nan)

    def __bool__(self):
        return False


for _op in ("add", "sub", "mul", "truediv", "pow", "matmul", "neg"):
    setattr(_Unknown, f"__{_op}__", _Unknown.__call__)
    setattr(_Unknown, f"__r{_op}__", _Unknown.__call__)


for _op in ("lt", "le", "gt", "ge"):
    setattr(_Unknown, f"__{_op}__", lambda self, other: False)


del _op


_UNKNOWN = _Unknown()


def _at(*position):
    """The runner is at this case or requirement: the judge's cache counts oracles from here."""
    _Evidence.position, _Evidence.oracle_count = position, 0


def _oracle(compute, parts=None):
    """The expected value ``compute()`` gives (a tuple of ``parts`` values, if given). A
    student's run computes it; while grading, the kernel never does on the hidden cases (it
    gets unknowns); the judge computes it once per machine, since the cases are the same
    for everyone: a value is known by its test cell, check call, case, rank among the case's
    oracles and the place in the checks where ``compute`` is written.
    ``compute`` may use the case and public constants, never what the student's code gave."""
    if _probing():
        return (_UNKNOWN,) * parts if parts else _UNKNOWN
    if _Evidence.mode != "judge":  # a student's run, or public values while grading
        return _computed_here(compute)
    key = (_Evidence.oracle_key, _Evidence.position, _Evidence.oracle_count, _written_at(compute))
    _Evidence.oracle_count += 1
    return _Evidence.oracles.value(key, compute)


def _written_at(compute):
    code = getattr(compute, "__code__", None)
    return (code.co_name, code.co_firstlineno) if code else type(compute).__name__


def _computed_here(compute):
    """``compute()`` in the kernel. On the visible cases, outside student code, the value is
    kept, by the same kind of key as the judge's: running a test cell again, as students do (and
    a search through many candidate answers), computes none of them again."""
    if _Evidence.kept_key is None or _Evidence.depth:
        return compute()
    key = (_Evidence.kept_key, _Evidence.position, _Evidence.oracle_count, _written_at(compute))
    _Evidence.oracle_count += 1
    if key not in _Evidence.kept:
        _Evidence.kept[key] = compute()
    return _Evidence.kept[key]


def _kept_key(exercise, facts):
    """What the expected values of a check's visible cases depend on: its exercise, cases (the
    exercise's own, the same at every call) and JAX's 64-bit mode, under which they are made
    in other dtypes. None for the cases a hidden test passes."""
    if not facts.get("visible"):
        return None
    jax = sys.modules.get("jax")
    return (exercise, tuple(facts.get("cases", ())),
            bool(jax is not None and jax.config.jax_enable_x64))


def _portable(value):
    """``(encoded, value)``: ``value`` as every grading process gets it from a shared cache,
    through ``_encode`` and ``_decode`` (arrays become NumPy's), when it is data that crosses
    whole; else ``(None, value)``."""
    encoded = _encode(value)
    if _crosses_whole(value, encoded):
        return encoded, _decode(encoded)
    return None, value


def _crosses_whole(value, encoded):
    if "sequence" in encoded:
        return len(encoded["items"]) == len(value) and all(
            _crosses_whole(v, e) for v, e in zip(value, encoded["items"]))
    if "dict" in encoded:
        return all(_crosses_whole(value[k], e) for k, e in encoded["dict"].items())
    if isinstance(value, str):
        return len(value) <= _LIMITS["text"]
    return not ({"function", "object"} & encoded.keys())


class _OracleValues:
    """The judge's oracle values in this process, each computed once (the cases are the same
    for every student). Grading processes share them through the grader's folder
    (course/checks/judge.py: ``SharedOracleValues``); either way a value is what ``_portable``
    gives, so that every student's check compares with the very same numbers."""

    def __init__(self):
        self._values = {}

    def value(self, key, compute):
        if key not in self._values:
            self._values[key] = _portable(compute())[1]
        return self._values[key]


@contextlib.contextmanager
def _checking(exercise, facts):
    """Around one check call: records it (probe) or takes its record (judge)."""
    if _Evidence.mode == "run":
        outer, _Evidence.kept_key = _Evidence.kept_key, _kept_key(exercise, facts)
        try:
            yield
        finally:
            _Evidence.kept_key = outer
        return
    if _Evidence.mode == "probe":
        _Evidence.record, _Evidence.visible = [], bool(facts.get("visible"))
        _Evidence.kept_key = _kept_key(exercise, facts)
        try:
            yield  # a failure the kernel saw (a crash, a visible case) stops the cell, as always
        finally:
            _emit({"exercise": exercise, "facts": facts, "observations": _Evidence.record})
            _Evidence.record, _Evidence.visible, _Evidence.kept_key = None, False, None
        return
    found = _Evidence.pending.pop(0) if _Evidence.pending else None
    ok = (isinstance(found, dict) and found.get("exercise") == exercise
          and found.get("facts") == facts and isinstance(found.get("observations"), list))
    _Evidence.record = iter(found["observations"] if ok else [])
    _Evidence.oracle_key = (_Evidence.cell_key, _Evidence.calls_in_cell, exercise)
    _Evidence.calls_in_cell += 1
    _Evidence.oracle_count = 0
    try:
        yield
    finally:
        _Evidence.record = None


def _emit(record):
    """Hand ``record`` out of the kernel, as a display output the grader reads as data."""
    from IPython.display import publish_display_data

    publish_display_data({EVIDENCE_MIME: json.loads(json.dumps(record)),
                          "text/plain": "(checked by the grader)"})


_Evidence.oracles = _OracleValues()
