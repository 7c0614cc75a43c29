"""Assignment 06: autodiff meets numerics (shipped to its students only).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from .calls import _DERIVATIVES, _JACOBIANS, Case, _call, _compare, _describe
from .evidence import Failed, _code, _oracle, _probing
from .exercise import Exercise, Require, _array, _normal, _run
from .mechanisms import (
    _equations,
    _program,
    _referenced_objects,
    _require_no_forbidden_reference,
    _require_vectorized,
)


def _finite(name, case, value, mistake):
    """``value`` has no nan or inf, else ``mistake`` (a named one, its ``{name}`` and ``{case}``
    filled in)."""
    if not _probing() and not np.all(np.isfinite(np.asarray(value))):
        raise Failed(mistake.format(name=name, case=case.label), mistake.code)


def _rule_functions(answer):
    """The answer and, for a custom rule, the functions it is made of (``fun``, ``fwd``,
    ``bwd``, ``jvp``)."""
    parts = [answer] + [getattr(answer, name, None) for name in ("fun", "fwd", "bwd", "jvp")]
    return [part for part in parts if callable(part)]


def _never_references(path=None, original=None):
    """A ``structure`` requirement: neither the answer nor its rule's functions name or reach
    ``original`` (the function of jax at ``path``) or the exercise's forbidden functions, even
    through an alias; calling them is refused by ``forbids``."""
    def check(exercise, answer):
        for part in _rule_functions(answer):
            _require_no_forbidden_reference(exercise.name, part, exercise.forbids)
            if path and any(value is original for value in _referenced_objects(part)):
                raise Failed(f"{exercise.name} uses jax.{path}, which this exercise forbids.",
                             f"{exercise.name}/forbidden-call")
    return check


def _symmetric(seed, n, eigenvalues=None, dtype=jnp.float32):
    """A symmetric n x n matrix: random, or Q diag(eigenvalues) Q^T for a random rotation Q."""
    rng = np.random.default_rng(seed)
    if eigenvalues is None:
        M = rng.standard_normal((n, n))
        return _array((M + M.T) / 2, dtype)
    Q = np.linalg.qr(rng.standard_normal((n, n)))[0]
    A = (Q * np.asarray(eigenvalues, np.float64)) @ Q.T
    return _array((A + A.T) / 2, dtype)


# ---------------------------------------------------------------------------------------------
# Exercise 1: sym_exp, a matrix function with a Daleckii-Krein rule

@jax.jit
def _expm_and_vjp(A, G):
    """The matrix exponential and its VJP by jax.scipy.linalg.expm (Pade, scaling and squaring,
    no eigenvectors): the oracle of sym_exp, which the exercise forbids."""
    value, pullback = jax.vjp(jax.scipy.linalg.expm, A)
    return value, pullback(G)[0]


def _sym_exp_cases():
    G = _symmetric(1, 3)
    return [Case("a random symmetric 3 x 3 matrix", _symmetric(2, 3), G),
            Case("0.5 times the 3 x 3 identity (every eigenvalue repeated)", 0.5 * jnp.eye(3), G),
            Case("eigenvalues 1, 1, 2 (repeated) in a random basis",
                 _symmetric(6, 3, [1.0, 1.0, 2.0]), G)]


def _sym_exp_case(exercise, sym_exp, case, jit):
    A, G = case.args
    value, pulled = _oracle(lambda: _expm_and_vjp(A, G), parts=2)
    vjp = jax.vjp  # the checks' own: the exercise forbids it to the answer only
    out, cotangent = _run("sym_exp", lambda A, G: (sym_exp(A), vjp(sym_exp, A)[1](G)[0]), (A, G),
                          jit)
    _compare("sym_exp", case, out, value)
    _finite("the VJP of sym_exp", case, cotangent, exercise.mistakes["not-finite"])
    repeated = "repeated" in case.label
    _compare("the VJP of sym_exp", case, cotangent, pulled,
             hints=[exercise.mistakes["ties"]] if repeated else [exercise.mistakes["formula"]])


check_sym_exp = Exercise(
    "sym_exp", "sym_exp(A) = V diag(exp(w)) V^T for a symmetric A = V diag(w) V^T, with a "
    "custom_vjp rule by divided differences that stays finite at repeated eigenvalues.",
    cases=_sym_exp_cases, check_case=_sym_exp_case, rule="vjp",
    forbids=_DERIVATIVES + _JACOBIANS + ("scipy.linalg.expm",),
    structure=[_never_references("scipy.linalg.expm", jax.scipy.linalg.expm)],
    mistakes={
        "not-finite": "{name} has nan or inf for {case}: where two eigenvalues are equal (and "
                      "always on the diagonal, i = j), the divided difference "
                      "(exp(w_i) - exp(w_j)) / (w_i - w_j) is 0 / 0 (differentiating through "
                      "jnp.linalg.eigh gives the same): use its limit exp(w_i) there.",
        "ties": "At repeated eigenvalues eigh returns values that differ by rounding (1 and "
                "1.0000001 in float32), and (exp(a) - exp(b)) / (a - b) of two such values is "
                "mostly rounding error: treat eigenvalues closer than a small relative "
                "tolerance as tied and use exp at their mean, or compute the divided "
                "difference as exp(b) expm1(a - b) / (a - b).",
        "formula": "The rule: with K_ij = (exp(w_i) - exp(w_j)) / (w_i - w_j) (exp(w_i) where "
                   "w_i = w_j), the cotangent of A is V (K * (V^T G V)) V^T.",
    })


# ---------------------------------------------------------------------------------------------
# Exercise 2: spd_solve, one Cholesky factor and symbolic zeros

def _spd(seed, n, condition=10.0, dtype=jnp.float32):
    """A symmetric positive definite n x n matrix with eigenvalues from 1 to ``condition``."""
    return _symmetric(seed, n, np.geomspace(1.0, condition, n), dtype)


def _spd_solve_cases():
    return [Case("a 4 x 4 matrix and b of shape (4,)", _spd(20, 4), _normal(21, (4,)),
                 _normal(22, (4,))),
            Case("a 3 x 3 matrix and b of shape (3, 2)", _spd(23, 3), _normal(24, (3, 2)),
                 _normal(25, (3, 2)))]


def _spd_solve_case(exercise, spd_solve, case, jit):
    A, b, g = case.args

    def references():
        A64, b64, g64 = (np.asarray(v, np.float64) for v in (A, b, g))
        x = np.linalg.solve(A64, b64)
        b_bar = np.linalg.solve(A64.T, g64)
        A_bar = -(b_bar.reshape(len(b64), -1) @ x.reshape(len(b64), -1).T)
        symmetrised = (A_bar + A_bar.T) / 2
        return tuple(v.astype(A.dtype) for v in (x, A_bar, b_bar, symmetrised))

    x, A_bar, b_bar, symmetrised = _oracle(references, parts=4)
    vjp = jax.vjp  # the checks' own: the exercise forbids it to the answer only

    def pullbacks(A, b, g):
        x, pullback = vjp(spd_solve, A, b)
        only_b = vjp(lambda b: spd_solve(A, b), b)[1](g)[0]
        only_A = vjp(lambda A: spd_solve(A, b), A)[1](g)[0]
        return x, pullback(g), only_b, only_A

    out, both, only_b, only_A = _run("spd_solve", pullbacks, (A, b, g), jit)
    _compare("spd_solve", case, out, x)
    if _probing():
        return
    if not (isinstance(both, tuple) and len(both) == 2):
        raise Failed(f"The VJP of spd_solve returned {_describe(both)}; expected a tuple of "
                     "two cotangents, of A and of b.", _code("wrong-structure"))
    symmetric = [(symmetrised, exercise.mistakes["symmetrised"])]
    _compare("the cotangent of A", case, both[0], A_bar, suspects=symmetric,
             hints=[exercise.mistakes["formula"]])
    _compare("the cotangent of b", case, both[1], b_bar, hints=[exercise.mistakes["formula"]])
    _compare("the cotangent of b when A is not differentiated", case, only_b, b_bar)
    _compare("the cotangent of A when b is not differentiated", case, only_A, A_bar,
             suspects=symmetric)


def _shaped_outputs(fn, args, shape, primitives=None):
    """How many equations of ``fn``'s program (sub-programs included) give an array of
    ``shape``, of the given primitives (any, if None)."""
    return sum(1 for eqn in _equations(fn, *args) for var in eqn.outvars
               if tuple(getattr(var.aval, "shape", ())) == shape
               and (primitives is None or eqn.primitive.name in primitives))


def _spd_solve_factors_once(exercise, spd_solve, cases, jit):
    n = 5
    A, b, g = _spd(26, n), jnp.ones(n), jnp.ones(n)
    vjp = jax.vjp
    program = _call("spd_solve", lambda: _program(
        lambda A, b, g: vjp(spd_solve, A, b)[1](g), A, b, g))
    factorizations = {p: program.count(p) for p in ("cholesky", "lu", "eigh", "qr", "svd")}
    if factorizations["cholesky"] != 1 or sum(factorizations.values()) != 1:
        found = ", ".join(f"{count} {p}" for p, count in factorizations.items() if count)
        mistake = exercise.mistakes["factor-once"]
        raise Failed(mistake.format(found=found or "no factorization"), mistake.code)


def _spd_solve_skips_A(exercise, spd_solve, cases, jit):
    n = 5
    A, b, g = _spd(27, n), jnp.ones(n), jnp.ones(n)
    vjp = jax.vjp
    products = ("dot_general", "mul", "neg", "sub")
    forward, backward = _call("spd_solve", lambda: (
        _shaped_outputs(lambda b: vjp(lambda b: spd_solve(A, b), b)[0], (b,), (n, n), products),
        _shaped_outputs(lambda b, g: vjp(lambda b: spd_solve(A, b), b)[1](g), (b, g), (n, n),
                        products)))
    if backward > forward:
        raise Failed(exercise.mistakes["computes-A-bar"], exercise.mistakes["computes-A-bar"].code)


def _spd_solve_has_symbolic_zeros(exercise, spd_solve):
    if getattr(spd_solve, "symbolic_zeros", None) is not True:
        raise Failed(exercise.mistakes["no-symbolic-zeros"],
                     exercise.mistakes["no-symbolic-zeros"].code)


check_spd_solve = Exercise(
    "spd_solve", "spd_solve(A, b) = A^-1 b for a symmetric positive definite A, a custom_vjp "
    "with symbolic_zeros=True: one Cholesky factor for the forward and backward passes, and "
    "no cotangent of A computed when A is not differentiated.",
    cases=_spd_solve_cases, check_case=_spd_solve_case, rule="vjp",
    forbids=_DERIVATIVES + _JACOBIANS,
    structure=[_spd_solve_has_symbolic_zeros, _never_references()],
    requires=[Require("factors A once", _spd_solve_factors_once),
              Require("skips the cotangent of an unperturbed A", _spd_solve_skips_A)],
    mistakes={
        "formula": "The rule: with x = A^-1 b and a cotangent g of x, b's cotangent is "
                   "A^-1 g (A is symmetric, so the same factor solves it) and A's is "
                   "-(A^-1 g) x^T, an outer product (for b of shape (n, k), a product of "
                   "(n, k) by (k, n)).",
        "symmetrised": "This is the symmetrised cotangent (-(b_bar x^T + x b_bar^T) / 2): "
                       "return -b_bar x^T, what jnp.linalg.solve's VJP gives.",
        "factor-once": "The forward and backward passes of spd_solve together run these "
                       "factorizations: {found}; expected one Cholesky factorization, in the "
                       "forward pass, whose factor the backward pass reuses (save it as a "
                       "residual).",
        "computes-A-bar": "When only b is differentiated, spd_solve's backward pass still "
                          "computes the cotangent of A (an n x n outer product): read "
                          "A.perturbed in spd_solve_fwd, keep it in the residuals, and return "
                          "None for A when it is False.",
        "no-symbolic-zeros": "Register the rule with spd_solve.defvjp(spd_solve_fwd, "
                             "spd_solve_bwd, symbolic_zeros=True), as the statement says.",
    })


# ---------------------------------------------------------------------------------------------
# Exercise 3: adjoint_solve, the adjoint method for a fixed-step RK4 solver

def _rk4(f, y0, theta, t1, steps):
    """y(t1) of dy/dt = f(y, theta), y(0) = y0, by ``steps`` classical RK4 steps: the checks'
    own solver, the same scheme as the notebook's rk4_solve."""
    h = t1 / steps

    def step(_, y):
        k1 = f(y, theta)
        k2 = f(y + h / 2 * k1, theta)
        k3 = f(y + h / 2 * k2, theta)
        k4 = f(y + h * k3, theta)
        return y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)

    return jax.lax.fori_loop(0, steps, step, y0)


def _pendulum(y, theta):
    return jnp.stack([y[1], -theta[0] * jnp.sin(y[0]) - theta[1] * y[1]])


def _adjoint_cases():
    return [
        Case("a damped pendulum, theta = [2, 0.3], t1 = 2, 16 steps", _pendulum,
             jnp.array([1.0, 0.0]), jnp.array([2.0, 0.3]), 2.0, 16, jnp.array([1.0, -0.5])),
    ]


def _discrete_gradient(f, y0, theta, t1, steps, w):
    """y(t1) and the gradient of w . y(t1) in (y0, theta) by differentiating the RK4 steps, in
    float64, cast to the inputs' dtype."""
    @jax.jit
    def value_and_gradients(y0, theta, w):
        value = _rk4(f, y0, theta, t1, steps)
        grads = jax.grad(lambda y0, theta: jnp.dot(w, _rk4(f, y0, theta, t1, steps)),
                         (0, 1))(y0, theta)
        return value, *grads

    with jax.enable_x64(True):
        results = value_and_gradients(*(jnp.asarray(v, jnp.float64) for v in (y0, theta, w)))
        return tuple(np.asarray(r).astype(y0.dtype) for r in results)


def _compare_within(name, case, actual, expected, rtol, hints=()):
    """``actual`` against ``expected`` with a tolerance of ``rtol`` times the largest expected
    entry (for results that agree only to the accuracy of a discretisation)."""
    if _probing():
        return
    array = np.asarray(actual)
    if array.shape != np.shape(expected) or array.dtype != np.asarray(expected).dtype:
        _compare(name, case, actual, expected)  # says what is wrong with the shape or dtype
    error = float(np.max(np.abs(array - expected), initial=0.0))
    scale = float(np.max(np.abs(expected), initial=0.0)) or 1.0
    if not error <= rtol * scale:
        raise Failed(f"{name} is wrong for {case.label}: values differ (largest error "
                     f"{error:.3g}, more than {rtol:g} of the largest entry). "
                     + " ".join(hints), next((h.code for h in hints), _code("wrong-values")))


def _adjoint_case(exercise, adjoint_solve, case, jit):
    f, y0, theta, t1, steps, w = case.args
    value, y0_bar, theta_bar = _oracle(
        lambda: _discrete_gradient(f, y0, theta, t1, steps, w), parts=3)
    value_and_grad = jax.value_and_grad  # the checks' own, as every call below

    def run(y0, theta, w):
        return value_and_grad(lambda y0, theta: jnp.dot(w, adjoint_solve(f, y0, theta, t1, steps)),
                              (0, 1))(y0, theta)[1] + (adjoint_solve(f, y0, theta, t1, steps),)

    # compiled even in the visible tests, whose op-by-op dispatch takes seconds
    got_y0_bar, got_theta_bar, got_value = _run("adjoint_solve", run, (y0, theta, w), True)
    _compare("adjoint_solve", case, got_value, value)
    for label, got, expected in (("y0", got_y0_bar, y0_bar), ("theta", got_theta_bar,
                                                              theta_bar)):
        _compare_within(f"the gradient of w . adjoint_solve(...) in {label}", case, got,
                        expected, 1e-3, hints=[exercise.mistakes["adjoint"]])


def _adjoint_is_integrated(exercise, adjoint_solve, cases, jit):
    """The adjoint gradient differs from the derivative of the discretisation by O(h^4): not
    zero (that would be the discretisation differentiated), and 16 times less when h halves."""
    y0, theta, w = jnp.array([1.0, 0.0]), jnp.array([2.0, 0.3]), jnp.array([1.0, -0.5])
    grad = jax.grad

    def adjoint_gradients():
        @jax.jit  # both step counts in one program: one compilation
        def gradients(y0, theta, w):
            return [jnp.concatenate(grad(
                lambda y0, theta: jnp.dot(w, adjoint_solve(_pendulum, y0, theta, 2.0, n)),
                (0, 1))(y0, theta)) for n in (32, 64)]

        with jax.enable_x64(True):
            found = gradients(*(jnp.asarray(v, jnp.float64) for v in (y0, theta, w)))
            return [np.asarray(g) for g in found]

    def discrete_gradients():
        @jax.jit
        def gradients(y0, theta, w):
            return [jnp.concatenate(jax.grad(
                lambda y0, theta: jnp.dot(w, _rk4(_pendulum, y0, theta, 2.0, n)), (0, 1))(
                    y0, theta)) for n in (32, 64)]

        with jax.enable_x64(True):
            found = gradients(*(jnp.asarray(v, jnp.float64) for v in (y0, theta, w)))
            return [np.asarray(g) for g in found]

    adjoint = _call("adjoint_solve", adjoint_gradients)
    discrete = _oracle(discrete_gradients)
    if _probing():
        return
    errors = [float(np.max(np.abs(np.asarray(a, np.float64) - d))) for a, d in zip(adjoint,
                                                                                  discrete)]
    if errors[0] <= 1e-12:
        raise Failed(exercise.mistakes["discretisation"].format(error=f"{errors[0]:.1e}"),
                     exercise.mistakes["discretisation"].code)
    ratio = errors[0] / max(errors[1], 1e-300)
    if not 8.0 <= ratio <= 32.0:
        mistake = exercise.mistakes["order"]
        raise Failed(mistake.format(error=f"{errors[0]:.2e}", ratio=f"{ratio:.1f}"),
                     mistake.code)


check_adjoint_solve = Exercise(
    "adjoint_solve", "adjoint_solve(f, y0, theta, t1, steps): y(t1) by RK4, with a custom_vjp "
    "that integrates the adjoint equations backwards in time by RK4 (the adjoint method).",
    cases=_adjoint_cases, check_case=_adjoint_case, rule="vjp",
    nondiff_argnums=((0, 3, 4), ": f, t1 and steps are not differentiated."),
    forbids=_JACOBIANS,
    requires=[Require("integrates the adjoint equations", _adjoint_is_integrated)],
    mistakes={
        "adjoint": "The adjoint method: from y(t1), a(t1) = w and theta_bar(t1) = 0, integrate "
                   "dy/dt = f(y, theta), da/dt = -(df/dy)^T a, dtheta_bar/dt = -(df/dtheta)^T "
                   "a backwards to t = 0 (RK4 steps of -h); then y0's cotangent is a(0) and "
                   "theta's is theta_bar(0).",
        "discretisation": "For a pendulum with 32 steps, in float64, adjoint_solve's gradient "
                          "equals the derivative of the RK4 steps to {error}: it differentiates "
                          "the discretisation (jax.vjp of the forward solve), where the "
                          "statement asks to integrate the adjoint equations backwards.",
        "order": "For a pendulum, in float64, adjoint_solve's gradient differs from the "
                 "derivative of the RK4 steps by {error} at 32 steps, and the difference "
                 "shrinks {ratio} times when the step is halved; integrating the adjoint "
                 "equations by RK4 makes it shrink about 16 times (fourth order). Use the same "
                 "RK4 scheme, backwards, for y, a and theta_bar together.",
    })


# ---------------------------------------------------------------------------------------------
# Exercise 4: score_surrogate, a surrogate loss whose value and gradient are the estimates

def _surrogate_cases():
    return [
        Case("3 classes, 5 samples", jnp.array([0.5, -1.0, 2.0]),
             jnp.array([0, 2, 2, 1, 0], jnp.int32), jnp.array([1.0, -2.0, 0.5, 3.0, 1.5])),
        Case("2 classes, 1 sample", jnp.array([0.0, 1.0]), jnp.array([1], jnp.int32),
             jnp.array([4.0])),
    ]


def _surrogate_case(exercise, score_surrogate, case, jit):
    logits, samples, values = case.args

    def references():
        logits64, values64 = np.asarray(logits, np.float64), np.asarray(values, np.float64)
        p = np.exp(logits64 - logits64.max())
        p /= p.sum()
        scores = np.eye(len(p))[np.asarray(samples)] - p  # d log p(s) / d logits, per sample
        estimate = (values64[:, None] * scores).mean(axis=0)
        log_p = np.log(p)[np.asarray(samples)]
        return (np.asarray(values64.mean(), logits.dtype), estimate.astype(logits.dtype),
                np.asarray((values64 * log_p).mean(), logits.dtype))

    value, estimate, reinforce_value = _oracle(references, parts=3)
    value_and_grad = jax.value_and_grad  # the checks' own

    got_value, got_grad = _run("score_surrogate", lambda logits, samples, values: value_and_grad(
        score_surrogate)(logits, samples, values), (logits, samples, values), True)
    _compare("the value of score_surrogate", case, got_value, value,
             suspects=[(reinforce_value, exercise.mistakes["log-p-value"])])
    zero = np.zeros(np.shape(logits), np.asarray(estimate).dtype)
    _compare("the gradient of score_surrogate in the logits", case, got_grad, estimate,
             suspects=[(zero, exercise.mistakes["no-gradient"])])


check_score_surrogate = Exercise(
    "score_surrogate", "score_surrogate(logits, samples, values): a surrogate whose value is "
    "mean(values) and whose gradient in the logits is the score-function estimate "
    "mean(values_i grad log p(samples_i)), by stop_gradient.",
    cases=_surrogate_cases, check_case=_surrogate_case, forbids=_DERIVATIVES + _JACOBIANS,
    mistakes={
        "log-p-value": "This is mean(values * log p(samples)), the usual surrogate: its "
                       "gradient is right, but its value is not the estimate mean(values). "
                       "Multiply the values by exp(log p - stop_gradient(log p)) instead: 1 "
                       "in value, grad log p in derivative.",
        "no-gradient": "The gradient is zero: a factor exp(log p - log p) has no derivative "
                       "left; stop the gradient of one of the two (jax.lax.stop_gradient), "
                       "not of neither or both.",
    })


# ---------------------------------------------------------------------------------------------
# Exercises 5 and 6: unbiased gradient estimators of E[f(x)], x ~ N(mu, sigma^2)

_ESTIMATOR_KEYS = 4000  # estimates per case, one per key; the mean must be within
_Z_LIMIT = 4.5  # this many standard errors of the true gradient


def _estimator_cases():
    return [
        Case("f(x) = 10 + x**2, mu = 0.5, sigma = 0.8, n = 4", lambda x: 10.0 + x**2,
             lambda mu, sigma: 10.0 + mu**2 + sigma**2, jnp.array(0.5),
             jnp.log(jnp.array(0.8)), 4),
        Case("f(x) = 1 where x > 0 (else 0), mu = 0.3, sigma = 1, n = 8",
             lambda x: jnp.where(x > 0, 1.0, 0.0).astype(x.dtype),
             lambda mu, sigma: jax.scipy.stats.norm.cdf(mu / sigma), jnp.array(0.3),
             jnp.array(0.0), 8),
    ]


def _true_gradient(expectation, mu, log_sigma):
    """d E[f] / d (mu, log sigma) from the closed form of E[f], in float64."""
    with jax.enable_x64(True):
        grads = jax.jit(jax.grad(lambda m, s: expectation(m, jnp.exp(s)), (0, 1)))(
            jnp.asarray(mu, jnp.float64), jnp.asarray(log_sigma, jnp.float64))
        return np.array([float(g) for g in grads])


def _plain_score_variance(f, mu, log_sigma, n, dtype):
    """The variance of the score-function estimate without a baseline, over as many draws as
    the checks make: what a baseline must lower."""
    rng = np.random.default_rng(0)
    eps = rng.standard_normal((_ESTIMATOR_KEYS, n))
    sigma = float(np.exp(float(log_sigma)))
    fx = np.asarray(f(jnp.asarray(float(mu) + sigma * eps, dtype)), np.float64)
    estimates = np.stack([(fx * eps / sigma).mean(axis=1), (fx * (eps**2 - 1)).mean(axis=1)])
    return estimates.var(axis=1)


@functools.cache
def _estimator_keys():
    """The keys every estimator check uses, split once per process (a program to compile)."""
    return jax.random.split(jax.random.key(2026), _ESTIMATOR_KEYS)


def _estimates(name, estimator, case, jit):
    f, _, mu, log_sigma, n = case.args
    keys = _estimator_keys()
    vmap = jax.vmap  # the checks' own

    def run(mu, log_sigma):
        return vmap(lambda key: estimator(f, key, mu, log_sigma, n))(keys)

    return _run(name, run, (mu, log_sigma), True)  # compiled: 4000 estimates at once


def _require_unbiased(exercise, case, estimates, expected):
    """The mean of the estimates within _Z_LIMIT standard errors of ``expected``."""
    if _probing():
        return
    if not (isinstance(estimates, tuple) and len(estimates) == 2):
        raise Failed(f"{exercise.name} returned {_describe(estimates)} under jax.vmap over "
                     f"{_ESTIMATOR_KEYS} keys; expected a tuple of two arrays, (d/d mu, "
                     "d/d log_sigma).", _code("wrong-structure"))
    mu = case.args[2]
    for label, values, true in zip(("mu", "log_sigma"), estimates, expected):
        values = np.asarray(values)
        if values.shape != (_ESTIMATOR_KEYS,) or values.dtype != mu.dtype:
            raise Failed(f"The estimate of d/d {label} of {exercise.name} is "
                         f"{_describe(values[0] if values.ndim else values)} for one key "
                         f"({case.label}); expected a {mu.dtype} scalar.",
                         _code("wrong-shape" if values.shape != (_ESTIMATOR_KEYS,)
                               else "wrong-dtype"))
        values = values.astype(np.float64)
        if not np.all(np.isfinite(values)):
            raise Failed(f"The estimates of d/d {label} of {exercise.name} have nan or inf for "
                         f"{case.label}.", _code("not-finite"))
        error = np.std(values) / np.sqrt(len(values))
        z = (np.mean(values) - true) / max(error, 1e-12)
        if abs(z) > _Z_LIMIT:
            mistake = exercise.mistakes["biased"]
            raise Failed(mistake.format(label=label, case=case.label, keys=_ESTIMATOR_KEYS,
                                        mean=f"{np.mean(values):.4g}", true=f"{true:.4g}",
                                        z=f"{abs(z):.1f}"), mistake.code)


def _score_case(exercise, score_gradient, case, jit):
    f, expectation, mu, log_sigma, n = case.args
    expected = _oracle(lambda: _true_gradient(expectation, mu, log_sigma))
    estimates = _estimates("score_gradient", score_gradient, case, jit)
    _require_unbiased(exercise, case, estimates, expected)
    if "10 + x**2" in case.label:
        plain = _oracle(lambda: _plain_score_variance(f, mu, log_sigma, n, mu.dtype))
        if _probing():
            return
        variances = [float(np.var(np.asarray(e, np.float64))) for e in estimates]
        for label, variance, without in zip(("mu", "log_sigma"), variances, plain):
            if not variance < 0.5 * without:
                mistake = exercise.mistakes["variance"]
                raise Failed(mistake.format(label=label, case=case.label,
                                            variance=f"{variance:.3g}",
                                            without=f"{without:.3g}"), mistake.code)


check_score_gradient = Exercise(
    "score_gradient", "score_gradient(f, key, mu, log_sigma, n): an unbiased score-function "
    "estimate of the gradient of E[f(x)], x ~ N(mu, sigma^2), in (mu, log_sigma), from n "
    "samples, with a baseline that lowers its variance.",
    cases=_estimator_cases, check_case=_score_case, forbids=_DERIVATIVES + _JACOBIANS,
    mistakes={
        "biased": "The mean of {keys} estimates of d/d {label} is {mean}, {z} standard errors "
                  "from the true {true} ({case}): the estimator is biased. A baseline must not "
                  "depend on the sample it is subtracted from: with the mean of all n samples "
                  "(the sample's own value included) the estimate is (n - 1) / n of the "
                  "truth; leave the sample out.",
        "variance": "The variance of the estimates of d/d {label} is {variance} ({case}), not "
                    "below half of {without}, the variance without a baseline: subtract a "
                    "baseline from f(x) (the mean of the other samples' values).",
    })


def _reparam_case(exercise, reparam_gradient, case, jit):
    f, expectation, mu, log_sigma, n = case.args
    expected = _oracle(lambda: _true_gradient(expectation, mu, log_sigma))
    estimates = _estimates("reparam_gradient", reparam_gradient, case, jit)
    _require_unbiased(exercise, case, estimates, expected)


def _reparam_is_pathwise(exercise, reparam_gradient, cases, jit):
    """For f(x) = 3x every pathwise estimate of d/d mu is exactly 3, whatever the samples."""
    case = Case("f(x) = 3 x, mu = 0.2, sigma = 1.5, n = 2", lambda x: 3.0 * x,
                lambda mu, sigma: 3.0 * mu, jnp.array(0.2), jnp.log(jnp.array(1.5)), 2)
    estimates = _estimates("reparam_gradient", reparam_gradient, case, False)
    if _probing():
        return
    spread = float(np.ptp(np.asarray(estimates[0], np.float64)))
    if not spread < 1e-4:
        mistake = exercise.mistakes["not-pathwise"]
        raise Failed(mistake.format(spread=f"{spread:.3g}"), mistake.code)


check_reparam_gradient = Exercise(
    "reparam_gradient", "reparam_gradient(f, key, mu, log_sigma, n): the reparameterisation "
    "(pathwise) estimate of the gradient of E[f(x)], x = mu + sigma eps, from n samples.",
    cases=lambda: _estimator_cases()[:1], check_case=_reparam_case,
    requires=[Require("is pathwise", _reparam_is_pathwise)],
    mistakes={
        "biased": "The mean of {keys} estimates of d/d {label} is {mean}, {z} standard errors "
                  "from the true {true} ({case}): the estimator is biased. Differentiate "
                  "mean(f(mu + exp(log_sigma) eps)) in (mu, log_sigma), with eps drawn "
                  "before, and independent of, the parameters.",
        "not-pathwise": "For f(x) = 3 x, the estimates of d/d mu spread over {spread}, where a "
                        "pathwise estimate is exactly 3 for every sample: differentiate f "
                        "through x = mu + sigma eps (jax.grad), instead of weighting f by a "
                        "score.",
    })


# ---------------------------------------------------------------------------------------------
# Exercise 7: laplacian, Taylor mode with jax.experimental.jet

def _bump(x):
    return jnp.exp(-jnp.sum(x**2))


def _laplacian_cases():
    return [
        Case("f(x) = sum(sin(x) x**2), x of shape (3,)", lambda x: jnp.sum(jnp.sin(x) * x**2),
             jnp.array([0.3, -0.7, 1.1])),
        Case("f(x) = exp(-|x|**2), x of shape (5,)", _bump, jnp.linspace(-0.5, 0.5, 5)),
    ]


def _laplacian_case(exercise, laplacian, case, jit):
    f, x = case.args

    def reference():
        with jax.enable_x64(True):
            trace_of_hessian = jax.jit(lambda x: jnp.trace(jax.hessian(f)(x)))
            return np.asarray(trace_of_hessian(jnp.asarray(x, jnp.float64))).astype(x.dtype)

    expected = _oracle(reference)
    # compiled even in the visible tests: the n jets, run op by op, take seconds to dispatch
    _compare("laplacian", case, _run("laplacian", lambda x: laplacian(f, x), (x,), True),
             expected, hints=[exercise.mistakes["jet"]], factors=True)


def _laplacian_is_vectorized(exercise, laplacian, cases, jit):
    _require_vectorized("laplacian", lambda x: laplacian(_bump, x), (jnp.ones(3),),
                        (jnp.ones(12),))


check_laplacian = Exercise(
    "laplacian", "laplacian(f, x) = trace of the Hessian of f: R^n -> R at x, from n "
    "second-order jets (jax.experimental.jet) batched by jax.vmap, with no Hessian.",
    cases=_laplacian_cases, check_case=_laplacian_case, forbids=_DERIVATIVES + _JACOBIANS,
    requires=[Require("is vectorized", _laplacian_is_vectorized)],
    mistakes={
        "jet": "jet(f, (x,), ((v, 0),)) returns (f(x), (d1, d2)) with d2 = v^T H v (the "
               "second derivative along v, not divided by 2 with the default "
               "factorial_scaled=True); the Laplacian is the sum of d2 over the n unit "
               "vectors v = e_i.",
    })


# ---------------------------------------------------------------------------------------------
# Exercise 8: host_solver, a custom_vmap rule that batches a host function's calls

def _counting_host_solve(calls):
    """A NumPy solve of A X = B (b a vector or B a matrix of columns) that records the shape
    of each right-hand side it is called with."""
    def host_solve(A, B):
        A, B = np.asarray(A), np.asarray(B)
        calls.append(tuple(B.shape))
        if A.ndim != 2 or B.ndim not in (1, 2) or not A.shape[0] == A.shape[1] == B.shape[0]:
            return np.zeros_like(B)  # a call the rule got wrong: the checks say how
        return np.linalg.solve(A, B).astype(B.dtype)
    return host_solve


def _host_solver_cases():
    A = _spd(50, 3)
    return [Case("one solve, A of shape (3, 3)", A, _normal(51, (3,)), "none"),
            Case("vmap over 5 right-hand sides, A shared", A, _normal(52, (5, 3)), "b"),
            Case("vmap over 4 matrices and 4 right-hand sides", jnp.stack(
                [_spd(53 + k, 3) for k in range(4)]), _normal(57, (4, 3)), "both")]


def _host_solver_case(exercise, host_solver, case, jit):
    A, b, batched = case.args
    expected = _oracle(lambda: np.linalg.solve(
        np.asarray(A, np.float64), np.asarray(b, np.float64)[..., None])[..., 0].astype(b.dtype))
    vmap = jax.vmap

    def run(A, b):
        calls = []
        solve = host_solver(_counting_host_solve(calls))
        if batched == "none":
            fn = solve
        else:
            fn = vmap(solve, in_axes=(0 if batched == "both" else None, 0))
        out = jax.block_until_ready(fn(A, b))
        return out, [list(shape) for shape in calls], type(solve).__name__

    compiled = jit
    if compiled:  # host_solver builds its function inside the compiled call
        def run_compiled(A, b):
            calls = []
            solve = host_solver(_counting_host_solve(calls))
            fn = solve if batched == "none" else vmap(
                solve, in_axes=(0 if batched == "both" else None, 0))
            out = jax.block_until_ready(jax.jit(fn)(A, b))
            return out, [list(shape) for shape in calls], type(solve).__name__
        result = _call("host_solver", run_compiled, A, b)
    else:
        result = _run("host_solver", run, (A, b), False)
    out, calls, kind = result
    if not _probing() and kind != "custom_vmap":
        raise Failed(exercise.mistakes["no-custom-vmap"].format(kind=kind),
                     exercise.mistakes["no-custom-vmap"].code)
    n = A.shape[-1]
    wrong_calls = [] if _probing() else [tuple(c) for c in calls if not c or c[0] != n]
    if wrong_calls:
        mistake = exercise.mistakes["rows"]
        raise Failed(mistake.format(shape=wrong_calls[0], n=n), mistake.code)
    _compare("host_solver's solve", case, out, expected)
    if _probing() or batched != "b":
        return
    if len(calls) != 1 or len(calls[0]) != 2:
        mistake = exercise.mistakes["one-call"]
        shapes = ", ".join(str(tuple(c)) for c in calls) or "none"
        raise Failed(mistake.format(k=b.shape[0], calls=len(calls), shapes=shapes),
                     mistake.code)


check_host_solver = Exercise(
    "host_solver", "host_solver(host_solve) returns solve(A, b), a jax.custom_batching."
    "custom_vmap function that calls the NumPy host_solve through jax.pure_callback, and under "
    "vmap over b alone calls it once, with the right-hand sides as the columns of a matrix.",
    cases=_host_solver_cases, check_case=_host_solver_case,
    mistakes={
        "no-custom-vmap": "host_solver returned a {kind}; expected a function decorated with "
                          "jax.custom_batching.custom_vmap, with its rule defined by "
                          "solve.def_vmap.",
        "one-call": "Under jax.vmap over {k} right-hand sides with A shared, host_solve was "
                    "called {calls} times, with right-hand sides of shapes {shapes}; expected "
                    "one call with a matrix of shape (n, {k}), the right-hand sides as its "
                    "columns: in the custom_vmap rule, when A is not batched, pass b.T.",
        "rows": "host_solve was called with a right-hand side of shape {shape} for A of "
                "shape ({n}, {n}), or with a batched A: it solves for one matrix A and the "
                "columns of B, so pass the batch of right-hand sides as b.T (and transpose "
                "the solutions back), and never a stack of matrices.",
    })
