"""Assignment 02: composing transformations: curvature, per-example and meta-gradients,
stopped gradients (shipped to its students only).
"""

import jax
import jax.numpy as jnp
import numpy as np

from .calls import _JACOBIANS, Case, _call, _compare
from .evidence import Failed, _code, _oracle
from .exercise import (
    Exercise,
    Require,
    _array,
    _compare_tree,
    _normal,
    _run,
    _swap_global,
    _to64,
)
from .mechanisms import _program, _require_small_intermediates, _require_vectorized


def _cos_by_while(x):
    return jax.lax.while_loop(lambda s: s[0] < 1, lambda s: (s[0] + 1, jnp.cos(s[1])), (0, x))[1]


@jax.custom_vjp
def _sum_sin_fwd_over_rev_only(x):
    """sum(sin(x)), whose gradient is a while_loop: only forward-over-reverse gives its Hessian."""
    return jnp.sum(jnp.sin(x))


_sum_sin_fwd_over_rev_only.defvjp(lambda x: (jnp.sum(jnp.sin(x)), x),
                                  lambda x, g: (g * _cos_by_while(x),))


def _forward_over_reverse(run):
    """``Require``: ``run(answer, f)`` must work on a function whose second derivative only
    forward-over-reverse takes."""
    def check(exercise, answer, cases, jit):
        try:
            run(answer, _sum_sin_fwd_over_rev_only)
        except AssertionError as error:
            raise Failed(
                f"{exercise.name} must be forward-over-reverse (jax.jvp or jacfwd outside, "
                "jax.grad or jacrev inside); it failed on a function that only that order can "
                f"differentiate twice. What failed: {error}", _code("not-forward-over-reverse")) \
                from None
    return Require("is forward-over-reverse", check)


def _no_dense_hessian(probe):
    """``Require``: ``probe(answer, x)`` on an input of size n builds no n x n array."""
    def check(exercise, answer, cases, jit):
        n = 300
        x = jnp.linspace(-1.0, 1.0, n)
        _require_small_intermediates(exercise.name, lambda x: probe(answer, x), (x,), n * n,
                                     f"for an input of size {n}: it materializes the Hessian.",
                                     "dense-hessian")
    return Require("never builds the Hessian", check)


def _sin_times_reversed(x):
    return jnp.sum(jnp.sin(x) * x[::-1])


def _scalar_function_cases():
    return [
        Case("f(x) = sum(x**3), x of shape (3,)", lambda x: jnp.sum(x**3),
             jnp.array([1.0, -2.0, 0.5])),
        Case("f(x) = sum(tanh(x)**2), x of shape (2, 2)", lambda x: jnp.sum(jnp.tanh(x) ** 2),
             _normal(3, (2, 2))),
    ]


def _hessian_case(exercise, hessian, case, jit):
    f, x = case.args
    expected = _oracle(lambda: jax.jit(jax.hessian(f))(x))
    actual = _run("hessian(f)", _call("hessian", hessian, f), (x,), jit)
    _compare("hessian(f)", case, actual, expected,
             shape_hints=["The Hessian of f at x has shape x.shape + x.shape."])


def _probe_hessian(hessian, f):
    x = jnp.linspace(0.0, 1.0, 3)
    _compare("hessian(f)", Case("a probe function", x),
             _call("hessian(f)", _call("hessian", hessian, f), x), jnp.diag(-jnp.sin(x)))


check_hessian = Exercise(
    "hessian", "hessian(f)(x) equals jax.hessian(f)(x), of shape x.shape + x.shape.",
    cases=_scalar_function_cases, check_case=_hessian_case, forbids=("hessian",),
    requires=[_forward_over_reverse(_probe_hessian)])


def _hvp_cases():
    x = jnp.array([0.5, -1.0, 2.0])
    return [
        Case("f(x) = sum(x**3), x of shape (3,)", lambda x: jnp.sum(x**3), x,
             jnp.array([1.0, 0.0, -1.0])),
        Case("a dict of parameters", lambda p: jnp.sum(jnp.tanh(p["w"]) * p["b"] ** 2),
             {"w": x, "b": jnp.array(1.5)}, {"w": jnp.ones(3), "b": jnp.array(-1.0)}),
    ]


def _hvp_case(exercise, hvp, case, jit):
    f, x, v = case.args
    expected = _oracle(lambda: jax.jit(
        lambda x, v: jax.jvp(jax.grad(f), (x,), (v,))[1])(x, v))
    actual = _run("hvp", lambda x, v: hvp(f, (x,), (v,)), (x, v), jit)
    _compare_tree("hvp", case, actual, expected)


def _probe_hvp(hvp, f):
    x = jnp.linspace(0.0, 1.0, 3)
    _compare("hvp", Case("a probe function", x), _call("hvp", hvp, f, (x,), (jnp.ones(3),)),
             -jnp.sin(x))


check_hvp = Exercise(
    "hvp", "hvp(f, (x,), (v,)) is the Hessian of f at x applied to v, for pytrees x and v.",
    cases=_hvp_cases, check_case=_hvp_case, forbids=("hessian",) + _JACOBIANS[:3],
    requires=[_no_dense_hessian(lambda hvp, x: hvp(_sin_times_reversed, (x,), (x,))),
              _forward_over_reverse(_probe_hvp)])


def _linear_value(theta, state):
    return jnp.dot(theta, state)


def _td_updates(value_fn, r_t, s_tm1, s_t):
    """The TD(0) update as a function of theta, with the statement's stop_gradient (only the
    target stopped), and two misreadings that give the same value but another derivative."""
    target = lambda t: r_t + value_fn(t, s_t)
    grad_prediction = lambda t: jax.grad(value_fn)(t, s_tm1)
    stop = jax.lax.stop_gradient
    return {
        "target stopped": lambda t: (stop(target(t)) - value_fn(t, s_tm1)) * grad_prediction(t),
        "nothing-stopped": lambda t: (target(t) - value_fn(t, s_tm1)) * grad_prediction(t),
        "error-stopped": lambda t: stop(target(t) - value_fn(t, s_tm1)) * grad_prediction(t),
    }


_TD_MISREADINGS = {  # the misreadings of _td_updates, as a student is told of them
    "nothing-stopped": "td_update differentiates through the target: wrap the target "
                       "r_t + v(s_t) in jax.lax.stop_gradient.",
    "error-stopped": "td_update stops the prediction v(s_tm1) too: only the target "
                     "r_t + v(s_t) goes inside jax.lax.stop_gradient.",
}


def _td_update_case(exercise, td_update, case, jit):
    """Each case is ``(value_fn, theta, s_tm1, r_t, s_t)``: the notebook's ``value_fn`` is
    replaced by the case's own while the case runs, so an answer must call ``value_fn``."""
    value_fn, theta, s_tm1, r_t, s_t = case.args

    def references():
        updates = _td_updates(value_fn, r_t, s_tm1, s_t)
        return jax.jit(updates["target stopped"])(theta), {
            kind: jax.jit(jax.jacfwd(update))(theta) for kind, update in updates.items()}

    expected, jacobians = _oracle(references, parts=2)
    with _swap_global(td_update, "value_fn", value_fn):
        actual = _run("td_update", td_update, (theta, s_tm1, r_t, s_t), jit)
        _compare("td_update", case, actual, expected, hints=[
            "The update is (r_t + v(s_t) - v(s_tm1)) * grad v(s_tm1); is the target's "
            "gradient stopped, and does the answer call value_fn?"])
        jacobian = _run("td_update", lambda *args: jax.jacfwd(td_update)(*args),
                        (theta, s_tm1, r_t, s_t), jit)
    misreadings = [(jacobians[kind], exercise.mistakes[kind])
                   for kind in ("nothing-stopped", "error-stopped")]
    _compare("the Jacobian of td_update with respect to theta", case, jacobian,
             jacobians["target stopped"], suspects=misreadings, hints=[
                 "Only the target r_t + v(s_t) may be stopped; the prediction v(s_tm1) must "
                 "stay a function of theta."])


def _td_update_cases():
    return [Case("the linear value function of the notebook", _linear_value,
                 jnp.array([0.1, -0.1, 0.0]), jnp.array([1.0, 2.0, -1.0]), jnp.array(1.0),
                 jnp.array([2.0, 1.0, 0.0]))]


check_td_update = Exercise(
    "td_update", "td_update is the TD(0) update (r + v(s_t) - v(s_tm1)) grad v(s_tm1) for "
    "value_fn, with only the target r + v(s_t) stopped: its own derivative shows which terms "
    "are.",
    cases=_td_update_cases, check_case=_td_update_case, mistakes=_TD_MISREADINGS)


def _straight_through_case(exercise, straight_through_round, case, jit):
    (x,) = case.args
    host = np.asarray(x, np.float64)
    batch = _array(np.stack([np.asarray(x), np.asarray(x) + np.asarray(0.25, x.dtype)]), x.dtype)
    twos = _array(np.full(x.shape, 2.0), x.dtype)
    rounded, gradient_expected, rounded_batch = _oracle(lambda: tuple(
        np.asarray(value, x.dtype) for value in (
            np.round(host), np.cos(host) - np.round(host) * np.sin(host),
            np.round(np.asarray(batch, np.float64)))), parts=3)
    value = _run("straight_through_round", straight_through_round, (x,), jit)
    _compare("straight_through_round", case, value, rounded)
    gradient = _run("straight_through_round",
                    jax.grad(lambda x: jnp.sum(straight_through_round(x) * jnp.cos(x))), (x,),
                    jit)
    _compare("the gradient of sum(straight_through_round(x) * cos(x))", case, gradient,
             gradient_expected, hints=[
                 "The backward pass must treat rounding as the identity."])
    tangent = _run("straight_through_round",
                   lambda x: jax.jvp(straight_through_round, (x,), (twos,))[1], (x,), jit)
    _compare("the JVP of straight_through_round", case, tangent, np.asarray(twos))
    batched = _run("jax.vmap(straight_through_round)", jax.vmap(straight_through_round),
                   (batch,), jit)
    _compare("jax.vmap(straight_through_round)", case, batched, rounded_batch)


check_straight_through_round = Exercise(
    "straight_through_round", "Rounds in the forward pass; its JVP and VJP are the identity.",
    cases=lambda: [Case("x of shape (4,)", jnp.array([0.2, 1.7, -2.4, 3.5]))],
    check_case=_straight_through_case)


def _logistic_loss(params, x, y):
    logit = jnp.dot(params["w"], x) + params["b"]
    return jnp.logaddexp(0.0, logit) - y * logit


def _perex_case(exercise, perex_grads, case, jit):
    loss, params, xs, ys = case.args
    expected = _oracle(lambda: jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, 0, 0)))(
        params, xs, ys))
    actual = _run("perex_grads", lambda p, xs, ys: perex_grads(loss, p, xs, ys),
                  (params, xs, ys), jit)
    _compare_tree("perex_grads", case, actual, expected, shape_hints=[
        "Each leaf needs a leading batch axis: one gradient per example."])


def _perex_vectorized(exercise, perex_grads, cases, jit):
    params = {"w": jnp.ones(3), "b": jnp.array(0.0)}
    _require_vectorized("perex_grads", lambda xs, ys: perex_grads(_logistic_loss, params, xs, ys),
                        (jnp.ones((2, 3)), jnp.ones(2)), (jnp.ones((9, 3)), jnp.ones(9)))


check_perex_grads = Exercise(
    "perex_grads", "perex_grads(loss, params, xs, ys): one gradient per example, with a leading "
    "batch axis.",
    cases=lambda: [Case("logistic regression, 4 examples", _logistic_loss,
                        {"w": jnp.array([0.5, -0.25, 1.0]), "b": jnp.array(0.1)},
                        _normal(4, (4, 3)), jnp.array([0.0, 1.0, 1.0, 0.0]))],
    check_case=_perex_case, requires=[Require("is vectorized", _perex_vectorized)])


def _quadratic_loss(params, batch):
    A, b = batch
    return 0.5 * params @ A @ params - b @ params


def _maml_case(exercise, maml_grad, case, jit):
    loss, params, train, test, lr = case.args

    def meta_loss(p):
        g = jax.grad(loss)(p, train)
        return loss(jax.tree.map(lambda p, g: p - lr * g, p, g), test)

    expected = _oracle(lambda: jax.jit(jax.grad(meta_loss))(params))
    actual = _run("maml_grad", lambda p: maml_grad(loss, p, train, test, lr), (params,), jit)
    _compare_tree("maml_grad", case, actual, expected, hints=[
        "Differentiate through the inner step (no stop_gradient), evaluate the adapted "
        "parameters on the test batch."])


def _maml_cases():
    A = jnp.array([[2.0, 0.5], [0.5, 1.0]])
    return [Case("a quadratic loss", _quadratic_loss, jnp.array([1.0, -1.0]),
                 (A, jnp.array([1.0, 0.0])), (A * 1.5, jnp.array([0.0, 1.0])), 0.1)]


check_maml_grad = Exercise(
    "maml_grad", "The gradient of loss(params - lr * grad loss(params, train), test), second "
    "order.", cases=_maml_cases, check_case=_maml_case)


def _hutchinson_reference(f, x, key, num_samples):
    """The estimate from the dense Hessian, which hutchinson_trace may not build (nor, while a
    check calls it, call jax.hessian: so it cannot call this either)."""
    probes = jax.random.rademacher(key, (num_samples,) + x.shape, dtype=x.dtype)
    hessian = jax.hessian(f)(x).reshape(x.size, x.size)
    flat = probes.reshape(num_samples, x.size)
    return jnp.mean(jnp.einsum("si,ij,sj->s", flat, hessian, flat))


def _hutchinson_case(exercise, hutchinson_trace, case, jit):
    f, x, key, num_samples = case.args
    expected = _oracle(lambda: jax.jit(_hutchinson_reference, static_argnums=(0, 3))(
        f, x, key, num_samples))
    actual = _run("hutchinson_trace", lambda x, key: hutchinson_trace(f, x, key, num_samples),
                  (x, key), jit)
    _compare("hutchinson_trace", case, actual, expected, factors=True, hints=[
        "Draw the probes exactly as the statement says, then average v . (H v)."])


def _hutchinson_vectorized(exercise, hutchinson_trace, cases, jit):
    diagonal = Case("a diagonal Hessian, where every probe gives the exact trace",
                    lambda x: jnp.sum(jnp.cos(x)), jnp.linspace(0.0, 1.0, 4),
                    jax.random.key(2), 3)
    f, x, key, num_samples = diagonal.args
    _require_vectorized("hutchinson_trace", lambda probes: hutchinson_trace(
        f, x, key, probes.shape[0]), (jnp.ones(2),), (jnp.ones(7),))
    _compare("hutchinson_trace", diagonal,
             _call("hutchinson_trace", hutchinson_trace, f, x, key, num_samples),
             -jnp.sum(jnp.cos(x)))


def _probe_hutchinson(hutchinson_trace, f):
    x = jnp.linspace(0.0, 1.0, 3)
    _compare("hutchinson_trace", Case("a probe function", x),
             _call("hutchinson_trace", hutchinson_trace, f, x, jax.random.key(0), 2),
             -jnp.sum(jnp.sin(x)))


check_hutchinson_trace = Exercise(
    "hutchinson_trace", "Hutchinson's estimate of tr(Hessian) with the probes the exercise "
    "prescribes, from HVPs.",
    cases=lambda: [Case("f(x) = sum(sin(x) * x[::-1]), 8 samples", _sin_times_reversed,
                        jnp.linspace(-1.0, 1.0, 5), jax.random.key(1), 8)],
    check_case=_hutchinson_case, forbids=("hessian",) + _JACOBIANS[:3],
    requires=[_no_dense_hessian(lambda hutchinson_trace, x: hutchinson_trace(
                  _sin_times_reversed, x, jax.random.key(0), 4)),
              Require("is vectorized", _hutchinson_vectorized),
              _forward_over_reverse(_probe_hutchinson)])


def _quadratic_with(eigenvalues, seed, dtype=jnp.float32):
    """f(x) = x^T A x / 2 for a symmetric A with these eigenvalues and random eigenvectors."""
    n = len(eigenvalues)
    Q = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))[0]
    A = _array((Q * np.asarray(eigenvalues)) @ Q.T, dtype)
    return lambda x: 0.5 * x @ A @ x


def _top_eigenvalue_case(exercise, top_eigenvalue, case, jit):
    f, x, v0, num_iters = case.args

    def largest():
        with jax.enable_x64(True):
            hessian = np.asarray(jax.jit(jax.hessian(f))(_to64(x)), np.float64).reshape(
                x.size, x.size)
        eigenvalues = np.linalg.eigvalsh(hessian)
        return eigenvalues[np.argmax(np.abs(eigenvalues))]

    top = _oracle(largest)
    actual = _run("top_eigenvalue", lambda x, v0: top_eigenvalue(f, x, v0, num_iters), (x, v0),
                  jit)
    suspects = [(np.asarray(-top, x.dtype), exercise.mistakes["norm"])] if top < 0 else []
    _compare("top_eigenvalue", case, actual, np.asarray(top, x.dtype), suspects=suspects)


def _top_eigenvalue_cases():
    return [
        Case("a quadratic with eigenvalues 5, 2, -1", _quadratic_with([5.0, 2.0, -1.0], 3),
             jnp.zeros(3), jnp.array([1.0, 0.5, -0.3]), 40),
        Case("a quadratic whose largest eigenvalue in magnitude is -6",
             _quadratic_with([-6.0, 3.0, 1.0], 4), jnp.ones(3), jnp.ones(3), 40),
    ]


def _top_eigenvalue_one_loop(exercise, top_eigenvalue, cases, jit):
    f, x, v0, _ = _top_eigenvalue_cases()[0].args
    sizes = {k: len(_call("top_eigenvalue", lambda: _program(
        lambda x: top_eigenvalue(f, x, v0, k), x))) for k in (3, 30)}
    if sizes[3] != sizes[30]:
        mistake = exercise.mistakes["unrolled"]
        raise Failed(mistake.format(small=sizes[3], large=sizes[30]), mistake.code)


def _probe_top_eigenvalue(top_eigenvalue, f):
    x = jnp.linspace(0.0, 1.0, 3)
    _compare("top_eigenvalue", Case("a probe function", x),
             _call("top_eigenvalue", top_eigenvalue, f, x, jnp.ones(3), 60), -jnp.sin(1.0))


check_top_eigenvalue = Exercise(
    "top_eigenvalue", "top_eigenvalue(f, x, v0, num_iters): the Hessian's eigenvalue of largest "
    "magnitude, by power iteration on forward-over-reverse HVPs and a Rayleigh quotient.",
    cases=_top_eigenvalue_cases, check_case=_top_eigenvalue_case,
    forbids=("hessian",) + _JACOBIANS[:3],
    requires=[_no_dense_hessian(lambda top_eigenvalue, x: top_eigenvalue(
                  _sin_times_reversed, x, x, 3)),
              Require("runs one loop", _top_eigenvalue_one_loop),
              _forward_over_reverse(_probe_top_eigenvalue)],
    mistakes={
        "norm": "This is the eigenvalue's magnitude, with the sign lost: return the Rayleigh "
                "quotient v . (H v) of the unit vector v, not the norm of H v.",
        "unrolled": "top_eigenvalue builds a program whose size grows with num_iters ({small} "
                    "operations for 3 steps, {large} for 30): loop with jax.lax.fori_loop (or "
                    "lax.scan), not in Python.",
    })
