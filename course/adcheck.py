"""Checks for the course's exercises.

Every exercise has one ``check_<name>`` function. The visible test cell of a notebook calls it
with no cases, which runs a few small ones; the hidden tests call it again with more inputs,
shapes and dtypes, under ``jax.jit``. A failure raises ``AssertionError`` with a message that
names the likely mistake.

Grading does not trust the notebook's namespace:

* ``setup()`` (in the notebook's locked first cell, before any student code) snapshots the
  state of numpy, jax, builtins and friends. Before every cell, and again around every call of
  student code, that state is put back, so a monkeypatch in an answer cell changes nothing the
  checks use.
* Test cells run with ``adcheck``, ``jax``, ``jnp`` and ``np`` bound to the real modules and
  with any student global that shadows a builtin hidden; the student's names come back after.
* All comparisons happen in this module, whose globals the notebook does not reach.
"""

import builtins
import contextlib
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np

_PROTECTED_PACKAGES = (
    "builtins", "numpy", "jax", "jaxlib", "ml_dtypes", "math", "operator", "functools",
    "contextlib", "types", "IPython", "ipykernel", "adcheck",
)
_MISSING = object()
TEST_CELL_MARK = "adcheck.check_"  # every test cell calls a check, and is guarded for it
_module_state = {}
_class_state = {}
_stashed_names = {}
_IMPLEMENTATIONS = ("jacfwd", "jacrev", "jacobian", "hessian")
_BUILTIN_JACOBIANS = {id(getattr(jax, name)): name for name in _IMPLEMENTATIONS}


# ---------------------------------------------------------------------------------------------
# Tamper resistance


def _protected(name):
    return any(name == p or name.startswith(p + ".") for p in _PROTECTED_PACKAGES)


def _snapshot():
    _module_state.clear()
    _class_state.clear()
    for name, module in list(sys.modules.items()):
        if not isinstance(module, types.ModuleType) or not _protected(name):
            continue
        attrs = dict(vars(module))
        _module_state[name] = (module, attrs)
        for value in attrs.values():
            if isinstance(value, type) and getattr(value, "__module__", None) == name:
                _class_state[value] = dict(vars(value))


def restore():
    """Undo every change made since ``setup()`` to the protected modules and their classes."""
    for name, (module, attrs) in _module_state.items():
        sys.modules[name] = module
        current = vars(module)
        for key, value in attrs.items():
            if current.get(key, _MISSING) is not value:
                current[key] = value
    for cls, attrs in _class_state.items():
        current = vars(cls)
        for key, value in attrs.items():
            if current.get(key, _MISSING) is not value:
                with contextlib.suppress(TypeError, AttributeError):
                    setattr(cls, key, value)
        for key in [k for k in current if k not in attrs and k.startswith("__")]:
            with contextlib.suppress(TypeError, AttributeError):
                delattr(cls, key)
    shell = _shell()
    if shell is not None:
        for method in ("showtraceback", "_showtraceback", "showsyntaxerror", "run_cell",
                       "run_ast_nodes", "run_code"):
            vars(shell).pop(method, None)


def _shell():
    ipython = sys.modules.get("IPython")
    return ipython.get_ipython() if ipython is not None else None


def _is_test_cell(source):
    return TEST_CELL_MARK in source


def _before_cell(info):
    restore()
    shell = _shell()
    if shell is None or not _is_test_cell(info.raw_cell or ""):
        return
    user_ns = shell.user_ns
    trusted = {"adcheck": sys.modules[__name__], "jax": jax, "jnp": jnp, "np": np}
    shadowing = [n for n in user_ns if n in vars(builtins) and not n.startswith("_")]
    for name in list(trusted) + shadowing:
        _stashed_names[name] = user_ns.get(name, _MISSING)
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


def setup():
    """Snapshot the libraries' state and guard every later cell of the notebook."""
    jax.jit(jax.grad(jnp.sin))(1.0)  # load jax's lazily imported modules before the snapshot
    _snapshot()
    shell = _shell()
    if shell is None:
        return
    for event, callback in (("pre_run_cell", _before_cell), ("post_run_cell", _after_cell)):
        for registered in list(shell.events.callbacks[event]):
            if getattr(registered, "__name__", "") == callback.__name__:
                shell.events.unregister(event, registered)
        shell.events.register(event, callback)


# ---------------------------------------------------------------------------------------------
# Calling student code


class Case:
    """One input of an exercise: a label that feedback may show, and the arguments."""

    def __init__(self, label, *args):
        self.label = label
        self.args = args

    def __repr__(self):
        return self.label


def _describe(value):
    if callable(value) and not isinstance(value, (jax.Array, np.ndarray)):
        return "f"
    if isinstance(value, (jax.Array, np.ndarray)):
        return f"{value.dtype}{list(value.shape)}"
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(_describe(v) for v in value) + ")"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {_describe(v)}" for k, v in value.items()) + "}"
    return type(value).__name__


def _call(name, fn, *args):
    """Call student code; restore the libraries afterwards; turn its errors into feedback."""
    restore()
    try:
        with _implementations_forbidden(name):
            result = fn(*args)
    except AssertionError:
        raise
    except NotImplementedError:
        restore()
        raise AssertionError(f"{name} is not implemented yet.") from None
    except Exception as error:
        restore()
        first_line = (str(error).strip().splitlines() or [""])[0][:300]
        raise AssertionError(f"{name} raised {type(error).__name__}: {first_line}") from None
    restore()
    return result


def _as_array(name, value):
    if isinstance(value, tuple) and len(value) == 1:
        raise AssertionError(
            f"{name} returned a tuple of length 1; a VJP function returns a tuple with one "
            "cotangent per primal input, so unpack it (e.g. `g, = vjp_fn(ct)`).")
    if not isinstance(value, (jax.Array, np.ndarray, np.generic)):
        raise AssertionError(f"{name} returned a {type(value).__name__}, expected an array.")
    return np.asarray(value)


def _tolerances(dtype):
    if np.dtype(dtype) in (np.float64, np.complex128):
        return 1e-9, 1e-10
    return 2e-4, 2e-5


def _compare(name, case, actual, expected, hints=(), shape_hints=()):
    """Raise an AssertionError naming the mistake unless ``actual`` matches ``expected``."""
    actual = _as_array(name, actual)
    expected = np.asarray(expected)
    where = f"{name} is wrong for {case.label} (inputs {_describe(case.args)})"
    if actual.shape != expected.shape:
        message = f"{where}: shape {actual.shape}, expected {expected.shape}."
        if sorted(actual.shape) == sorted(expected.shape):
            message += " The axes are in the wrong order."
        raise AssertionError(message + "".join(" " + h for h in (*shape_hints, *hints)))
    if actual.dtype != expected.dtype:
        raise AssertionError(f"{where}: dtype {actual.dtype}, expected {expected.dtype}.")
    rtol, atol = _tolerances(expected.dtype)
    scale = float(np.max(np.abs(expected), initial=1.0))
    if np.allclose(actual, expected, rtol=rtol, atol=atol * scale):
        return
    message = f"{where}: values differ (largest error {np.max(np.abs(actual - expected)):.3g})."
    if np.allclose(actual, -expected, rtol=rtol, atol=atol * scale):
        message += " The sign is flipped."
    elif np.iscomplexobj(expected) and np.allclose(actual, np.conj(expected), rtol=rtol,
                                                    atol=atol * scale):
        message += " You returned the complex conjugate."
    raise AssertionError(message + "".join(" " + h for h in hints))


def _jit_call(name, make_call, case):
    """Run ``make_call(*args)`` under ``jax.jit``; report tracing problems clearly."""
    try:
        return _call(name, jax.jit(make_call), *case.args)
    except AssertionError as error:
        raise AssertionError(f"Under jax.jit, {error}") from None


# ---------------------------------------------------------------------------------------------
# Mechanism checks


@contextlib.contextmanager
def _implementations_forbidden(name):
    """Make jax's own Jacobian builders raise while student code runs, for the jac exercises."""
    if not name.startswith("our_jac"):
        yield
        return
    saved = {attr: getattr(jax, attr) for attr in _IMPLEMENTATIONS}

    def forbidden(attr):
        def stub(*args, **kwargs):
            raise AssertionError(f"{name} must not call jax.{attr}: build it from "
                                 "jax.jvp / jax.vjp and jax.vmap.")
        return stub

    for attr in _IMPLEMENTATIONS:
        setattr(jax, attr, forbidden(attr))
    try:
        yield
    finally:
        for attr, value in saved.items():
            setattr(jax, attr, value)


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


def _require_no_builtin_jacobian(name, fn):
    for value in _referenced_objects(fn):
        if id(value) in _BUILTIN_JACOBIANS:
            raise AssertionError(f"{name} uses jax.{_BUILTIN_JACOBIANS[id(value)]}; build it "
                                 "from jax.jvp / jax.vjp and jax.vmap instead.")


def _program(fn, *args):
    """Primitive names of ``fn``'s jaxpr, sub-programs (jit, cond, ...) included."""
    names, stack = [], [jax.make_jaxpr(fn)(*args).jaxpr]
    while stack:
        for eqn in stack.pop().eqns:
            names.append(eqn.primitive.name)
            for param in eqn.params.values():
                for sub in param if isinstance(param, (tuple, list)) else (param,):
                    inner = getattr(sub, "jaxpr", sub)
                    if hasattr(inner, "eqns"):
                        stack.append(inner)
    return names


def _require_vectorized(name, fn, small_args, large_args):
    """Equal program sizes for a small and a large batch mean no Python loop over the batch."""
    small = _call(name, lambda: _program(fn, *small_args))
    large = _call(name, lambda: _program(fn, *large_args))
    loops = sorted({p for p in large if p in ("scan", "while")})
    if loops:
        raise AssertionError(f"{name} runs a {loops[0]} loop over the vectors: use jax.vmap.")
    if len(small) != len(large):
        raise AssertionError(
            f"{name} builds a program whose size grows with the number of vectors "
            f"({len(small)} operations for {small_args[0].shape[0]} vectors, {len(large)} for "
            f"{large_args[0].shape[0]}): use jax.vmap instead of a Python loop.")


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
        raise AssertionError(
            f"{name} must use {mode} mode, but it failed on a function that only {mode} mode "
            f"can differentiate; are you using {other} mode? ({error})") from None


# ---------------------------------------------------------------------------------------------
# Assignment 01: forward and reverse mode


def _normal(seed, shape, dtype=jnp.float32):
    return jax.random.normal(jax.random.key(seed), shape, dtype)


def _visible_function_cases():
    x = jnp.array([0.5, -1.0, 2.0])
    return [
        Case("f(x) = 3 x**2, x of shape (3,)", lambda x: 3 * x**2, x),
        Case("f(x) = sin(x) summed over axis 1, x of shape (2, 3)",
             lambda x: jnp.sum(jnp.sin(x), axis=1), _normal(0, (2, 3))),
    ]


def check_vgrad(vgrad, cases=None, jit=False):
    """``vgrad(f, x)`` is the gradient of ``sum(f(x))``, i.e. the VJP with a cotangent of ones."""
    cases = _visible_function_cases() if cases is None else cases
    for case in cases:
        f, x = case.args
        expected = jax.grad(lambda x: jnp.sum(f(x)).real)(x)
        hint = ["The cotangent must have the shape of f(x), not of x."]
        _compare("vgrad", case, _call("vgrad", vgrad, f, x), expected, shape_hints=hint)
        if jit:
            _compare("vgrad", case, _jit_call("vgrad", lambda x: vgrad(f, x), Case(case.label, x)),
                     expected, shape_hints=hint)
    _require_mode("vgrad", "reverse", lambda fn, _: _call("vgrad", vgrad, fn, jnp.ones(3)))
    print(f"vgrad passed {len(cases)} cases.")


def _product_cases(kind):
    cases = []
    for case in _visible_function_cases():
        f, x = case.args
        y = jax.eval_shape(f, x)
        shape = y.shape if kind == "mjp" else x.shape
        cases.append(Case(case.label + ", 4 vectors", f, x, _normal(7, (4,) + shape)))
    return cases


def _check_products(kind, implementation, cases, jit):
    name = f"vmap_{kind}"
    cases = _product_cases(kind) if cases is None else cases
    for case in cases:
        f, x, M = case.args
        J = jax.jacfwd(f)(x).reshape(jax.eval_shape(f, x).shape + (-1,))
        J = J.reshape(-1, x.size)
        if kind == "mjp":
            expected = (M.reshape(M.shape[0], -1) @ J).reshape((M.shape[0],) + x.shape)
        else:
            expected = (M.reshape(M.shape[0], -1) @ J.T).reshape(
                (M.shape[0],) + jax.eval_shape(f, x).shape)
        _compare(name, case, _call(name, implementation, f, x, M), expected)
        if jit:
            _compare(name, case, _jit_call(name, lambda x, M: implementation(f, x, M),
                                           Case(case.label, x, M)), expected)
    f = lambda x: jnp.tanh(x) * x[::-1]
    x = jnp.linspace(-1.0, 1.0, 5)
    _require_vectorized(name, lambda M: implementation(f, x, M), (jnp.ones((2, 5)),),
                        (jnp.ones((9, 5)),))
    mode = "reverse" if kind == "mjp" else "forward"
    _require_mode(name, mode, lambda fn, _: _call(name, implementation, fn, jnp.ones(3),
                                                  jnp.ones((2, 3))))
    print(f"{name} passed {len(cases)} cases, is vectorized and uses {mode} mode.")


def check_vmap_mjp(vmap_mjp, cases=None, jit=False):
    """``vmap_mjp(f, x, M)``: pull back each row of ``M`` (a cotangent) through f at x."""
    _check_products("mjp", vmap_mjp, cases, jit)


def check_vmap_jmp(vmap_jmp, cases=None, jit=False):
    """``vmap_jmp(f, x, M)``: push forward each row of ``M`` (a tangent) through f at x."""
    _check_products("jmp", vmap_jmp, cases, jit)


def _jacobian_cases():
    return [
        Case("f(x) = sin(x) * x[::-1], x of shape (3,)", lambda x: jnp.sin(x) * x[::-1],
             jnp.array([0.3, -1.2, 2.0])),
        Case("f(x) = x @ x.T, x of shape (2, 3)", lambda x: x @ x.T, _normal(1, (2, 3))),
        Case("f(x) = sum(x**3), x of shape (4,)", lambda x: jnp.sum(x**3), _normal(2, (4,))),
    ]


def _check_jacobian(name, mode, builder, cases, jit):
    reference = {"forward": jax.jacfwd, "reverse": jax.jacrev}[mode]
    cases = _jacobian_cases() if cases is None else cases
    _require_no_builtin_jacobian(name, builder)
    hint = ["The Jacobian of f at x has shape f(x).shape + x.shape."]
    for case in cases:
        f, x = case.args
        expected = reference(f)(x)
        jacobian_fn = _call(name, builder, f)
        _compare(f"{name}(f)", case, _call(f"{name}(f)", jacobian_fn, x), expected,
                 shape_hints=hint)
        if jit:
            _compare(f"{name}(f)", case, _jit_call(f"{name}(f)", jacobian_fn, Case(case.label, x)),
                     expected, shape_hints=hint)
    _require_vectorized(name, lambda x: builder(jnp.sin)(x), (jnp.ones(2),), (jnp.ones(7),))
    probe = Case(f"a function only {mode} mode can differentiate", jnp.linspace(0.0, 1.0, 3))

    def run(fn, plain_fn):
        jacobian = _call(f"{name}(f)", _call(name, builder, fn), *probe.args)
        _compare(f"{name}(f)", probe, jacobian, jax.jacfwd(plain_fn)(*probe.args))

    _require_mode(name, mode, run)
    print(f"{name} passed {len(cases)} cases, is vectorized and uses {mode} mode.")


def check_our_jacfwd(our_jacfwd, cases=None, jit=False):
    """``our_jacfwd(f)(x)`` equals ``jax.jacfwd(f)(x)``, built on jvp and vmap."""
    _check_jacobian("our_jacfwd", "forward", our_jacfwd, cases, jit)


def check_our_jacrev(our_jacrev, cases=None, jit=False):
    """``our_jacrev(f)(x)`` equals ``jax.jacrev(f)(x)``, built on vjp and vmap."""
    _check_jacobian("our_jacrev", "reverse", our_jacrev, cases, jit)


def _wirtinger_reference(f, z):
    def as_real(a, b):
        w = f(a + 1j * b)
        return jnp.real(w), jnp.imag(w)

    a, b = jnp.real(z), jnp.imag(z)
    (ux, uy), (vx, vy) = jax.jacfwd(as_real, argnums=(0, 1))(a, b)
    df_dz = ((ux + vy) + 1j * (vx - uy)) / 2
    df_dzbar = ((ux - vy) + 1j * (vx + uy)) / 2
    return df_dz.astype(z.dtype), df_dzbar.astype(z.dtype)


def _wirtinger_cases():
    z = jnp.array(0.7 - 0.4j, dtype=jnp.complex64)
    return [
        Case("f(z) = sin(z)", jnp.sin, z),
        Case("f(z) = conj(z)", jnp.conj, z),
        Case("f(z) = z * conj(z)", lambda z: z * jnp.conj(z), z),
    ]


def check_wirtinger(wirtinger, cases=None, jit=False):
    """``wirtinger(f, z)`` returns ``(df/dz, df/dzbar)`` of a complex function at a scalar z."""
    cases = _wirtinger_cases() if cases is None else cases
    for case in cases:
        f, z = case.args
        expected = _wirtinger_reference(f, z)
        results = [_call("wirtinger", wirtinger, f, z)]
        if jit:
            results.append(_jit_call("wirtinger", lambda z: wirtinger(f, z), Case(case.label, z)))
        for result in results:
            if not isinstance(result, tuple) or len(result) != 2:
                raise AssertionError("wirtinger must return a tuple (df_dz, df_dzbar), got "
                                     f"{_describe(result)}.")
            swapped = all(np.allclose(np.asarray(r), np.asarray(e), atol=1e-5)
                          for r, e in zip(result, expected[::-1]))
            hint = ["You swapped df/dz and df/dzbar."] if swapped else []
            _compare("wirtinger (df/dz)", case, result[0], expected[0], hint)
            _compare("wirtinger (df/dzbar)", case, result[1], expected[1], hint)
    print(f"wirtinger passed {len(cases)} cases.")
