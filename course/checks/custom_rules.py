"""Assignment 03: custom derivative rules (shipped to its students only).
"""

import contextlib

import jax
import jax.numpy as jnp
import numpy as np

from .calls import _DERIVATIVES, _JACOBIANS, Case, _call, _close, _compare, _tolerances
from .evidence import _UNKNOWN, Failed, _code, _judging, _oracle, _probing
from .exercise import (
    Exercise,
    Require,
    _array,
    _compare_tree,
    _one_cotangent,
    _require_custom_rule,
    _rule_helpers_at_module_level,
    _run,
    _student_globals,
)
from .mechanisms import _program, _require_no_forbidden_reference


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

    host_x, host_g = np.asarray(x), np.asarray(g)
    xs = _array(np.stack([host_x, 2 * host_x]), x.dtype)
    gs = _array(np.stack([host_g, -2 * host_g]), g.dtype)
    clipped, clipped_batch = _oracle(lambda: tuple(
        np.clip(np.asarray(values), np.asarray(lo), np.asarray(hi)) for values in (g, gs)),
        parts=2)
    y, (g_lo, g_hi, g_x) = _run("clip_gradient", run, (lo, hi, x, g), jit)
    _compare("clip_gradient (forward pass)", case, y, x)
    _compare("clip_gradient (cotangent of x)", case, g_x, clipped)
    for label, value in (("lo", g_lo), ("hi", g_hi)):
        _compare(f"clip_gradient (cotangent of {label})", case, value,
                 np.zeros_like(np.asarray(lo)))
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
    return _array((A + A.T) / 2, dtype)


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


_FACTORISATIONS = {"cholesky": "a Cholesky factorisation", "lu": "an LU factorisation (inv, "
                   "solve, det and slogdet use one)", "eigh": "an eigendecomposition",
                   "eig": "an eigendecomposition", "svd": "an SVD", "geqrf": "a QR factorisation"}


def _logdet_rule_uses_the_factor(exercise, logdet, cases, jit):
    """The forward pass factors A once, by Cholesky, and takes the value from the factor; the
    backward pass factors nothing: it reuses the saved factor (triangular solves)."""
    A, g = _spd_matrix(4, 1), jnp.array(1.0)
    forward = _call("logdet_fwd", lambda: _program(logdet.fwd, A))
    others = [p for p in forward if p in _FACTORISATIONS and p != "cholesky"]
    if others:
        mistake = exercise.mistakes["value-not-from-factor"]
        raise Failed(mistake.say(what=_FACTORISATIONS[others[0]]), mistake.code)
    _, residual = _call("logdet_fwd", logdet.fwd, A)
    backward = _call("logdet_bwd", lambda: _program(logdet.bwd, residual, g))
    again = [p for p in backward if p in _FACTORISATIONS]
    if again:
        mistake = exercise.mistakes["factors-again"]
        raise Failed(mistake.say(what=_FACTORISATIONS[again[0]]), mistake.code)


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
    requires=[Require("reuses the saved factor", _logdet_rule_uses_the_factor, always=True)],
    mistakes={
        "overflow": "The determinant overflows (or underflows) float32 for this matrix: add "
                    "the logs of the Cholesky factor's diagonal, 2 sum(log L_ii), instead of "
                    "taking the log of det(A).",
        "not-inverted": "This is g A: the gradient of log det A is A^-1, from the saved "
                        "factor by cho_solve((L, True), I).",
        "no-factor": "logdet_fwd must save the Cholesky factor L = jnp.linalg.cholesky(A) as "
                     "its residual, so that the backward pass reuses it instead of factoring "
                     "A again.",
        "value-not-from-factor": "logdet_fwd computes {what}: the value must come from the "
                                 "Cholesky factor alone, as 2 sum(log L_ii).",
        "factors-again": "logdet_bwd computes {what}: the backward pass must reuse the saved "
                         "factor L (two triangular solves, as cho_solve does) and factor or "
                         "invert nothing again.",
    })
