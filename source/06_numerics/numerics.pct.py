# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Assignment 06 — Autodiff meets numerics
#
# The earlier assignments differentiated programs whose derivatives were as good as their
# values. Numerical code is different: an eigendecomposition whose derivative divides by a gap
# between eigenvalues, an ODE solver with a thousand steps, an expectation that is only ever
# sampled. Autodiff still gives *a* derivative of each of these programs, but not always the
# one you want, and not always a finite one. In this notebook you will learn
#
# * the derivatives of linear algebra (solve, Cholesky, `eigh`), where they fail, and custom
#   rules that do not;
# * how the adjoint method differentiates an ODE solver, and how it differs from
#   differentiating the discretisation;
# * what truncated unrolling of an optimiser does to its gradient;
# * stochastic gradient estimators: the score function, baselines, reparameterisation, and the
#   `stop_gradient` constructions that make `jax.grad` compute them;
# * the rarer custom-rule features: symbolic zeros, integer inputs and `custom_vmap`;
# * Taylor mode (`jax.experimental.jet`) for a Laplacian without a Hessian.

# %% [markdown]
# **Exercises.** An answer cell holds the functions of one exercise and, where a rule is
# registered, the registration line. Replace every placeholder, keep the names and the
# signatures, and run the cell; then run the locked test cell below it. The visible tests try a
# few inputs and say what they suspect when something is off. The grade comes from hidden
# tests that use more inputs, shapes and dtypes, run under `jax.jit`, and check the mechanism
# each exercise asks for (a custom rule that is used, an adjoint that is really integrated, an
# estimator that is unbiased, no built-in derivative where you build one). Sections headed
# *Design* give the goal and the constraints, not the recipe: the way there is yours.
#
# Cells that only show or time something carry the tag `demo`: grading does not run them, so
# what they print never counts towards your grade, and nothing that is graded depends on them.

# %% nbgrader={"grade_id": "setup", "locked": true}
import functools
import textwrap

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import adcheck

adcheck.setup()

# %% [markdown]
# `rounded` turns arrays into rounded NumPy arrays for printing, and `show_error` prints the
# type and first line of an exception, for the places where we make JAX fail on purpose.

# %% tags=["demo"]
def rounded(a, decimals=4):
    """A rounded NumPy copy of `a` for printing (adding 0.0 turns -0.0 into 0.0)."""
    return np.round(np.asarray(a), decimals) + 0.0


def show_error(error):
    """Print the type of an exception and the first line of its message."""
    lines = str(error).strip().splitlines()
    print(textwrap.fill(f"{type(error).__name__}: {lines[0] if lines else ''}", width=96,
                        subsequent_indent="    "))


# %% [markdown]
# ## 1. Eigenvectors are not differentiable where eigenvalues meet
#
# A function $f$ of a symmetric matrix $A = V \operatorname{diag}(\lambda) V^\top$ applies $f$
# to the eigenvalues: $f(A) = V \operatorname{diag}(f(\lambda)) V^\top$. The matrix
# exponential, the matrix square root and the matrix logarithm of covariance matrices are all
# of this kind, and the shortest code for them goes through `jnp.linalg.eigh`.
#
# Differentiating that code differentiates the eigenvectors, and the derivative of eigenvector
# $v_i$ has the factor $1 / (\lambda_i - \lambda_j)$ for every other eigenvalue $\lambda_j$:
# where two eigenvalues are equal, the eigenvectors are not even unique, and the derivative is
# $0/0$. Yet $f(A)$ itself is perfectly smooth there. The identity matrix, the most ordinary
# matrix there is, is the worst case:

# %% tags=["demo"]
def exp_by_eigh(A):
    w, V = jnp.linalg.eigh(A)
    return (V * jnp.exp(w)) @ V.T


def total(matrix_function):
    return lambda A: jnp.sum(matrix_function(A))


print("through eigh, at the identity:\n", jax.grad(total(exp_by_eigh))(jnp.eye(3)))

# %% [markdown]
# At the identity `eigh` returns three equal eigenvalues, and the gradient is nan. Where the
# eigenvalues differ by rounding only, it is finite, and silently wrong. A matrix with
# eigenvalues 1, 1 and 2 in a random basis (`adcheck._symmetric` builds it):

# %% tags=["demo"]
def compare_with_expm(A):
    print("eigenvalues by eigh:", np.asarray(jnp.linalg.eigh(A)[0]))
    by_eigh = jax.grad(total(exp_by_eigh))(A)
    by_expm = jax.grad(total(jax.scipy.linalg.expm))(A)
    print("gradient through eigh:\n", rounded(by_eigh))
    print("gradient of jax.scipy.linalg.expm (no eigenvectors):\n", rounded(by_expm))
    print(f"largest relative error: {np.max(np.abs(by_eigh - by_expm) / np.abs(by_expm)):.0%}")


compare_with_expm(adcheck._symmetric(6, 3, [1.0, 1.0, 2.0]))

# %% [markdown]
# float64 does not help: its `eigh` returns the pair as two numbers $10^{-16}$ apart, and the
# gradient is wrong by a quarter.

# %% tags=["demo"]
with jax.enable_x64(True):
    compare_with_expm(adcheck._symmetric(6, 3, [1.0, 1.0, 2.0], jnp.float64))

# %% [markdown]
# The derivative of $f(A)$ needs no eigenvector derivative. The Daleckii–Krein theorem gives
# it in the eigenbasis: for a perturbation $E$,
# $$\partial f(A)[E] = V \big(K \circ (V^\top E V)\big) V^\top, \qquad
# K_{ij} = \begin{cases} \dfrac{f(\lambda_i) - f(\lambda_j)}{\lambda_i - \lambda_j} &
# \lambda_i \ne \lambda_j \\[1ex] f'(\lambda_i) & \lambda_i = \lambda_j, \end{cases}$$
# with $\circ$ the entrywise product. The matrix of *divided differences* $K$ is symmetric and
# has a finite limit as two eigenvalues meet: $f'$ at the common value. The map $E \mapsto
# V (K \circ (V^\top E V)) V^\top$ is self-adjoint, so the VJP with a cotangent $G$ has the
# same form, $\bar A = V (K \circ (V^\top G V)) V^\top$.
#
# ## 2. Design: a matrix exponential whose gradient survives ties
#
# ### Exercise 1: `sym_exp(A)` (4 points)
#
# Write `sym_exp(A)`, the matrix exponential of a symmetric matrix `A` by `jnp.linalg.eigh`,
# as a `jax.custom_vjp` function whose rule gives the Daleckii–Krein VJP above with
# $f = f' = \exp$, finite and accurate wherever eigenvalues are repeated.
#
# * The forward pass may use `jnp.linalg.eigh`; the VJP must come from your rule (do not
#   differentiate `eigh`), and neither `jax.scipy.linalg.expm` nor any JAX differentiation
#   (`jax.vjp`, `jax.grad`, ...) may appear: the checks build their expected values from
#   `expm`.
# * The checks pull back *symmetric* cotangents $G$ (for a symmetric one, $\bar A$ needs no
#   symmetrising) and use matrices whose eigenvalues are either equal (up to the rounding of
#   `eigh`) or at least 0.01 apart, in float32 and float64, from 1 x 1 to 6 x 6, also under
#   `jax.jit`. Both the value and the VJP must agree with `expm`'s to the precision of the
#   dtype, and keep it.
# * How you decide that two computed eigenvalues are "equal", and how you evaluate the divided
#   difference near a tie, is yours to choose; the visible tests include a matrix whose
#   eigenvalues float32 `eigh` returns as 1 and 1.0000001.

# %% nbgrader={"grade_id": "sym_exp", "solution": true}
### BEGIN SOLUTION
@jax.custom_vjp
def sym_exp(A):
    w, V = jnp.linalg.eigh(A)
    return (V * jnp.exp(w)) @ V.T


def sym_exp_fwd(A):
    w, V = jnp.linalg.eigh(A)
    return (V * jnp.exp(w)) @ V.T, (w, V)


def sym_exp_bwd(residuals, G):
    w, V = residuals
    gap = w[:, None] - w[None, :]
    tied = gap == 0
    # exp(b) expm1(a - b) / (a - b) has no cancellation, however close a and b are
    divided = jnp.exp(w[None, :]) * jnp.expm1(gap) / jnp.where(tied, 1.0, gap)
    K = jnp.where(tied, jnp.exp(w[None, :]), divided)
    return (V @ (K * (V.T @ G @ V)) @ V.T,)


sym_exp.defvjp(sym_exp_fwd, sym_exp_bwd)
### END SOLUTION

# %% nbgrader={"grade_id": "sym_exp_tests", "points": 4}
adcheck.check_sym_exp(sym_exp)
### BEGIN HIDDEN TESTS
_Case, _symmetric = adcheck.Case, adcheck._symmetric
adcheck.check_sym_exp(sym_exp, jit=True, cases=[
    _Case("a 1 x 1 matrix", jnp.array([[0.7]]), jnp.array([[2.0]])),
    _Case("eigenvalues -1, -1, 0.5, 0.5, 0.5, 2 (two repeated groups)",
          _symmetric(10, 6, [-1.0, -1.0, 0.5, 0.5, 0.5, 2.0]), _symmetric(11, 6)),
    _Case("a random symmetric 5 x 5 matrix", _symmetric(12, 5), _symmetric(13, 5)),
    _Case("eigenvalues 0.3, 0.31, 0.32, 3 (gaps of 0.01)",
          _symmetric(14, 4, [0.3, 0.31, 0.32, 3.0]), _symmetric(15, 4)),
])
with jax.enable_x64(True):
    adcheck.check_sym_exp(sym_exp, jit=True, cases=[
        _Case("float64, eigenvalues 1, 1, 2 (repeated)", _symmetric(3, 3, [1.0, 1.0, 2.0],
              jnp.float64), _symmetric(1, 3, dtype=jnp.float64)),
        _Case("float64, a random symmetric 4 x 4 matrix", _symmetric(16, 4, dtype=jnp.float64),
              _symmetric(17, 4, dtype=jnp.float64)),
        _Case("float64, 2 times the 2 x 2 identity (repeated)", 2.0 * jnp.eye(2, dtype=jnp.float64),
              _symmetric(18, 2, dtype=jnp.float64)),
    ])
### END HIDDEN TESTS

# %% [markdown]
# ## 3. Solves, factors, and work a rule can skip
#
# For $x = A^{-1} b$, differentiating $A x = b$ gives $A \dot x = \dot b - \dot A x$, so the
# JVP is $\dot x = A^{-1}(\dot b - \dot A x)$, and its transpose, the VJP with a cotangent
# $g$ of $x$, is
# $$\bar b = A^{-\top} g, \qquad \bar A = -\bar b\, x^\top .$$
# Both need one more solve with $A^\top$, and the factorization of $A$ done for the forward
# pass serves it too. JAX's own rules do exactly that: differentiated, `jnp.linalg.solve`
# factors once (`lu`), and a solve by Cholesky factors once (`cholesky`); count the
# factorizations and triangular solves in the programs of their VJPs:

# %% tags=["demo"]
def factorizations(fn, *args):
    """How many factorizations and triangular solves the program of fn holds."""
    program = adcheck._program(fn, *args)
    return {p: program.count(p) for p in ("lu", "cholesky", "triangular_solve") if p in program}


def solve_by_cholesky(A, b):
    return jax.scipy.linalg.cho_solve((jnp.linalg.cholesky(A), True), b)


A_demo = adcheck._spd(0, 4)
b_demo = jnp.arange(1.0, 5.0)
for solve in (jnp.linalg.solve, solve_by_cholesky):
    print(f"VJP of {solve.__name__}:",
          factorizations(lambda A, b, g: jax.vjp(solve, A, b)[1](g), A_demo, b_demo, b_demo))

# %% [markdown]
# Eight triangular solves where four would do (two forward, two backward), and the cotangent
# of $A$, an $n \times n$ outer product, is built even when only $b$ is differentiated, e.g.
# when $A$ is a fixed matrix of the model. A `custom_vjp` rule can skip that work, if it knows
# which inputs are differentiated. `defvjp(fwd, bwd, symbolic_zeros=True)` tells it: `fwd`
# then receives each argument wrapped in a `jax.custom_derivatives.CustomVJPPrimal`, with
# `.value` (the array) and `.perturbed` (a Python bool: whether a tangent flows into it), and
# `bwd` may return `None` as the cotangent of an argument that was not perturbed:

# %% tags=["demo"]
@jax.custom_vjp
def scaled(a, b):
    return a * b


def scaled_fwd(a, b):
    print(f"fwd: a is a {type(a).__name__}, perturbed: a {a.perturbed}, b {b.perturbed}")
    return a.value * b.value, (a.value, b.value, a.perturbed)


def scaled_bwd(residuals, g):
    a, b, a_perturbed = residuals
    return (g * b if a_perturbed else None), g * a


scaled.defvjp(scaled_fwd, scaled_bwd, symbolic_zeros=True)
print("d/db:", jax.grad(scaled, argnums=1)(2.0, 3.0))
print("d/da:", jax.grad(scaled)(2.0, 3.0))

# %% [markdown]
# (With `symbolic_zeros=True` the cotangent that `bwd` receives may also be a
# `jax.custom_derivatives.SymbolicZero` instead of an array, when the output is not used;
# `jax.grad` of a one-output function, as here, sends an array.)
#
# ## 4. Design: a solve that factors once and skips what is not needed
#
# ### Exercise 2: `spd_solve(A, b)` (3 points)
#
# Write `spd_solve(A, b)`, the solution $x$ of $A x = b$ for a symmetric positive definite `A`
# of shape `(n, n)` and `b` of shape `(n,)` or `(n, k)`, as a `jax.custom_vjp` registered with
# `symbolic_zeros=True`, whose VJP is $\bar b = A^{-1} g$, $\bar A = -\bar b\, x^\top$ (what
# `jnp.linalg.solve`'s VJP gives; for `b` of shape `(n, k)`, $\bar A = -\bar b\, x^\top$ is the
# product of an `(n, k)` and a `(k, n)` matrix).
#
# The checks verify:
#
# * the values of $x$, $\bar A$ and $\bar b$, with both inputs differentiated and with one at a
#   time, in float32 and float64, under `jax.jit`;
# * that the forward and backward passes together run exactly one factorization, a
#   `cholesky` (no `lu`, `qr`, `eigh` or `svd`);
# * that when only `b` is differentiated, the backward pass builds no $n \times n$ product;
# * that no JAX differentiation (`jax.vjp`, `jax.grad`, ...) appears in the rule.
#
# How you solve with the factor (`jax.scipy.linalg.cho_solve`, `solve_triangular`) and what
# you save as residuals is yours to choose.

# %% nbgrader={"grade_id": "spd_solve", "solution": true}
### BEGIN SOLUTION
@jax.custom_vjp
def spd_solve(A, b):
    return jax.scipy.linalg.cho_solve((jnp.linalg.cholesky(A), True), b)


def spd_solve_fwd(A, b):
    factor = jnp.linalg.cholesky(A.value)
    x = jax.scipy.linalg.cho_solve((factor, True), b.value)
    return x, (factor, x, A.perturbed)


def spd_solve_bwd(residuals, g):
    factor, x, A_perturbed = residuals
    b_bar = jax.scipy.linalg.cho_solve((factor, True), g)
    if not A_perturbed:
        return None, b_bar
    A_bar = -(b_bar.reshape(x.shape[0], -1) @ x.reshape(x.shape[0], -1).T)
    return A_bar, b_bar


spd_solve.defvjp(spd_solve_fwd, spd_solve_bwd, symbolic_zeros=True)
### END SOLUTION

# %% nbgrader={"grade_id": "spd_solve_tests", "points": 3}
adcheck.check_spd_solve(spd_solve)
### BEGIN HIDDEN TESTS
_Case, _spd, _normal = adcheck.Case, adcheck._spd, adcheck._normal
adcheck.check_spd_solve(spd_solve, jit=True, cases=[
    _Case("a 1 x 1 matrix", jnp.array([[2.0]]), jnp.array([3.0]), jnp.array([1.0])),
    _Case("a 6 x 6 matrix of condition 100 and b of shape (6, 3)", _spd(30, 6, 100.0),
          _normal(31, (6, 3)), _normal(32, (6, 3))),
    _Case("a 5 x 5 matrix and b of shape (5,)", _spd(33, 5), _normal(34, (5,)),
          _normal(35, (5,))),
])
with jax.enable_x64(True):
    adcheck.check_spd_solve(spd_solve, jit=True, cases=[
        _Case("float64, a 4 x 4 matrix of condition 1000", _spd(36, 4, 1000.0, jnp.float64),
              _normal(37, (4,), jnp.float64), _normal(38, (4,), jnp.float64)),
        _Case("float64, b of shape (3, 2)", _spd(39, 3, 5.0, jnp.float64),
              _normal(40, (3, 2), jnp.float64), _normal(41, (3, 2), jnp.float64)),
    ])
### END HIDDEN TESTS

# %% [markdown]
# The rule's pullback runs four triangular solves where autodiff ran eight, and none of the
# $n \times n$ work when $A$ is fixed:

# %% tags=["demo"]
print("both differentiated:",
      factorizations(lambda A, b, g: jax.vjp(spd_solve, A, b)[1](g), A_demo, b_demo, b_demo))
print("only b:", adcheck._shaped_outputs(
    lambda b, g: jax.vjp(lambda b: spd_solve(A_demo, b), b)[1](g), (b_demo, b_demo), (4, 4),
    ("dot_general", "mul", "neg")), "n x n products in the program")

# %% [markdown]
# ## 5. Differentiating an ODE solver: two derivatives of one problem
#
# An ODE $\dot y = f(y, \theta)$, $y(0) = y_0$, solved to $t_1$ by a fixed-step method, is a
# loop of `steps` steps, and `jax.grad` differentiates it like any loop: it stores every
# stage of every step and runs them backwards. That is *discretise, then differentiate*: the
# exact derivative of the numbers the solver computed. The *adjoint method* does it the other
# way round: it writes the derivative of the exact solution as another ODE, and solves that
# numerically. For a loss $L = w^\top y(t_1)$, the adjoint $a(t) = \partial L / \partial y(t)$
# solves, backwards from $a(t_1) = w$,
# $$\dot a = -\Big(\frac{\partial f}{\partial y}\Big)^{\!\top} a, \qquad
# \dot{\bar\theta} = -\Big(\frac{\partial f}{\partial \theta}\Big)^{\!\top} a, \quad
# \bar\theta(t_1) = 0,$$
# and then $\partial L / \partial y_0 = a(0)$ and $\partial L / \partial \theta =
# \bar\theta(0)$. Both right-hand sides are one VJP of $f$. The adjoint needs $y(t)$ on the
# way back: integrate $\dot y = f(y, \theta)$ backwards from $y(t_1)$ along with it, and the
# memory is that of three vectors, whatever the number of steps.
#
# The two gradients are different numbers: both approximate the exact gradient, each to the
# order of the solver, $O(h^4)$ for RK4, so they differ by $O(h^4)$. Neither is wrong; the
# discrete one is the exact gradient of what the forward pass computed (which an optimiser
# that only ever sees the solver's output wants), the adjoint one is cheap in memory.
#
# The solver of this section, classical RK4 with `steps` steps of $h = t_1 /$ `steps`:

# %% nbgrader={"grade_id": "rk4_definition", "locked": true}
def rk4_step(f, y, theta, h):
    """One classical Runge-Kutta step of dy/dt = f(y, theta); y may be a pytree."""
    def shifted(k, c):
        return jax.tree.map(lambda y, k: y + c * k, y, k)

    k1 = f(y, theta)
    k2 = f(shifted(k1, h / 2), theta)
    k3 = f(shifted(k2, h / 2), theta)
    k4 = f(shifted(k3, h), theta)
    return jax.tree.map(lambda y, a, b, c, d: y + h / 6 * (a + 2 * b + 2 * c + d),
                        y, k1, k2, k3, k4)


def rk4_solve(f, y0, theta, t1, steps):
    """y(t1) of dy/dt = f(y, theta), y(0) = y0, by `steps` RK4 steps (a Python int)."""
    h = t1 / steps
    return jax.lax.fori_loop(0, steps, lambda _, y: rk4_step(f, y, theta, h), y0)


# %% [markdown]
# ## 6. Design: the adjoint method
#
# ### Exercise 3: `adjoint_solve(f, y0, theta, t1, steps)` (4 points)
#
# Write `adjoint_solve`, which returns `rk4_solve(f, y0, theta, t1, steps)` (the forward
# pass is that very solve), as a `jax.custom_vjp` with `nondiff_argnums=(0, 3, 4)` (`f`, the
# float `t1` and the int `steps` are not differentiated), whose rule computes the cotangents of
# `y0` and `theta` by the adjoint method: from $y(t_1)$, integrate $y$, $a$ and $\bar\theta$
# backwards to $t = 0$ with `steps` RK4 steps of $-h$.
#
# * `y0` is a vector of shape `(n,)` and `theta` an array, both float32 or both float64; `f`
#   maps them to a vector like `y0`. The VJPs of `f` that the adjoint needs may use `jax.vjp`.
# * The checks compare the value with RK4's, and the gradients of $w^\top y(t_1)$ with the
#   gradients of the discretisation (float64, differentiated by `jax.grad`) to within $10^{-3}$
#   of the largest entry, in float32 and float64, under `jax.jit`.
# * They verify that your rule really integrates the adjoint equations: in float64, for a
#   pendulum with 32 and 64 steps, your gradient must differ from the derivative of the
#   discretisation (a rule that differentiates the RK4 steps gives it to rounding), and the
#   difference must shrink about 16 times (between 8 and 32) when the step is halved, as a
#   fourth-order method's does.
#
# `rk4_step` accepts a pytree for `y`, e.g. the tuple $(y, a, \bar\theta)$.

# %% nbgrader={"grade_id": "adjoint_solve", "solution": true}
### BEGIN SOLUTION
@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 3, 4))
def adjoint_solve(f, y0, theta, t1, steps):
    return rk4_solve(f, y0, theta, t1, steps)


def adjoint_solve_fwd(f, y0, theta, t1, steps):
    y1 = rk4_solve(f, y0, theta, t1, steps)
    return y1, (y1, theta)


def adjoint_solve_bwd(f, t1, steps, residuals, w):
    y1, theta = residuals

    def augmented(state, theta):
        y, a, _ = state
        dy, pullback = jax.vjp(f, y, theta)
        a_y, a_theta = pullback(a)
        return dy, -a_y, -a_theta

    h = t1 / steps
    state = (y1, w, jnp.zeros_like(theta))
    _, a0, theta_bar = jax.lax.fori_loop(
        0, steps, lambda _, state: rk4_step(augmented, state, theta, -h), state)
    return a0, theta_bar


adjoint_solve.defvjp(adjoint_solve_fwd, adjoint_solve_bwd)
### END SOLUTION

# %% nbgrader={"grade_id": "adjoint_solve_tests", "points": 4}
adcheck.check_adjoint_solve(adjoint_solve)
### BEGIN HIDDEN TESTS
_Case = adcheck.Case
adcheck.check_adjoint_solve(adjoint_solve, jit=True, cases=[
    _Case("Lotka-Volterra, theta of shape (4,), t1 = 1, 20 steps",
          lambda y, th: jnp.stack([th[0] * y[0] - th[1] * y[0] * y[1],
                                   th[2] * y[0] * y[1] - th[3] * y[1]]),
          jnp.array([1.0, 0.5]), jnp.array([1.0, 0.5, 0.8, 0.6]), 1.0, 20,
          jnp.array([0.5, 2.0])),
    _Case("one equation, logistic growth, theta a scalar, t1 = 3, 30 steps",
          lambda y, th: th * y * (1.0 - y), jnp.array([0.1]), jnp.array(1.5), 3.0, 30,
          jnp.array([1.0])),
    _Case("a linear system dy/dt = theta @ y, theta of shape (3, 3), one step",
          lambda y, th: th @ y, jnp.array([1.0, 0.0, -1.0]),
          0.3 * jnp.array([[0.0, 1.0, 0.5], [-1.0, 0.0, 0.2], [0.1, -0.3, -0.5]]), 0.5, 1,
          jnp.array([1.0, 2.0, 3.0])),
])
with jax.enable_x64(True):
    adcheck.check_adjoint_solve(adjoint_solve, jit=True, cases=[
        _Case("float64, a damped pendulum, 40 steps", adcheck._pendulum,
              jnp.array([0.5, 1.0], jnp.float64), jnp.array([3.0, 0.1], jnp.float64), 2.0, 40,
              jnp.array([1.0, 1.0], jnp.float64)),
    ])
### END HIDDEN TESTS

# %% [markdown]
# The two gradients for the pendulum, against the number of steps: each converges to the
# exact gradient at fourth order, and so does their difference.

# %% tags=["demo"]
def gradient_of_solution(solve, steps):
    y0, theta, w = jnp.array([1.0, 0.0]), jnp.array([2.0, 0.3]), jnp.array([1.0, -0.5])
    return jnp.concatenate(jax.grad(
        lambda y0, theta: w @ solve(adcheck._pendulum, y0, theta, 2.0, steps), (0, 1))(y0, theta))


with jax.enable_x64(True):
    step_counts = [4, 8, 16, 32, 64, 128]
    reference = gradient_of_solution(rk4_solve, 1024)
    errors = {name: [float(jnp.max(jnp.abs(gradient_of_solution(solve, n) - reference)))
                     for n in step_counts]
              for name, solve in (("discretise, then differentiate", rk4_solve),
                                  ("adjoint method", adjoint_solve))}
fig, ax = plt.subplots(figsize=(5, 3.2))
for name, errs in errors.items():
    ax.loglog(step_counts, errs, "o-", label=name)
ax.loglog(step_counts, [errors["adjoint method"][0] * (step_counts[0] / n) ** 4
                        for n in step_counts], "k:", label="slope -4")
ax.set_xlabel("steps")
ax.set_ylabel("error of the gradient")
ax.legend()
fig.tight_layout()
plt.show()
