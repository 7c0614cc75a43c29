"""Checks for the course's exercises.

Every exercise is declared once, as ``check_<name> = Exercise(...)`` in its assignment's
section: its visible cases, its oracle (``check_case``), its form (a custom rule, forbidden
built-ins), the mechanisms it requires and its named mistakes. The visible test cell of a
notebook calls ``adcheck.check_<name>(answer)``, which runs the visible cases and the
mechanism checks; the hidden tests call it again with more inputs, shapes and dtypes, under
``jax.jit``. A failure raises ``AssertionError`` with a message that names the likely mistake
and ends with a stable code for it, ``[mistake: our_jacfwd/transposed]``, which
``python -m course report`` counts across a class.

Grading does not trust the notebook's namespace:

* ``setup()`` (in the notebook's locked first cell, before any student code) snapshots the
  state of numpy, jax, builtins and friends. Before every cell, and again around every call of
  student code, that state is put back, so a monkeypatch in an answer cell changes nothing the
  checks use.
* Test cells run with ``adcheck``, ``jax``, ``jnp`` and ``np`` bound to the real modules and
  with any student global that shadows a builtin hidden; the student's names come back after.
* All comparisons happen in this module, whose globals the notebook does not reach.

While grading, none of that decides the grade: the kernel only observes and reports, and the
judge (course/judge.py) decides outside it (see the section "Evidence").
"""

import base64
import builtins
import contextlib
import functools
import json
import operator
import os
import re
import sys
import types
import warnings

import jax
import jax.numpy as jnp
import jax.scipy.sparse.linalg
import numpy as np

_PROTECTED_PACKAGES = (
    "builtins", "numpy", "jax", "jaxlib", "ml_dtypes", "math", "operator", "functools",
    "contextlib", "types", "IPython", "ipykernel", "adcheck", "sys", "os", "posix", "gc",
    "threading", "_thread", "signal", "_signal", "subprocess", "_posixsubprocess", "importlib",
    "_imp", "inspect", "traceback", "linecache", "weakref", "copy",
)
_MISSING = object()
TEST_CELL_MARK = "adcheck.check_"  # every test cell calls a check, and is guarded for it
_OWN_LOCATION = re.compile(r"[^\s'\"]*adcheck\.py(:\d+)?")
TESTED_JAX = "0.10.2"  # the JAX of requirements.txt, which the course's outputs come from
_stashed_names = {}
_JACOBIANS = ("jacfwd", "jacrev", "jacobian", "hessian")
_DERIVATIVES = ("grad", "value_and_grad", "vjp", "jvp", "linearize", "linear_transpose")
_SOLVERS = ("scipy.sparse.linalg.cg",)


def _owner(path):
    """``(module, name)`` of a function of jax named by its path: ``scipy.sparse.linalg.cg``."""
    *modules, name = path.split(".")
    owner = jax
    for module in modules:
        owner = getattr(owner, module)
    return owner, name


_ORIGINALS = types.MappingProxyType(  # what an exercise's forbids= may name
    {id(getattr(*_owner(path))): path for path in _DERIVATIVES + _JACOBIANS + _SOLVERS})


# ---------------------------------------------------------------------------------------------
# Evidence: the kernel observes, the judge decides
#
# A student's own run (and Validate) checks in the kernel, as a student expects. While grading,
# the kernel runs the same checks in "probe" mode: every call of student code is an
# observation, recorded as plain data (numbers, arrays, strings; never code), expected values
# are not computed and nothing is compared. Each check call hands its record out of the kernel
# as a display output of type EVIDENCE_MIME. The judge (course/judge.py), a process that never
# runs student code, runs the test cell's trusted source with this module in "judge" mode: the
# observations are replayed from the record in the same order, the oracle computes the expected
# values there (once per grading process: the cases are the same for every student), and the
# comparisons decide. A record that is missing, malformed or out of order fails the check.
# This section needs only numpy and the standard library.

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


class _EvidenceState:
    """Where the checks run: ``mode`` is "run" (decide here), "probe" (record, while grading)
    or "judge" (replay a record in the grader). ``record`` is the running check's list of
    observations (probe) or an iterator over them (judge); ``oracles`` the judge's cache. One
    instance: the guard restores this module's classes, not an instance's state."""

    mode = "run"
    record = None
    oracle_key = None
    oracle_count = 0
    oracles = {}
    pending = []  # judge: the records of the test cell being judged, in order
    cell_key = None  # judge: the test cell being judged (its oracle values are cached by it)
    depth = 0  # probe: how many observations are running (only the outermost is recorded)
    position = None  # judge: the case or requirement being checked, for the oracle's cache
    calls_in_cell = 0
    stopped = None  # judge: how the test cell ended in the kernel (an exception's name)


_Evidence = _EvidenceState()


def _probing():
    """Whether the kernel only observes: while grading, outside an observation (inside one,
    e.g. a check of the answer's form, the kernel's decision is what is recorded)."""
    return _Evidence.mode == "probe" and not _Evidence.depth


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
        shape = tuple(int(n) for n in data["shape"])
        raw = base64.b64decode(str(data["data"]), validate=True)
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
        return thunk()
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
    student's run computes it; the kernel never does while grading (it gets unknowns); the
    judge computes it once per grading process, since the cases are the same for everyone.
    ``compute`` may use the case and public constants, never what the student's code gave."""
    if _Evidence.mode == "run":
        return compute()
    if _probing():
        return (_UNKNOWN,) * parts if parts else _UNKNOWN
    if _Evidence.mode == "probe":  # inside an observation: the kernel decides on public values
        return compute()
    key = (_Evidence.oracle_key, _Evidence.position, _Evidence.oracle_count)
    _Evidence.oracle_count += 1
    if key not in _Evidence.oracles:
        _Evidence.oracles[key] = compute()
    return _Evidence.oracles[key]


@contextlib.contextmanager
def _checking(exercise, facts):
    """Around one check call: records it (probe) or takes its record (judge)."""
    if _Evidence.mode == "run":
        yield
        return
    if _Evidence.mode == "probe":
        _Evidence.record = []
        try:
            yield
        except AssertionError:
            pass  # recorded: the judge decides
        finally:
            _emit({"exercise": exercise, "facts": facts, "observations": _Evidence.record})
            _Evidence.record = None
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


# ---------------------------------------------------------------------------------------------
# Tamper resistance
#
# setup() snapshots the protected modules and installs a guard: a Python audit hook
# (sys.addaudithook), which no later code can remove, whose state lives in its closure where the
# notebook cannot reach it. The guard puts the snapshot back (and jax.config, and the signal
# handlers) whenever a test cell starts and after every call of student code. While grading it
# also refuses what would reach into the checks from the side: threads and processes, gc
# introspection, frames of the checks seen from student code, swapping a function's code or
# defaults, ctypes, tracing hooks, /proc/*/mem. A Python thread that still runs when a test
# cell starts, or returns while a check calls student code, stops the kernel: no check could be
# trusted while it runs.

_FUNCTION_ATTRS = frozenset({"__code__", "__defaults__", "__kwdefaults__"})
_FRAME_ATTRS = frozenset({"tb_frame", "gi_frame", "cr_frame", "ag_frame", "f_back"})
_REFUSED_WHILE_GRADING = frozenset({
    "gc.get_objects", "gc.get_referrers", "gc.get_referents", "gc.freeze",
    "sys.settrace", "sys.setprofile", "sys._current_frames", "code.__new__",
    "os.fork", "os.forkpty", "os.exec", "os.posix_spawn", "os.spawn", "os.system",
    "subprocess.Popen", "pty.spawn", "sys.remote_exec",
})
_SENSITIVE_BUILTINS = frozenset({
    "_thread", "_signal", "_posixsubprocess", "_ctypes", "gc", "sys", "posix", "_imp",
    "builtins", "_io", "_weakref"})


def _protected(name):
    return any(name == p or name.startswith(p + ".") for p in _PROTECTED_PACKAGES)


def _snapshot():
    """The protected modules' attributes and their classes', frozen."""
    modules, classes = [], []
    for name, module in list(sys.modules.items()):
        if not isinstance(module, types.ModuleType) or not _protected(name):
            continue
        attrs = dict(vars(module))
        modules.append((name, module, type(module), types.MappingProxyType(attrs)))
        for value in attrs.values():
            if isinstance(value, type) and getattr(value, "__module__", None) == name:
                classes.append((value, types.MappingProxyType(dict(vars(value)))))
    return tuple(modules), tuple(classes)


def _restore_snapshot(snapshot, _missing=_MISSING, _modules=sys.modules, _setattr=setattr,
                      _delattr=delattr, _module_dict=types.ModuleType.__dict__["__dict__"],
                      _object_setattr=object.__setattr__, _list=list):
    """Put back every module attribute and class attribute of the snapshot. It uses nothing
    that the notebook could have replaced: no globals, no builtins looked up by name."""
    modules, classes = snapshot
    for name, module, module_type, attrs in modules:
        _modules[name] = module
        if type(module) is not module_type:
            _object_setattr(module, "__class__", module_type)
        current = _module_dict.__get__(module)
        for key, value in attrs.items():
            if current.get(key, _missing) is not value:
                current[key] = value
    for cls, attrs in classes:
        current = cls.__dict__
        for key, value in attrs.items():
            if current.get(key, _missing) is not value:
                try:
                    _setattr(cls, key, value)
                except BaseException:  # read-only attributes of built-in types
                    pass
        for key in [k for k in _list(current) if k not in attrs and k.startswith("__")]:
            try:
                _delattr(cls, key)
            except BaseException:
                pass


def _jax_config_state():
    holders = getattr(jax.config, "_value_holders", {})
    return tuple((holder, holder.get_global(), holder.get_local())
                 for holder in holders.values() if hasattr(holder, "get_local"))


def _restore_jax_config(saved):
    for holder, global_value, local_value in saved:
        if holder.get_global() is not global_value:
            holder.set_global(global_value)
        if holder.get_local() is not local_value:
            holder.set_local(local_value)


def _signal_state():
    import signal

    return tuple((number, signal.getsignal(number)) for number in signal.valid_signals()
                 if number != signal.SIGINT and signal.getsignal(number) is not None)


def _restore_signals(saved):
    import signal

    for timer in (signal.ITIMER_REAL, signal.ITIMER_VIRTUAL, signal.ITIMER_PROF):
        signal.setitimer(timer, 0)
    for number, handler in saved:
        if signal.getsignal(number) is not handler:
            signal.signal(number, handler)


def _trusted_folders():
    """Where the code of the libraries and of this module lives; notebook cells live elsewhere."""
    import site
    import sysconfig

    folders = {sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib",
                                                      "platlib")}
    folders.update(site.getsitepackages())
    return tuple(sorted(os.path.join(os.path.realpath(f), "") for f in folders)) + ("<frozen ",)


def _verdict_file():
    """Where a kernel stopped by the guard leaves its reason for the grader: the folder of its
    connection file, which the grader's sandbox shares with the kernel."""
    try:
        from ipykernel.kernelapp import IPKernelApp

        connection_file = IPKernelApp.instance().connection_file
    except Exception:
        return None
    return os.path.join(os.path.dirname(os.path.abspath(connection_file)), "grading-verdict.txt")


def _refuse_while_grading(module, name, message):
    original = getattr(module, name, None)
    if original is None:
        return

    def refused(*args, **kwargs):
        raise RuntimeError(message)

    refused.__name__ = name
    setattr(module, name, refused)


def _refuse_sensitive_builtins():
    """``_imp.create_builtin`` would hand out fresh copies of the modules patched here."""
    import _imp

    create_builtin = _imp.create_builtin

    def guarded_create_builtin(spec, _create=create_builtin, _refused=_SENSITIVE_BUILTINS):
        if getattr(spec, "name", None) in _refused:
            raise ImportError(f"grading: {spec.name} cannot be loaded again")
        return _create(spec)

    _imp.create_builtin = guarded_create_builtin


def _frame_readers():
    """Library functions that look at a frame and hand none to their caller, only a module name
    or a yes/no (e.g. when a lazily imported jax module first defines a named tuple or
    subscripts a generic class inside a check): the code objects, which a notebook cannot fake
    since changing a function's code is refused."""
    import collections
    import typing

    readers = [collections.namedtuple, getattr(typing, "_caller", None)]
    try:
        import typing_extensions
    except ImportError:
        pass
    else:
        readers += [getattr(typing_extensions, name, None) for name in (
            "_caller", "_has_generic_or_protocol_as_origin")]
    return frozenset(f.__code__ for f in readers if hasattr(f, "__code__"))


def _install_guard(snapshot, grading, shell):
    """Install the audit hook. Everything it uses at run time is bound here, in its closure:
    the notebook can replace globals and builtins, not a closure it cannot reach."""
    import threading

    getframe, current_frames = sys._getframe, sys._current_frames
    exit_now, write, open_fd, close, fsdecode = os._exit, os.write, os.open, os.close, os.fsdecode
    write_flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    is_instance, is_callable, text_types, frozen = isinstance, callable, (str, bytes), frozenset
    refusal = RuntimeError
    refused_events, function_attrs, frame_attrs = (
        _REFUSED_WHILE_GRADING, _FUNCTION_ATTRS, _FRAME_ATTRS)
    main_thread = threading.main_thread().ident
    baseline_threads = frozen(current_frames())
    config_state = _jax_config_state
    jax_config, signals = config_state(), _signal_state()
    restore_snapshot, restore_config, restore_signals, bind_trusted_names = (
        _restore_snapshot, _restore_jax_config, _restore_signals, _bind_trusted_names)
    libraries, this_module, checks_namespace = _trusted_folders(), __file__, globals()
    verdict_file = _verdict_file() if grading else None
    busy, config_stack = [False], []
    frame_readers = _frame_readers()

    def stop_kernel(reason):
        message = ("GradingStopped: " + reason).encode()
        try:
            if verdict_file:
                fd = open_fd(verdict_file, write_flags, 0o600)
                write(fd, message)
                close(fd)
            write(2, b"\n" + message + b"\n")
        finally:
            exit_now(70)

    def restore_all(when, phase):
        """Put everything back. jax.config goes back to the snapshot when a test cell starts;
        around a call of student code, to what the test cell had set (e.g. enable_x64)."""
        busy[0] = True
        try:
            if grading and frozen(current_frames()) - baseline_threads - {main_thread}:
                stop_kernel(f"a thread started by the notebook was still running {when}. No "
                            "check can be trusted while other code runs beside it: grading "
                            "stopped, and the remaining tests score zero.")
            restore_snapshot(snapshot)
            restore_signals(signals)
            if phase == "cell":
                config_stack.clear()
                restore_config(jax_config)
            elif phase == "before":
                config_stack.append(config_state())
            elif phase == "after" and config_stack:
                restore_config(config_stack.pop())
        finally:
            busy[0] = False

    def student_code_inside_a_check():
        """Whether a frame of notebook code runs inside a call from this module."""
        frame, student = getframe(2), False
        while frame is not None:
            name = frame.f_code.co_filename
            if name == this_module:
                return student
            if "traceback_util" in name and not student:
                return False  # jax hides its own frames in the tracebacks it raises
            if not name.startswith(libraries):
                student = True
            frame = frame.f_back
        return False

    def guard(event, args):
        if busy[0]:
            return
        if event == "adcheck.setup":
            raise refusal("adcheck.setup() runs once, in the notebook's first cell.")
        if event == "adcheck.restore":
            restore_all(*args)
            return
        if event == "exec":
            names = getattr(args[0], "co_names", ())
            if "adcheck" in names and any(n.startswith("check_") for n in names):
                restore_all("when a test cell started", "cell")
                busy[0] = True
                try:
                    bind_trusted_names(shell)
                finally:
                    busy[0] = False
            return
        if not grading:
            return
        if event in refused_events or event.startswith("ctypes."):
            raise refusal(f"grading does not allow {event} in a notebook.")
        if event == "object.__setattr__" and args[1] in function_attrs and is_callable(args[0]):
            busy[0] = True
            try:  # libraries may set defaults (jax does); the notebook, and code in it, not
                setter = getframe(1).f_code.co_filename
                ours = getattr(args[0], "__globals__", None) is checks_namespace
            finally:
                busy[0] = False
            if ours or not setter.startswith(libraries):
                raise refusal(f"grading does not allow changing a function's {args[1]}.")
        if event == "open" and is_instance(args[0], text_types):
            path = fsdecode(args[0])
            if path.startswith("/proc/") and path.endswith(("/mem", "/environ")):
                raise refusal(f"grading does not allow opening {path}.")
        if event == "sys._getframe" or (event == "object.__getattr__" and args[1] in frame_attrs):
            busy[0] = True
            try:
                inside = (event != "sys._getframe" or getframe(1).f_code not in frame_readers
                          ) and student_code_inside_a_check()
            finally:
                busy[0] = False
            if inside:
                raise refusal("grading does not allow code called by a check to look at the "
                              "frames of the check.")

    sys.addaudithook(guard)


def restore():
    """Undo every change made since ``setup()`` to the protected modules, their classes,
    ``jax.config`` and the signal handlers."""
    sys.audit("adcheck.restore", "when restore() was called", "cell")


def _shell():
    ipython = sys.modules.get("IPython")
    return ipython.get_ipython() if ipython is not None else None


def _is_test_cell(source):
    return TEST_CELL_MARK in source


def _bind_trusted_names(shell):
    """Test cells run with ``adcheck``, ``jax``, ``jnp`` and ``np`` bound to the real modules and
    without the student's globals that shadow builtins; ``_after_cell`` gives them back."""
    if shell is None:
        return
    for method in ("showtraceback", "_showtraceback", "showsyntaxerror", "run_cell",
                   "run_ast_nodes", "run_code"):
        vars(shell).pop(method, None)
    user_ns = shell.user_ns
    trusted = {"adcheck": sys.modules[__name__], "jax": jax, "jnp": jnp, "np": np}
    shadowing = [n for n in user_ns if n in vars(builtins) and not n.startswith("_")]
    for name in list(trusted) + shadowing:
        _stashed_names.setdefault(name, user_ns.get(name, _MISSING))
    for name in shadowing:
        del user_ns[name]
    user_ns.update(trusted)


def _after_cell(result):
    shell = _shell()
    if shell is not None:
        for name, value in _stashed_names.items():
            if value is _MISSING:
                shell.user_ns.pop(name, None)
            else:
                shell.user_ns[name] = value
    _stashed_names.clear()


def _keep_compiled_programs():
    """JAX's persistent compilation cache, so that running a notebook again (or the build,
    then nbval) reuses what XLA compiled before. Never while grading: a cache that kernels of
    different students share is a way for one of them to change another's results."""
    if jax.config.jax_compilation_cache_dir:
        return
    folder = os.environ.get("ADCOURSE_JAX_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "jax-autodiff-course")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError:
        return
    if os.access(folder, os.W_OK):
        jax.config.update("jax_compilation_cache_dir", folder)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        # A bounded cache takes a file lock around every read and write: two kernels running
        # at once never read an entry half written.
        jax.config.update("jax_compilation_cache_max_size", 512 * 2**20)


def _traceback_without_checks(shell, etype, value, tb, tb_offset=None):
    """IPython's traceback of an error, without the frames of this module: the student reads
    their own code and the message, not the checks' or the guard's internals."""
    own = os.path.realpath(__file__)
    kept = []
    while tb is not None:
        if os.path.realpath(tb.tb_frame.f_code.co_filename) != own:
            kept.append(tb)
        tb = tb.tb_next
    trimmed = None
    for entry in reversed(kept):
        trimmed = types.TracebackType(trimmed, entry.tb_frame, entry.tb_lasti, entry.tb_lineno)
    shell.showtraceback((etype, value, trimmed), tb_offset=tb_offset)
    return []


def setup():
    """Snapshot the libraries' state and guard every later cell of the notebook."""
    sys.audit("adcheck.setup")  # the guard of an earlier setup() refuses a second one
    grading = os.environ.get("NBGRADER_EXECUTION") == "autograde"
    if grading:
        _Evidence.mode = "probe"
    else:
        _keep_compiled_programs()
        if jax.__version__ != TESTED_JAX:
            print(f"Note: this course was tested with JAX {TESTED_JAX} and this kernel runs JAX "
                  f"{jax.__version__}: some outputs and messages may differ from the text.")
    jax.jit(jax.grad(jnp.sin))(1.0)  # load jax's lazily imported modules before the snapshot
    if grading:
        import _posixsubprocess
        import _thread
        import threading

        # pyzmq sends a large output (a plot) without copying it, through a helper thread it
        # starts on first use, which grading refuses: copy every output instead (no thread
        # that notebook code could reach while a check runs).
        kernel = getattr(_shell(), "kernel", None)
        iopub = getattr(getattr(kernel, "iopub_thread", None), "socket", None)
        if iopub is not None:
            iopub.copy_threshold = 2 ** 31 - 1

        for module, name in ((_thread, "start_new_thread"), (threading, "_start_new_thread"),
                             (_posixsubprocess, "fork_exec")):
            _refuse_while_grading(module, name, f"grading does not allow {name} in a notebook.")
        _refuse_sensitive_builtins()
    # The checks' own numerics (a sqrt of a negative probe, a float64 request outside x64) are
    # not the student's business: warnings issued from this module's code are not shown.
    warnings.filterwarnings("ignore", module="adcheck")
    shell = _shell()
    _install_guard(_snapshot(), grading, shell)
    if shell is not None:
        shell.set_custom_exc((Exception,), _traceback_without_checks)
        for registered in list(shell.events.callbacks["post_run_cell"]):
            if getattr(registered, "__name__", "") == _after_cell.__name__:
                shell.events.unregister("post_run_cell", registered)
        shell.events.register("post_run_cell", _after_cell)


# ---------------------------------------------------------------------------------------------
# Calling student code


class Case:
    """One input of an exercise: a label that feedback may show, and the arguments. Never the
    expected result: while grading, the kernel sees the cases, and only the judge's oracle
    knows what they should give."""

    def __init__(self, label, *args):
        self.label = label
        self.args = args

    def __repr__(self):
        return self.label


def _describe(value):
    """``value`` in words, as a message to a student names it: ``a float32 array of shape
    (3,)``, ``a function``, ``a dict {'w': ..., 'b': ...}``."""
    if isinstance(value, (jax.Array, np.ndarray, np.generic)):
        if jnp.issubdtype(value.dtype, jax.dtypes.prng_key):
            return "a PRNG key"
        shape = tuple(np.shape(value))
        return f"a {value.dtype} " + (f"array of shape {shape}" if shape else "scalar")
    if callable(value):
        return "a function"
    if isinstance(value, (tuple, list)):
        return (f"a {type(value).__name__} of {len(value)} ("
                + ", ".join(_describe(v) for v in value) + ")")
    if isinstance(value, dict):
        return "a dict {" + ", ".join(f"{k!r}: {_describe(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (bool, int, float, complex)):
        return f"the {type(value).__name__} {value!r}"
    return f"a {type(value).__name__}"


def _arguments(args):
    """The arguments of a call in words: ``a function and a float32 array of shape (3,)``."""
    words = [_describe(arg) for arg in args]
    return " and ".join(filter(None, [", ".join(words[:-1]), words[-1]])) if words else "nothing"


def _shorten(text, limit=300):
    """``text`` cut to at most ``limit`` characters at a sentence's end or, failing that, at a
    word's end followed by an ellipsis: never in the middle of a word."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    sentence_end = text.rfind(". ", 0, limit)
    if sentence_end > limit // 2:
        return text[:sentence_end + 1]
    return text[:text.rfind(" ", 0, limit - 2)] + " …"


# JAX's errors that common mistakes raise, said in the terms of the exercise: (code, pattern of
# JAX's message, message; {name} is the student's function, the other fields the pattern's
# groups).
_JAX_ERRORS = (
    ("cotangent-shape",
     r"unexpected JAX type \(e\.g\. shape/dtype\) for argument to VJP function: got "
     r"(?P<got>\S+), but expected (?P<want>\S+?) because",
     "{name} gave a pullback (the function jax.vjp returns) a cotangent that is {got}, but the "
     "output it pulls back is {want}: a cotangent has the shape and dtype of the function's "
     "output, not of its input."),
    ("tangent-shape",
     r"jvp called with different primal and tangent shapes;\s*Got primal shape (?P<primal>\(.*?\)) "
     r"and tangent shape as (?P<tangent>\(.*?\))",
     "{name} called jax.jvp with a tangent of shape {tangent} for an input of shape {primal}: a "
     "tangent has the shape and dtype of the input it pushes forward."),
    ("bwd-structure",
     r"Custom VJP bwd rule must produce an output with the same container \(pytree\) structure",
     "{name}'s bwd rule must return a tuple with one cotangent for each argument of the "
     "function, in order (a 1-tuple, `(g,)`, for a function of one argument)."),
    ("jvp-of-custom-vjp",
     r"can't apply forward-mode autodiff \(jvp\) to a custom_vjp function",
     "{name} was differentiated in forward mode (jax.jvp, jacfwd), which a function with a "
     "custom_vjp rule does not support: where forward mode is needed, write a custom_jvp rule "
     "or no custom rule."),
    ("leaked-tracer",
     r"Encountered an unexpected tracer",
     "{name} leaked a traced value: a function handed to a JAX transformation or custom rule "
     "closes over a value that is being traced or differentiated. Pass such values in as "
     "arguments (to fixed_point, in its parameters a), or convert the function with "
     "jax.closure_convert."),
    ("pure-callback",
     r"vmap is only supported for the pure_callback primitive",
     "{name} calls jax.pure_callback (NumPy code), which has no rule for jax.vmap here: write it "
     "with jax.numpy, so that it works under vmap and jit."),
    ("vmap-rank",
     r"vmap was requested to map its argument along axis (?P<axis>\d+), which implies that "
     r"its rank should be at least \d+, but is only (?P<rank>\d+)",
     "{name} asks jax.vmap to map an argument of rank {rank} along axis {axis}: an argument "
     "shared by every example (the parameters, say) takes in_axes=None."),
    ("while-loop-reverse",
     r"Reverse-mode differentiation does not work for lax\.while_loop",
     "{name} runs a lax.while_loop (or a fori_loop whose bounds are not Python ints), which "
     "reverse mode cannot differentiate: use jax.lax.scan, or fori_loop with bounds known "
     "when tracing."),
    ("while-condition",
     r"cond_fun must return a boolean scalar, but got output type\(s\) \[ShapedArray\((?P<got>"
     r"[^)]*)\)\]",
     "{name}'s while_loop condition returns {got}, not one boolean: reduce it (jnp.any, "
     "jnp.all) or test a norm."),
)


def _type_in_words(jax_type):
    """JAX's ``float32[2,3]`` as ``a float32 array of shape (2, 3)``."""
    found = re.fullmatch(r"(\w+)\[([\d,]*)\]", jax_type)
    if not found:
        return jax_type
    shape = tuple(int(n) for n in found.group(2).split(",") if n)
    return f"a {found.group(1)} " + (f"array of shape {shape}" if shape else "scalar")


def _explained(name, error):
    """The failure that an exception ``name`` raised is to the student."""
    text = str(error)
    for code, pattern, message in _JAX_ERRORS:
        found = re.search(pattern, text)
        if found:
            fields = {k: _type_in_words(v) for k, v in found.groupdict().items()}
            return Failed(message.format(name=name, **fields), _code(code))
    # JAX names where a traced function was defined; inside the checks that is noise.
    text = _OWN_LOCATION.sub("the checks", (text.strip().splitlines() or [""])[0])
    return Failed(f"{name} raised {type(error).__name__}: {_shorten(text)}", _code("raised"))


def _call(name, fn, *args):
    """Call student code; restore the libraries afterwards; turn its errors into feedback. While
    grading, an observation (see ``_observe``)."""
    return _observe(name, lambda: _call_guarded(name, fn, args))


def _call_guarded(name, fn, args, _audit=sys.audit):
    # The student's code may replace anything reachable by name, this module's globals and the
    # builtins included: after it returns, nothing is looked up before the guard restored all.
    try:
        _audit("adcheck.restore", "before a check called your code", "before")
        with _forbidden_functions():
            result = fn(*args)
        outcome = None
    except BaseException as error:
        outcome = error
    finally:
        _audit("adcheck.restore", "when your code returned to a check", "after")
    if outcome is None:
        return result
    if isinstance(outcome, AssertionError):
        raise outcome
    if isinstance(outcome, NotImplementedError) and not str(outcome):  # the answer cell's stub
        raise Failed(f"{name} is not implemented yet.", _code("not-implemented")) from None
    if isinstance(outcome, Exception):
        raise _explained(name, outcome) from None
    raise outcome


def _as_array(name, value):
    """A plain NumPy copy of what student code returned: no subclass, no Python objects, so
    that nothing it returned can take part in the comparison."""
    if isinstance(value, tuple) and len(value) == 1:
        raise Failed(
            f"{name} returned a tuple of length 1; a VJP function returns a tuple with one "
            "cotangent per primal input, so unpack it (e.g. `g, = vjp_fn(ct)`).",
            _code("one-tuple"))
    if not isinstance(value, (jax.Array, np.ndarray, np.generic)):
        raise Failed(f"{name} returned a {type(value).__name__}, expected an array.",
                     _code("not-an-array"))
    array = np.array(value, copy=True, subok=False)
    if array.dtype.hasobject or type(array) is not np.ndarray:
        raise Failed(f"{name} returned an array of Python objects, expected numbers.",
                     _code("python-objects"))
    return array


def _tolerances(dtype, expected=None):
    """(rtol, atol) for results of ``dtype``; with ``expected``, atol is scaled by its largest
    entry (at least 1)."""
    rtol, atol = (1e-9, 1e-10) if np.dtype(dtype) in (np.float64, np.complex128) else (2e-4, 2e-5)
    if expected is not None:
        finite = np.abs(expected)[np.isfinite(expected)]
        atol *= float(np.max(finite, initial=1.0))
    return rtol, atol


def _factor_in_words(actual, expected, rtol, atol):
    """``"twice"``, ``"half"``, ``"8 times"``, ``"1/8 of"``: how ``actual`` is a whole multiple or
    fraction (2 to 64) of ``expected``, or None."""
    nonzero = np.abs(expected) > atol
    if not nonzero.any():
        return None
    ratio = np.median(np.real(actual[nonzero] / expected[nonzero]))
    for n in range(2, 65):
        for factor, words in ((n, {2: "twice"}.get(n, f"{n} times")),
                              (1 / n, {2: "half"}.get(n, f"1/{n} of"))):
            if (abs(ratio - factor) <= 1e-3 * factor
                    and np.allclose(actual, factor * expected, rtol=rtol, atol=atol)):
                return words
    return None


def _compare(name, case, actual, expected, hints=(), shape_hints=(), relative=False,
             suspects=(), factors=False):
    """Raise an AssertionError naming the mistake unless ``actual`` matches ``expected``
    (nothing while the kernel probes: the judge compares).

    The tolerance is relative to the largest expected entry, or to each entry when
    ``relative`` (down to the smallest normal float, which XLA may flush to zero).
    ``suspects`` are ``(value, message)`` of named mistakes: a result equal to one of those
    values gets its message. With ``factors``, a result off by a whole factor says so (for
    exercises where a missing constant is a likely mistake, not a coincidence of the case).
    """
    if _probing():
        return
    actual = _as_array(name, actual)
    expected = np.asarray(expected)
    arguments = _arguments(case.args)  # named unless the list is too long to read at a glance
    where = f"{name} is wrong for {case.label}" + (
        f" (arguments: {arguments})" if len(arguments) <= 100 else "")
    named = _suspects(actual, suspects)
    if named and not _close(actual, expected):
        raise Failed(f"{where}: " + " ".join(named), _named_code(named))
    if actual.shape != expected.shape:
        message = f"{where}: shape {actual.shape}, expected {expected.shape}."
        if sorted(actual.shape) == sorted(expected.shape):
            message += " The axes are in the wrong order."
        hints = (*shape_hints, *hints)
        raise Failed(message + "".join(" " + h for h in hints),
                     _named_code(hints, "wrong-shape"))
    if actual.dtype != expected.dtype:
        raise Failed(f"{where}: dtype {actual.dtype}, expected {expected.dtype}.",
                     _code("wrong-dtype"))
    rtol, atol = _tolerances(expected.dtype, expected)
    if relative:
        atol = float(np.finfo(expected.dtype).tiny)
    if np.allclose(actual, expected, rtol=rtol, atol=atol):
        return
    error = np.abs(actual - expected)
    if relative:
        worst = np.unravel_index(np.argmax(error / np.maximum(np.abs(expected), atol)),
                                 error.shape)
        inputs = [np.asarray(arg) for arg in case.args]
        at = (f"x = {inputs[0][worst]:.6g}" if len(inputs) == 1 and inputs[0].shape == error.shape
              else f"entry {worst}")
        message = (f"{where}: at {at} the value is {actual[worst]:.6g}, "
                   f"expected {expected[worst]:.6g}.")
    else:
        message = f"{where}: values differ (largest error {np.max(error):.3g})."
    factor = factors and _factor_in_words(actual, expected, rtol, atol)
    code = "wrong-values"
    if np.allclose(actual, -expected, rtol=rtol, atol=atol):
        message, code = message + " The sign is flipped.", "sign-flipped"
    elif np.iscomplexobj(expected) and np.allclose(actual, np.conj(expected), rtol=rtol,
                                                    atol=atol):
        message, code = message + " You returned the complex conjugate.", "conjugate"
    elif factor:
        message += f" Every value is {factor} the expected one: a factor is missing or extra."
        code = "missing-factor"
    raise Failed(message + "".join(" " + h for h in hints), _named_code(hints, code))


def _named_code(hints, otherwise="wrong-values"):
    """The code of the first named mistake among ``hints``, or the running exercise's
    ``otherwise``; hints that are plain advice name none."""
    return next((h.code for h in hints if isinstance(h, Mistake)), None) or _code(otherwise)


# ---------------------------------------------------------------------------------------------
# Mechanism checks


@contextlib.contextmanager
def _forbidden_functions():
    """While student code runs, the jax functions the running exercise forbids raise when
    called."""
    exercise = _active[-1] if _active else None
    paths = exercise.forbids if exercise else ()
    saved = {path: getattr(*_owner(path)) for path in paths}

    def stub(path):
        def forbidden(*args, **kwargs):
            raise Failed(f"{exercise.name} must not call jax.{path}.",
                         f"{exercise.name}/forbidden-call")
        return forbidden

    for path in paths:
        setattr(*_owner(path), stub(path))
    try:
        yield
    finally:
        for path, value in saved.items():
            setattr(*_owner(path), value)


def _referenced_objects(fn, depth=0, seen=None):
    """Objects a function can reach by name: globals, closures, and helpers defined by the user."""
    seen = set() if seen is None else seen
    if id(fn) in seen or depth > 5:
        return []
    seen.add(id(fn))
    code = getattr(fn, "__code__", None)
    if code is None:
        return []
    names, stack = set(), [code]
    while stack:
        current = stack.pop()
        names.update(current.co_names)
        stack.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
    values = [fn.__globals__[n] for n in names if n in fn.__globals__]
    values += [cell.cell_contents for cell in (fn.__closure__ or ())
               if cell.cell_contents is not None]
    found = list(values)
    for value in values:
        if isinstance(value, types.FunctionType) and not _protected(value.__module__ or ""):
            found += _referenced_objects(value, depth + 1, seen)
    return found


def _require_no_forbidden_reference(name, fn, forbids):
    """Catch forbidden functions reached through an alias (``from jax import jacfwd as J``)."""
    for value in _referenced_objects(fn):
        if _ORIGINALS.get(id(value)) in forbids:
            raise Failed(f"{name} uses jax.{_ORIGINALS[id(value)]}, which this exercise forbids.",
                         f"{name}/forbidden-call")


def _equations(fn, *args):
    """Every equation of ``fn``'s program (its jaxpr), those of sub-programs (jit, cond, scan,
    custom rules, ...) included: the one walker of the checks that inspect a program."""
    stack = [jax.make_jaxpr(fn)(*args).jaxpr]
    while stack:
        for eqn in stack.pop().eqns:
            yield eqn
            for param in eqn.params.values():
                for sub in param if isinstance(param, (tuple, list)) else (param,):
                    inner = getattr(sub, "jaxpr", sub)
                    if hasattr(inner, "eqns"):
                        stack.append(inner)


def _program(fn, *args):
    """Primitive names of ``fn``'s program, sub-programs included."""
    return [eqn.primitive.name for eqn in _equations(fn, *args)]


def _require_vectorized(name, fn, small_args, large_args):
    """Equal program sizes for a small and a large batch mean no Python loop over the batch."""
    small = _call(name, lambda: _program(fn, *small_args))
    large = _call(name, lambda: _program(fn, *large_args))
    loops = sorted({p for p in large if p in ("scan", "while")})
    if loops:
        raise Failed(f"{name} runs a {loops[0]} loop over the vectors: use jax.vmap.",
                     _code("python-loop"))
    if len(small) != len(large):
        raise Failed(
            f"{name} builds a program whose size grows with the number of vectors "
            f"({len(small)} operations for a batch of {small_args[0].shape[0]}, {len(large)} for "
            f"{large_args[0].shape[0]}): use jax.vmap instead of a Python loop.",
            _code("python-loop"))


def _largest_intermediate(fn, *args):
    """Size of the largest array in ``fn``'s program, sub-programs included."""
    return max((int(np.prod(getattr(var.aval, "shape", ())))
                for eqn in _equations(fn, *args) for var in eqn.outvars), default=0)


def _require_small_intermediates(name, fn, args, limit, what, code):
    """No array of ``limit`` entries or more in ``fn``'s program; ``what`` ends the message."""
    largest = _call(name, lambda: _largest_intermediate(fn, *args))
    if largest >= limit:
        raise Failed(f"{name} builds an array of {largest} entries {what}", _code(code))


def _sin_twice(x):
    return jnp.sin(x) * 2.0


@jax.custom_vjp
def _reverse_only(x):
    """``_sin_twice`` with a custom VJP: forward mode raises on it."""
    return _sin_twice(x)


_reverse_only.defvjp(lambda x: (_sin_twice(x), jnp.cos(x)), lambda cos_x, g: (2.0 * cos_x * g,))


def _sin_plus_identity_twice(x):
    for _ in range(2):
        x = jnp.sin(x) + x
    return x


def _forward_only(x):
    """``_sin_plus_identity_twice`` as a while_loop, which reverse mode cannot differentiate."""
    return jax.lax.while_loop(lambda s: s[0] < 2, lambda s: (s[0] + 1, jnp.sin(s[1]) + s[1]),
                              (0, x))[1]


_MODE_PROBES = {"forward": (_forward_only, _sin_plus_identity_twice),
                "reverse": (_reverse_only, _sin_twice)}


def _require_mode(name, mode, run):
    """``run(fn, plain_fn)`` must work where ``fn`` only ``mode`` can differentiate."""
    other = "reverse" if mode == "forward" else "forward"
    try:
        run(*_MODE_PROBES[mode])
    except AssertionError as error:
        raise Failed(
            f"{name} must use {mode} mode, but it failed on a function that only {mode} mode "
            f"can differentiate: are you using {other} mode? What failed: {error}",
            _code("wrong-mode")) from None


# ---------------------------------------------------------------------------------------------
# Shared by the assignments' checks


def _passed(what, cases, jit, mechanisms=()):
    """Say that ``what`` passed its ``cases`` (under jit, if so) and had the ``mechanisms``."""
    if _probing():
        return
    count = f"{len(cases)} case" + ("" if len(cases) == 1 else "s")
    also = ""
    if mechanisms:
        also = (", " + ", ".join(mechanisms[:-1]) if len(mechanisms) > 1 else "")
        also += " and " + mechanisms[-1]
    print(f"{what} passed {count}" + (" under jax.jit" if jit else "") + also + ".")


def _normal(seed, shape, dtype=jnp.float32):
    """Standard normal samples drawn by NumPy: no JAX program to compile for each shape."""
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape).astype(dtype))


def _run(name, fn, args, jit):
    """``fn(*args)`` called eagerly, or compiled with ``jax.jit`` (hidden tests)."""
    if not jit:
        return _call(name, fn, *args)
    try:  # a fresh wrapper: jax's trace cache must not serve a compilation of an earlier case
        return _call(name, jax.jit(lambda *args: fn(*args)), *args)
    except AssertionError as error:
        text = str(error)
        if text[:2].istitle():  # a sentence of its own ("The function ..."), not a name
            text = text[0].lower() + text[1:]
        raise Failed(f"Under jax.jit, {text}", getattr(error, "code", None)) from None


def _compare_tree(name, case, actual, expected, **hints):
    """``_compare`` leaf by leaf, after checking that the pytree structures agree."""
    if _probing():
        return
    if jax.tree.structure(actual) != jax.tree.structure(expected):
        raise Failed(f"{name} returned {_describe(actual)} for {case.label}; expected "
                     f"{_describe(expected)}.", _code("wrong-structure"))
    paths = [p for p, _ in jax.tree_util.tree_leaves_with_path(expected)]
    for path, a, e in zip(paths, jax.tree.leaves(actual), jax.tree.leaves(expected)):
        _compare(_leaf_in_words(name, path), case, a, e, **hints)


def _leaf_in_words(name, path):
    """A leaf of a pytree as a student reads it: ``the 'x' entry of element 0 of polar's
    cotangents`` for the path ``[0]['x']``."""
    words = []
    for key in reversed(path):
        if isinstance(key, jax.tree_util.DictKey):
            words.append(f"the {key.key!r} entry")
        elif isinstance(key, jax.tree_util.SequenceKey):
            words.append(f"element {key.idx}")
        else:
            words.append(f"the part {jax.tree_util.keystr((key,))}")
    return " of ".join(words + [name])


def _swap_global(fn, name, value):
    """Context: ``fn``'s global ``name`` replaced by ``value``, put back afterwards.

    Compilation caches are cleared on the way in and out, so that a student function wrapped
    in ``jax.jit`` is traced again with the swapped global.
    """
    @contextlib.contextmanager
    def swapped():
        if _judging():  # the kernel did it; the judge has only the record of it
            yield
            return
        namespace = _student_globals(fn)
        saved = namespace.get(name, _MISSING)
        namespace[name] = value
        jax.clear_caches()
        try:
            yield
        finally:
            if saved is _MISSING:
                namespace.pop(name, None)
            else:
                namespace[name] = saved
            jax.clear_caches()
    return swapped()


def _student_globals(fn):
    """The notebook namespace of a student function, through jit and custom_vjp wrappers."""
    if isinstance(fn, _Replayed):
        return _ReplayedNamespace()
    for _ in range(5):
        if hasattr(fn, "__globals__"):
            return fn.__globals__
        fn = getattr(fn, "__wrapped__", None) or getattr(fn, "fun", None)
    return {}


def _require_custom_rule(name, fn, kind):
    """``fn`` must be a ``jax.custom_jvp`` / ``jax.custom_vjp`` object with its rule defined."""
    cls, rule = {"jvp": (jax.custom_jvp, "jvp"), "vjp": (jax.custom_vjp, "bwd")}[kind]
    if not isinstance(fn, cls):
        raise Failed(f"{name} must be a function decorated with @jax.custom_{kind}.",
                     _code("no-custom-rule"))
    if getattr(fn, rule, None) is None:
        raise Failed(f"{name} has no rule yet: register it with {name}.def{kind}(...).",
                     _code("no-custom-rule"))


def _rule_helpers_at_module_level(exercise, answer):
    """The statement's ``_fwd`` and ``_bwd``, defined in the notebook's namespace."""
    namespace = _student_globals(answer)
    for helper in ("_fwd", "_bwd"):
        if not callable(namespace.get(helper)):
            raise Failed(f"Define the rule's {helper} at module level, as the statement says.",
                         _code("no-module-level-rule"))


def _one_cotangent(returned, mistake):
    """The one cotangent of a bwd rule's ``returned`` tuple; ``mistake`` if it is no 1-tuple."""
    if not (isinstance(returned, tuple) and len(returned) == 1):
        raise Failed(mistake, mistake.code)
    return returned[0]


def _to64(tree):
    with jax.enable_x64(True):  # callers are in x64 mode already; this keeps others warning-free
        return jax.tree.map(lambda leaf: jnp.asarray(leaf, jnp.float64), tree)


def _uses_mode(mode, run):
    """``Require``: ``run(answer, fn)`` must work on a function only ``mode`` can differentiate
    (``fn`` is it and ``plain`` the same function without the trick)."""
    return Require(f"uses {mode} mode", lambda exercise, answer, cases, jit: _require_mode(
        exercise.name, mode, lambda fn, plain: run(answer, fn, plain)))


def _close(actual, expected):
    """Whether ``actual`` matches ``expected`` by the comparison of :func:`_compare` (never an
    unknown expected value, which is what the kernel has while grading)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    if actual.shape != expected.shape:
        return False
    rtol, atol = _tolerances(expected.dtype, expected)
    return bool(np.allclose(actual, expected, rtol=rtol, atol=atol))


def _suspects(actual, candidates):
    """The hints of the wrong answers ``actual`` matches: ``candidates`` is [(value, hint)]."""
    if _probing():
        return []
    return [hint for value, hint in candidates if _close(actual, value)]


class Require:
    """A mechanism the statement asks for: ``words`` says it in the pass message (``is
    vectorized``), ``check(exercise, answer, cases, jit)`` raises unless the answer has it.
    It runs after the visible cases have passed (before them when ``first``), or after every
    set of cases when ``always``."""

    def __init__(self, words, check, always=False, first=False):
        self.words, self.check, self.always, self.first = words, check, always, first


class Exercise:
    """One exercise's specification, in the order of its statement; the checks are its runner.

    ``name``: the function the student writes. ``statement``: what it computes, in one line.
    ``cases()``: the visible cases (the hidden tests pass their own). ``check_case(exercise,
    answer, case, jit)``: the answer against the oracle on one case. ``rule``: ``"jvp"`` or
    ``"vjp"`` when the answer must be a ``jax.custom_jvp`` / ``custom_vjp`` with its rule;
    ``nondiff_argnums``: the ones that rule must declare. ``forbids``: the jax functions the
    answer may neither call nor name. ``structure``: more requirements on the answer's form,
    each ``(exercise, answer)``. ``requires``: the mechanisms (:class:`Require`). ``mistakes``:
    the named mistakes, code -> message, which ``check_case`` and the requirements raise as
    ``exercise.mistakes[code]``. ``facts``: what a ``check_case`` shared by two exercises
    needs to tell them apart (``mode="forward"``).

    Calling it checks an answer: ``check_vgrad(vgrad)`` in the visible test cell, and
    ``check_vgrad(vgrad, cases=[...], jit=True)`` in the hidden tests.
    """

    def __init__(self, name, statement, *, cases, check_case, rule=None, nondiff_argnums=None,
                 forbids=(), structure=(), requires=(), mistakes=None, **facts):
        self.name, self.__doc__ = name, statement
        self.cases, self.check_case = cases, check_case
        self.rule, self.nondiff_argnums = rule, nondiff_argnums
        self.forbids, self.structure, self.requires = forbids, structure, requires
        self.mistakes = {code: Mistake(f"{name}/{code}", message)
                         for code, message in (mistakes or {}).items()}
        self.facts = facts

    def __call__(self, answer, cases=None, jit=False):
        visible = cases is None
        cases = self.cases() if visible else cases
        _active.append(self)
        try:
            with _checking(self.name, {"visible": visible, "jit": bool(jit),
                                       "cases": [str(case.label) for case in cases]}):
                self._check(answer, cases, visible, jit)
        finally:
            _active.pop()

    def _check(self, answer, cases, visible, jit):
        try:
            _observe(f"the form of {self.name}", lambda: self._require_form(answer))
            checked = [r for r in self.requires if visible or r.always]
            for requirement in (r for r in checked if r.first):
                _at("first", self.requires.index(requirement))
                requirement.check(self, answer, cases, jit)
            for index, case in enumerate(cases):
                _at("case", index)
                self.check_case(self, answer, case, jit)
            for requirement in (r for r in checked if not r.first):
                _at("after", self.requires.index(requirement))
                requirement.check(self, answer, cases, jit)
        except AssertionError as failure:  # raised afresh: the traceback ends at the test line
            code = getattr(failure, "code", None) or _code("unnamed")
            # named AssertionError, as students expect; the code is for the class's report
            raise AssertionError(f"{failure} [mistake: {code}]") from None
        _passed(self.name, cases, jit, [r.words for r in checked])

    def _require_form(self, answer):
        if self.rule:
            _require_custom_rule(self.name, answer, self.rule)
        if self.nondiff_argnums is not None:
            wanted, why = self.nondiff_argnums
            if tuple(getattr(answer, "nondiff_argnums", ())) != wanted:
                raise Failed(f"{self.name} must declare nondiff_argnums={wanted}{why}",
                             _code("nondiff-argnums"))
        if self.forbids:
            _require_no_forbidden_reference(self.name, answer, self.forbids)
        for requirement in self.structure:
            requirement(self, answer)


# ---------------------------------------------------------------------------------------------
# Assignment 03: custom derivative rules


def _finite(name, case, value):
    if not np.all(np.isfinite(np.asarray(value))):
        raise Failed(f"{name} gives nan or inf for {case.label}: {np.asarray(value)}.",
                     _code("not-finite"))


def _elementwise_derivatives(fn, x, order):
    """Values and derivatives up to ``order`` of an elementwise ``fn`` at every entry of ``x``."""
    results = [fn(x)]
    derivative = fn
    for _ in range(order):
        derivative = jax.grad(lambda x, d=derivative: jnp.sum(d(x)))
        results.append(derivative(x))
    return tuple(results)


def _elementwise_rule_case(exercise, fn, case, jit):
    """An elementwise custom_jvp function and its derivatives against the float64 formulas of
    ``exercise.facts``: ``value``, ``derivative`` and maybe ``second``, which is compared entry
    by entry with a relative tolerance."""
    name, facts = exercise.name, exercise.facts
    value, derivative, second = facts["value"], facts["derivative"], facts.get("second")
    (x,) = case.args
    depth = 2 if second else 1

    def formulas():
        x64, flat64 = np.asarray(x, np.float64), np.asarray(x, np.float64).reshape(-1)
        return ([f(x64).astype(x.dtype) for f in (value, derivative, second)[:depth + 1]],
                (2 * derivative(x64)).astype(x.dtype),
                [value(flat64).astype(x.dtype), derivative(flat64).astype(x.dtype)])

    expected, tangent_expected, batched_expected = _oracle(formulas, parts=3)
    results = _run(name, lambda x: _elementwise_derivatives(fn, x, depth), (x,), jit)
    if _probing():
        expected = [_UNKNOWN] * (depth + 1)
    labels = [name, f"the derivative of {name}", f"the second derivative of {name}"]
    for order, (label, result, wanted) in enumerate(zip(labels, results, expected)):
        _finite(label, case, result)
        if order < 2:
            _compare(label, case, result, wanted)
            continue
        rtol, atol = _tolerances(x.dtype)
        scale = float(np.max(np.abs(wanted), initial=1.0))
        lost_precision = not _probing() and np.allclose(result, wanted, rtol=rtol,
                                                        atol=atol * scale)
        _compare(label, case, result, wanted, relative=True,
                 hints=[exercise.mistakes["cancels"]] if lost_precision else ())
    tangent = _run(name, lambda x: jax.jvp(fn, (x,), (jnp.full_like(x, 2.0),))[1], (x,), jit)
    _compare(f"the JVP of {name}", case, tangent, tangent_expected)
    flat = x.reshape(-1)
    batched = _run(f"{name} under jax.vmap", jax.vmap(jax.value_and_grad(fn)), (flat,), jit)
    if _probing():
        return
    for label, result, wanted in zip((f"jax.vmap({name})", f"jax.vmap(jax.grad({name}))"),
                                     batched, batched_expected):
        _compare(label, case, result, wanted)


def _sigmoid64(x):
    return np.exp(-np.logaddexp(0.0, -x))


check_log1pexp = Exercise(
    "log1pexp", "A custom_jvp log(1 + e^x): accurate values, derivative sigmoid(x), never nan.",
    cases=lambda: [Case("x from -100 to 100", jnp.array([-100.0, -3.0, 0.0, 2.0, 20.0, 100.0]))],
    check_case=_elementwise_rule_case, rule="jvp",
    value=lambda x: np.logaddexp(0.0, x), derivative=_sigmoid64,
    second=lambda x: _sigmoid64(x) * _sigmoid64(-x),
    mistakes={
        "cancels": "JAX differentiates your rule's tangent: if it is jax.nn.sigmoid(x), the "
                   "result is sigmoid(x) * (1 - sigmoid(x)), and 1 - sigmoid(x) cancels in "
                   "float32 for large x. Write sigmoid(x) in a form whose derivative is "
                   "sigmoid(x) * sigmoid(-x).",
    })


def _shrink_derivative(x):
    root = np.sqrt(x)
    return (1 + root / 2) / (1 + root) ** 2


check_shrink = Exercise(
    "shrink", "A custom_jvp x / (1 + sqrt(x)) whose derivative at 0 is 1, without nan.",
    cases=lambda: [Case("x = 0, 0.25, 1 and 4", jnp.array([0.0, 0.25, 1.0, 4.0]))],
    check_case=_elementwise_rule_case, rule="jvp",
    value=lambda x: x / (1 + np.sqrt(x)), derivative=_shrink_derivative)


def _clip_gradient_case(exercise, clip_gradient, case, jit):
    lo, hi, x, g = case.args

    def run(lo, hi, x, g):
        y, pullback = jax.vjp(clip_gradient, lo, hi, x)
        return y, pullback(g)

    xs, gs = jnp.stack([x, 2 * x]), jnp.stack([g, -2 * g])
    clipped, clipped_batch = _oracle(lambda: (jnp.clip(g, lo, hi), jnp.clip(gs, lo, hi)),
                                     parts=2)
    y, (g_lo, g_hi, g_x) = _run("clip_gradient", run, (lo, hi, x, g), jit)
    _compare("clip_gradient (forward pass)", case, y, x)
    _compare("clip_gradient (cotangent of x)", case, g_x, clipped)
    for label, value in (("lo", g_lo), ("hi", g_hi)):
        _compare(f"clip_gradient (cotangent of {label})", case, value, jnp.zeros_like(lo))
    batched = jax.vmap(run, in_axes=(None, None, 0, 0))
    _, (_, _, g_xs) = _run("clip_gradient under jax.vmap", batched, (lo, hi, xs, gs), jit)
    _compare("jax.vmap of clip_gradient's VJP (cotangent of x)", case, g_xs, clipped_batch)


check_clip_gradient = Exercise(
    "clip_gradient", "Identity forward; the cotangent is clipped to [lo, hi]; lo and hi get no "
    "gradient.",
    cases=lambda: [Case("lo = -1, hi = 1", jnp.array(-1.0), jnp.array(1.0),
                        jnp.array([0.5, 2.0, -3.0]), jnp.array([3.0, -0.5, -2.0]))],
    check_case=_clip_gradient_case, rule="vjp")


def _polar_reference(point):
    x, y = point["x"], point["y"]
    return {"r": jnp.sqrt(x**2 + y**2), "theta": jnp.arctan2(y, x)}


def _polar_untransposed(point, cotangent):
    """J g instead of J^T g: what a backward pass that forgets the transpose returns."""
    _, pushed = jax.jvp(_polar_reference, (point,),
                        ({"x": cotangent["r"], "y": cotangent["theta"]},))
    return ({"x": pushed["r"], "y": pushed["theta"]},)


def _polar_case(exercise, polar, case, jit):
    point, cotangent = case.args

    def references():
        expected_value, pullback = jax.vjp(_polar_reference, point)
        return expected_value, pullback(cotangent), _polar_untransposed(point, cotangent)

    expected_value, expected_pulled, untransposed = _oracle(references, parts=3)
    jacobian = exercise.mistakes["jacobian"]

    def by_hand(point, cotangent):  # the rule called directly: JAX's autodiff is forbidden
        value, residuals = polar.fwd(point)
        return value, polar.bwd(residuals, cotangent)

    value, pulled = _run("polar", by_hand, (point, cotangent), jit)
    _compare_tree("polar_fwd's output", case, value, expected_value)
    if (not _probing() and jax.tree.structure(pulled) == jax.tree.structure(untransposed)
            and all(map(_close, jax.tree.leaves(pulled), jax.tree.leaves(untransposed)))
            and not all(map(_close, jax.tree.leaves(pulled), jax.tree.leaves(expected_pulled)))):
        mistake = exercise.mistakes["untransposed"]
        raise Failed(mistake.format(case=case.label), mistake.code)
    _compare_tree("polar_bwd's cotangents", case, pulled, expected_pulled, hints=[jacobian])

    vjp = jax.vjp  # the checks' own: the exercise forbids it to the answer only

    def run(point, cotangent):
        value, pullback = vjp(polar, point)
        return value, pullback(cotangent)

    value, pulled = _run("the VJP of polar", run, (point, cotangent), jit)
    _compare_tree("polar", case, value, expected_value)
    _compare_tree("the VJP of polar", case, pulled, expected_pulled, hints=[jacobian])


def _polar_rules_use_no_autodiff(exercise, polar):
    for rule in (polar.fwd, polar.bwd):
        _require_no_forbidden_reference("polar", rule, exercise.forbids)


check_polar = Exercise(
    "polar", "A custom_vjp from {'x', 'y'} to {'r', 'theta'}, pytrees in and out, whose rule "
    "is written by hand.",
    cases=lambda: [Case("two points", {"x": jnp.array([1.0, -2.0]), "y": jnp.array([1.0, 0.5])},
                        {"r": jnp.array([1.0, -1.0]), "theta": jnp.array([0.5, 2.0])})],
    check_case=_polar_case, rule="vjp", structure=[_polar_rules_use_no_autodiff],
    forbids=_DERIVATIVES + _JACOBIANS,
    mistakes={
        "jacobian": "dr/dx = x/r, dr/dy = y/r, dtheta/dx = -y/r**2, dtheta/dy = x/r**2.",
        "untransposed": "polar_bwd is wrong for {case}: it multiplies the cotangent by the "
                        "Jacobian J instead of its transpose. A VJP computes J^T g: the "
                        "cotangent of x is dr/dx * g_r + dtheta/dx * g_theta, a column of J, "
                        "not a row.",
    })


def _clipped_norm64(g, max_norm):
    norm = np.sqrt(np.sum(np.asarray(g, np.float64) ** 2))
    return np.asarray(g, np.float64) * min(1.0, max_norm / norm if norm > 0 else 1.0)


def _clip_norm_case(exercise, clip_gradient_norm, case, jit):
    max_norm, x, g = case.args

    def run(x, g):
        y, pullback = jax.vjp(lambda x: clip_gradient_norm(max_norm, x), x)
        return y, pullback(g)[0]

    expected = _oracle(lambda: _clipped_norm64(g, max_norm).astype(g.dtype))
    y, pulled = _run("clip_gradient_norm", run, (x, g), jit)
    _compare("clip_gradient_norm (forward pass)", case, y, x)
    _finite("the VJP of clip_gradient_norm", case, pulled)
    _compare("the VJP of clip_gradient_norm", case, pulled, expected)


def _clip_norm_cases():
    x = jnp.array([1.0, 2.0, 3.0])
    return [Case("a long cotangent, max_norm = 1", 1.0, x, jnp.array([3.0, 0.0, -4.0])),
            Case("a short cotangent, max_norm = 10", 10.0, x, jnp.array([3.0, 0.0, -4.0])),
            Case("a zero cotangent", 1.0, x, jnp.zeros(3))]


check_clip_gradient_norm = Exercise(
    "clip_gradient_norm", "Identity forward; the cotangent is rescaled to norm <= max_norm.",
    cases=_clip_norm_cases, check_case=_clip_norm_case, rule="vjp",
    nondiff_argnums=((0,), "."))


@contextlib.contextmanager
def _swapped_rule(fn, bwd):
    """Context: the custom_vjp ``fn`` with another backward rule, put back afterwards."""
    if _judging():
        yield
        return
    fwd, saved = fn.fwd, fn.bwd
    fn.defvjp(fwd, bwd)
    jax.clear_caches()
    try:
        yield
    finally:
        fn.defvjp(fwd, saved)
        jax.clear_caches()


def _sumsq_has_its_rule(exercise, answer):
    _require_custom_rule("custom_sumsq", _student_globals(answer).get("custom_sumsq"), "vjp")


def _grad_of_grad_case(exercise, custom_vjp_grad_of_grad, case, jit):
    namespace = _student_globals(custom_vjp_grad_of_grad)
    custom_sumsq = namespace["custom_sumsq"]
    (x,) = case.args
    sum_of_squares, tripled, doubled, twos = _oracle(
        lambda: (jnp.sum(x**2), 3.0 * x, 2 * x, jnp.full_like(x, 2.0)), parts=4)
    value, residual = _call("_fwd", namespace["_fwd"], x)
    _compare("custom_sumsq's _fwd (value)", case, value, sum_of_squares)
    _compare("custom_sumsq's _fwd (residual)", case, residual, x,
             hints=["The residual is x itself."])
    returned = _call("_bwd", namespace["_bwd"], x, jnp.array(1.5, x.dtype))
    cotangent = _one_cotangent(returned, exercise.mistakes["bwd-not-a-tuple"])
    _compare("custom_sumsq's _bwd", case, cotangent, tripled)
    _compare("jax.grad(custom_sumsq)", case, _call("custom_sumsq", jax.grad(custom_sumsq), x),
             doubled)
    result = _run("custom_vjp_grad_of_grad", custom_vjp_grad_of_grad, (x,), jit)
    _compare("custom_vjp_grad_of_grad", case, result, twos,
             hints=["The answer is the gradient of sum(grad(custom_sumsq)(x))."])


def _grad_of_grad_uses_the_rule(exercise, custom_vjp_grad_of_grad, cases, jit):
    custom_sumsq = _student_globals(custom_vjp_grad_of_grad)["custom_sumsq"]
    for case in cases:
        (x,) = case.args
        with _swapped_rule(custom_sumsq, lambda x, g: (g * 3 * x**2,)):
            swapped = _run("custom_vjp_grad_of_grad", custom_vjp_grad_of_grad, (x,), jit)
        _compare("custom_vjp_grad_of_grad with the rule swapped for g * 3 x**2", case, swapped,
                 6 * x, hints=[exercise.mistakes["rule-unused"]])


check_custom_vjp_grad_of_grad = Exercise(
    "custom_vjp_grad_of_grad", "Reference exercise 000: custom_sumsq with its rule, "
    "differentiated twice through it.",
    cases=lambda: [Case("x = [1, 2]", jnp.array([1.0, 2.0])),
                   Case("x of length 4", jnp.array([0.5, -1.0, 3.0, 0.0]))],
    check_case=_grad_of_grad_case,
    structure=[_sumsq_has_its_rule, _rule_helpers_at_module_level],
    requires=[Require("uses the registered rule", _grad_of_grad_uses_the_rule, always=True)],
    mistakes={
        "bwd-not-a-tuple": "custom_sumsq's _bwd must return a tuple holding one cotangent, "
                           "(g * 2 * x,): mind the trailing comma.",
        "rule-unused": "The result must come from custom_sumsq's registered rule.",
    })


def _safe_norm_case(exercise, safe_norm, case, jit):
    (x,) = case.args

    def references():
        x64 = np.asarray(x, np.float64)
        norm = np.sqrt(np.sum(x64**2))
        gradient = x64 / norm if norm > 0 else np.zeros_like(x64)
        return (np.asarray(norm, x.dtype), gradient.astype(x.dtype),
                np.asarray(np.sum(gradient), x.dtype))

    norm, gradient, directional = _oracle(references, parts=3)
    value, grad = _run("safe_norm", lambda x: jax.value_and_grad(safe_norm)(x), (x,), jit)
    _compare("safe_norm", case, value, norm)
    _finite("the gradient of safe_norm", case, grad)
    _compare("the gradient of safe_norm", case, grad, gradient)
    direction = jnp.ones_like(x)
    tangent = _run("safe_norm", lambda x: jax.jvp(safe_norm, (x,), (direction,))[1], (x,), jit)
    _finite("the JVP of safe_norm", case, tangent)
    _compare("the JVP of safe_norm", case, tangent, directional)


check_safe_norm = Exercise(
    "safe_norm", "A custom_jvp Euclidean norm whose derivative at 0 is 0 (no nan anywhere).",
    cases=lambda: [Case("x = [3, 4]", jnp.array([3.0, 4.0])),
                   Case("x = 0 of shape (3,)", jnp.zeros(3))],
    check_case=_safe_norm_case, rule="jvp")


def _spd_matrix(n, seed, condition=10.0, dtype=jnp.float32):
    """A symmetric positive definite n x n matrix with eigenvalues from 1 to ``condition``."""
    Q = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))[0]
    A = (Q * np.geomspace(1.0, condition, n)) @ Q.T
    return jnp.asarray((A + A.T) / 2, dtype)


def _logdet_case(exercise, logdet, case, jit):
    A, g = case.args

    def references():
        A64, g64 = np.asarray(A, np.float64), np.asarray(g, np.float64)
        return (np.asarray(np.linalg.slogdet(A64)[1], A.dtype),
                (g64 * np.linalg.inv(A64)).astype(A.dtype), (g64 * A64).astype(A.dtype))

    value64, pulled64, not_inverted = _oracle(references, parts=3)
    value = _run("logdet", logdet, (A,), jit)
    _compare("logdet", case, value, value64, factors=True, suspects=[
        (np.asarray(np.inf, A.dtype), exercise.mistakes["overflow"]),
        (np.asarray(-np.inf, A.dtype), exercise.mistakes["overflow"])])
    pulled = _run("logdet", lambda A, g: jax.vjp(logdet, A)[1](g)[0], (A, g), jit)
    _compare("the VJP of logdet", case, pulled, pulled64,
             suspects=[(not_inverted, exercise.mistakes["not-inverted"])])


def _logdet_saves_the_factor(exercise, logdet):
    A = _spd_matrix(4, 1)
    _, residual = _call("logdet_fwd", logdet.fwd, A)
    factor = np.linalg.cholesky(np.asarray(A, np.float64)).astype(np.float32)
    if not any(np.shape(leaf) == factor.shape and _close(leaf, factor)
               for leaf in jax.tree.leaves(residual)):
        raise Failed(exercise.mistakes["no-factor"], exercise.mistakes["no-factor"].code)


def _logdet_cases():
    A = jnp.array([[4.0, 1.0, 0.5], [1.0, 3.0, 0.2], [0.5, 0.2, 2.0]])
    return [Case("a 3 x 3 matrix", A, jnp.array(1.0)),
            Case("100 times the 30 x 30 identity (det = 1e60 overflows)", 100.0 * jnp.eye(30),
                 jnp.array(2.0))]


check_logdet = Exercise(
    "logdet", "A custom_vjp log det A of a symmetric positive definite A: 2 sum log diag L "
    "forward, g A^-1 from the saved Cholesky factor L backward.",
    cases=_logdet_cases, check_case=_logdet_case, rule="vjp",
    structure=[_logdet_saves_the_factor],
    mistakes={
        "overflow": "The determinant overflows (or underflows) float32 for this matrix: add "
                    "the logs of the Cholesky factor's diagonal, 2 sum(log L_ii), instead of "
                    "taking the log of det(A).",
        "not-inverted": "This is g A: the gradient of log det A is A^-1, from the saved "
                        "factor by cho_solve((L, True), I).",
        "no-factor": "logdet_fwd must save the Cholesky factor L = jnp.linalg.cholesky(A) as "
                     "its residual, so that the backward pass reuses it instead of factoring "
                     "A again.",
    })


