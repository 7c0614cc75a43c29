"""The checks' own data and references: made by NumPy and copied to the device, so that a
grading kernel compiles the student's programs, not a program per shape of the checks' data;
and the references written by hand agree with JAX's differentiation."""

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from course.checks import exercise, higher_order, implicit

BACKEND_COMPILE = "/jax/core/compile/backend_compile_duration"


@contextlib.contextmanager
def compilations():
    """The XLA compilations made while the block runs, as a list that grows."""
    made = []

    def listen(event, duration, **_):
        if event == BACKEND_COMPILE:
            made.append(duration)

    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        yield made
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)


def test_the_checks_data_compiles_nothing():
    with compilations() as made:
        jax.jit(lambda x: x * 3.0 + 1.0)(np.arange(5.0))  # a new function: always compiled
    assert made, "the listener hears no compilation: is the event's name still right?"
    values = exercise._array([[1.0, 2.0], [3.0, 4.5]])
    weak = jnp.array(2.0)  # weakly typed: may compile here (once per process), outside the count
    with compilations() as made:
        samples = exercise._normal(3, (7, 5), scale=0.5)
        ridge = implicit._ridge_data(4, 9, 3, 6)
        strong = exercise._strongly_typed((weak,))[0]
        with jax.enable_x64(True):
            wide = exercise._to64({"a": values, "b": samples})
            ridge64 = implicit._ridge_data(4, 9, 3, 6, jnp.float64)
    assert made == [], f"{len(made)} programs compiled for the checks' data"
    assert values.dtype == jnp.float32 and values.shape == (2, 2)
    np.testing.assert_array_equal(samples, 0.5 * np.random.default_rng(3).standard_normal(
        (7, 5)).astype(np.float32))
    assert [t.shape for t in ridge] == [(9, 3), (9,), (6, 3), (6,)]
    assert {t.dtype for t in ridge} == {jnp.dtype(jnp.float32)}
    assert {t.dtype for t in ridge64} == {jnp.dtype(jnp.float64)}
    np.testing.assert_allclose(ridge64[1], ridge[1], rtol=1e-6)
    assert strong.dtype == jnp.float32 and not strong.weak_type and weak.weak_type
    assert {leaf.dtype for leaf in jax.tree.leaves(wide)} == {jnp.dtype(jnp.float64)}
    np.testing.assert_array_equal(wide["a"], values)


@pytest.mark.parametrize("n", [1, 5, 12])
def test_the_conjugate_gradient_reference_is_the_gradient_of_a_dense_solve(n):
    rng = np.random.default_rng(n)
    theta, b, weights = rng.uniform(0.1, 3.0, n), rng.standard_normal(n), rng.uniform(1, 2, n)
    x, (d_theta, d_b) = implicit._dense_solution64(theta, b, weights)

    def weighted_solution(theta, b):
        A = jnp.diag(theta + 2.0) - jnp.eye(n, k=1) - jnp.eye(n, k=-1)
        return jnp.sum(weights * jnp.linalg.solve(A, b))

    with jax.enable_x64(True):
        by_jax = jax.grad(weighted_solution, (0, 1))(theta, b)
        A = np.diag(theta + 2.0) - np.eye(n, k=1) - np.eye(n, k=-1)
    np.testing.assert_allclose(A @ x, b, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(d_theta, by_jax[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(d_b, by_jax[1], rtol=1e-10, atol=1e-12)


def test_the_implicit_reference_solves_the_adjoint_equation():
    """v^T dx*/da for x* = M x* + a is v^T (I - M)^-1: the reference, and its two wrong
    versions (no solve; an untransposed solve)."""
    M = np.array([[0.3, -0.2, 0.1], [0.25, 0.1, -0.3], [0.0, 0.4, 0.2]])
    a, v = np.array([2.0, 0.5, 9.0]), np.array([1.0, 0.5, -1.0])
    with jax.enable_x64(True):
        f = lambda a, x: jnp.asarray(M) @ x + a  # noqa: E731
        x_star = np.linalg.solve(np.eye(3) - M, a)
        right, no_solve, untransposed = implicit._implicit_vjps64(f, jnp.asarray(a),
                                                                  jnp.asarray(x_star), v)
    np.testing.assert_allclose(right, np.linalg.solve((np.eye(3) - M).T, v), rtol=1e-12)
    np.testing.assert_allclose(no_solve, v, rtol=1e-12)
    np.testing.assert_allclose(untransposed, np.linalg.solve(np.eye(3) - M, v), rtol=1e-12)


def test_the_hessian_reference_of_a_quadratic_is_its_matrix():
    f = higher_order._quadratic_with([10.0, -7.0, 3.0], 8, jnp.float64)
    with jax.enable_x64(True):
        hessian = np.asarray(jax.jit(jax.hessian(f))(exercise._to64(jnp.ones(3))))
    assert sorted(np.linalg.eigvalsh(hessian)) == pytest.approx([-7.0, 3.0, 10.0], rel=1e-5)
