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
from jax.experimental import jet

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
def gradient_by_expm(A):
    """The gradient of sum(expm(A)): jax.scipy.linalg.expm's VJP with a cotangent of ones."""
    return adcheck._expm_and_vjp(A, jnp.ones_like(A))[1]


def compare(A, by_expm):
    print("eigenvalues by eigh:", np.asarray(jnp.linalg.eigh(A)[0]))
    by_eigh = jax.grad(total(exp_by_eigh))(A)
    print("gradient through eigh:\n", rounded(by_eigh))
    print(f"largest relative error: {np.max(np.abs(by_eigh - by_expm) / np.abs(by_expm)):.0%}")


A_tied = adcheck._symmetric(6, 3, [1.0, 1.0, 2.0])
expm_gradient = gradient_by_expm(A_tied)
print("gradient of jax.scipy.linalg.expm (Pade approximants, no eigenvectors):\n",
      rounded(expm_gradient))
compare(A_tied, expm_gradient)

# %% [markdown]
# float64 does not help: its `eigh` returns the pair as two numbers a few $10^{-16}$ apart,
# and the gradient is wrong by a quarter (against the float32 gradient of `expm` above, which
# is accurate to $10^{-6}$ here):

# %% tags=["demo"]
with jax.enable_x64(True):
    compare(adcheck._symmetric(6, 3, [1.0, 1.0, 2.0], jnp.float64), expm_gradient)

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
# ### Exercise 1: `sym_exp(A)` (design, 4 points)
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
# ### Exercise 2: `spd_solve(A, b)` (design, 3 points)
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
# ### Exercise 3: `adjoint_solve(f, y0, theta, t1, steps)` (design, 4 points)
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
    _Case("dy/dt = -theta * y + sin(y), y of shape (3,), t1 = 1, 10 steps",
          lambda y, theta: -theta * y + jnp.sin(y), jnp.array([1.0, -0.5, 2.0]),
          jnp.array([0.5, 1.0, 2.0]), 1.0, 10, jnp.array([1.0, 1.0, 1.0])),
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


step_counts = [4, 8, 16, 32]
methods = {"discretise, then differentiate": rk4_solve, "adjoint method": adjoint_solve}


@jax.jit  # one program for all of them: one compilation
def errors_of_gradients():
    reference = gradient_of_solution(rk4_solve, 256)
    return {name: jnp.stack([jnp.max(jnp.abs(gradient_of_solution(solve, n) - reference))
                             for n in step_counts])
            for name, solve in methods.items()}


with jax.enable_x64(True):
    errors = {name: np.asarray(errs) for name, errs in errors_of_gradients().items()}
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

# %% [markdown]
# ## 7. Truncated unrolling: a biased gradient by construction
#
# An optimiser is an ODE solver too: $K$ steps of gradient descent on an inner problem, and a
# *meta-gradient* through all of them (a learning rate, a regulariser). Storing $K$ steps is
# often too much, so training code differentiates only the last $T$ of them, treating the
# iterate $T$ steps back as a constant. That *truncated* gradient is not a noisy version of
# the full one: it is biased, and the bias does not average out. For a learning rate $\eta$
# and the quadratic $\frac12 (w - 3)^2$ from $w_0 = 0$, the loss after $K = 30$ steps and its
# truncated gradients:

# %% tags=["demo"]
def loss_after_descent(eta, steps=30, truncate=None):
    w = jnp.zeros(())
    for k in range(steps):
        if truncate is not None and k == steps - truncate:
            w = jax.lax.stop_gradient(w)
        w = w - eta * (w - 3.0)
    return 0.5 * (w - 3.0) ** 2


truncations = [1, 2, 5, 10, 20, 30]
etas = jnp.array([0.05, 0.1])
truncated = [[float(jax.grad(loss_after_descent)(eta, truncate=t)) for t in truncations]
             for eta in etas]
fig, ax = plt.subplots(figsize=(5, 3.2))
for eta, grads in zip(etas, truncated):
    full = float(jax.grad(loss_after_descent)(eta))
    ax.plot(truncations, grads, "o-", label=f"eta = {float(eta):g}")
    ax.axhline(full, color=ax.lines[-1].get_color(), ls=":")
ax.set_xlabel("steps differentiated (T of K = 30)")
ax.set_ylabel("d loss / d eta")
ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# With few steps differentiated the gradient is far smaller in magnitude than the full one
# (dotted): the effect of $\eta$ on the early steps, which is most of it, is cut away. Every
# run makes the same cut, so averaging over runs, seeds or batches does not remove it.
#
# ## 8. Gradients of expectations
#
# A loss $\mathbb{E}_{x \sim p_\theta}[f(x)]$ is only ever estimated, from samples. Its
# gradient has two classic unbiased estimators.
#
# * The **score function** (REINFORCE): $\nabla_\theta \mathbb{E}[f(x)] =
#   \mathbb{E}[f(x)\, \nabla_\theta \log p_\theta(x)]$. It needs no derivative of $f$ ($f$ may
#   be a step, a simulator, a reward), and works for discrete $x$; but its variance grows with
#   the size of $f$. Since $\mathbb{E}[\nabla_\theta \log p_\theta(x)] = 0$, any *baseline*
#   $b$ that does not depend on $x$ can be subtracted: $\mathbb{E}[(f(x) - b)\,
#   \nabla_\theta \log p_\theta(x)]$ is still the gradient, with a smaller variance when $b$
#   is close to $f$.
# * **Reparameterisation** (pathwise): write $x = g(\theta, \varepsilon)$ with $\varepsilon$
#   drawn independently of $\theta$, e.g. $x = \mu + \sigma \varepsilon$; then
#   $\nabla_\theta \mathbb{E}[f(x)] = \mathbb{E}[\nabla_\theta f(g(\theta, \varepsilon))]$,
#   which `jax.grad` computes from the samples. It needs $f$ differentiable, and its variance
#   is usually much lower.
#
# `jax.grad` differentiates programs, not expectations; to make it compute a score-function
# estimate, one writes a *surrogate* whose gradient is the estimate. The usual one,
# $\frac1n \sum_i f(x_i) \log p_\theta(x_i)$ with the $f(x_i)$ held constant, has the right
# gradient and a meaningless value. `stop_gradient` can do better: the "magic box"
# $\boxdot(\ell) = \exp(\ell - \operatorname{stop\_gradient}(\ell))$ is 1 in value and has
# derivative $\nabla \ell$, so $\frac1n \sum_i \boxdot(\log p_\theta(x_i))\, f(x_i)$ has the
# estimate of the loss as its value and the score-function estimate as its gradient.
#
# ### Exercise 4: `score_surrogate(logits, samples, values)` (2 points)
#
# For a categorical distribution $p = \operatorname{softmax}(\text{logits})$ over $K$ classes,
# `samples` an int32 vector of $n$ drawn classes and `values` the float vector of their
# $f(x_i)$, return the magic-box surrogate: a scalar whose value is the mean of `values` and
# whose gradient in `logits` (by `jax.grad`, `values` being constants) is
# $\frac1n \sum_i f(x_i) \nabla \log p(x_i)$. Use `jax.nn.log_softmax` and
# `jax.lax.stop_gradient`; the checks compare value and gradient with the formulas, in float32
# and float64, under `jax.jit`.

# %% nbgrader={"grade_id": "score_surrogate", "solution": true}
def score_surrogate(logits, samples, values):
    """mean(values) in value; the score-function estimate in gradient."""
    ### BEGIN SOLUTION
    log_p = jax.nn.log_softmax(logits)[samples]
    magic_box = jnp.exp(log_p - jax.lax.stop_gradient(log_p))
    return jnp.mean(magic_box * values)
    ### END SOLUTION


# %% nbgrader={"grade_id": "score_surrogate_tests", "points": 2}
adcheck.check_score_surrogate(score_surrogate)
### BEGIN HIDDEN TESTS
_Case = adcheck.Case
adcheck.check_score_surrogate(score_surrogate, jit=True, cases=[
    _Case("5 classes, 12 samples", jnp.linspace(-1.0, 1.0, 5),
          jnp.array([0, 1, 2, 3, 4, 4, 3, 2, 1, 0, 0, 0], jnp.int32),
          jnp.linspace(-3.0, 3.0, 12)),
    _Case("one class", jnp.array([0.7]), jnp.zeros(3, jnp.int32), jnp.array([1.0, 2.0, 3.0])),
])
with jax.enable_x64(True):
    adcheck.check_score_surrogate(score_surrogate, jit=True, cases=[
        _Case("float64, 4 classes, 6 samples", jnp.array([0.1, -0.2, 0.3, 2.0], jnp.float64),
              jnp.array([3, 3, 0, 1, 2, 3], jnp.int32),
              jnp.array([0.5, -1.0, 2.0, 0.0, 1.0, 4.0], jnp.float64)),
    ])
### END HIDDEN TESTS

# %% [markdown]
# ## 9. Design: a score-function estimator with a baseline
#
# ### Exercise 5: `score_gradient(f, key, mu, log_sigma, n)` (design, 3 points)
#
# For $x \sim \mathcal N(\mu, \sigma^2)$, $\sigma = e^{\texttt{log\_sigma}}$, return an estimate
# of $\nabla_{(\mu, \log\sigma)} \mathbb{E}[f(x)]$ from `n` samples drawn with `key`, as a
# tuple of two scalars of the dtype of `mu` (float32 or float64), by the score function with a
# baseline. The scores are $\partial_\mu \log p = (x - \mu)/\sigma^2$ and
# $\partial_{\log\sigma} \log p = ((x - \mu)/\sigma)^2 - 1$.
#
# * `f` maps an array of samples to their values elementwise, and may be a step function: do
#   not differentiate it (no JAX differentiation may appear).
# * The estimate must be **unbiased** for every `n` $\ge 2$: the checks average it over 4000
#   fixed keys (`jax.vmap` over the key; so it must work under `vmap` and `jit`) and require the
#   mean to be within 4.5 standard errors (measured from your estimates) of the exact gradient.
#   A baseline computed from the same samples can be unbiased, or not: think about which.
# * Its variance, for $f(x) = 10 + x^2$, must be below half of that of the score-function
#   estimate without a baseline.
#
# Which baseline you use is yours to choose.

# %% nbgrader={"grade_id": "score_gradient", "solution": true}
def score_gradient(f, key, mu, log_sigma, n):
    """(d/d mu, d/d log_sigma) of E[f(x)], x ~ N(mu, sigma^2): score function, baseline."""
    ### BEGIN SOLUTION
    sigma = jnp.exp(log_sigma)
    eps = jax.random.normal(key, (n,), mu.dtype)
    values = f(mu + sigma * eps)
    leave_one_out = (jnp.sum(values) - values) / (n - 1)
    centred = values - leave_one_out
    return jnp.mean(centred * eps / sigma), jnp.mean(centred * (eps**2 - 1))
    ### END SOLUTION


# %% nbgrader={"grade_id": "score_gradient_tests", "points": 3}
adcheck.check_score_gradient(score_gradient)
### BEGIN HIDDEN TESTS
_Case = adcheck.Case
adcheck.check_score_gradient(score_gradient, jit=True, cases=[
    _Case("f(x) = 10 + x**2, mu = -1, sigma = 0.5, n = 2", lambda x: 10.0 + x**2,
          lambda mu, sigma: 10.0 + mu**2 + sigma**2, jnp.array(-1.0), jnp.log(jnp.array(0.5)),
          2),
    _Case("f(x) = sin(x), mu = 0.4, sigma = 1.2, n = 16", jnp.sin,
          lambda mu, sigma: jnp.sin(mu) * jnp.exp(-sigma**2 / 2), jnp.array(0.4),
          jnp.log(jnp.array(1.2)), 16),
])
with jax.enable_x64(True):
    adcheck.check_score_gradient(score_gradient, jit=True, cases=[
        _Case("float64, f(x) = 1 where x > 0.5, mu = 0, sigma = 2, n = 3",
              lambda x: jnp.where(x > 0.5, 1.0, 0.0).astype(x.dtype),
              lambda mu, sigma: jax.scipy.stats.norm.cdf((mu - 0.5) / sigma),
              jnp.array(0.0, jnp.float64), jnp.log(jnp.array(2.0, jnp.float64)), 3),
    ])
### END HIDDEN TESTS

# %% [markdown]
# ### Exercise 6: `reparam_gradient(f, key, mu, log_sigma, n)` (2 points)
#
# The same estimate by reparameterisation: draw $\varepsilon \sim \mathcal N(0, 1)$ ($n$ of
# them, from `key`, in the dtype of `mu`) and return `jax.grad` of
# $\frac1n \sum_i f(\mu + e^{\texttt{log\_sigma}} \varepsilon_i)$ in `(mu, log_sigma)`, as a
# tuple of two scalars. The checks test it like `score_gradient` (unbiased over 4000 keys, for
# differentiable `f`), and that it is pathwise: for $f(x) = 3x$, every estimate of
# $\partial_\mu$ is exactly 3.

# %% nbgrader={"grade_id": "reparam_gradient", "solution": true}
def reparam_gradient(f, key, mu, log_sigma, n):
    """(d/d mu, d/d log_sigma) of E[f(x)], x = mu + sigma eps: the pathwise estimate."""
    ### BEGIN SOLUTION
    eps = jax.random.normal(key, (n,), mu.dtype)
    return jax.grad(lambda mu, log_sigma: jnp.mean(f(mu + jnp.exp(log_sigma) * eps)),
                    (0, 1))(mu, log_sigma)
    ### END SOLUTION


# %% nbgrader={"grade_id": "reparam_gradient_tests", "points": 2}
adcheck.check_reparam_gradient(reparam_gradient)
### BEGIN HIDDEN TESTS
_Case = adcheck.Case
adcheck.check_reparam_gradient(reparam_gradient, jit=True, cases=[
    _Case("f(x) = sin(x), mu = 0.4, sigma = 1.2, n = 3", jnp.sin,
          lambda mu, sigma: jnp.sin(mu) * jnp.exp(-sigma**2 / 2), jnp.array(0.4),
          jnp.log(jnp.array(1.2)), 3),
])
with jax.enable_x64(True):
    adcheck.check_reparam_gradient(reparam_gradient, jit=True, cases=[
        _Case("float64, f(x) = exp(x), mu = -0.5, sigma = 0.7, n = 5", jnp.exp,
              lambda mu, sigma: jnp.exp(mu + sigma**2 / 2), jnp.array(-0.5, jnp.float64),
              jnp.log(jnp.array(0.7, jnp.float64)), 5),
    ])
### END HIDDEN TESTS

# %% [markdown]
# The variances of the three estimators of $\partial_\mu$ over 4000 keys, with $n = 4$
# samples each, for the smooth $f(x) = 10 + x^2$ at $\mu = 0.5$, $\sigma = 0.8$:

# %% tags=["demo"]
def score_without_baseline(f, key, mu, log_sigma, n):
    sigma = jnp.exp(log_sigma)
    eps = jax.random.normal(key, (n,), mu.dtype)
    values = f(mu + sigma * eps)
    return jnp.mean(values * eps / sigma), jnp.mean(values * (eps**2 - 1))


demo_keys = jax.random.split(jax.random.key(0), 4000)
mu_demo, log_sigma_demo = jnp.array(0.5), jnp.log(jnp.array(0.8))
for name, estimator in (("score function", score_without_baseline),
                        ("score function, leave-one-out baseline", score_gradient),
                        ("reparameterisation", reparam_gradient)):
    d_mu, _ = jax.jit(jax.vmap(lambda key: estimator(lambda x: 10.0 + x**2, key, mu_demo,
                                                     log_sigma_demo, 4)))(demo_keys)
    print(f"{name:40s} mean {float(jnp.mean(d_mu)):6.3f}  variance {float(jnp.var(d_mu)):7.3f}")
print("exact: 2 mu =", 2 * float(mu_demo))

# %% [markdown]
# ## 10. Taylor mode: second derivatives along a direction, in one pass
#
# A JVP pushes a first-order perturbation $x + t v$ through $f$ and returns the first
# derivative in $t$. *Taylor mode* pushes a whole truncated power series through, and returns
# the series of $f(x + t v + \dots)$: the second derivative along $v$, $v^\top \nabla^2 f(x)\,
# v$, comes out of one forward pass, with no Hessian and no nested differentiation.
# `jax.experimental.jet.jet(f, primals, series)` does it: for the input path $x + t v$ (its
# series is $(v, 0)$: first derivative $v$, second 0), `jet(f, (x,), ((v, 0 * v),))` returns
# `(f(x), (d1, d2))` with $d_1 = \nabla f(x)^\top v$ and $d_2 = v^\top \nabla^2 f(x)\, v$
# (derivatives, with the default `factorial_scaled=True`; with `False` the series are Taylor
# coefficients, $d_2 / 2$):

# %% tags=["demo"]
print(jet.jet(jnp.sin, (0.5,), ((1.0, 0.0),)), "  -sin(0.5) =", float(-jnp.sin(0.5)))
print(jet.jet(jnp.sin, (0.5,), ((1.0, 0.0),), factorial_scaled=False))

# %% [markdown]
# `jet` knows the common primitives (arithmetic, `exp`, `log`, `sin`, `tanh`, `dot_general`,
# sums), not all of them: a function with `jnp.prod` stops with a `KeyError: reduce_prod`.
#
# The Laplacian $\Delta f = \operatorname{tr} \nabla^2 f = \sum_i e_i^\top \nabla^2 f\, e_i$,
# which physics-informed networks and score matching need for inputs of many dimensions, is a
# sum of $n$ such second derivatives: $n$ jets, where `jnp.trace(jax.hessian(f)(x))` builds all
# $n^2$ entries to keep $n$ of them.
#
# ## 11. Design: a Laplacian without a Hessian
#
# ### Exercise 7: `laplacian(f, x)` (design, 3 points)
#
# Return $\Delta f(x)$ for $f: \mathbb{R}^n \to \mathbb{R}$ and a vector `x` of shape `(n,)`,
# as a scalar of the dtype of `x`, from second-order jets. The checks verify:
#
# * the value, against the trace of `jax.hessian` in float64, for functions built from sums,
#   products, `sin`, `exp`, `tanh`, `log1p` and matrix products, in float32 and float64, under
#   `jax.jit`;
# * that no JAX differentiation (`jax.hessian`, `jacfwd`, `jacrev`, `grad`, `jvp`, `vjp`,
#   `linearize`) appears;
# * that the $n$ jets are batched by `jax.vmap`: the program for $n = 12$ is no larger than for
#   $n = 3$.
#
# How you set up the directions is yours to choose.

# %% nbgrader={"grade_id": "laplacian", "solution": true}
def laplacian(f, x):
    """The trace of the Hessian of f at x, from n second-order jets."""
    ### BEGIN SOLUTION
    def second_derivative(direction):
        _, (_, d2) = jet.jet(f, (x,), ((direction, jnp.zeros_like(x)),))
        return d2

    return jnp.sum(jax.vmap(second_derivative)(jnp.eye(x.shape[0], dtype=x.dtype)))
    ### END SOLUTION


# %% nbgrader={"grade_id": "laplacian_tests", "points": 3}
adcheck.check_laplacian(laplacian)
### BEGIN HIDDEN TESTS
_Case = adcheck.Case
adcheck.check_laplacian(laplacian, jit=True, cases=[
    _Case("one input, f(x) = x**4", lambda x: jnp.sum(x**4), jnp.array([0.7])),
    _Case("a tanh layer, f(x) = sum(tanh(W x)), W of shape (4, 6)",
          lambda x: jnp.sum(jnp.tanh(jnp.linspace(-1.0, 1.0, 24, dtype=x.dtype).reshape(4, 6) @ x)),
          jnp.linspace(0.1, 0.6, 6)),
    _Case("f(x) = sum(log1p(x**2)) * x[0]", lambda x: jnp.sum(jnp.log1p(x**2)) * x[0],
          jnp.array([1.0, -2.0, 0.5, 0.0])),
])
with jax.enable_x64(True):
    adcheck.check_laplacian(laplacian, jit=True, cases=[
        _Case("float64, f(x) = exp(-|x|**2), x of shape (7,)", adcheck._bump,
              jnp.linspace(-1.0, 1.0, 7, dtype=jnp.float64)),
    ])
### END HIDDEN TESTS

# %% [markdown]
# ## 12. Custom batching rules
#
# `jax.vmap` batches a function primitive by primitive, and each primitive's batching rule
# decides what a batch costs. Usually that is what you want; sometimes you know better. Code
# that runs outside JAX, through `jax.pure_callback` (a NumPy routine, a simulator, a
# library), is the clearest case: with `vmap_method="sequential"`, vmap calls it once per
# example. `jax.custom_batching.custom_vmap` lets you write the rule yourself: decorate the
# function, then register `rule(axis_size, in_batched, *args)`, which receives the batched
# arguments (a batched one has a leading axis of `axis_size`), and a list of booleans saying
# which are batched, and returns `(outputs, out_batched)`.

# %% tags=["demo"]
host_calls = []


def host_norm(v):
    host_calls.append(v.shape)
    return np.linalg.norm(v, axis=-1).astype(v.dtype)


def norm_on_host(v):
    return jax.pure_callback(host_norm, jax.ShapeDtypeStruct(v.shape[:-1], v.dtype), v,
                             vmap_method="sequential")


@jax.custom_batching.custom_vmap
def batched_norm(v):
    return norm_on_host(v)


@batched_norm.def_vmap
def batched_norm_rule(axis_size, in_batched, v):
    print(f"rule: axis_size {axis_size}, in_batched {in_batched}, v of shape {v.shape}")
    return norm_on_host(v), True  # host_norm takes the norm of each row already


vectors = jnp.arange(12.0).reshape(4, 3)
for fn in (norm_on_host, batched_norm):
    host_calls.clear()
    print(fn.__name__, jax.vmap(fn)(vectors), "host calls:", host_calls)

# %% [markdown]
# ### Exercise 8: `host_solver(host_solve)` (3 points)
#
# `host_solve(A, B)` is a NumPy function (think of a solver library) that solves $A X = B$
# for a square `A` and a right-hand side `B` that is a vector of shape `(n,)` or a matrix of
# shape `(n, k)` whose columns are $k$ right-hand sides. Return `solve(A, b)`, a JAX function
# of one `A` of shape `(n, n)` and one `b` of shape `(n,)` that calls `host_solve` through
# `jax.pure_callback(..., vmap_method="sequential")`, decorated with
# `jax.custom_batching.custom_vmap`, whose rule:
#
# * when only `b` is batched, calls `host_solve` once, with the $k$ right-hand sides as the
#   columns of an `(n, k)` matrix, and returns the solutions batched along the first axis;
# * when `A` is batched, returns the right solutions however it likes (e.g. by `jax.vmap` of
#   the one-solve function, one host call per example).
#
# The checks count the calls and the shapes they receive through a `host_solve` of their own,
# with one solve, with `jax.vmap` over `b`, and over both, in float32 and float64, also with
# the batched function compiled by `jax.jit`.

# %% nbgrader={"grade_id": "host_solver", "solution": true}
def host_solver(host_solve):
    """solve(A, b) by host_solve, batched over right-hand sides in one host call."""
    ### BEGIN SOLUTION
    def on_host(A, b):
        return jax.pure_callback(host_solve, jax.ShapeDtypeStruct(b.shape, b.dtype), A, b,
                                 vmap_method="sequential")

    @jax.custom_batching.custom_vmap
    def solve(A, b):
        return on_host(A, b)

    @solve.def_vmap
    def solve_rule(axis_size, in_batched, A, b):
        A_batched, b_batched = in_batched
        if not A_batched:
            return on_host(A, b.T).T, True
        return jax.vmap(on_host, in_axes=(0, 0 if b_batched else None))(A, b), True

    return solve
    ### END SOLUTION


# %% nbgrader={"grade_id": "host_solver_tests", "points": 3}
adcheck.check_host_solver(host_solver)
### BEGIN HIDDEN TESTS
_Case, _spd, _normal = adcheck.Case, adcheck._spd, adcheck._normal
adcheck.check_host_solver(host_solver, jit=True, cases=[
    _Case("vmap over 7 right-hand sides, A of shape (4, 4)", _spd(60, 4), _normal(61, (7, 4)),
          "b"),
    _Case("vmap over one right-hand side, A of shape (2, 2)", _spd(62, 2), _normal(63, (1, 2)),
          "b"),
    _Case("vmap over 3 matrices and 3 right-hand sides", jnp.stack([_spd(64 + k, 2)
          for k in range(3)]), _normal(67, (3, 2)), "both"),
])
with jax.enable_x64(True):
    adcheck.check_host_solver(host_solver, jit=True, cases=[
        _Case("float64, vmap over 6 right-hand sides", _spd(70, 5, 5.0, jnp.float64),
              _normal(71, (6, 5), jnp.float64), "b"),
        _Case("float64, one solve", _spd(72, 3, 2.0, jnp.float64), _normal(73, (3,), jnp.float64),
              "none"),
    ])
### END HIDDEN TESTS

# %% [markdown]
# ## 13. Integer inputs of custom rules
#
# A custom rule's function may take integer arguments (indices, counts, a random seed). They
# have no derivative, and JAX gives their cotangents a dtype of their own, `float0`: an array
# of the input's shape that holds no bytes. `jax.grad` refuses an integer argument unless told
# `allow_int=True`, and a `bwd` rule returns `None` as the cotangent of an integer input:

# %% tags=["demo"]
@jax.custom_vjp
def gather(x, indices):
    return x[indices]


def gather_fwd(x, indices):
    return x[indices], (indices, x.shape)


def gather_bwd(residuals, g):
    indices, shape = residuals
    return jnp.zeros(shape, g.dtype).at[indices].add(g), None


gather.defvjp(gather_fwd, gather_bwd)
x_demo, indices_demo = jnp.arange(4.0), jnp.array([0, 2, 2])
print("gradient in x:", jax.grad(lambda x: gather(x, indices_demo).sum())(x_demo))
_, indices_bar = jax.vjp(gather, x_demo, indices_demo)[1](jnp.ones(3))
print(f"cotangent of the indices: dtype {indices_bar.dtype}, shape {indices_bar.shape}, "
      f"{indices_bar.nbytes} bytes")
try:
    jax.grad(lambda x, i: gather(x, i).sum(), argnums=1)(x_demo, indices_demo)
except TypeError as error:
    show_error(error)

# %% [markdown]
# (A rule that returns integer zeros, `jnp.zeros_like(indices)`, for it is accepted too on
# JAX 0.10.2, and turned into `float0`.)
#
# ## Summary
#
# * Differentiating through `eigh` differentiates eigenvectors, which are not differentiable
#   where eigenvalues meet: nan at exact ties, silently wrong values at ties up to rounding. A
#   matrix function's derivative needs only divided differences of $f$ (Daleckii–Krein), with
#   $f'$ on ties; a `custom_vjp` rule makes it finite and exact.
# * Derivatives of solves reuse the forward factorization; with `symbolic_zeros=True` a rule
#   learns which inputs are differentiated, and skips the rest.
# * The adjoint method and differentiating the discretisation give two different gradients of
#   an ODE solve, equal to $O(h^p)$; truncating the unrolled steps of an optimiser biases its
#   gradient.
# * The score function estimates gradients of expectations of anything, unbiased with a
#   baseline that is independent of the sample it corrects; reparameterisation has lower
#   variance where $f$ is differentiable; `stop_gradient` builds surrogates whose value and
#   gradient are both the estimates.
# * Taylor mode (`jet`) gives directional second derivatives in one pass: a Laplacian from $n$
#   of them, batched by `vmap`.
# * `custom_vmap` lets a function batch itself, e.g. one host call for a whole batch; integer
#   inputs of custom rules get `float0` cotangents.
