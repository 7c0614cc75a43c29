"""Assignment 04: implicit differentiation (shipped to its students only).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from .calls import Case, _call, _close, _compare
from .evidence import Failed, _oracle, _probing
from .exercise import (
    Exercise,
    Require,
    _array,
    _compare_tree,
    _one_cotangent,
    _rule_helpers_at_module_level,
    _run,
    _student_globals,
    _swap_global,
    _to64,
)
from .mechanisms import _equations, _program, _require_small_intermediates


def _newton_sqrt64(x, steps=10):
    """y and dy/dx after ``steps`` Newton steps y <- (y + x / y) / 2 from y = 1, in float64."""
    x = np.asarray(x, np.float64)
    y, dy = np.ones_like(x), np.zeros_like(x)
    for _ in range(steps):
        y, dy = 0.5 * (y + x / y), 0.5 * (dy + 1 / y - x * dy / y**2)
    return y, dy


def _fixed_point_sqrt_case(exercise, fixed_point_sqrt, case, jit):
    namespace = _student_globals(fixed_point_sqrt)
    mistakes = exercise.mistakes
    x, g = case.args

    def references():
        y64, unrolled64 = _newton_sqrt64(x)
        dtype = x.dtype
        x64, g64 = np.asarray(x, np.float64), np.asarray(g, np.float64)
        return (y64.astype(dtype), np.sqrt(x64).astype(dtype), (g64 * 0.5 / y64).astype(dtype),
                [((g64 * unrolled64).astype(dtype), mistakes["unrolled"]),
                 ((g64 * 0.5 / np.sqrt(x64)).astype(dtype), mistakes["exact-root-in-rule"]),
                 ((g64 * 0.5 / x64).astype(dtype), mistakes["x-saved"])])

    y, root, expected, wrong_rules = _oracle(references, parts=4)
    value = _run("fixed_point_sqrt", fixed_point_sqrt, (x,), jit)
    _compare("fixed_point_sqrt", case, value, y, suspects=[(root, mistakes["exact-roots"])])
    fwd_value, residual = _call("_fwd", namespace["_fwd"], x)
    _compare("the value returned by _fwd", case, fwd_value, y)
    returned = _call("_bwd", namespace["_bwd"], residual, g)
    cotangent = _one_cotangent(returned, mistakes["bwd-not-a-tuple"])
    _compare("_bwd(residual, g)", case, cotangent, expected, suspects=wrong_rules)
    pulled = _run("fixed_point_sqrt",
                  lambda x, g: jax.vjp(fixed_point_sqrt, x)[1](g)[0], (x, g), jit)
    _compare("the VJP of fixed_point_sqrt", case, pulled, expected, suspects=wrong_rules)


check_fixed_point_sqrt = Exercise(
    "fixed_point_sqrt", "Reference exercise 002: 10 Newton steps from ones, with the implicit "
    "rule g * 0.5 / y.",
    cases=lambda: [Case("x = [4, 9, 0.25, 1e6]", _array([4.0, 9.0, 0.25, 1e6]),
                        _array([1.0, 2.0, -1.0, 0.5]))],
    check_case=_fixed_point_sqrt_case, rule="vjp", structure=[_rule_helpers_at_module_level],
    mistakes={
        "exact-roots": "These are exact square roots: the forward pass must be exactly 10 "
                       "Newton steps from ones, which has not converged yet for the largest "
                       "entries.",
        "bwd-not-a-tuple": "_bwd must return a tuple holding one cotangent, (g * 0.5 / y,): "
                           "mind the trailing comma.",
        "unrolled": "This is the derivative of the unrolled Newton steps, not the implicit "
                    "rule.",
        "exact-root-in-rule": "This is 0.5 / sqrt(x): the rule must use the saved y, the "
                              "forward pass's output.",
        "x-saved": "This is 0.5 / x: save y as the residual, not x.",
    })


def _fixed_point64(f, a, x, steps=20_000):
    """x = f(a, x) solved by plain iteration in float64 (the checks' own reference)."""
    step = jax.jit(lambda a, x: jax.lax.fori_loop(0, steps, lambda _, x: f(a, x), x))
    return step(a, x)


def _implicit_vjps64(f, a, x_star, v):
    """v^T dx*/da by the implicit function theorem, with a dense solve (small problems only),
    and two wrong versions of it: without the solve, and with an untransposed solve. The
    Jacobian and the pullback are compiled whole, not operation by operation."""
    n = x_star.size
    jacobian = jax.jit(jax.jacobian(lambda x, a: f(a, x)))(x_star, a)
    I_minus_A = np.eye(n) - np.asarray(jacobian).reshape(n, n)
    pulled = jax.jit(lambda a, w: jax.vjp(lambda a: f(a, x_star), a)[1](
        w.reshape(x_star.shape))[0])
    v = np.asarray(v).reshape(n)
    return tuple(pulled(a, jax.device_put(w)) for w in (
        np.linalg.solve(I_minus_A.T, v), v, np.linalg.solve(I_minus_A, v)))


def _newton_update(a, x):
    return 0.5 * (x + a / x)


def _visible_fixed_point_cases():
    M = _array([[0.3, -0.2, 0.1], [0.25, 0.1, -0.3], [0.0, 0.4, 0.2]])
    a = _array([2.0, 0.5, 9.0])
    with jax.enable_x64(True):
        solution = np.asarray(_fixed_point64(lambda a, x: M @ x + a, _to64(a), _to64(a)),
                              np.float32)
    return [
        Case("Newton's square root, x_guess = a", _newton_update, a, a,
             _array([1.0, -2.0, 3.0])),
        Case("x = M x + a, M not symmetric", lambda a, x: M @ x + a, a, _array(np.zeros(3)),
             _array([1.0, 0.5, -1.0])),
        Case("x = M x + a, started at the solution (unrolled differentiation fails here)",
             lambda a, x: M @ x + a, a, _array(solution), _array([1.0, 0.5, -1.0])),
        Case("a pytree a = {'scale', 'shift'} in x = scale * cos(x) + shift",
             lambda a, x: a["scale"] * jnp.cos(x) + a["shift"],
             {"scale": _array(0.5), "shift": _array([0.0, 1.0])}, _array(np.zeros(2)),
             _array([1.0, 2.0])),
    ]


def _fixed_point_case(exercise, fixed_point, case, jit):
    f, a, x_guess, v = case.args
    mistakes = exercise.mistakes

    def references():
        with jax.enable_x64(True):
            a64, v64 = _to64(a), _to64(v)
            x64 = _fixed_point64(f, a64, _to64(x_guess))
            return (x64, *_implicit_vjps64(f, a64, x64, v64))

    x64, a_bar64, no_solve64, not_transposed64 = _oracle(references, parts=4)
    dtype = x_guess.dtype

    def cast(tree):
        return jax.tree.map(lambda leaf: np.asarray(leaf).astype(dtype), tree)

    value = _run("fixed_point", lambda a, x: fixed_point(f, a, x), (a, x_guess), jit)
    _compare("fixed_point", case, value, cast(x64))
    a_bar, x_bar = _run(
        "fixed_point",
        lambda a, x, v: jax.vjp(lambda a, x: fixed_point(f, a, x), a, x)[1](v),
        (a, x_guess, v), jit)
    hints = []
    for wrong, mistake in ((no_solve64, mistakes["no-solve"]),
                           (not_transposed64, mistakes["untransposed"])):
        if not _probing() and jax.tree.structure(a_bar) == jax.tree.structure(wrong) and all(
                _close(x, y) for x, y in zip(jax.tree.leaves(a_bar), jax.tree.leaves(cast(wrong)))):
            hints.append(mistake)
    if not hints and "started at the solution" in case.label:
        hints.append(mistakes["unrolled"])
    _compare_tree("the VJP of fixed_point (cotangent of a)", case, a_bar, cast(a_bar64),
                  hints=hints)
    _compare("the VJP of fixed_point (cotangent of x_guess)", case, x_bar,
             np.zeros(x_guess.shape, dtype), hints=[mistakes["guess-gradient"]])


def _while_loops_both_ways(exercise, fixed_point, cases, jit):
    """A while_loop in the forward pass, and another in the backward pass (the adjoint solve)."""
    for case in cases:
        f, a, x_guess, v = case.args
        forward = _call("fixed_point", lambda: _program(lambda a: fixed_point(f, a, x_guess), a))
        if "while" not in forward:
            raise Failed(exercise.mistakes["fixed-steps"], exercise.mistakes["fixed-steps"].code)
        both = _call("fixed_point", lambda: _program(
            lambda a: jax.vjp(lambda a: fixed_point(f, a, x_guess), a)[1](v), a))
        if both.count("while") < 2:
            raise Failed(exercise.mistakes["dense-adjoint"],
                         exercise.mistakes["dense-adjoint"].code)


def _stopping_rule(exercise, fixed_point, cases, jit):
    """The loop stops when ``converged`` says so, or after ``MAX_ITERATIONS`` evaluations of f."""
    a, x_guess = _array([1.0, 2.0]), _array(np.zeros(2))
    mistakes = exercise.mistakes

    def halfway(a, x):  # converges slowly: x_k = 2 a (1 - 2**-k) from zeros
        return 0.5 * x + a

    def after(steps):
        return np.asarray(2 * a * (1 - 0.5 ** steps), np.float32)

    limit = 5
    with _swap_global(fixed_point, "MAX_ITERATIONS", limit):
        capped = _run("fixed_point", lambda a, x: fixed_point(halfway, a, x), (a, x_guess), jit)
    case = Case(f"x = x / 2 + a with MAX_ITERATIONS = {limit}", halfway, a, x_guess)
    _compare("fixed_point", case, capped, after(limit), suspects=[
        (after(60), mistakes["no-cap"]), (after(limit + 1), mistakes["one-too-many"]),
        (after(limit - 1), mistakes["one-too-few"])])

    def at_once(x_prev, x):
        return jnp.array(True)

    with _swap_global(fixed_point, "converged", at_once):
        stopped = _run("fixed_point", lambda a, x: fixed_point(halfway, a, x), (a, x_guess), jit)
    case = Case("x = x / 2 + a with a converged(x_prev, x) that is always True", halfway, a,
                x_guess)
    _compare("fixed_point", case, stopped, after(1), hints=[mistakes["own-test"]])


def _second_derivative(exercise, fixed_point, cases, jit):
    a = _array([0.5, 2.0, 9.0], cases[0].args[2].dtype)
    case = Case(f"the second derivative of Newton's square root at a = {np.asarray(a)}", a)
    hint = exercise.mistakes["undifferentiable-bwd"]

    def newton_sqrt(a):
        return fixed_point(_newton_update, a, a)

    try:
        second = _run("fixed_point", jax.grad(lambda a: jnp.sum(jax.grad(
            lambda a: jnp.sum(newton_sqrt(a)))(a))), (a,), jit)
    except AssertionError as error:
        if "leaked a traced value" in str(error):  # the adjoint map closes over x_star's VJP
            mistake = exercise.mistakes["closure"]
            raise Failed(mistake, mistake.code) from None
        raise Failed(f"grad(grad(newton_sqrt)) failed. {error} {hint}", hint.code) from None
    expected = (-0.25 * np.asarray(a, np.float64) ** -1.5).astype(a.dtype)
    _compare("grad(grad(newton_sqrt))", case, second, expected, hints=[hint])


check_fixed_point = Exercise(
    "fixed_point", "x* = f(a, x*) by lax.while_loop; a custom_vjp whose bwd solves the adjoint "
    "fixed point with fixed_point itself.",
    cases=_visible_fixed_point_cases, check_case=_fixed_point_case, rule="vjp",
    nondiff_argnums=((0,), ": f is a function, not an array to differentiate."),
    requires=[Require("iterates with while loops", _while_loops_both_ways, first=True),
              Require("stops as the statement says", _stopping_rule),
              Require("has a second derivative", _second_derivative, always=True)],
    mistakes={
        "no-solve": "This is v^T (df/da) alone: the backward pass must first solve the "
                    "adjoint fixed point w = v + w^T (df/dx).",
        "untransposed": "The Jacobian df/dx is applied untransposed: the adjoint iteration "
                        "needs w -> v + vjp_x(w), a VJP, not a JVP.",
        "unrolled": "With x_guess at the solution the loop stops at once, so only an implicit "
                    "rule gets this right: do not differentiate the iterations.",
        "guess-gradient": "The solution does not depend on the initial guess.",
        "fixed-steps": "fixed_point must iterate with jax.lax.while_loop until "
                       "converged(x_prev, x), not a fixed number of steps.",
        "dense-adjoint": "fixed_point_bwd must find w = v + A^T w by iterating, with "
                         "fixed_point itself: its backward pass runs no loop, so it solves the "
                         "adjoint equation some other way (a dense solve forms the Jacobian A, "
                         "which implicit layers exist to avoid).",
        "no-cap": "It ran until converged: the loop must also stop once the iteration count "
                  "reaches MAX_ITERATIONS (a diverging iteration never converges).",
        "one-too-many": "One evaluation of f too many: the loop starts from (1, x_guess, "
                        "f(a, x_guess)) and continues while iteration < MAX_ITERATIONS.",
        "one-too-few": "One evaluation of f too few: the loop starts from (1, x_guess, "
                       "f(a, x_guess)) and continues while iteration < MAX_ITERATIONS.",
        "own-test": "Stop with the notebook's converged(x_prev, x), not a test of your own.",
        "undifferentiable-bwd": "The backward pass is differentiated too: solve the adjoint "
                                "fixed point by calling fixed_point itself (lax.while_loop "
                                "cannot be reverse-differentiated).",
        "closure": "grad(grad(newton_sqrt)) failed: fixed_point leaked a traced value. In "
                   "fixed_point_bwd, the map handed to fixed_point must get what it needs (a, "
                   "x_star, v) through its parameters, e.g. fixed_point(adjoint, (a, x_star, "
                   "v), v), and call jax.vjp inside: a closure over a VJP function made "
                   "outside leaks its tracers when the rule is differentiated (or use "
                   "jax.closure_convert).",
    })


def _custom_rule_sources(fn, *args):
    """Where the functions with custom rules that ``fn``'s program calls were defined."""
    sources = []
    for eqn in _equations(fn, *args):
        if eqn.primitive.name in ("custom_jvp_call", "custom_vjp_call"):
            call = eqn.params.get("call_jaxpr")
            debug = getattr(getattr(call, "jaxpr", call), "debug_info", None)
            sources.append(str(getattr(debug, "func_src_info", "")))
    return sources


def _kepler64(M, e):
    """E with E - e sin E = M, by bisection on [M - e, M + e] in float64."""
    M, e = np.broadcast_arrays(np.asarray(M, np.float64), np.asarray(e, np.float64))
    lo, hi = M - e, M + e
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        above = mid - e * np.sin(mid) - M > 0
        lo, hi = np.where(above, lo, mid), np.where(above, mid, hi)
    return 0.5 * (lo + hi)


def _kepler_case(exercise, kepler, case, jit):
    M, e = case.args
    sources = _call("kepler", lambda: _custom_rule_sources(kepler, M, e))
    if not any(s.startswith("_custom_root ") and "control_flow/solves.py" in s for s in sources):
        raise Failed(exercise.mistakes["no-custom-root"], exercise.mistakes["no-custom-root"].code)

    def references():
        E64 = _kepler64(M, e)
        slope = 1.0 - np.asarray(e, np.float64) * np.cos(E64)
        dM, de = 1.0 / slope, np.sin(E64) / slope
        return E64, slope, dM, de, -np.asarray(e, np.float64) * np.sin(E64) / slope**3

    E64, slope, dM, de, d2M = _oracle(references, parts=5)
    dtype = M.dtype
    value = _run("kepler", kepler, (M, e), jit)
    _compare("kepler", case, value, E64.astype(dtype), hints=[
        "Run Newton's method until it converges (check the number of steps and the sign of "
        "the update)."])
    grads = _run("kepler", jax.grad(lambda M, e: jnp.sum(kepler(M, e)), (0, 1)), (M, e), jit)
    _compare("dE/dM", case, grads[0], dM.astype(dtype),
             suspects=[(np.asarray(slope).astype(dtype), exercise.mistakes["tangent-solve"])])
    _compare("dE/de", case, grads[1], de.astype(dtype))
    t_M, t_e = _array(np.full(M.shape, 0.5), M.dtype), _array(np.full(e.shape, -2.0), e.dtype)
    tangent = _run("kepler", lambda M, e: jax.jvp(kepler, (M, e), (t_M, t_e))[1], (M, e), jit)
    _compare("the JVP of kepler", case, tangent, (0.5 * dM - 2.0 * de).astype(dtype))
    second = _run("kepler", jax.grad(lambda M, e: jnp.sum(
        jax.grad(lambda M: jnp.sum(kepler(M, e)))(M))), (M, e), jit)
    _compare("d2E/dM2", case, second, d2M.astype(dtype))


check_kepler = Exercise(
    "kepler", "E(M, e) solving E - e sin E = M elementwise with lax.custom_root; derivatives in "
    "M and e.",
    cases=lambda: [Case("M = [0.5, 1, 2, 3], e = [0.1, 0.5, 0.9, 0.3]",
                        _array([0.5, 1.0, 2.0, 3.0]), _array([0.1, 0.5, 0.9, 0.3])),
                   Case("e = 0.95 near perihelion, M = [0.01, 0.05, 0.2, -0.1]",
                        _array([0.01, 0.05, 0.2, -0.1]), _array([0.95] * 4))],
    check_case=_kepler_case,
    mistakes={
        "no-custom-root": "kepler must solve the equation with jax.lax.custom_root.",
        "tangent-solve": "tangent_solve must divide by the derivative, y / g(1), not multiply "
                         "by it.",
    })


def _reference_fixed_point(rule_scale):
    """A fixed_point(f, a, x_guess) for the ridge checks, whose derivative is multiplied by
    ``rule_scale``. It is not an answer to the fixed_point exercise: lax.custom_root with a
    dense tangent solve, no custom_vjp."""

    # Compiled whole: eagerly, custom_root compiles each of its operations apart, every call.
    @functools.partial(jax.jit, static_argnums=0)
    def fixed_point(f, a, x_guess):
        def iterate(residual, x0):
            def keep_going(state):
                k, x_prev, x = state
                tol = 4 * jnp.finfo(x.dtype).eps * (1 + jnp.max(jnp.abs(x)))
                return (k < 100_000) & (jnp.max(jnp.abs(x - x_prev)) > tol)

            step = lambda s: (s[0] + 1, s[2], s[2] - residual(s[2]))
            return jax.lax.while_loop(keep_going, step, (0, x0, x0 - residual(x0)))[2]

        def dense_solve(linear, y):
            return jnp.linalg.solve(jax.jacfwd(linear)(y), y)

        # Like a custom_vjp fixed_point (and unlike custom_root), refuse to differentiate a
        # value that f closes over instead of taking it through a.
        converted, hoisted = jax.closure_convert(f, a, x_guess)
        hoisted = [_refuse_closure_tangent(value) for value in hoisted]
        x = jax.lax.custom_root(lambda x: x - converted(a, x, *hoisted), x_guess, iterate,
                                dense_solve)
        return jax.lax.stop_gradient(x) + rule_scale * (x - jax.lax.stop_gradient(x))

    return fixed_point


@jax.custom_jvp
def _refuse_closure_tangent(value):
    return value


@functools.partial(_refuse_closure_tangent.defjvp, symbolic_zeros=True)
def _refuse_closure_tangent_jvp(primals, tangents):
    if not isinstance(tangents[0], jax.custom_derivatives.SymbolicZero):
        mistake = check_ridge_hypergradient.mistakes["closure"]
        raise Failed(mistake, mistake.code)
    return primals[0], tangents[0]


def _ridge64(log_lam, X, y, X_val, y_val):
    """Validation loss of the ridge solution and its derivative in log(lambda), in closed form."""
    X, y, X_val, y_val = (np.asarray(t, np.float64) for t in (X, y, X_val, y_val))
    lam, (n, d) = np.exp(np.float64(log_lam)), X.shape
    H = X.T @ X / n + lam * np.eye(d)
    w = np.linalg.solve(H, X.T @ y / n)
    residual = X_val @ w - y_val
    loss = residual @ residual / (2 * len(y_val))
    dloss_dw = X_val.T @ residual / len(y_val)
    return loss, lam * dloss_dw @ -np.linalg.solve(H, w)


def _ridge_data(seed, n, d, n_val, dtype=jnp.float32):
    """Training and validation data y = X w + noise, drawn by NumPy: no program to compile."""
    rng = np.random.default_rng(seed)
    w_true = rng.standard_normal(d)
    X, X_val = rng.standard_normal((n, d)), rng.standard_normal((n_val, d))
    noise = 0.5 * rng.standard_normal(n + n_val)
    return tuple(_array(t, dtype)
                 for t in (X, X @ w_true + noise[:n], X_val, X_val @ w_true + noise[n:]))


def _ridge_case(exercise, ridge_hypergradient, case, jit):
    """The checks put their own correct fixed_point in the notebook while they run, so a
    mistake in the fixed_point exercise does not cost points here too."""
    log_lam = case.args[0]
    loss64, hypergradient64 = _oracle(lambda: _ridge64(*case.args), parts=2)
    dtype = log_lam.dtype
    with _swap_global(ridge_hypergradient, "fixed_point", _reference_fixed_point(1.0)):
        loss, hypergradient = _run("ridge_hypergradient", ridge_hypergradient, case.args, jit)
    _compare("the validation loss of ridge_hypergradient", case, loss,
             np.asarray(loss64, dtype), factors=True)
    _compare("the hypergradient of ridge_hypergradient", case, hypergradient,
             np.asarray(hypergradient64, dtype), suspects=[
                 (np.asarray(hypergradient64 / np.exp(np.float64(log_lam)), dtype),
                  exercise.mistakes["in-lambda"])])


def _ridge_through_fixed_point(exercise, ridge_hypergradient, cases, jit):
    """With fixed_point's rule doubled, the hypergradient doubles."""
    for case in cases:
        _, hypergradient64 = _oracle(lambda: _ridge64(*case.args), parts=2)
        with _swap_global(ridge_hypergradient, "fixed_point", _reference_fixed_point(2.0)):
            _, hypergradient = _run("ridge_hypergradient", ridge_hypergradient, case.args, jit)
        doubled = np.asarray(2 * hypergradient64, case.args[0].dtype)
        if not _probing() and not _close(hypergradient, doubled):
            mistake = exercise.mistakes["not-through-fixed-point"]
            raise Failed(mistake, mistake.code)


check_ridge_hypergradient = Exercise(
    "ridge_hypergradient", "(validation loss, its derivative in log lambda), with w* found by "
    "fixed_point.",
    cases=lambda: [Case("log lambda = -1, 20 training and 10 validation examples, 3 features",
                        jnp.array(-1.0), *_ridge_data(0, 20, 3, 10))],
    check_case=_ridge_case,
    requires=[Require("its gradient comes from fixed_point", _ridge_through_fixed_point)],
    mistakes={
        "in-lambda": "This is the derivative in lambda: differentiate in log lambda.",
        "not-through-fixed-point": "ridge_hypergradient's gradient does not come from "
                                   "fixed_point's implicit rule: when the checks double that "
                                   "rule, your hypergradient should double. Find w* with "
                                   "fixed_point (called by that name) and differentiate "
                                   "through it; no closed-form solve, no finite differences.",
        "closure": "The function you hand to fixed_point closes over a value being "
                   "differentiated (log lambda, or lambda computed from it): fixed_point's rule "
                   "differentiates only its parameters a. Pass log lambda in a, e.g. "
                   "fixed_point(step, (log_lam, X, y), w0), and compute lambda inside the step.",
    })


def _tridiagonal_operator(theta, v):
    """A v for A = diag(theta) + the second-difference matrix (2 on the diagonal, -1 beside
    it): symmetric positive definite for positive theta."""
    zero = jnp.zeros(1, v.dtype)
    return (theta + 2.0) * v - jnp.concatenate([zero, v[:-1]]) - jnp.concatenate([v[1:], zero])


def _dense_solution64(theta, b, weights):
    """x = A^-1 b, and the gradients of sum(weights * x) in theta and b, in float64 by NumPy.
    A is symmetric, so the adjoint is a = A^-1 weights; then d/db = a and, as dA/dtheta_i is
    e_i e_i^T, d/dtheta_i = -a_i x_i."""
    theta, b, weights = (np.asarray(t, np.float64) for t in (theta, b, weights))
    n = b.shape[0]
    A = np.diag(theta + 2.0) - np.eye(n, k=1) - np.eye(n, k=-1)
    x, adjoint = np.linalg.solve(A, b), np.linalg.solve(A, weights)
    return x, (-adjoint * x, adjoint)


def _cg_case(exercise, cg_solve, case, jit):
    theta, b, num_iters = case.args
    weights = _array(np.linspace(1.0, 2.0, b.shape[0]), b.dtype)
    x64, grads64 = _oracle(lambda: _dense_solution64(theta, b, weights), parts=2)

    def solve(theta, b):
        return cg_solve(lambda v: _tridiagonal_operator(theta, v), b, num_iters)

    x = _run("cg_solve", solve, (theta, b), jit)
    _compare("cg_solve", case, x, np.asarray(x64).astype(b.dtype))
    grads = _run("cg_solve", jax.grad(lambda t, b: jnp.sum(weights * solve(t, b)), (0, 1)),
                 (theta, b), jit)
    if _probing():
        return
    for label, a, e in zip(("theta (closed over by matvec)", "b"), grads, grads64):
        _compare(f"the gradient of sum(w * cg_solve(...)) in {label}", case, a,
                 np.asarray(e).astype(b.dtype))


def _cg_uses_linear_solve(exercise, cg_solve, cases, jit):
    n = 300
    theta, b = _array(np.ones(n)), _array(np.ones(n))

    def gradient(theta, b):
        return jax.grad(lambda t: jnp.sum(cg_solve(
            lambda v: _tridiagonal_operator(t, v), b, 5)))(theta)

    program = _call("cg_solve", lambda: _program(gradient, theta, b))
    if "custom_linear_solve" not in program:
        raise Failed(exercise.mistakes["no-linear-solve"],
                     exercise.mistakes["no-linear-solve"].code)
    _require_small_intermediates("cg_solve", gradient, (theta, b), n * n,
                                 f"for n = {n}: it forms the matrix A, which the statement "
                                 "forbids (only matvec may touch it).", "dense-matrix")


check_cg_solve = Exercise(
    "cg_solve", "cg_solve(matvec, b, num_iters): conjugate gradients of your own inside "
    "lax.custom_linear_solve(symmetric=True), differentiated by an adjoint solve.",
    cases=lambda: [Case("n = 5, theta = 1", _array(np.ones(5)), _array([1.0, -1.0, 2.0, 0.0, 0.5]),
                        10),
                   Case("n = 8, theta from 0.5 to 3", _array(np.linspace(0.5, 3.0, 8)),
                        _array(np.linspace(-1.0, 1.0, 8)), 20)],
    check_case=_cg_case, forbids=("scipy.sparse.linalg.cg",),
    requires=[Require("solves the adjoint by custom_linear_solve", _cg_uses_linear_solve,
                      first=True)],
    mistakes={
        "no-linear-solve": "cg_solve's gradient does not go through jax.lax.custom_linear_solve: "
                           "differentiating CG's iterations is slow, memory-hungry and "
                           "inaccurate before convergence. Wrap your CG in "
                           "custom_linear_solve(matvec, b, solve, symmetric=True).",
    })
