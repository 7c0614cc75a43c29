"""Tamper resistance (shipped; kernel side).

``setup()`` snapshots the protected modules and installs a guard: a Python audit hook
(sys.addaudithook), which no later code can remove, whose state lives in its closure where the
notebook cannot reach it. The guard puts the snapshot back (and jax.config, and the signal
handlers) whenever a test cell starts and after every call of student code. While grading it also
refuses what would reach into the checks from the side: threads and processes, gc introspection,
frames of the checks seen from student code, swapping a function's code or defaults, ctypes,
tracing hooks, /proc/*/mem. A Python thread that still runs when a test cell starts, or returns
while a check calls student code, stops the kernel: no check could be trusted while it runs.
While grading, none of this decides a grade: it keeps an honest mistake failing in the kernel as
in the student's own run, and the judge decides from the evidence.
"""

import builtins
import itertools
import operator
import os
import sys
import types
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from .evidence import _Evidence

_PROTECTED_PACKAGES = (
    "builtins", "numpy", "jax", "jaxlib", "ml_dtypes", "math", "operator", "functools",
    "contextlib", "types", "IPython", "ipykernel", "adcheck", "sys", "os", "posix", "gc",
    "threading", "_thread", "signal", "_signal", "subprocess", "_posixsubprocess", "importlib",
    "_imp", "inspect", "traceback", "linecache", "weakref", "copy",
)


_MISSING = object()


TEST_CELL_MARK = "adcheck.check_"  # every test cell calls a check, and is guarded for it


TESTED_JAX = "0.10.2"  # the JAX of requirements.txt, which the course's outputs come from


_stashed_names = {}


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


class _Snapshot:
    """The protected modules' attributes and their classes', frozen. Besides the modules and
    classes one by one, it keeps every (dictionary, name, value) in three flat tuples, so that
    the guard finds in one pass of C code (``all(map(is_, ...))``, which calls nothing the
    notebook wrote) whether anything changed at all, as it has not after almost every call."""

    def __init__(self):
        import gc

        self.modules, self.classes = [], []
        dicts, keys, values = [], [], []
        for name, module in list(sys.modules.items()):
            if not isinstance(module, types.ModuleType) or not _protected(name):
                continue
            attrs = dict(vars(module))
            self.modules.append((name, module, type(module), tuple(attrs), tuple(attrs.values())))
            for key, value in attrs.items():
                dicts.append(vars(module))
                keys.append(key)
                values.append(value)
            for value in attrs.values():
                if isinstance(value, type) and getattr(value, "__module__", None) == name:
                    own = dict(vars(value))
                    # the class's own dictionary, which its mappingproxy reads slowly
                    [real] = gc.get_referents(vars(value))
                    self.classes.append((value, real, tuple(own), tuple(own.values())))
                    for key, attribute in own.items():
                        dicts.append(real)
                        keys.append(key)
                        values.append(attribute)
        self.names = tuple(name for name, *_ in self.modules)
        self.module_objects = tuple(module for _, module, *_ in self.modules)
        self.module_types = tuple(module_type for _, _, module_type, *_ in self.modules)
        self.module_dicts = tuple(vars(module) for module in self.module_objects)
        self.flat = (tuple(dicts), tuple(keys), tuple(values))
        self.class_dicts = tuple(real for _, real, *_ in self.classes)
        self.class_sizes = tuple(len(keys) for *_, keys, _ in self.classes)


def _restore_snapshot(snapshot, _missing=_MISSING, _modules=sys.modules, _setattr=setattr,
                      _delattr=delattr, _object_setattr=object.__setattr__, _list=list,
                      _tuple=tuple, _type=type, _len=len, _all=all, _map=map, _zip=zip,
                      _frozenset=frozenset, _is=operator.is_, _repeat=itertools.repeat,
                      _get=dict.get):
    """Put back every module attribute and class attribute of the snapshot. It uses nothing
    that the notebook could have replaced: no globals, no builtins looked up by name, no
    attribute of the snapshot that the notebook could reach."""
    dicts, keys, values = snapshot.flat
    if (_all(_map(_is, _map(_modules.get, snapshot.names), snapshot.module_objects))
            and _all(_map(_is, _map(_type, snapshot.module_objects), snapshot.module_types))
            and _tuple(_map(_len, snapshot.class_dicts)) == snapshot.class_sizes
            and _all(_map(_is, _map(_get, dicts, keys, _repeat(_missing)), values))):
        return  # nothing changed
    for (name, module, module_type, keys, values), current in _zip(snapshot.modules,
                                                                    snapshot.module_dicts):
        _modules[name] = module
        if _type(module) is not module_type:
            _object_setattr(module, "__class__", module_type)
        for key, value in _zip(keys, values):
            if _get(current, key, _missing) is not value:
                current[key] = value
    for cls, current, keys, values in snapshot.classes:
        for key, value in _zip(keys, values):
            if _get(current, key, _missing) is not value:
                try:
                    _setattr(cls, key, value)
                except BaseException:  # read-only attributes of built-in types
                    pass
        known = _frozenset(keys)
        for key in [k for k in _list(current) if k not in known and k.startswith("__")]:
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
        """Put everything back when a test cell starts and after a call of student code.
        jax.config goes back to the snapshot when a test cell starts; after a call, to what
        the test cell had set (e.g. enable_x64), which is noted before the call. Nothing else
        is put back before a call: the student's code may change anything once it runs, so
        what counts is what it leaves, and that is put back after it."""
        busy[0] = True
        try:
            if grading and frozen(current_frames()) - baseline_threads - {main_thread}:
                stop_kernel(f"a thread started by the notebook was still running {when}. No "
                            "check can be trusted while other code runs beside it: grading "
                            "stopped, and the remaining tests score zero.")
            if phase != "before":
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
        # Unbounded, as JAX's default: a bounded cache reads every entry's access time at each
        # write, so a notebook that compiles n programs into a folder of N entries reads n * N
        # files (05_inside ran in 22.5 s instead of 13.7 s after the four notebooks before it).
        # Without the bound's file lock, a kernel may read an entry that another kernel is
        # writing; JAX then warns, compiles the program and goes on. That warning is noise.
        warnings.filterwarnings(
            "ignore", message="Error reading persistent compilation cache entry")


# The grader's folder of programs that the model solution's grading run compiled (see
# course/grading/compiled_programs.py), as the kernel sees it; in the warm-up run, writable.
COMPILED_PROGRAMS_ENV = "ADCOURSE_COMPILED_PROGRAMS"
COMPILED_PROGRAMS_WRITE_ENV = "ADCOURSE_COMPILED_PROGRAMS_WRITE"


def _read_compiled_programs():
    """In a grading kernel, load from the grader's folder each program that the model solution's
    run compiled there, instead of compiling it again. The kernel never writes to it (no
    compilation is ever fast enough to be kept; the folder is read-only besides). Programs carry
    no source location, in both runs: an entry, which a kernel can open only by the name that
    the program's own hash gives it, tells nothing about the model solution's code."""
    folder = os.environ.get(COMPILED_PROGRAMS_ENV)
    if not folder or jax.config.jax_compilation_cache_dir:
        return
    writing = os.environ.get(COMPILED_PROGRAMS_WRITE_ENV) == "1"
    jax.config.update("jax_include_full_tracebacks_in_locations", False)
    jax.config.update("jax_traceback_in_locations_limit", 0)
    jax.config.update("jax_hlo_source_file_canonicalization_regex", ".*")
    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs",
                      0.0 if writing else float("inf"))


# XLA:CPU's fusion emitters written in MLIR, its default, take about twice as long to compile a
# small program as its older emitters (30-40 ms against 14-22 ms on the course's test machine),
# and the course's programs are all small: a notebook run cold, and a graded submission, are
# mostly compile time. Every printed output of the solution notebooks is the same with either.
_COMPILE_FASTER = "--xla_cpu_use_fusion_emitters=false"
# A grading kernel compiles a few hundred small programs and runs each once or twice, on small
# cases: LLVM's optimisation of their machine code costs more than it saves (a graded path takes
# about a fifth less time without it). Only there: the optimised code rounds differently in the
# last bits (an ill-conditioned printed value, such as eigh's gradient at a repeated eigenvalue,
# changes) and runs slower on large data, which the notebooks time and discuss.
_GRADING_COMPILES_FASTER = "--xla_backend_optimization_level=0"


def _compile_faster(grading=False):
    """Ask XLA for its faster-compiling CPU emitters (and, in a grading kernel, for no LLVM
    optimisation), unless ``XLA_FLAGS`` already says which to use. XLA reads the flags when it
    starts, at the first operation, so this comes before any; and only for the jaxlib the course
    was tested with, since XLA stops the process on a flag it does not know."""
    import jaxlib
    if jaxlib.__version__ != TESTED_JAX:
        return
    wanted = [_COMPILE_FASTER] + ([_GRADING_COMPILES_FASTER] if grading else [])
    flags = os.environ.get("XLA_FLAGS", "")
    for flag in wanted:
        if flag.split("=")[0].lstrip("-") not in flags:
            flags = f"{flags} {flag}".strip()
    if flags:
        os.environ["XLA_FLAGS"] = flags


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
    _compile_faster(grading)
    if grading:
        _Evidence.mode = "probe"
        _read_compiled_programs()
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
    _install_guard(_Snapshot(), grading, shell)
    if shell is not None:
        shell.set_custom_exc((Exception,), _traceback_without_checks)
        for registered in list(shell.events.callbacks["post_run_cell"]):
            if getattr(registered, "__name__", "") == _after_cell.__name__:
                shell.events.unregister("post_run_cell", registered)
        shell.events.register("post_run_cell", _after_cell)
