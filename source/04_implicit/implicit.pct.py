# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Assignment 04 — Implicit differentiation
#
# Many quantities in machine learning are not computed by a formula but found by a solver: a
# square root by Newton's method, the equilibrium of a recurrent layer, the minimizer of a
# training loss, the solution of a physical equation. Automatic differentiation can follow the
# solver's iterations one by one, but that costs memory in proportion to the number of
# iterations, fails for loops whose length is decided at run time, and differentiates the
# approximation the solver happened to stop at. The *implicit function theorem* gives the
# derivative of the solution from the equation it satisfies, using nothing but the final
# answer. In this notebook you will learn
#
# * the implicit function theorem for scalars and for vectors, written as a VJP;
# * how to put it in a `jax.custom_vjp` rule, first for Newton's square root, then for any
#   fixed point solved by `lax.while_loop`, second derivatives included;
# * what the implicit rule saves against differentiating the unrolled iterations, measured;
# * how `jax.lax.custom_root` does the same for roots, and differentiates closed-over values;
# * how to differentiate the solution of an optimization problem (a hyperparameter gradient);
# * what the theorem assumes, and what happens when those assumptions fail.

# %% [markdown]
# **Exercises.** An answer cell holds the functions of one exercise and, where a rule is
# registered, the registration line. Replace every placeholder, keep the names, the signatures,
# the decorators and the registration line, and run the cell; then run the locked test cell
# below it. The visible tests try a few inputs and say what they suspect when something is off.
# The grade comes from hidden tests that use more inputs, shapes and dtypes, run under
# `jax.jit`, and check that derivatives come from an implicit rule, not from differentiating the
# iterations.
#
# Cells that only show or time something carry the tag `demo`: grading does not run them, so
# what they print never counts towards your grade, and nothing that is graded depends on them.

# %% nbgrader={"grade_id": "setup", "locked": true}
import functools
import textwrap
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import adcheck

adcheck.setup()

# %% [markdown]
# The random numbers of the demos come from one seeded NumPy generator: `normal(shape, dtype)`
# returns standard normal samples as a JAX array. `rounded` turns arrays into rounded NumPy
# arrays for printing, and `show_error` prints the type and first line of an exception, for the
# places where we make JAX fail on purpose.

# %% tags=["demo"]
rng = np.random.default_rng(4)


def normal(shape, dtype=np.float32):
    """Standard normal samples of `shape`, drawn by NumPy, as a JAX array of `dtype`."""
    return jnp.asarray(rng.standard_normal(shape).astype(dtype))


def rounded(a, decimals=4):
    """A rounded NumPy copy of `a` for printing (adding 0.0 turns -0.0 into 0.0)."""
    return np.round(np.asarray(a), decimals) + 0.0


def show_error(error):
    """Print the type of an exception and the first line of its message."""
    lines = str(error).strip().splitlines()
    print(textwrap.fill(f"{type(error).__name__}: {lines[0] if lines else ''}", width=96,
                        subsequent_indent="    "))


# %% [markdown]
# ## 1. Solutions defined by an equation
#
# Newton's method for $\sqrt{a}$ looks for the root of $F(a, x) = x^2 - a$ and iterates
# $x \leftarrow x - F/F_x = \tfrac12 (x + a/x)$. Written as a Python loop, JAX records every
# step, and `grad` differentiates them all:

# %%
def newton_sqrt_unrolled(a, steps):
    """`steps` Newton steps for sqrt(a) from x = 1, as a Python loop."""
    x = jnp.ones_like(a)
    for _ in range(steps):
        x = 0.5 * (x + a / x)
    return x


print("sqrt(2) after 6 steps:", newton_sqrt_unrolled(2.0, 6))
print("its derivative        :", jax.grad(newton_sqrt_unrolled)(2.0, 6))
print("1 / (2 sqrt(2))       :", 0.5 / jnp.sqrt(2.0))

# %% [markdown]
# A real solver does not run a fixed number of steps: it stops when the answer has converged
# (section 5 shows how to decide that; here, when two iterates agree to a few units in the last
# place, with a cap on the number of steps). In JAX that is `lax.while_loop`, whose number of
# iterations is decided at run time. Forward
# mode differentiates it, but reverse mode cannot: to run the loop backwards it would have to
# store an unknown number of intermediate values.

# %% tags=["demo"]
def newton_sqrt_while(a):
    """Newton's method for sqrt(a), until two iterates agree to a few units in the last
    place (relative to x), or after 100 steps."""
    def keep_going(state):
        step_count, x_prev, x = state
        tolerance = 4 * jnp.finfo(x.dtype).eps * (1 + jnp.abs(x))
        return (jnp.abs(x - x_prev) > tolerance) & (step_count < 100)

    def step(state):
        step_count, _, x = state
        return step_count + 1, x, 0.5 * (x + a / x)

    return jax.lax.while_loop(keep_going, step, (0, a, 0.5 * (1.0 + a)))[2]


print("value  :", newton_sqrt_while(2.0))
print("jvp    :", jax.jvp(newton_sqrt_while, (2.0,), (1.0,))[1])
try:
    jax.grad(newton_sqrt_while)(2.0)
except ValueError as error:
    show_error(error)

# %% [markdown]
# Even where unrolling works, it is wasteful: the derivative of the solution depends only on
# the solution and on the equation, not on the path the solver took to get there. The rest of
# this notebook computes it that way.

# %% [markdown]
# ## 2. The implicit function theorem
#
# ### Scalars
#
# Let $F(a, x)$ be continuously differentiable, and let $x^*(a)$ be a solution of
# $F(a, x^*(a)) = 0$. Differentiating both sides of this identity in $a$ gives
#
# $$\partial_a F + \partial_x F \, \frac{\mathrm{d}x^*}{\mathrm{d}a} = 0
# \qquad\Longrightarrow\qquad
# \frac{\mathrm{d}x^*}{\mathrm{d}a} = -\frac{\partial_a F(a, x^*)}{\partial_x F(a, x^*)}.$$
#
# The theorem says more: if $\partial_x F(a_0, x_0) \neq 0$ at a solution $(a_0, x_0)$, then
# near $a_0$ there is exactly one differentiable solution branch $x^*(a)$ through $x_0$, and
# its derivative is the formula above. For the square root, $F = x^2 - a$ gives
# $\mathrm{d}x^*/\mathrm{d}a = 1 / (2 x^*)$: the derivative needs $x^*$ and nothing else.
#
# A less familiar example: the real root of $x^3 + x = a$, which has no short formula. Any
# solver finds $x^*$; the two partial derivatives of $F$ at the solution give the slope, and a
# finite difference of the solver confirms it.

# %% tags=["demo"]
def cubic(a, x):
    return x**3 + x - a


def solve_cubic(a):
    """The real root of x**3 + x = a, by 30 Newton steps from 0 (float64)."""
    x = 0.0
    for _ in range(30):
        x = x - cubic(a, x) / (3 * x**2 + 1)
    return x


with jax.enable_x64(True):
    a0 = 2.5
    x0 = solve_cubic(a0)
    slope = -jax.grad(cubic, 0)(a0, x0) / jax.grad(cubic, 1)(a0, x0)
    finite_difference = (solve_cubic(a0 + 1e-6) - solve_cubic(a0 - 1e-6)) / 2e-6
    print(f"x*(2.5) = {x0:.10f}")
    print(f"implicit function theorem: {slope:.10f}")
    print(f"central finite difference: {finite_difference:.10f}")

# %% [markdown]
# ### Vectors, as a VJP
#
# Now $a \in \mathbb{R}^p$, $x \in \mathbb{R}^n$ and $F(a, x) \in \mathbb{R}^n$: $n$
# equations for $n$ unknowns. The same differentiation gives the Jacobian
#
# $$\partial x^* = -\left(\partial_x F\right)^{-1} \partial_a F,$$
#
# with the $n \times n$ matrix $\partial_x F$ invertible at the solution. Reverse mode needs
# the VJP $v^\top \partial x^*$, which we can bracket from the left:
#
# $$v^\top \partial x^* = u^\top \partial_a F
# \qquad\text{where}\qquad
# \left(\partial_x F\right)^\top u = -v.$$
#
# So one VJP of the solution costs one linear solve with the *transposed* Jacobian
# $\partial_x F$ (done with VJPs of $F$ in $x$, never forming the matrix, when $n$ is large)
# and one VJP of $F$ in $a$. Nothing from the solver's iterations is needed.

# %% [markdown]
# ### Fixed points
#
# Solvers are often written as fixed-point iterations $x \leftarrow f(a, x)$. With
# $F(a, x) = f(a, x) - x$, and $A = \partial_x f$, $B = \partial_a f$ at the solution,
#
# $$v^\top \partial x^* = w^\top B
# \qquad\text{where}\qquad
# w = v + A^\top w .$$
#
# The adjoint $w$ is itself the fixed point of the linear map $w \mapsto v + A^\top w$, which
# converges when the spectral radius of $A$ is below one; that is also when the forward
# iteration converges near $x^*$. So the backward pass of a fixed-point solver can be another
# fixed-point solve.
#
# Here is a small check of these formulas on an equilibrium layer $x = \tanh(W x + a)$, the
# building block of deep equilibrium models. $W$ is scaled so that the map is a contraction.
# We solve by plain iteration, build the VJP from the theorem with a dense solve (fine for
# $n = 4$), and compare with a finite difference along a random direction $\delta$:
# $v^\top \partial x^*\, \delta$ should equal $(v^\top x^*(a + \epsilon\delta) - v^\top
# x^*(a - \epsilon\delta)) / 2\epsilon$.

# %% tags=["demo"]
with jax.enable_x64(True):
    W_eq = 0.5 * jnp.asarray(np.linalg.qr(rng.standard_normal((4, 4)))[0])
    a_eq = normal((4,), np.float64)
    v_eq = normal((4,), np.float64)
    delta = normal((4,), np.float64)

    def equilibrium_map(a, x):
        return jnp.tanh(W_eq @ x + a)

    def equilibrium(a):
        x = jnp.zeros_like(a)
        for _ in range(200):
            x = equilibrium_map(a, x)
        return x

    x_eq = equilibrium(a_eq)
    A = jax.jacobian(equilibrium_map, 1)(a_eq, x_eq)
    w = jnp.linalg.solve((jnp.eye(4) - A).T, v_eq)
    _, pullback_a = jax.vjp(lambda a: equilibrium_map(a, x_eq), a_eq)
    (vjp_ift,) = pullback_a(w)
    eps = 1e-6
    fd = (v_eq @ (equilibrium(a_eq + eps * delta) - equilibrium(a_eq - eps * delta))) / (2 * eps)
    print(f"v^T dx* delta by the theorem      : {vjp_ift @ delta:.10f}")
    print(f"v^T dx* delta by finite difference: {fd:.10f}")
    print(f"the same without the solve (w = v): {pullback_a(v_eq)[0] @ delta:.10f}")

# %% [markdown]
# The last line shows the mistake of skipping the adjoint solve: using $v$ in place of $w$
# keeps only the direct effect of $a$ and misses how $a$ moves $x$ through the equation.

# %% [markdown]
# ## 3. Newton's square root with an implicit rule
#
# Our first rule follows the theorem for the square root. The forward pass runs Newton's
# method; the backward pass ignores the iterations and uses $\mathrm{d}y/\mathrm{d}x =
# 1/(2y)$ at the solution $y$. The only residual the backward pass needs is $y$.
#
# ### Exercise 1: `fixed_point_sqrt` (3 points)
#
# Write `fixed_point_sqrt(x)` exactly as follows:
#
# * `x` is a 1-D array of positive values; the result has the same shape.
# * The forward pass starts from `y = jnp.ones_like(x)` and runs exactly **10** Newton steps
#   `y = 0.5 * (y + x / y)` (a Python loop, or `jax.lax.fori_loop`).
# * `fixed_point_sqrt` is decorated with `@jax.custom_vjp`. Its forward rule `_fwd(x)` returns
#   the output and, as the residual, the converged `y` (not `x`). Its backward rule
#   `_bwd(y, g)` returns the tuple `(g * 0.5 / y,)`: a VJP rule returns one cotangent per
#   input, so mind the trailing comma.
#
# Two remarks the statement leaves out. Ten steps from one converge only for moderate `x`
# (you will see the range below); where they have not converged, the rule returns
# $g / (2y)$ for the `y` actually computed, which is *not* the derivative of the ten steps. And
# the rule is only defined for $y \ne 0$, which positive inputs guarantee.

# %% nbgrader={"grade_id": "fixed_point_sqrt", "solution": true}
@jax.custom_vjp
def fixed_point_sqrt(x):
    """sqrt(x) by 10 Newton steps from y = 1; x is a 1-D array of positive values."""
    ### BEGIN SOLUTION
    y = jnp.ones_like(x)
    for _ in range(10):
        y = 0.5 * (y + x / y)
    return y
    ### END SOLUTION


def _fwd(x):
    """The output and the residual the backward pass needs: the converged y."""
    ### BEGIN SOLUTION
    y = fixed_point_sqrt(x)
    return y, y
    ### END SOLUTION


def _bwd(y, g):
    """The implicit rule: the cotangent of x, as a tuple of one array."""
    ### BEGIN SOLUTION
    return (g * 0.5 / y,)
    ### END SOLUTION


fixed_point_sqrt.defvjp(_fwd, _bwd)

# %% nbgrader={"grade_id": "fixed_point_sqrt_tests", "points": 3}
adcheck.check_fixed_point_sqrt(fixed_point_sqrt)
### BEGIN HIDDEN TESTS
_Case = adcheck.Case
adcheck.check_fixed_point_sqrt(fixed_point_sqrt, jit=True, cases=[
    _Case("a single entry", jnp.array([2.0]), jnp.array([3.0])),
    _Case("seven entries from 0.01 to 100", jnp.geomspace(0.01, 100.0, 7),
          jnp.linspace(-1.0, 2.0, 7)),
    _Case("unconverged entries: tiny and huge", jnp.array([1e-6, 3e-5, 2e5, 3e6, 1e8]),
          jnp.array([1.0, -0.5, 2.0, 1.0, -3.0])),
])
with jax.enable_x64(True):
    adcheck.check_fixed_point_sqrt(fixed_point_sqrt, jit=True, cases=[
        _Case("float64, converged and unconverged entries",
              jnp.array([0.5, 2.0, 50.0, 1e5, 1e7]), jnp.array([1.0, 1.0, -2.0, 0.5, 4.0])),
    ])
### END HIDDEN TESTS

# %% [markdown]
# The values and gradients at perfect squares, next to the exact derivative $1/(2\sqrt{x})$:

# %% tags=["demo"]
x_squares = jnp.array([4.0, 9.0, 0.25, 100.0])
print("fixed_point_sqrt:", rounded(fixed_point_sqrt(x_squares)))
print("its gradient    :", rounded(jax.grad(lambda x: fixed_point_sqrt(x).sum())(x_squares)))
print("0.5 / sqrt(x)   :", rounded(0.5 / jnp.sqrt(x_squares)))

# %% [markdown]
# Over which inputs do ten steps from one converge? The first step gives $(1 + x)/2$; for large
# $x$ each following step roughly halves $y$ until it is near $\sqrt{x}$, and for tiny $x$ each
# step halves $y$ from one. Either way about $|\log_2 \sqrt{x}|$ steps pass before the fast,
# quadratic convergence starts, so ten steps leave a visible error outside roughly
# $[10^{-4}, 10^{4}]$.

# %% tags=["demo"]
x_range = jnp.geomspace(1e-8, 1e8, 400)
relative_error = jnp.abs(fixed_point_sqrt(x_range) - jnp.sqrt(x_range)) / jnp.sqrt(x_range)
fig, ax = plt.subplots(figsize=(5.5, 3.2))
ax.loglog(x_range, jnp.maximum(relative_error, 1e-9))
ax.axhline(np.finfo(np.float32).eps, color="gray", linestyle=":", label="float32 epsilon")
ax.set_xlabel("x")
ax.set_ylabel("relative error of 10 steps")
ax.set_title("Newton's square root from y = 1 (floored at 1e-9)")
ax.legend()
plt.show()

# %% [markdown]
# ## 4. Unrolled against implicit differentiation, measured
#
# ### Memory and program size
#
# To run a loop backwards, reverse mode stores what each step needs for its own VJP: here
# `y` and `x / y**2`, two arrays per step. `jax.vjp` returns its pullback as a pytree whose
# leaves are exactly those stored residuals, so we can weigh them. We compare, for an `x` of
# 100 000 entries and a growing number of Newton steps:
#
# * the Python loop, unrolled by tracing (the loop of section 1);
# * the same loop as `lax.fori_loop` with a fixed trip count, which JAX lowers to a `scan`:
#   one compiled step instead of a copy per step, but the residuals are still stacked;
# * the implicit rule of section 3 with the same number of steps.
#
# Besides the residuals we count the equations in the jaxpr of the backward pass (the
# pullback, with the residuals as constants), a measure of the program XLA has to compile.

# %%
def newton_sqrt_scan(x, steps):
    """Like `newton_sqrt_unrolled`, as a fori_loop with a fixed trip count (a scan)."""
    return jax.lax.fori_loop(0, steps, lambda _, y: 0.5 * (y + x / y), jnp.ones_like(x))


def newton_sqrt_implicit(steps):
    """`steps` Newton steps from y = 1, with the implicit rule of `fixed_point_sqrt`."""
    @jax.custom_vjp
    def sqrt(x):
        return newton_sqrt_unrolled(x, steps)

    sqrt.defvjp(lambda x: (sqrt(x), sqrt(x)), lambda y, g: (g * 0.5 / y,))
    return sqrt


def backward_pass_cost(fn, x):
    """Megabytes stored by jax.vjp(fn, x) for the backward pass, and the number of equations in
    the jaxpr of that backward pass (top level only)."""
    _, pullback = jax.vjp(fn, x)
    stored = sum(leaf.nbytes for leaf in jax.tree.leaves(pullback)) / 1e6
    return stored, len(jax.make_jaxpr(pullback)(x).eqns)


# %% tags=["demo"]
x_big = jnp.linspace(1.0, 2.0, 100_000)
step_counts = [1, 3, 10, 30, 100]
methods = {
    "unrolled (Python loop)": lambda n: lambda x: newton_sqrt_unrolled(x, n),
    "unrolled (fori_loop)": lambda n: lambda x: newton_sqrt_scan(x, n),
    "implicit rule": newton_sqrt_implicit,
}
costs = {name: [backward_pass_cost(make(n), x_big) for n in step_counts]
         for name, make in methods.items()}
megabytes = {name: [stored for stored, _ in cost] for name, cost in costs.items()}
equations = {name: [count for _, count in cost] for name, cost in costs.items()}
print(f"{'steps':>6}" + "".join(f"{name:>26}" for name in methods))
for i, n in enumerate(step_counts):
    print(f"{n:>6}" + "".join(f"{megabytes[m][i]:>17.1f} MB {equations[m][i]:>4} eq"
                              for m in methods))

# %% tags=["demo"]
fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
for (name, mb), marker in zip(megabytes.items(), "os^"):
    axes[0].loglog(step_counts, mb, marker + "-", label=name)
    axes[1].loglog(step_counts, equations[name], marker + "-", label=name)
axes[0].set_ylabel("residuals stored by jax.vjp (MB)")
axes[1].set_ylabel("equations in the backward pass")
for ax in axes:
    ax.set_xlabel("Newton steps")
    ax.legend()
fig.suptitle("Backward pass of Newton's square root, x of 100 000 float32 entries")
plt.show()

# %% [markdown]
# The table is exact, not timed, so it is the same on every machine. Both unrolled versions
# store two arrays of 0.4 MB per step, 80 MB at a hundred steps, while the implicit rule stores
# the single array `y`, whatever the number of steps. (The `fori_loop` also stores its step
# counter and the constant `x`.) Tracing the Python loop also copies the step's backward pass
# into the program once per iteration, seven equations each; the `fori_loop` and the implicit
# rule keep a backward program of constant size. The implicit rule is the only one of the
# three whose backward pass costs the same whether the solver ran 5 steps or 5000, and the
# only one that would work with a `while_loop`.
#
# ### Accuracy when the forward pass has not converged
#
# The two approaches answer different questions. Unrolling gives the exact derivative of the
# computation that ran, $\mathrm{d}y_N/\mathrm{d}x$ after $N$ steps. The implicit rule gives
# the derivative of the exact solution, $1/(2\sqrt{x})$, evaluated at the approximation:
# $1/(2 y_N)$. Both approach the true derivative as $N$ grows. At $x = 10^4$ in float64,
# where the first steps are far from the solution:

# %% tags=["demo"]
with jax.enable_x64(True):
    x_far = jnp.array(1e4)
    true_derivative = 0.5 / jnp.sqrt(x_far)
    newton_steps = np.arange(1, 17)
    errors = {"forward value y_N": [], "unrolled derivative": [], "implicit rule": []}
    for n in newton_steps:
        y_n = newton_sqrt_unrolled(x_far, n)
        errors["forward value y_N"].append(abs(y_n / jnp.sqrt(x_far) - 1))
        unrolled = jax.grad(newton_sqrt_unrolled)(x_far, n)
        errors["unrolled derivative"].append(abs(unrolled / true_derivative - 1))
        implicit = jax.grad(newton_sqrt_implicit(n))(x_far)
        errors["implicit rule"].append(abs(implicit / true_derivative - 1))
    print(f"{'N':>3}" + "".join(f"{name:>22}" for name in errors))
    for i, n in enumerate(newton_steps):
        print(f"{n:>3}" + "".join(f"{float(e[i]):>22.2e}" for e in errors.values()))

# %% tags=["demo"]
fig, ax = plt.subplots(figsize=(5.5, 3.6))
for (name, errs), marker in zip(errors.items(), "os^"):
    ax.semilogy(newton_steps, np.maximum(np.array(errs, dtype=float), 1e-17), marker + "-",
                label=name)
ax.set_xlabel("Newton steps N")
ax.set_ylabel("relative error (floored at 1e-17)")
ax.set_title("sqrt(x) at x = 1e4, float64")
ax.legend()
plt.show()

# %% [markdown]
# The implicit rule's error is the forward error to first order (it is $1/(2y_N)$), and never
# larger in this table. The unrolled derivative's error is 2 to 22 times the forward
# error at every unconverged step: the derivatives of the iterates converge more slowly than
# the iterates. Once the forward pass has converged to
# machine precision, all three agree. So the implicit gradient is never less accurate than the
# value it comes with, and it is the gradient you want when the solver is a means to find
# $x^*$ rather than the object of study. If you truly need the derivative of a truncated
# iteration (say, a learned optimizer run for a fixed number of steps), unroll.

# %% [markdown]
# ## 5. A generic fixed-point solver
#
# Now the general tool: `fixed_point(f, a, x_guess)` returns the solution of $x = f(a, x)$,
# iterating $x \leftarrow f(a, x)$ from `x_guess` with `lax.while_loop`, and its backward
# pass solves the adjoint fixed point of section 2.
#
# ### When to stop
#
# A stopping rule that looks harmless, `jnp.abs(x_prev - x) > 1e-6` as the loop condition, is
# wrong three ways. It returns an array when `x` is an array, and `while_loop` wants one
# boolean:

# %% tags=["demo"]
def naive_keep_going(state):
    x_prev, x = state
    return jnp.abs(x - x_prev) > 1e-6


def naive_fixed_point(f, a, x_guess, max_iterations=None):
    """Iterate x <- f(a, x) while naive_keep_going (and, if given, fewer than max_iterations)."""
    def keep_going(state):
        k, x_prev, x = state
        go = naive_keep_going((x_prev, x))
        return go if max_iterations is None else go & (k < max_iterations)

    def step(state):
        k, _, x = state
        return k + 1, x, f(a, x)

    return jax.lax.while_loop(keep_going, step, (1, x_guess, f(a, x_guess)))


try:
    naive_fixed_point(lambda a, x: 0.5 * (x + a / x), jnp.array([2.0, 3.0]), jnp.ones(2))
except TypeError as error:
    show_error(error)

# %% [markdown]
# Second, an absolute tolerance can be finer than the spacing of floating-point numbers near
# the solution. The map $x \mapsto 0.99 \sin x + 1000.3$ is a contraction with a fixed point
# near 1001.15, where float32 numbers are $6 \cdot 10^{-5}$ apart: the iterates end up
# alternating between neighbours and the loop never ends. We stop it at 100 000 iterations:

# %% tags=["demo"]
iterations, x_prev, x_last = naive_fixed_point(lambda a, x: 0.99 * jnp.sin(x) + a,
                                               jnp.float32(1000.3), jnp.float32(0.0),
                                               max_iterations=100_000)
print(f"stopped after {int(iterations)} iterations, alternating between {float(x_prev):.9g} "
      f"and {float(x_last):.9g}")

# %% [markdown]
# Third, a small step does not mean a small error. For a contraction with rate $\rho$, in exact
# arithmetic the error after a step of size $s$ can be as large as $s \rho / (1 - \rho)$: nine
# times the step for $\rho = 0.9$. In floating point it can be worse, since rounding changes the
# map itself (not even 0.9 and 1.3 are float32 numbers). Below, the iteration stops at a step of
# one unit in the last place (about $10^{-6}$ near 13) some sixteen units from the solution.

# %% tags=["demo"]
iterations, _, x_last = naive_fixed_point(lambda a, x: 0.9 * x + a, jnp.float32(1.3),
                                          jnp.float32(0.0))
print(f"x = 0.9 x + 1.3 stops after {int(iterations)} iterations at {float(x_last):.7f}; "
      f"the solution is 13, an error of {13 - float(x_last):.1e}")

# %% [markdown]
# We therefore stop when two iterates agree to a few units in the last place, relative to the
# size of $x$, with a cap on the number of iterations so that a map that does not converge
# cannot hang the notebook. Use these two in your solver:

# %% nbgrader={"grade_id": "stopping_rule", "locked": true}
MAX_ITERATIONS = 10_000


def converged(x_prev, x):
    """True when successive iterates agree to a few units in the last place of x's dtype."""
    tolerance = 4 * jnp.finfo(x.dtype).eps * (1 + jnp.max(jnp.abs(x)))
    return jnp.max(jnp.abs(x - x_prev)) <= tolerance


# %% [markdown]
# ### Exercise 2: `fixed_point(f, a, x_guess)` (design, 4 points)
#
# * `f(a, x)` is a function of a pytree of parameters `a` and a floating-point array `x`, that
#   returns an array shaped like `x`. `x_guess` is an array.
# * **Forward:** carry `(iteration, x_prev, x)` through `jax.lax.while_loop`, starting from
#   `(1, x_guess, f(a, x_guess))`, and continue while `x` has not `converged(x_prev, x)` and
#   the iteration count is below `MAX_ITERATIONS`. Return the last `x`. (The tests set
#   `MAX_ITERATIONS` and `converged` to values of their own and count the steps, so use
#   both as they are.)
# * **Rule:** `fixed_point` is a `jax.custom_vjp` with `nondiff_argnums=(0,)`, since `f` is a
#   function, not an array. `fixed_point_fwd(f, a, x_guess)` saves `a` and the solution
#   `x_star` as residuals. `fixed_point_bwd(f, residuals, v)` returns the cotangents of
#   `(a, x_guess)`:
#   * for `a`: $w^\top \partial_a f(a, x^*)$, where $w = v + A^\top w$ with
#     $A = \partial_x f(a, x^*)$. Solve for `w` by calling **`fixed_point` itself**, with
#     initial guess `v` and the adjoint map $w \mapsto v + A^\top w$, whose $A^\top w$ comes
#     from `jax.vjp` of `f` in `x` at `x_star`. Then apply the VJP of `f` in `a` to `w`.
#     (The tests look for this second loop in the backward pass: a dense solve, which forms
#     $A$, does not pass.)
#   * A function handed to `fixed_point` must not close over values that are being
#     differentiated (the end of this section shows what happens), and for a second
#     derivative `a`, `x_star` and `v` are such values. So pass them to the adjoint map as its
#     parameters, `(a, x_star, v)`, and call `jax.vjp` inside the map.
#   * for `x_guess`: zeros, since the solution does not depend on where the search started.
#
# Because the backward pass calls `fixed_point`, differentiating the backward pass (for a
# second derivative) uses the rule again; a bare `while_loop` there would make
# `grad(grad(...))` fail.

# %% nbgrader={"grade_id": "fixed_point", "solution": true}
@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def fixed_point(f, a, x_guess):
    """The solution x of x = f(a, x), by iteration from x_guess with lax.while_loop."""
    ### BEGIN SOLUTION
    def keep_going(state):
        iteration, x_prev, x = state
        return jnp.logical_not(converged(x_prev, x)) & (iteration < MAX_ITERATIONS)

    def step(state):
        iteration, _, x = state
        return iteration + 1, x, f(a, x)

    return jax.lax.while_loop(keep_going, step, (1, x_guess, f(a, x_guess)))[2]
    ### END SOLUTION


def fixed_point_fwd(f, a, x_guess):
    """The solution and the residuals (a, x_star)."""
    ### BEGIN SOLUTION
    x_star = fixed_point(f, a, x_guess)
    return x_star, (a, x_star)
    ### END SOLUTION


def fixed_point_bwd(f, residuals, v):
    """The cotangents of (a, x_guess), from the adjoint fixed point w = v + A^T w."""
    ### BEGIN SOLUTION
    a, x_star = residuals

    def adjoint_map(params, w):
        a, x_star, v = params
        _, vjp_x = jax.vjp(lambda x: f(a, x), x_star)
        return v + vjp_x(w)[0]

    w = fixed_point(adjoint_map, (a, x_star, v), v)
    _, vjp_a = jax.vjp(lambda a: f(a, x_star), a)
    return vjp_a(w)[0], jnp.zeros_like(x_star)
    ### END SOLUTION


fixed_point.defvjp(fixed_point_fwd, fixed_point_bwd)

# %% nbgrader={"grade_id": "fixed_point_tests", "points": 4}
adcheck.check_fixed_point(fixed_point, jit=True)
### BEGIN HIDDEN TESTS
_Case = adcheck.Case
_M5 = 0.45 * jnp.asarray(np.linalg.qr(np.random.default_rng(11).standard_normal((5, 5)))[0],
                         jnp.float32)
_slow = jnp.diag(jnp.array([0.95, 0.5, -0.9]))
_layer = lambda a, x: jnp.tanh(a["W"] @ x + a["b"])
_a_layer = {"W": 2.0 * _M5[:3, :3], "b": jnp.array([0.5, -1.0, 2.0])}
_x_layer = jnp.zeros(3)
for _ in range(500):
    _x_layer = _layer(_a_layer, _x_layer)
adcheck.check_fixed_point(fixed_point, jit=True, cases=[
    _Case("Newton's square root of a (2, 3) array", lambda a, x: 0.5 * (x + a / x),
          jnp.geomspace(0.1, 50.0, 6).reshape(2, 3), jnp.ones((2, 3)),
          jnp.linspace(-1.0, 1.0, 6).reshape(2, 3)),
    _Case("x = M x + a for a random 5 x 5 M", lambda a, x: _M5 @ x + a,
          jnp.arange(5.0), jnp.zeros(5), jnp.array([1.0, -1.0, 0.5, 2.0, 0.0])),
    _Case("a slow contraction (rate 0.95)", lambda a, x: _slow @ x + a,
          jnp.array([1.0, 2.0, 3.0]), jnp.zeros(3), jnp.array([1.0, 1.0, 1.0])),
    _Case("x = tanh(W x + b), a = {'W', 'b'}, started at the solution", _layer, _a_layer,
          _x_layer, jnp.array([1.0, 2.0, -1.0])),
    _Case("a scalar x and a tuple a", lambda a, x: a[0] * jnp.cos(x) + a[1],
          (jnp.array(0.7), jnp.array(0.3)), jnp.array(0.0), jnp.array(1.5)),
])
with jax.enable_x64(True):
    adcheck.check_fixed_point(fixed_point, jit=True, cases=[
        _Case("float64, x = M x + a", lambda a, x: _M5.astype(jnp.float64) @ x + a,
              jnp.linspace(-1.0, 1.0, 5), jnp.zeros(5), jnp.ones(5)),
        _Case("float64, Newton's square root, x_guess = a", lambda a, x: 0.5 * (x + a / x),
              jnp.array([0.3, 2.0, 7.0]), jnp.array([0.3, 2.0, 7.0]),
              jnp.array([1.0, -1.0, 2.0])),
    ])
### END HIDDEN TESTS

# %% [markdown]
# With `fixed_point` we get Newton's square root for arrays, under `jit` and `vmap`, with
# first and second derivatives that match `jnp.sqrt`'s, which is computed in an entirely
# different way:

# %% tags=["demo"]
def newton_sqrt(a):
    return fixed_point(lambda a, x: 0.5 * (x + a / x), a, a)


print("value             :", newton_sqrt(2.0), "vs", jnp.sqrt(2.0))
print("first derivative  :", jax.grad(newton_sqrt)(2.0), "vs", jax.grad(jnp.sqrt)(2.0))
print("second derivative :", jax.grad(jax.grad(newton_sqrt))(2.0), "vs",
      jax.grad(jax.grad(jnp.sqrt))(2.0))
print("jit(vmap)         :", rounded(jax.jit(jax.vmap(newton_sqrt))(jnp.array([1.0, 2.0, 9.0]))))

# %% [markdown]
# The rule differentiates `a`, and only `a`. A function `f` that *closes over* a value being
# differentiated hides that value from the rule, and JAX refuses rather than return a wrong
# zero:

# %% tags=["demo"]
def scaled_solution(c):
    """x = 0.5 x + c, so x* = 2c, with c captured by the closure instead of passed as a."""
    return fixed_point(lambda a, x: 0.5 * x + c, 0.0, 0.0)


try:
    jax.grad(scaled_solution)(3.0)
except jax.errors.UnexpectedTracerError as error:
    show_error(error)
print("passing c as a instead:", jax.grad(lambda c: fixed_point(lambda c, x: 0.5 * x + c, c,
                                                                0.0))(3.0))

# %% [markdown]
# Closing over values that are *not* differentiated (data, or arguments of an enclosing
# `jit`) is fine. For everything you differentiate, pass it in `a`: a pytree, so it can hold
# as many arrays as you like.

# %% [markdown]
# ## 6. `jax.lax.custom_root`
#
# JAX ships the same idea for roots, $f(x) = 0$, as `jax.lax.custom_root(f, initial_guess,
# solve, tangent_solve)`:
#
# * `solve(f, initial_guess)` is any solver you like; JAX never differentiates it.
# * `tangent_solve(g, y)` solves the *linear* equation $g(x) = y$, where $g$ is the
#   linearization $\partial f(x^*)$: forward mode needs exactly this solve, and reverse mode
#   transposes the computation, so it must be linear in `y` and made of operations JAX can
#   transpose. For a scalar or an elementwise $f$, $g$ is a multiplication by the derivative,
#   so `y / g(jnp.ones_like(y))` solves it. For a small system of equations, materialize the
#   matrix with `jax.jacobian(g)(y)` and call `jnp.linalg.solve`.
# * Unlike our `fixed_point`, `f` may close over the values you differentiate: `custom_root`
#   traces `f` and finds them.
#
# A small example first: the cube root $x = c^{1/3}$ as the root of $x^3 - c$, where the
# equation closes over $c$. The theorem gives $\mathrm{d}x/\mathrm{d}c = 1/(3x^2)$, and
# differentiating that once more, $\mathrm{d}^2x/\mathrm{d}c^2 = -2/(9x^5)$. The solver is
# Newton's method in a `lax.while_loop`, which reverse mode cannot differentiate at all, so
# any gradient we get must come from the rule:

# %% tags=["demo"]
def cube_root(c):
    def equation(x):
        return x**3 - c  # closes over c, the value we differentiate

    def newton(f, x):
        def keep_going(state):
            iteration, x = state
            tolerance = 8 * jnp.finfo(x.dtype).eps * (1 + jnp.abs(c))
            return jnp.any(jnp.abs(f(x)) > tolerance) & (iteration < 100)

        def step(state):
            iteration, x = state
            return iteration + 1, x - f(x) / (3 * x**2)

        return jax.lax.while_loop(keep_going, step, (0, x))[1]

    def divide(g, y):  # g is multiplication by 3 x*^2, elementwise
        return y / g(jnp.ones_like(y))

    return jax.lax.custom_root(equation, jnp.ones_like(c), newton, divide)


with jax.enable_x64(True):
    c = jnp.array([0.5, 2.0, 27.0])
    x = cube_root(c)
    print("x:            ", x)
    print("dx/dc (rule): ", jax.vmap(jax.grad(cube_root))(c))
    print("1 / (3 x^2):  ", 1 / (3 * x**2))
    print("d2x/dc2:      ", jax.vmap(jax.grad(jax.grad(cube_root)))(c))
    print("-2 / (9 x^5): ", -2 / (9 * x**5))

# %% [markdown]
# `jax.jvp` works too (forward mode calls `tangent_solve` directly), and so do `jit` and `vmap`.
#
# ### Exercise 3: Kepler's equation (design, 3 points)
#
# A body on an elliptic orbit with eccentricity $e \in [0, 1)$ is at *mean anomaly* $M$ (the
# angle that grows uniformly in time) when its *eccentric anomaly* $E$ solves Kepler's equation
#
# $$E - e \sin E = M.$$
#
# There is no closed form, but since $\partial_E (E - e \sin E) = 1 - e\cos E > 0$ the solution
# is unique, and the theorem gives
# $\partial E/\partial M = 1/(1 - e \cos E)$ and $\partial E/\partial e = \sin E/(1 - e\cos E)$.
#
# Write `kepler(M, e)`, a solver of Kepler's equation that JAX differentiates by the implicit
# function theorem. How you solve is yours to design; what it must do:
#
# * `M` and `e` are floating-point arrays of the same shape (possibly 0-d), with
#   $0 \le e \le 0.95$ and any real `M`; solve elementwise and return `E` of that shape and
#   dtype, converged to the precision of that dtype: float64 inputs get float64 accuracy.
# * Derivatives come from `jax.lax.custom_root`, never from differentiating the solver's
#   iterations. The tests check that `custom_root` is used.
# * It works under `jax.jit`, and in forward and reverse mode, to second order.
#
# What is accepted: any iteration that converges on the whole range, including near
# perihelion at $e = 0.95$ and for large $|M|$ (the tests try both), a `fori_loop` or a
# `while_loop`, any start, and any correct `tangent_solve`. The tests check values, first
# derivatives in `M` and `e` in both modes, and $\partial^2 E / \partial M^2$, against float64
# references, also with float32 inputs while 64-bit mode is on (an array made without a dtype
# is then float64: make arrays with the input's dtype).

# %% nbgrader={"grade_id": "kepler", "solution": true}
def kepler(M, e):
    """The eccentric anomaly E with E - e sin(E) = M, elementwise, by lax.custom_root."""
    ### BEGIN SOLUTION
    def equation(E):
        return E - e * jnp.sin(E) - M

    def newton(f, E):
        def step(_, E):
            slope = jax.jvp(f, (E,), (jnp.ones_like(E),))[1]
            return E - f(E) / slope

        return jax.lax.fori_loop(0, 30, step, E)

    def divide(g, y):
        return y / g(jnp.ones_like(y))

    return jax.lax.custom_root(equation, M, newton, divide)
    ### END SOLUTION


# %% nbgrader={"grade_id": "kepler_tests", "points": 3}
adcheck.check_kepler(kepler)
### BEGIN HIDDEN TESTS
_Case = adcheck.Case
adcheck.check_kepler(kepler, jit=True, cases=[
    _Case("scalars M = 1.2, e = 0.6", jnp.array(1.2), jnp.array(0.6)),
    _Case("a circle: e = 0", jnp.linspace(-3.0, 3.0, 5), jnp.zeros(5)),
    _Case("e = 0.95 near perihelion and beyond 2 pi, shape (2, 3)",
          jnp.array([[0.01, 0.2, -0.1], [7.0, 12.5, -6.5]]), jnp.full((2, 3), 0.95)),
    _Case("a grid of 40 orbits", jnp.linspace(-7.0, 14.0, 40), jnp.linspace(0.0, 0.95, 40)),
    _Case("M outside [0, 2 pi], e = 0.9", jnp.array([-5.3, -3.1, 7.9, 9.4, 10.1]),
          jnp.full(5, 0.9)),
    _Case("200 values of M from -20 to 30, e = 0.95", jnp.linspace(-20.0, 30.0, 200),
          jnp.full(200, 0.95)),
])
with jax.enable_x64(True):
    adcheck.check_kepler(kepler, jit=True, cases=[
        _Case("float64", jnp.array([0.3, 1.0, 2.5, 4.0, 6.0]),
              jnp.array([0.9, 0.1, 0.95, 0.5, 0.7])),
    ])
### END HIDDEN TESTS

# %% [markdown]
# The eccentric anomaly and its derivative in $M$ over one orbit, for three eccentricities.
# For a nearly circular orbit $E \approx M$; for an eccentric one, $E$ races through
# perihelion ($M$ near 0 and $2\pi$), where $\partial E/\partial M = 1/(1 - e)$ is largest.

# %% tags=["demo"]
M_orbit = jnp.linspace(0.0, 2 * jnp.pi, 200)
fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
for e_value in [0.0, 0.5, 0.9]:
    e_orbit = jnp.full_like(M_orbit, e_value)
    axes[0].plot(M_orbit, kepler(M_orbit, e_orbit), label=f"e = {e_value}")
    dE_dM = jax.vmap(jax.grad(kepler))(M_orbit, e_orbit)
    axes[1].semilogy(M_orbit, dE_dM, label=f"e = {e_value}")
axes[0].set_ylabel("eccentric anomaly E")
axes[1].set_ylabel("dE/dM (log scale)")
for ax in axes:
    ax.set_xlabel("mean anomaly M")
    ax.legend()
plt.show()

# %% [markdown]
# ## 7. Application: the gradient of a hyperparameter
#
# Ridge regression fits weights by minimizing a training loss with an $\ell_2$ penalty,
#
# $$w^*(\lambda) = \arg\min_w\; L(w, \lambda) = \frac{1}{2n}\lVert X w - y\rVert^2 +
# \frac{\lambda}{2}\lVert w\rVert^2,$$
#
# and we would like to choose $\lambda$ to minimize the loss on held-out data,
# $V(\lambda) = \frac{1}{2 n_{\text{val}}}\lVert X_{\text{val}}\, w^*(\lambda) -
# y_{\text{val}}\rVert^2$. Gradient descent on $\lambda$ needs $\mathrm{d}V/\mathrm{d}\lambda$,
# that is, the derivative of an argmin: a solution defined by the equation
# $\nabla_w L(w, \lambda) = 0$. Optimizing $\log\lambda$ keeps $\lambda$ positive.
#
# Ridge regression has a closed form, which is what makes it a good test bed: the tests
# compare with it. But we will not use it. We find $w^*$ with gradient descent, written as a
# fixed point: $w \mapsto w - \eta\, \nabla_w L(w, \lambda)$ with
# $\nabla_w L = X^\top (X w - y) / n + \lambda w$. Its fixed points are exactly the points where
# the gradient vanishes, and with the step size $\eta = 1 / (\lVert X\rVert_F^2 / n +
# \lambda)$ it is a contraction (the Frobenius norm bounds the largest eigenvalue of
# $X^\top X$), so our `fixed_point` converges, and its rule differentiates the argmin.

# %% [markdown]
# ### Exercise 4: `ridge_hypergradient(log_lam, X, y, X_val, y_val)` (design, 3 points)
#
# * Return `(V, dV)`: the validation loss $V$ at $w^*(e^{\log\lambda})$ and its derivative in
#   `log_lam`, for a scalar array `log_lam`, training data `X` of shape `(n, d)` and `y` of shape
#   `(n,)`, and validation data likewise.
# * Find $w^*$ with `fixed_point` (call it by that name), from an initial guess in the data's
#   dtype such as `jnp.zeros(d, X.dtype)`, with the gradient-descent map above. Pass `log_lam` to the map through `a`, not by
#   closure (section 5 shows why).
# * Get the derivative with `jax.value_and_grad`: no closed-form solve, no finite differences.
#
# The tests replace `fixed_point` by a correct one of their own while they run, so a mistake
# in the previous exercise does not cost you points twice. They also check that the gradient
# really flows through `fixed_point`'s rule.

# %% nbgrader={"grade_id": "ridge_hypergradient", "solution": true}
def ridge_hypergradient(log_lam, X, y, X_val, y_val):
    """The validation loss of ridge regression at lambda = exp(log_lam), and its derivative."""
    ### BEGIN SOLUTION
    def descent_step(params, w):
        log_lam, X, y = params
        lam, n = jnp.exp(log_lam), X.shape[0]
        step_size = 1.0 / (jnp.sum(X**2) / n + lam)
        return w - step_size * (X.T @ (X @ w - y) / n + lam * w)

    def validation_loss(log_lam):
        w = fixed_point(descent_step, (log_lam, X, y), jnp.zeros(X.shape[1], X.dtype))
        residual = X_val @ w - y_val
        return residual @ residual / (2 * y_val.shape[0])

    return jax.value_and_grad(validation_loss)(log_lam)
    ### END SOLUTION


# %% nbgrader={"grade_id": "ridge_hypergradient_tests", "points": 3}
adcheck.check_ridge_hypergradient(ridge_hypergradient, jit=True)
### BEGIN HIDDEN TESTS
_Case = adcheck.Case
adcheck.check_ridge_hypergradient(ridge_hypergradient, jit=True, cases=[
    _Case("8 features, small lambda", jnp.array(-3.0), *adcheck._ridge_data(5, 50, 8, 30)),
    _Case("one feature, large lambda", jnp.array(2.5), *adcheck._ridge_data(6, 12, 1, 7)),
    _Case("more features than examples", jnp.array(0.0), *adcheck._ridge_data(7, 6, 10, 9)),
])
with jax.enable_x64(True):
    adcheck.check_ridge_hypergradient(ridge_hypergradient, jit=True, cases=[
        _Case("float64, 5 features", jnp.array(-0.5, jnp.float64),
              *adcheck._ridge_data(8, 30, 5, 20, jnp.float64)),
    ])
### END HIDDEN TESTS

# %% [markdown]
# The validation curve and the slopes your hypergradient predicts at a few points, then
# twenty steps of gradient descent on $\log\lambda$:

# %% tags=["demo"]
w_true = normal((12,))
X_train, X_valid = normal((30, 12)), normal((40, 12))
y_train, y_valid = (X @ w_true + 1.5 * normal(X.shape[:1]) for X in (X_train, X_valid))
data = (X_train, y_train, X_valid, y_valid)
hypergradient = jax.jit(ridge_hypergradient)
log_lams = np.linspace(-5.0, 3.0, 60, dtype=np.float32)
curve = [float(hypergradient(t, *data)[0]) for t in log_lams]
fig, ax = plt.subplots(figsize=(5.5, 3.6))
ax.plot(log_lams, curve, label="validation loss V")
for t in np.float32([-4.0, -1.5, 1.5]):
    value, slope = hypergradient(t, *data)
    ax.plot([t - 0.6, t + 0.6], [value - 0.6 * slope, value + 0.6 * slope], "r-",
            label="slope from ridge_hypergradient" if t == -4.0 else None)
log_lam = jnp.float32(2.0)
path = [log_lam]
for _ in range(20):
    log_lam = log_lam - 2.0 * hypergradient(log_lam, *data)[1]
    path.append(log_lam)
path_values = [hypergradient(t, *data)[0] for t in path]
ax.plot(path, path_values, "k.", label="gradient descent on log lambda")
ax.set_xlabel("log lambda")
ax.set_ylabel("validation loss")
ax.legend()
plt.show()
print(f"log lambda: 2.0 -> {float(path[-1]):.3f}, validation loss "
      f"{float(path_values[0]):.4f} -> {float(path_values[-1]):.4f}")

# %% [markdown]
# The slopes look right; now the numbers. Ridge regression's closed form,
# $w^*(\lambda) = (X^\top X/n + \lambda I)^{-1} X^\top y / n$, is a linear solve that JAX
# differentiates directly, so it gives an independent reference, and a central finite
# difference of it a third one, all in float64:

# %% tags=["demo"]
def validation_loss_closed_form(log_lam, X, y, X_val, y_val):
    n, d = X.shape
    hessian = X.T @ X / n + jnp.exp(log_lam) * jnp.eye(d, dtype=X.dtype)
    w = jnp.linalg.solve(hessian, X.T @ y / n)
    residual = X_val @ w - y_val
    return residual @ residual / (2 * y_val.shape[0])


with jax.enable_x64(True):
    data64 = [array.astype(jnp.float64) for array in data]
    implicit_slope = jax.jit(lambda t: ridge_hypergradient(t, *data64)[1])
    closed_form = jax.jit(lambda t: validation_loss_closed_form(t, *data64))
    closed_form_slope = jax.jit(jax.grad(closed_form))
    step = 1e-5
    print(f"{'log lambda':>10}{'implicit rule':>18}{'closed form':>18}{'finite diff.':>18}")
    for t in [-4.0, -1.5, 1.5]:
        t = jnp.array(t)
        implicit = implicit_slope(t)
        closed = closed_form_slope(t)
        finite = (closed_form(t + step) - closed_form(t - step)) / (2 * step)
        print(f"{float(t):>10}{float(implicit):>18.6f}{float(closed):>18.6f}"
              f"{float(finite):>18.6f}")

# %% [markdown]
# They agree to every digit printed. Measured more finely, the implicit rule is within about
# $10^{-13}$ of the closed form, relative, and the finite difference within a few times $10^{-10}$,
# the price of its step $h = 10^{-5}$: a truncation error of order $h^2$ and a rounding error
# of order $\varepsilon / h$.

# %% [markdown]
# ## 8. What the theorem assumes
#
# The rule is only as good as its assumptions, and a solver that quietly violates them gives a
# quietly wrong gradient.
#
# * **The solver must have converged.** The rule differentiates the exact solution at the
#   point you give it (section 4). An unconverged forward pass gives a gradient with an error
#   of the same size; a solver that diverges gives nonsense.
# * **$\partial_x F$ must be invertible, and well conditioned.** For $x = \rho x + a$ the
#   derivative is $1/(1 - \rho)$: as $\rho \to 1$, the forward iteration needs about
#   $2.3/(1-\rho)$ steps per decimal digit, the adjoint iteration just as many, and the
#   derivative itself blows up. When $\partial_x F$ is singular the solution may not be a
#   differentiable function of $a$ at all.
# * **The solution must be locally unique.** With several solutions the rule differentiates
#   whichever one the solver found, and a tiny change of `a` or of `x_guess` can move the
#   solver to another branch.
# * **$F$ must be differentiable.** Argmins of problems with constraints or with $\ell_1$
#   penalties sit on kinks where this fails; differentiating them needs the optimality
#   conditions of those problems (as in OptNet or cvxpylayers), not just
#   $\nabla L = 0$.
#
# The map $x \mapsto x^2 + a$ shows several of these at once. For $a < 1/4$ it has two fixed
# points, $x_\pm = (1 \pm \sqrt{1 - 4a})/2$; iterating from 0 finds the stable one, $x_-$, where
# the theorem gives $\mathrm{d}x_-/\mathrm{d}a = 1/(1 - 2x_-) = 1/\sqrt{1 - 4a}$. As $a \to
# 1/4$ the two merge, $\partial_x F = 2x - 1 \to 0$, and the derivative grows without bound;
# beyond $1/4$ there is no real fixed point, the iteration runs to infinity and the "gradient"
# means nothing.

# %% tags=["demo"]
def quadratic_fixed_point(a):
    return fixed_point(lambda a, x: x**2 + a, a, jnp.zeros_like(a))


with jax.enable_x64(True):
    print(f"{'a':>8}{'x found':>14}{'dx/da (rule)':>16}{'1/sqrt(1-4a)':>16}")
    for a in [0.1, 0.2, 0.24, 0.249, 0.2499, 0.3]:
        a = jnp.array(a)
        exact = 1 / jnp.sqrt(1 - 4 * a) if a < 0.25 else jnp.nan
        print(f"{float(a):>8}{float(quadratic_fixed_point(a)):>14.6f}"
              f"{float(jax.grad(quadratic_fixed_point)(a)):>16.4f}{float(exact):>16.4f}")

# %% [markdown]
# Near $a = 1/4$ the forward iteration slows down (the contraction rate $2x_-$ tends to one)
# and the derivative becomes large: both are symptoms of the same ill-conditioning. Past
# $1/4$ the solver overflows to `inf` (and runs until `MAX_ITERATIONS`, since `inf - inf` is
# `nan` and never counts as converged), and the rule faithfully returns `inf` as a
# "derivative". In practice, check the solver's residual $\lVert f(a, x) - x \rVert$ before you
# trust its gradient.

# %% [markdown]
# ## 9. Design: a linear solve too big to form
#
# Many implicit layers end in a linear system: a Gaussian process posterior, a physics
# simulation, a Newton step. Take $x^*(\theta) = A(\theta)^{-1} b$ for a symmetric positive
# definite $A(\theta)$ of size $n = 10^6$: $A$ is never formed, only applied, as a function
# `matvec(v)` $= A v$. Conjugate gradients (CG) solves $A x = b$ with matvecs alone. To
# differentiate, the implicit function theorem applied to $A x - b = 0$ gives, for a cotangent
# $g$ of $x^*$, $w = A^{-\top} g$ (one more solve, the *adjoint*), $\bar b = w$ and
# $\bar\theta = -\,(\partial (A(\theta) x^*) / \partial \theta)^\top w$: the VJP of `matvec`
# at $x^*$, in whatever it closes over. `jax.lax.custom_linear_solve(matvec, b, solve,
# symmetric=True)` is exactly this rule: it runs `solve(matvec, b)` forward, and for
# derivatives it calls `solve` again on the adjoint system, never differentiating the solver's
# iterations; `symmetric=True` says that $A^\top = A$, so the same `solve` serves the
# adjoint.
#
# ### Exercise 5: `cg_solve(matvec, b, num_iters)` (design, 3 points)
#
# Return the solution of $A x = b$ for a symmetric positive definite operator `matvec` and a
# vector `b`, differentiable in `b` and in the values `matvec` closes over:
#
# * write conjugate gradients yourself, `num_iters` steps (a Python int) of
#   `jax.lax.fori_loop` from $x_0 = 0$: $r = b - A x$, $p = r$, then
#   $\alpha = r^\top r / p^\top A p$, $x \leftarrow x + \alpha p$,
#   $r' = r - \alpha A p$, $p \leftarrow r' + (r'^\top r' / r^\top r)\, p$. Where a
#   denominator is 0 (the system is solved), take the step size 0;
# * wrap it in `jax.lax.custom_linear_solve(..., symmetric=True)`; do not call
#   `jax.scipy.sparse.linalg.cg` (which is built the same way), and never form $A$.

# %% nbgrader={"grade_id": "cg_solve", "solution": true}
def cg_solve(matvec, b, num_iters):
    """x with matvec(x) = b, by conjugate gradients, differentiated by an adjoint solve."""
    ### BEGIN SOLUTION
    def conjugate_gradients(matvec, b):
        def step(_, state):
            x, r, p, rr = state
            Ap = matvec(p)
            pAp = jnp.vdot(p, Ap)
            alpha = jnp.where(pAp > 0, rr / jnp.where(pAp > 0, pAp, 1.0), 0.0)
            x, r = x + alpha * p, r - alpha * Ap
            rr_next = jnp.vdot(r, r)
            beta = jnp.where(rr > 0, rr_next / jnp.where(rr > 0, rr, 1.0), 0.0)
            return x, r, r + beta * p, rr_next

        x0 = jnp.zeros_like(b)
        state = (x0, b, b, jnp.vdot(b, b))
        return jax.lax.fori_loop(0, num_iters, step, state)[0]

    return jax.lax.custom_linear_solve(matvec, b, conjugate_gradients, symmetric=True)
    ### END SOLUTION


# %% nbgrader={"grade_id": "cg_solve_tests", "points": 3}
adcheck.check_cg_solve(cg_solve)
### BEGIN HIDDEN TESTS
_Case = adcheck.Case
adcheck.check_cg_solve(cg_solve, jit=True, cases=[
    _Case("n = 1", jnp.array([2.0]), jnp.array([3.0]), 3),
    _Case("n = 12, a stiffer operator (theta from 0.1)", jnp.linspace(0.1, 1.0, 12),
          jnp.sin(jnp.arange(12.0)), 40),
    _Case("n = 30, b of ones", jnp.full(30, 0.5), jnp.ones(30), 60),
])
with jax.enable_x64(True):
    adcheck.check_cg_solve(cg_solve, jit=True, cases=[
        _Case("float64, n = 10", jnp.linspace(1.0, 2.0, 10, dtype=jnp.float64),
              jnp.linspace(-1.0, 1.0, 10, dtype=jnp.float64), 30),
    ])
### END HIDDEN TESTS

# %% [markdown]
# The gradient costs one more CG solve whatever the number of iterations, and a million
# unknowns take no $n \times n$ matrix. We compile the gradient ahead of time
# (`.lower(...).compile()`), so that the one call we time does no compiling:

# %% tags=["demo", "nbval-ignore-output"]
def layer_loss(theta, b):
    x = cg_solve(lambda v: adcheck._tridiagonal_operator(theta, v), b, 200)
    return jnp.sum(x**2)


n_big = 1_000_000
theta_big, b_big = jnp.full(n_big, 0.5), jnp.cos(jnp.arange(n_big) / 1000.0)
gradient_fn = jax.jit(jax.grad(layer_loss)).lower(theta_big, b_big).compile()
start = time.perf_counter()
gradient_big = gradient_fn(theta_big, b_big).block_until_ready()
print(f"gradient in theta for n = {n_big:,}: {time.perf_counter() - start:.2f} s, "
      f"shape {gradient_big.shape}, finite: {bool(np.isfinite(gradient_big).all())}")

# %% [markdown]
# ## Summary
#
# * The implicit function theorem gives the derivative of a solution from the equation it
#   solves: $v^\top \partial x^* = u^\top \partial_a F$ with $(\partial_x F)^\top u = -v$, or
#   $w = v + A^\top w$ for a fixed point.
# * As a `custom_vjp` rule it stores only the solution, costs the same whatever the number of
#   iterations, works with `while_loop`, and is as accurate as the forward pass.
# * A backward pass that calls the solver itself can be differentiated again.
# * `lax.custom_root` packages the idea for roots and handles closed-over values.
# * Differentiating an argmin turns hyperparameter tuning into gradient descent.
# * The theorem needs a converged, locally unique, well-conditioned solution of a
#   differentiable equation; check before you trust the gradient.
