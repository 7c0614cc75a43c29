# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Assignment 03 — Custom derivative rules
#
# JAX differentiates a function by applying the derivative rule of every primitive it is made
# of. Usually that is exactly what you want. Sometimes it is not: the composed rules overflow
# where the function itself is tame, produce `nan` at a point where you know the right answer,
# store more than they need, or you want the backward pass to do something that is not a
# derivative at all. `jax.custom_jvp` and `jax.custom_vjp` let you replace the derivative of a
# whole Python function by a rule of your own, while `jit`, `vmap` and every other
# transformation keep using the original code. In this notebook you will learn
#
# * when a custom rule is worth writing, and which of the two decorators to use;
# * how to write a JVP rule, why JAX can run it backwards for `grad`, and what happens when
#   such a rule is itself differentiated;
# * how to write a forward pass that saves residuals and a backward pass that uses them, for
#   arrays, pytrees and non-array arguments;
# * how to debug a backward pass;
# * what a backward rule may contain if you want to differentiate through it a second time,
#   and what silently goes wrong when it contains the wrong things.

# %% [markdown]
# **Exercises.** In this notebook an answer cell usually holds more than one function: the
# decorated function and its rule (or its forward and backward passes), followed by the line
# that registers the rule. Each function body has a placeholder; replace all of them, keep the
# decorators, the names, the signatures and the registration line, and run the cell. Then run
# the locked test cell below it: the visible tests try a few inputs and, if something is off,
# say what they suspect. The grade comes from hidden tests that call your functions on more
# shapes and dtypes, under `jax.jit`, and that check that the derivative really comes from your
# registered rule.
#
# Cells that only show or time something carry the tag `demo`: grading does not run them, so
# what they print never counts towards your grade, and nothing that is graded depends on them.

# %% nbgrader={"grade_id": "setup", "locked": true}
import functools
import textwrap

import jax
import jax.numpy as jnp
import jax.scipy.linalg
import matplotlib.pyplot as plt
import numpy as np

import adcheck

adcheck.setup()

# %% [markdown]
# The few random numbers of this notebook come from one seeded NumPy generator: `normal(shape)`
# returns standard normal samples as a JAX array. `rounded` turns JAX arrays into rounded NumPy arrays for printing, and
# `show_error` prints the type of an exception with the first line of its message, which is
# all we need to see when we make JAX fail on purpose.

# %%
rng = np.random.default_rng(3)


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
# ## 1. Why write your own derivative rules
#
# Typical reasons, each with an example in this notebook:
#
# * **Numerical stability.** The derivative obtained by composing primitive rules can contain
#   intermediate values such as $\infty \cdot 0$ even though the derivative itself is a
#   harmless number. A rule written for the whole function avoids them (`log1pexp`).
# * **Conventions.** At a boundary or a kink the derivative is undefined, or defined only from
#   one side, and autodiff returns `nan`. A rule states which value you want (`shrink`,
#   `safe_norm`).
# * **Efficiency.** A hand-written backward pass can store fewer residuals, or skip work
#   altogether: for an iterative solver, the implicit function theorem gives the derivative of
#   the solution without differentiating through the iterations (assignment 04).
# * **Code JAX cannot differentiate.** A function that calls a non-JAX library (through
#   `jax.pure_callback`, for example) has no derivative until you give it one.
# * **Gradient surgery.** Sometimes the "derivative" you want is not a derivative: clipping
#   the gradient, rescaling it, or printing it as it flows backwards (`clip_gradient`,
#   `clip_gradient_norm`, debugging).

# %% [markdown]
# JAX offers two decorators:
#
# | | `jax.custom_jvp` | `jax.custom_vjp` |
# |---|---|---|
# | you write | one rule `(primals, tangents) -> (primal_out, tangent_out)` | `fwd: x -> (out, residuals)` and `bwd: (residuals, cotangent) -> input cotangents` |
# | forward mode of the function (`jvp`, `jacfwd`) | yes: your rule | no: raises a `TypeError` |
# | reverse mode (`grad`, `vjp`, `jacrev`) | yes: JAX transposes your rule, which must be linear in the tangents | yes: your `bwd` |
# | higher derivatives | JAX differentiates the rule's code | JAX differentiates `fwd`'s and `bwd`'s code: reverse over reverse always, forward over reverse (`jax.hessian`) when `fwd` does not call the function itself |
# | the backward pass may be non-linear | no | yes (clipping, rescaling) |
# | what reverse mode stores | what your rule's tangent expression uses, as JAX linearizes it | exactly the residuals `fwd` returns |
# | use it for | stability, conventions, anything that is still a derivative | gradient surgery, memory, debugging, rules that exist only in reverse mode |
#
# Prefer `custom_jvp` whenever your rule is a genuine derivative: you get both modes and all
# orders from one rule. Use `custom_vjp` when you need control over the backward pass itself.

# %% [markdown]
# ## 2. `jax.custom_jvp`: one rule for both modes
#
# ### The interface
#
# A JVP rule receives the primal inputs and their tangents, both as tuples with one entry per
# positional argument, and returns the primal output together with its tangent. With `T a`
# the type of tangents of values of type `a`:
#
# ```
# f     :: a -> b
# f_jvp :: (a, T a) -> (b, T b)
# ```
#
# Our first example is $f(x, a) = e^{a x}$, with $\mathrm{d}f = e^{a x}\,(a\, \mathrm{d}x +
# x\, \mathrm{d}a)$. The rule computes the output once and reuses it in the tangent.

# %%
@jax.custom_jvp
def scaled_exp(x, a):
    """exp(a * x)."""
    return jnp.exp(a * x)


@scaled_exp.defjvp
def scaled_exp_jvp(primals, tangents):
    x, a = primals
    x_dot, a_dot = tangents
    value = scaled_exp(x, a)
    return value, value * (a * x_dot + x * a_dot)


x_e, a_e = 0.5, 2.0
value, tangent = jax.jvp(scaled_exp, (x_e, a_e), (1.0, 0.0))
print("f(x, a)               :", rounded(value))
print("JVP along (1, 0)      :", rounded(tangent), " by hand:", rounded(a_e * np.exp(a_e * x_e)))
print("grad w.r.t. (x, a)    :", rounded(jax.grad(scaled_exp, argnums=(0, 1))(x_e, a_e)))
print("by hand               :", rounded([a_e * np.exp(a_e * x_e), x_e * np.exp(a_e * x_e)]))

# %% [markdown]
# Three things to notice:
#
# * Only the differentiation transformations (`jvp`, `grad`, `jacfwd`, ...) look at the
#   rule. Calling `scaled_exp`, jitting it or vmapping it runs the body of the decorated
#   function as if there were no decorator.
# * We defined a forward-mode rule only, and `jax.grad` (reverse mode) works anyway. Section
#   "How reverse mode uses a JVP rule" below explains how.
# * The rule calls `scaled_exp` itself for the primal output. This matters for higher
#   derivatives, as we will see.

# %% [markdown]
# ### Numerical stability: $\log(1 + e^x)$
#
# The function $x \mapsto \log(1 + e^x)$, called *softplus*, is a smooth version of
# $\max(x, 0)$. Its derivative is the logistic sigmoid $\sigma(x) = 1 / (1 + e^{-x})$, a
# number between 0 and 1. Written the obvious way, neither the value nor the derivative
# survives float32:

# %%
def log1pexp_naive(x):
    return jnp.log(1.0 + jnp.exp(x))


@jax.jit
def naive_table(xs):
    """Value, gradient, stable value and sigmoid at every entry of xs."""
    return (log1pexp_naive(xs), jax.vmap(jax.grad(log1pexp_naive))(xs),
            jnp.logaddexp(0.0, xs), jax.nn.sigmoid(xs))


xs_wide = jnp.array([-1000.0, -20.0, 0.0, 20.0, 87.0, 88.0, 89.0, 100.0, 1000.0])
print(f"{'x':>8} {'log(1+e^x)':>12} {'grad':>12} {'exact value':>12} {'sigmoid(x)':>12}")
for x, *row in zip(xs_wide, *naive_table(xs_wide)):
    print(f"{float(x):>8.0f}" + "".join(f" {float(entry):>12.6g}" for entry in row))


# %% [markdown]
# Three different failures:
#
# * For $x$ above about 88.72, $e^x$ exceeds the largest float32 number (about
#   $3.4 \cdot 10^{38}$), so the value is `inf`.
# * For very negative $x$, $1 + e^x$ rounds to exactly 1 and the value is 0: at $x = -20$
#   the true value $2 \cdot 10^{-9}$ is lost entirely.
# * The gradient is `nan` from $x \approx 88.72$ on and, worse, silently 0 for $x$ between
#   about 87.34 and 88.72.
#
# The thresholds, from float32's limits and from the gradient on a grid of step $10^{-4}$:

# %% tags=["demo"]
tiny, largest = np.finfo(np.float32).tiny, np.finfo(np.float32).max
grid = jnp.linspace(87.0, 89.0, 20_001)
grid_grads = jax.vmap(jax.grad(log1pexp_naive))(grid)
print(f"e^x > largest float32 ({largest:.3g}) for x > {np.log(np.float64(largest)):.4f}")
print(f"1/(1+e^x) < smallest normal float32 ({tiny:.3g}) for x > {-np.log(np.float64(tiny)):.4f}")
print(f"on the grid, the gradient is first 0 at x = {float(grid[jnp.argmax(grid_grads == 0)]):.4f}"
      f" and first nan at x = {float(grid[jnp.argmax(jnp.isnan(grid_grads))]):.4f}")

# %% [markdown]
# The jaxpr of the gradient shows why:

# %%
print(jax.make_jaxpr(jax.grad(log1pexp_naive))(100.0).pretty_print(use_color=False))

# %% [markdown]
# Autodiff computes $\frac{1}{1 + e^x} \cdot e^x$: `d` is $1/c$ and `e` is `d * b`. At
# $x = 100$, `b` $= e^{100}$ overflows to `inf`, so `d` $= 1/\infty = 0$ and `e` $= 0 \cdot
# \infty =$ `nan`. At $x = 88$, `b` $\approx 1.65 \cdot 10^{38}$ is still finite, but
# `d` $\approx 6 \cdot 10^{-39}$ is below the smallest normal float32 number
# ($1.18 \cdot 10^{-38}$); XLA on CPU flushes such subnormal numbers to zero, and the gradient
# becomes $0 \cdot 1.65 \cdot 10^{38} = 0$ instead of 1. The mathematically equal expression
# $\sigma(x)$ never forms a large intermediate, but autodiff has no way to find it: it can only
# compose the rules of `exp`, `add`, `log`.
#
# **The value** needs no custom rule, only a better formula:
# $\log(1 + e^x) = \max(x, 0) + \log(1 + e^{-|x|})$, where the exponential is at most 1
# and `jnp.log1p` computes $\log(1 + u)$ accurately for tiny $u$. `jnp.logaddexp(0.0, x)`
# $= \log(e^0 + e^x)$ does exactly this.
#
# **The derivative** is where a custom rule helps: we tell JAX that the derivative is
# $\sigma(x)$, whatever primitives the value is made of. A first attempt, with the derivative
# written as $1 - \frac{1}{1 + e^x}$ (an expression you may find in other tutorials):

# %% tags=["demo"]
@jax.custom_jvp
def log1pexp_v1(x):
    return jnp.log(1.0 + jnp.exp(x))


@log1pexp_v1.defjvp
def log1pexp_v1_jvp(primals, tangents):
    (x,), (x_dot,) = primals, tangents
    return log1pexp_v1(x), (1 - 1 / (1 + jnp.exp(x))) * x_dot


@jax.jit
@jax.vmap
def v1_table(x):
    return (log1pexp_v1(x), jax.grad(log1pexp_v1)(x), jax.grad(jax.grad(log1pexp_v1))(x),
            jax.nn.sigmoid(x))


xs_v1 = jnp.array([100.0, -20.0])
for x, (v, g, h, s) in zip(xs_v1, zip(*v1_table(xs_v1))):
    print(f"x = {float(x):>6}: value {float(v):.6g}, grad {float(g):.6g}, "
          f"second derivative {float(h):.6g}, sigmoid {float(s):.6g}")


# %% [markdown]
# The gradient at $x = 100$ is now 1, but this version is only half a fix. The value still
# overflows (we did not change the formula). At $x = -20$, $1 - \frac{1}{1 + e^x}$ subtracts
# two numbers that are equal in float32 and returns 0 instead of $2 \cdot 10^{-9}$: all
# relative accuracy is lost for negative $x$. And the **second** derivative is `nan` at
# $x = 100$: JAX obtains it by differentiating the rule's code, and the derivative of
# $\frac{1}{1 + e^x}$, computed as $-(1 + e^x)^{-2} \cdot e^x$, is $0 \cdot \infty$ there.
#
# `jax.nn.sigmoid` is a single primitive (`logistic`) with a finite derivative, but not an
# accurate one: JAX computes it from the output as $\sigma(x)(1 - \sigma(x))$, and for large
# $x$ the difference $1 - \sigma(x)$ is taken from a $\sigma(x)$ that has already rounded.
# The exact derivative, $\sigma(x)\,\sigma(-x)$, has no such cancellation. Against it, in
# float64:

# %% tags=["demo"]
def sigmoid64(x):
    """sigma(x) = exp(-log(1 + e^-x)) in float64, accurate for every x."""
    return np.exp(-np.logaddexp(0.0, -np.float64(x)))


xs_slope = jnp.array([1.0, 5.0, 10.0, 15.0, 17.0, 20.0, 30.0])
slopes = jax.jit(jax.vmap(jax.grad(jax.nn.sigmoid)))(xs_slope)
print(f"{'x':>4} {'grad(jax.nn.sigmoid)':>21} {'s(x)s(-x), float64':>19} {'rel. error':>11}")
for x, slope in zip(np.asarray(xs_slope), np.asarray(slopes)):
    exact = sigmoid64(x) * sigmoid64(-x)
    print(f"{x:>4.0f} {slope:>21.6g} {exact:>19.6g} {abs(slope - exact) / exact:>11.1e}")

# %% [markdown]
# From $x \approx 10$ on, fewer than four digits are right; from $x \approx 17$ on,
# $\sigma(x)$ rounds to 1 and the slope is 0. A rule whose tangent is `jax.nn.sigmoid(x)` has
# exactly these second derivatives. The way out is to write $\sigma$ with functions whose
# derivatives are accurate, and the function we are building is one:
# $\sigma(x) = e^{-\log(1 + e^{-x})}$, and differentiating it with the rule of $\log(1 + e^{u})$
# gives $\sigma(x)\,\sigma(-x)$.
#
# ### Exercise 1: `log1pexp` (2 points)
#
# Write `log1pexp(x)` $= \log(1 + e^x)$ with a custom JVP rule.
#
# * `x` is a floating-point array of any shape (a scalar included); the result is computed
#   elementwise and has the shape and dtype of `x`.
# * The value must be accurate for every float `x`: no `inf` for large `x`, and no loss of
#   the tiny values for very negative `x`.
# * Decorate `log1pexp` with `@jax.custom_jvp` and register the rule with
#   `log1pexp.defjvp` (the cell below already does both). The rule returns `log1pexp(x)` and
#   the tangent $\sigma(x)\, \dot x$.
# * Neither the JVP nor the gradient may be `nan` or `inf` anywhere, in particular at
#   $x = \pm 100$ and $\pm 1000$. Everything must work under `jax.jit` and `jax.vmap`.
# * The second derivative, $\sigma(x)\,\sigma(-x)$, must be accurate to a relative $2 \cdot
#   10^{-4}$ wherever float32 can hold it (it is $2.06 \cdot 10^{-9}$ at $x = 20$). JAX
#   obtains it by differentiating your rule, so write $\sigma(x)$ in a form whose derivative
#   stays accurate, for instance as above, with `log1pexp` itself.
# * Hint: `jnp.logaddexp(0.0, x)` is a stable value.

# %% nbgrader={"grade_id": "log1pexp", "solution": true}
@jax.custom_jvp
def log1pexp(x):
    """log(1 + exp(x)), elementwise, accurate for every float x.

    Args:
      x: a floating-point array of any shape.

    Returns:
      An array shaped like x.
    """
    ### BEGIN SOLUTION
    return jnp.logaddexp(0.0, x)
    ### END SOLUTION


@log1pexp.defjvp
def log1pexp_jvp(primals, tangents):
    """The JVP rule of log1pexp: returns (log1pexp(x), sigmoid(x) * x_dot), sigmoid written
    so that its own derivative is accurate."""
    ### BEGIN SOLUTION
    (x,), (x_dot,) = primals, tangents
    return log1pexp(x), jnp.exp(-log1pexp(-x)) * x_dot
    ### END SOLUTION


# %% nbgrader={"grade_id": "log1pexp_tests", "points": 2}
adcheck.check_log1pexp(log1pexp)
### BEGIN HIDDEN TESTS
_Case = adcheck.Case
adcheck.check_log1pexp(log1pexp, jit=True, cases=[
    _Case("a scalar, x = 1000", jnp.array(1000.0)),
    _Case("x from -1000 to 1000 around the overflow of exp, shape (2, 5)",
          jnp.array([[-1000.0, -100.0, -30.0, -1.0, 0.5], [30.0, 87.0, 88.5, 100.0, 1000.0]])),
    _Case("a (3, 2, 2) grid from -5 to 5", jnp.linspace(-5.0, 5.0, 12).reshape(3, 2, 2)),
])
with jax.enable_x64(True):
    adcheck.check_log1pexp(log1pexp, jit=True, cases=[
        _Case("float64, x from -800 to 800", jnp.array([-800.0, -40.0, 0.0, 1e-3, 40.0, 800.0])),
    ])
### END HIDDEN TESTS

# %% [markdown]
# The same table as before, now with second derivatives, computed under `jit` and `vmap`, and
# the exact second derivative in float64:

# %% tags=["demo"]
@jax.jit
def log1pexp_table(xs):
    """Value, first and second derivative of log1pexp at every entry of xs."""
    return (log1pexp(xs), jax.vmap(jax.grad(log1pexp))(xs),
            jax.vmap(jax.grad(jax.grad(log1pexp)))(xs))


print(f"{'x':>8} {'log1pexp':>12} {'grad':>12} {'2nd deriv.':>12} {'s(x)s(-x), f64':>15}")
for x, value, first, second in zip(*map(np.asarray, (xs_wide, *log1pexp_table(xs_wide)))):
    print(f"{x:>8.0f} {value:>12.6g} {first:>12.6g} {second:>12.6g} "
          f"{sigmoid64(x) * sigmoid64(-x):>15.6g}")


# %% [markdown]
# The second derivatives agree with the exact ones to float32 precision up to $x = 87$, where
# $1.6 \cdot 10^{-38}$ is still a normal float32 number. From $x \approx 87.34$ on, the exact
# value is subnormal in float32, and XLA on CPU flushes it to 0, as it did for the gradient.

# ### A convention at a boundary: $x / (1 + \sqrt{x})$
#
# Take $f(x) = \dfrac{x}{1 + \sqrt{x}}$ on $[0, \infty)$. At $x = 0$ the difference quotient
# from the right is $f(h)/h = 1/(1 + \sqrt h) \to 1$, so $f$ has the one-sided derivative 1
# there; for $x > 0$,
#
# $$f'(x) = \frac{1 + \sqrt{x}/2}{(1 + \sqrt{x})^2}.$$
#
# On the whole real line $f$ is not even defined left of 0, and JAX differentiates as if it
# were a function on $\mathbb{R}$:

# %% tags=["demo"]
def shrink_naive(x):
    return x / (1 + jnp.sqrt(x))


print("grad at 0:", rounded(jax.jit(jax.grad(shrink_naive))(0.0)))
print(jax.make_jaxpr(jax.grad(shrink_naive))(0.0).pretty_print(use_color=False))


# %% [markdown]
# The derivative of $\sqrt{x}$ at 0 is $\frac{0.5}{\sqrt{0}} = \infty$ (variable `c`), and
# the quotient rule multiplies it by $x = 0$ (`j = h * c`, with `h` $= -0$): $0 \cdot \infty$
# is `nan`, and the `nan` propagates into the sum `k`.
#
# ### Where `jnp.where` lets `nan` through
#
# The obvious repair is a `jnp.where` that handles $x = 0$ separately. It does not work:

# %% tags=["demo"]
def shrink_where(x):
    return jnp.where(x > 0, shrink_naive(x), 0.0)


def shrink_double_where(x):
    safe_x = jnp.where(x > 0, x, 1.0)
    return jnp.where(x > 0, shrink_naive(safe_x), 0.0)


def shrink_double_where_x(x):
    safe_x = jnp.where(x > 0, x, 1.0)
    return jnp.where(x > 0, shrink_naive(safe_x), x)


def elementwise_grads(fns, xs):
    """The derivative of each elementwise function in fns at every entry of xs."""
    return [jax.vmap(jax.grad(fn))(xs) for fn in fns]


xs_shrink = jnp.array([0.0, 0.25, 1.0, 4.0])
where_versions = {"one where": shrink_where, "double where": shrink_double_where,
                  "double where, x branch": shrink_double_where_x}
grads = jax.jit(elementwise_grads, static_argnums=0)(tuple(where_versions.values()), xs_shrink)
for name, grad in zip(where_versions, grads):
    print(f"{name:<23}: grad at {rounded(xs_shrink)} = {rounded(grad)}")


# %% [markdown]
# `jnp.where(c, a, b)` picks values, but its derivative is computed for **both** branches: in
# reverse mode the cotangent of the untaken branch is 0, and it is multiplied by that branch's
# local derivatives. Here those contain $\infty$, and $0 \cdot \infty$ is `nan` again. The
# standard workaround, the **double where**, also sanitises the *input* of the dangerous branch
# (`safe_x`), so that no infinity is ever formed. It removes the `nan`, but then the derivative
# at 0 is that of the constant branch, 0, not 1. With `x` itself as the other branch we do get
# 1, but only because `x` happens to have the right value and slope at 0. A custom rule says
# what we mean directly.
#
# The same trap exists *inside* a rule. Written with the quotient rule,
# $f'(x) = \frac{1 + \sqrt x - x/(2\sqrt x)}{(1 + \sqrt x)^2}$ contains $0/0$ at $x = 0$, and
# a `jnp.where` must keep that value out. Applied to the slope (a value computed from the
# primal), a single `where` is enough for first derivatives. Applied to the tangent expression,
# it is not: the JVP is right, but `jax.grad`, which transposes the rule, meets the
# untaken branch again.

# %% tags=["demo"]
def quotient_slope(x):
    root = jnp.sqrt(x)
    return (1 + root - x / (2 * root)) / (1 + root) ** 2


@jax.custom_jvp
def shrink_where_slope(x):
    return x / (1 + jnp.sqrt(x))


@shrink_where_slope.defjvp
def shrink_where_slope_jvp(primals, tangents):
    (x,), (x_dot,) = primals, tangents
    slope = jnp.where(x > 0, quotient_slope(x), 1.0)
    return shrink_where_slope(x), slope * x_dot


@jax.custom_jvp
def shrink_where_tangent(x):
    return x / (1 + jnp.sqrt(x))


@shrink_where_tangent.defjvp
def shrink_where_tangent_jvp(primals, tangents):
    (x,), (x_dot,) = primals, tangents
    return shrink_where_tangent(x), jnp.where(x > 0, quotient_slope(x) * x_dot, x_dot)


@functools.partial(jax.jit, static_argnums=0)
def jvp_and_grad(fn, xs):
    """The JVP of an elementwise fn along ones, and its elementwise derivative."""
    return jax.jvp(fn, (xs,), (jnp.ones_like(xs),))[1], jax.vmap(jax.grad(fn))(xs)


for name, fn in [("where on the slope", shrink_where_slope),
                 ("where on the tangent", shrink_where_tangent)]:
    jvp_values, grad_values = jvp_and_grad(fn, xs_shrink)
    print(f"{name:<20}: JVP {rounded(jvp_values)}, grad {rounded(grad_values)}")


# %% [markdown]
# The simplest way out is a formula with no $0/0$ at all: $\frac{1 + \sqrt{x}/2}{(1 +
# \sqrt{x})^2}$ is finite on $[0, \infty)$ and equals 1 at 0, so it needs no `where`.
#
# ### Exercise 2: `shrink` (2 points)
#
# Write `shrink(x)` $= x / (1 + \sqrt x)$ for $x \ge 0$, with a custom JVP rule that gives
# the derivative the one-sided value 1 at $x = 0$.
#
# * `x` is a floating-point array of any shape with entries $\ge 0$; the value is computed
#   elementwise, with the shape and dtype of `x`.
# * Decorate `shrink` with `@jax.custom_jvp` and register the rule with `shrink.defjvp`
#   (already done below). The rule returns `shrink(x)` and the tangent $f'(x)\, \dot x$ with
#   $f'(x) = (1 + \sqrt x / 2) / (1 + \sqrt x)^2$ for $x > 0$ and $f'(0) = 1$.
# * No `nan` or `inf` anywhere on $x \ge 0$, neither in the JVP nor in the gradient, and
#   everything must work under `jax.jit` and `jax.vmap`.
# * Only first derivatives are tested. (At second order JAX differentiates your rule, and
#   $\sqrt{x}$ has an infinite slope at 0. The true one-sided second derivative at 0 is
#   $-\infty$. What JAX returns there depends on how the rule is written: $-\infty$ if the
#   formula above uses one `jnp.sqrt(x)`, `nan` if it calls `jnp.sqrt(x)` twice (two infinite
#   terms get subtracted), 0 with a double-where rule. No value is required.)

# %% nbgrader={"grade_id": "shrink", "solution": true}
@jax.custom_jvp
def shrink(x):
    """x / (1 + sqrt(x)), elementwise, for x >= 0.

    Args:
      x: a floating-point array of any shape, with entries >= 0.

    Returns:
      An array shaped like x.
    """
    ### BEGIN SOLUTION
    return x / (1 + jnp.sqrt(x))
    ### END SOLUTION


@shrink.defjvp
def shrink_jvp(primals, tangents):
    """The JVP rule of shrink: the slope (1 + sqrt(x)/2) / (1 + sqrt(x))**2, 1 at x = 0."""
    ### BEGIN SOLUTION
    (x,), (x_dot,) = primals, tangents
    root = jnp.sqrt(x)
    return shrink(x), (1 + root / 2) / (1 + root) ** 2 * x_dot
    ### END SOLUTION


# %% nbgrader={"grade_id": "shrink_tests", "points": 2}
adcheck.check_shrink(shrink)
### BEGIN HIDDEN TESTS
_Case = adcheck.Case
adcheck.check_shrink(shrink, jit=True, cases=[
    _Case("a scalar, x = 0", jnp.array(0.0)),
    _Case("zeros, tiny and large values, shape (2, 3)",
          jnp.array([[0.0, 1e-12, 1e-6], [0.0, 1e3, 1e6]])),
    _Case("a (2, 2, 2) grid from 0 to 9", jnp.linspace(0.0, 9.0, 8).reshape(2, 2, 2)),
])
with jax.enable_x64(True):
    adcheck.check_shrink(shrink, jit=True, cases=[
        _Case("float64, x = 0, 1e-20, 0.5, 2 and 100",
              jnp.array([0.0, 1e-20, 0.5, 2.0, 100.0])),
    ])
### END HIDDEN TESTS

# %% [markdown]
# The slope at a few points, and the second derivative (not part of the exercise) next to
# the exact $f''(x) = -\dfrac{3 + \sqrt x}{4 \sqrt x\, (1 + \sqrt x)^3}$ for $x > 0$:

# %% tags=["demo"]
first, second = jax.jit(lambda xs: (jax.vmap(jax.grad(shrink))(xs),
                                     jax.vmap(jax.grad(jax.grad(shrink)))(xs)))(xs_shrink)
roots = np.sqrt(np.asarray(xs_shrink, np.float64))
print("grad         :", rounded(first))
print("f' by hand   :", rounded((1 + roots / 2) / (1 + roots) ** 2))
print("2nd deriv.   :", rounded(second))
with np.errstate(divide="ignore"):
    print("f'' by hand  :", rounded(-(3 + roots) / (4 * roots * (1 + roots) ** 3)))


# %% [markdown]
# ### `defjvps`: one rule per argument
#
# For a function of several arguments, `f.defjvps(rule_0, rule_1, ...)` takes one rule per
# positional argument. Rule $i$ is called as `rule_i(tangent_i, primal_out, *primals)` and
# returns the contribution of argument $i$ to the output tangent; JAX adds the contributions.
# `None` in place of a rule declares that the output does not depend on that argument (its
# derivative is zero). Here is `scaled_exp` again, and a variant that treats `a` as a constant:

# %% tags=["demo"]
@jax.custom_jvp
def scaled_exp_2(x, a):
    return jnp.exp(a * x)


scaled_exp_2.defjvps(lambda x_dot, value, x, a: a * value * x_dot,
                     lambda a_dot, value, x, a: x * value * a_dot)


@jax.custom_jvp
def scaled_exp_const_a(x, a):
    return jnp.exp(a * x)


scaled_exp_const_a.defjvps(lambda x_dot, value, x, a: a * value * x_dot, None)

for name, fn in [("defjvp", scaled_exp), ("defjvps", scaled_exp_2),
                 ("defjvps, None for a", scaled_exp_const_a)]:
    grads = jax.jit(jax.grad(fn, argnums=(0, 1)))(x_e, a_e)
    print(f"{name:<20}: grad w.r.t. (x, a) = {rounded(grads)}")


# %% [markdown]
# ### How reverse mode uses a JVP rule
#
# `jax.grad` needs a VJP, and we only gave a JVP. JAX gets one in two steps, the same two it
# uses for every primitive:
#
# 1. **Linearize.** It runs the rule with the primal inputs known and the tangents unknown.
#    Everything that depends only on primals (here the value and the slopes) is computed
#    right away; what touches the tangents is recorded as a small linear program.
# 2. **Transpose.** It runs that linear program backwards: a multiplication by a constant
#    stays a multiplication by the same constant, a sum sends its cotangent to every term,
#    and so on.
#
# `jax.linearize` shows the recorded program. For `scaled_exp` at $x = 0.5$, $a = 2$, it
# computes $a\, \dot x + x\, \dot a$ with the primal values baked in as constants, and
# multiplies by the stored value $e^{ax}$ (the input `a` before the semicolon, a constant of
# the linear program):

# %%
_, scaled_exp_linear = jax.linearize(scaled_exp, x_e, a_e)
print(jax.make_jaxpr(scaled_exp_linear)(1.0, 0.0).pretty_print(use_color=False))


# %% [markdown]
# Step 2 only works if the tangent output is a **linear** function of the input tangents, and
# nothing checks this when you define the rule. A rule that squares the tangent still gives a
# JVP (right for the tangent 1, wrong for 2, since a derivative is linear), but reverse mode
# fails, because `integer_pow` has no transpose:

# %%
@jax.custom_jvp
def square_bad(x):
    return x ** 2


@square_bad.defjvp
def square_bad_jvp(primals, tangents):
    (x,), (x_dot,) = primals, tangents
    return square_bad(x), 2 * x * x_dot ** 2  # wrong: quadratic in the tangent


print("JVP with tangent 1:", jax.jvp(square_bad, (3.0,), (1.0,))[1],
      " with tangent 2:", jax.jvp(square_bad, (3.0,), (2.0,))[1])
try:
    jax.grad(square_bad)(3.0)
except NotImplementedError as error:
    show_error(error)


# %% [markdown]
# An error is the *good* outcome. A rule that adds a constant to the tangent is affine, not
# linear, and raises nothing: transposition only follows the terms that depend on the
# tangent, so the constant is silently dropped in reverse mode, while forward mode keeps it.
# The two modes then disagree without any warning.

# %%
@jax.custom_jvp
def square_affine(x):
    return x ** 2


@square_affine.defjvp
def square_affine_jvp(primals, tangents):
    (x,), (x_dot,) = primals, tangents
    return square_affine(x), 2 * x * x_dot + 1.0  # wrong: not linear in the tangent


print("jvp :", jax.jvp(square_affine, (3.0,), (1.0,))[1])
print("grad:", jax.grad(square_affine)(3.0))


# %% [markdown]
# ### Custom JVP rules at higher orders
#
# A JVP rule is an ordinary JAX function of the primals and tangents. To get a second
# derivative, JAX differentiates **the code of the rule**, with the usual primitive rules. Two
# consequences:
#
# * The rule itself must be differentiable in a stable way. That is why `log1pexp_v1` gave
#   `nan` at second order, and a tangent `jax.nn.sigmoid(x)` loses the second derivative's
#   digits for large $x$, while your `log1pexp` does neither: $1 - 1/(1 + e^x)$,
#   `jax.nn.sigmoid(x)` and $e^{-\log(1 + e^{-x})}$ have the same value but different
#   derivatives in floating point.
# * If the rule calls the decorated function for the primal output, as all our rules do, any
#   later differentiation of that output goes through the custom rule again. If it recomputes
#   the output with plain JAX code instead, that output is differentiated by the plain rules.
#   You see the difference as soon as something differentiates the *value* returned by a
#   derivative computation, for example the loss from `jax.value_and_grad` inside an outer
#   gradient:

# %% tags=["demo"]
def shrink_like(calls_itself):
    """x / (1 + sqrt(x)) with the custom slope; the rule's primal output comes from itself or
    from inline code."""
    @jax.custom_jvp
    def fn(x):
        return x / (1 + jnp.sqrt(x))

    @fn.defjvp
    def fn_jvp(primals, tangents):
        (x,), (x_dot,) = primals, tangents
        root = jnp.sqrt(x)
        value = fn(x) if calls_itself else x / (1 + root)
        return value, (1 + root / 2) / (1 + root) ** 2 * x_dot
    return fn


for calls_itself in [True, False]:
    fn = shrink_like(calls_itself)
    inner, outer = jax.jit(lambda x: (jax.grad(fn)(x),
                                      jax.grad(lambda x: jax.value_and_grad(fn)(x)[0])(x)))(0.0)
    print(f"rule calls the function itself: {calls_itself!s:<5}  grad(x) = {rounded(inner)}, "
          f"grad of the value from value_and_grad = {rounded(outer)}")


# %% [markdown]
# Both versions give the first derivative 1, but the second one loses the rule when the
# output is differentiated again. (This is also why a rule cannot reuse intermediate values of
# the primal computation *and* keep applying at every order: to reuse them, it must compute
# the output itself.)
#
# ## 3. `jax.custom_vjp`: writing the backward pass
#
# ### fwd, bwd and residuals
#
# With `jax.custom_vjp` you write reverse mode directly, as two functions:
#
# ```
# f     :: a -> b
# f_fwd :: a -> (b, c)         # the output, and residuals of any type c
# f_bwd :: (c, CT b) -> CT a   # residuals and output cotangent -> input cotangents
# ```
#
# * `fwd` takes the same arguments as `f` and returns the output together with the
#   **residuals**: whatever the backward pass will need, as a pytree of arrays (Python numbers
#   and `None` are allowed too). They stay in memory until the backward pass runs, so save
#   what is cheap to keep and expensive to recompute.
# * `bwd` receives the residuals and the cotangent of the output (shaped like the output), and
#   returns a **tuple with one cotangent per positional argument** of `f`, each shaped like
#   its argument, even when there is only one argument. `None` stands for a zero cotangent.
#
# The logistic function shows the kind of saving that a hand-written backward pass allows: its
# derivative $\sigma(x)(1 - \sigma(x))$ needs only the output, while autodiff of
# $1/(1 + e^{-x})$ keeps several intermediate arrays.

# %% tags=["demo"]
def logistic_naive(x):
    return 1 / (1 + jnp.exp(-x))


@jax.custom_vjp
def logistic(x):
    return 1 / (1 + jnp.exp(-x))


def logistic_fwd(x):
    y = logistic(x)
    return y, y  # the output is the only residual


def logistic_bwd(y, g):
    return (g * y * (1 - y),)  # a tuple: one cotangent for the one argument


logistic.defvjp(logistic_fwd, logistic_bwd)

x_grid = jnp.linspace(-3.0, 3.0, 1000)
reference_slopes = jax.jit(jax.vmap(jax.grad(jax.nn.sigmoid)))(x_grid)
for name, fn in [("autodiff of 1/(1+exp(-x))", logistic_naive), ("custom_vjp", logistic)]:
    _, pullback = jax.vjp(fn, x_grid)
    stored = jax.tree_util.tree_leaves(pullback)
    same = np.allclose(pullback(jnp.ones_like(x_grid))[0], reference_slopes, atol=1e-6)
    print(f"{name:<26}: stores {[a.shape for a in stored]}, correct gradient: {same}")


# %% [markdown]
# The pullback of plain autodiff holds two arrays the size of `x` (and a scalar); the custom
# rule holds one.


#
# JAX checks the structure and the shapes of what `bwd` returns. Forgetting the tuple around a
# single cotangent is the most common mistake:

# %% tags=["demo"]
@jax.custom_vjp
def logistic_no_tuple(x):
    return 1 / (1 + jnp.exp(-x))


logistic_no_tuple.defvjp(logistic_fwd, lambda y, g: g * y * (1 - y))
try:
    jax.grad(logistic_no_tuple)(0.5)
except TypeError as error:
    show_error(error)


# %% [markdown]
# ### Exercise 3: `clip_gradient` (2 points)
#
# Gradient clipping limits the size of the gradient that flows backwards, for instance to
# stabilise training when gradients occasionally explode. It is not a derivative of anything:
# the forward pass is the identity, and only the backward pass changes. Because clipping is not
# linear ($\operatorname{clip}(2g) \ne 2 \operatorname{clip}(g)$), no JVP rule can produce it;
# it needs `jax.custom_vjp`.
#
# Write `clip_gradient(lo, hi, x)`.
#
# * `lo` and `hi` are scalars with `lo <= hi` (Python numbers or scalar arrays, possibly traced
#   under `jit`); `x` is a floating-point array of any shape.
# * The forward pass returns `x` unchanged. The backward pass clips the cotangent elementwise
#   to `[lo, hi]` (`jnp.clip`) and returns it as the cotangent of `x`.
# * `lo` and `hi` receive no gradient: return `None` (or zeros) for them.
# * Decorate `clip_gradient` with `@jax.custom_vjp` and register `clip_gradient_fwd` and
#   `clip_gradient_bwd` (the cell does both). It must work under `jax.jit` and `jax.vmap`.
# * Hint: since `lo` and `hi` may be traced values, pass them to the backward pass as
#   residuals.

# %% nbgrader={"grade_id": "clip_gradient", "solution": true}
@jax.custom_vjp
def clip_gradient(lo, hi, x):
    """The identity on x, whose backward pass clips the cotangent of x to [lo, hi].

    Args:
      lo: the lower bound of the cotangent, a scalar.
      hi: the upper bound of the cotangent, a scalar.
      x: an array of any shape.

    Returns:
      x itself.
    """
    ### BEGIN SOLUTION
    return x
    ### END SOLUTION


def clip_gradient_fwd(lo, hi, x):
    """The forward pass: the output and the residuals for clip_gradient_bwd."""
    ### BEGIN SOLUTION
    return x, (lo, hi)
    ### END SOLUTION


def clip_gradient_bwd(residuals, g):
    """The backward pass: cotangents for (lo, hi, x)."""
    ### BEGIN SOLUTION
    lo, hi = residuals
    return None, None, jnp.clip(g, lo, hi)
    ### END SOLUTION


clip_gradient.defvjp(clip_gradient_fwd, clip_gradient_bwd)

# %% nbgrader={"grade_id": "clip_gradient_tests", "points": 2}
adcheck.check_clip_gradient(clip_gradient)
### BEGIN HIDDEN TESTS
_Case = adcheck.Case
adcheck.check_clip_gradient(clip_gradient, jit=True, cases=[
    _Case("a scalar x, lo = -0.5, hi = 0.5", jnp.array(-0.5), jnp.array(0.5), jnp.array(2.0),
          jnp.array(-3.0)),
    _Case("an asymmetric interval, x of shape (2, 3)", jnp.array(-0.1), jnp.array(2.0),
          jnp.linspace(-1.0, 1.0, 6).reshape(2, 3),
          jnp.array([[-1.0, 0.0, 3.0], [0.05, -0.2, 1.5]])),
    _Case("a wide interval: nothing clipped", jnp.array(-10.0), jnp.array(10.0),
          jnp.arange(8.0).reshape(2, 2, 2), jnp.linspace(-3.0, 3.0, 8).reshape(2, 2, 2)),
])
with jax.enable_x64(True):
    adcheck.check_clip_gradient(clip_gradient, jit=True, cases=[
        _Case("float64, lo = -1, hi = 0.25", jnp.array(-1.0), jnp.array(0.25),
              jnp.array([0.1, 0.2, 0.3]), jnp.array([-2.0, 0.1, 0.3])),
    ])
### END HIDDEN TESTS

# %% [markdown]
# The derivative of $\sin(\operatorname{clip\_gradient}(-0.5, 0.5, x))$ is $\cos x$ clipped to
# $[-0.5, 0.5]$, while the function itself is still $\sin x$:

# %% tags=["demo"]
def clipped_sin(x):
    return jnp.sin(clip_gradient(-0.5, 0.5, x))


ts = jnp.linspace(0.0, 10.0, 500)
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(ts, jnp.sin(ts), color="gray", lw=1, label="sin x (both functions)")
ax.plot(ts, jnp.cos(ts), "--", label="derivative of sin x")
ax.plot(ts, jax.jit(jax.vmap(jax.grad(clipped_sin)))(ts),
        label="derivative of sin(clip_gradient(-0.5, 0.5, x))")
ax.set_xlabel("x")
ax.set_ylim(-1.1, 1.9)
ax.legend(loc="upper right", fontsize=8)
plt.show()


# %% [markdown]
# Clipping bounds every step of gradient descent by the learning rate times the bound. On
# $L(x) = x^4/4$, started far from the minimum with a learning rate of 0.5, plain gradient
# descent overshoots further at every step until it overflows (and then produces `nan`),
# while the clipped version walks down in steps of 0.5 until the gradient is smaller than the
# bound, and from there on continues as plain gradient descent towards the minimum at 0:

# %% tags=["demo"]
def quartic(x):
    return x ** 4 / 4


plain_step = jax.jit(lambda x: x - 0.5 * jax.grad(quartic)(x))
clipped_step = jax.jit(lambda x: x - 0.5 * jax.grad(
    lambda x: quartic(clip_gradient(-1.0, 1.0, x)))(x))
x_plain = x_clipped = jnp.array(5.0)
print(f"{'step':>4} {'plain':>12} {'clipped':>10}")
for step in range(13):
    if step % 2 == 0:
        print(f"{step:>4} {float(x_plain):>12.4g} {float(x_clipped):>10.4f}")
    x_plain, x_clipped = plain_step(x_plain), clipped_step(x_clipped)


# %% [markdown]
# ### Debugging the backward pass
#
# A custom VJP is also a convenient place to look at the cotangents flowing backwards. An
# identity function whose backward pass prints its cotangent can be inserted anywhere in a
# computation. Use `jax.debug.print`, not `print`: under `jit`, `print` would run once, while
# tracing, and show abstract tracers, whereas `jax.debug.print` becomes part of the compiled
# program and prints actual values every time it runs.

# %% tags=["demo"]
@jax.custom_vjp
def tap(x):
    """The identity; its backward pass prints the input and the cotangent."""
    return x


def tap_fwd(x):
    return x, x


def tap_bwd(x, g):
    jax.debug.print("backward pass at x = {x:.4f}: cotangent {g:.4f}", x=x, g=g)
    return (g,)


tap.defvjp(tap_fwd, tap_bwd)


def tapped(x):
    return jnp.sin(tap(x ** 2))


print("eager:", rounded(jax.grad(tapped)(3.0)))
tapped_grad = jax.jit(jax.grad(tapped))
for point in [3.0, 1.0]:
    print("jit  :", rounded(tapped_grad(point)))

# %% [markdown]
# The cotangent arriving at $y = x^2 = 9$ is $\cos 9$, and the final gradient is
# $2x \cos 9$. In eager mode the backward rule is called with concrete arrays, so a Python
# debugger (`import pdb; pdb.set_trace()`) inside `tap_bwd` would also work there; under `jit`
# it would only see tracers. `jax.debug.breakpoint()` is the transformation-aware version: it
# stops inside the compiled computation and lets you inspect the actual values. (We do not
# call it here: it waits for keyboard input.)
#
# ### No forward mode
#
# A custom VJP only describes reverse mode, so a forward-mode transformation of the function
# itself refuses it:

# %% tags=["demo"]
for name, transform in [("jax.jvp", lambda f: jax.jvp(f, (0.5,), (1.0,))),
                        ("jax.jacfwd", lambda f: jax.jacfwd(f)(0.5))]:
    try:
        transform(logistic)
    except TypeError as error:
        print(f"{name:<12}", end="")
        show_error(error)
print("jax.jacrev  :", rounded(jax.jacrev(logistic)(0.5)))


# %% [markdown]
# (A forward-mode transformation of the *gradient*, such as `jax.hessian`, is another matter:
# section 4 shows when it works.) If you need forward mode of the function, use reverse-mode
# tools where they exist (`jax.jacrev` instead of `jax.jacfwd`). Or, when your
# backward pass is linear in the cotangent (then it is the transpose of some JVP), write that
# JVP as a `custom_jvp` rule instead and let JAX transpose it. For the logistic function the
# JVP rule is "multiply by $y(1 - y)$", and then every transformation works:

# %% tags=["demo"]
@jax.custom_jvp
def logistic_jvp_version(x):
    return 1 / (1 + jnp.exp(-x))


@logistic_jvp_version.defjvp
def logistic_jvp_version_jvp(primals, tangents):
    (x,), (x_dot,) = primals, tangents
    y = logistic_jvp_version(x)
    return y, y * (1 - y) * x_dot


all_modes = jax.jit(lambda x: [jax.jacfwd(logistic_jvp_version)(x),
                                jax.jacrev(logistic_jvp_version)(x),
                                jax.hessian(logistic_jvp_version)(x)])(0.5)
for name, value in zip(["jacfwd", "jacrev", "hessian"], all_modes):
    print(f"{name:<7}:", rounded(value))


# %% [markdown]
# What reverse mode stores changes, though. With `custom_vjp` it is exactly the residuals
# `fwd` returns (here $y$). With `custom_jvp`, JAX linearizes the rule and keeps what its
# tangent expression multiplies `x_dot` by (here the product $y(1 - y)$), so what is stored
# follows from how the rule is written, and you cannot name it.
# `jax.ad_checkpoint.print_saved_residuals` lists what a gradient keeps:

# %% tags=["demo"]
import contextlib
import io

from jax.ad_checkpoint import print_saved_residuals


def saved_for_backward(f, x):
    """What print_saved_residuals lists for f at x, without the source locations."""
    with contextlib.redirect_stdout(io.StringIO()) as listing:
        print_saved_residuals(f, x)
    return [line.split(" from ")[0] for line in listing.getvalue().splitlines()]


print("custom_vjp, fwd returns y               :", saved_for_backward(logistic, 0.5))
print("custom_jvp, the tangent is y(1 - y) x_dot:",
      saved_for_backward(logistic_jvp_version, 0.5))

# %% [markdown]
# `clip_gradient` has no such alternative at all, since its backward pass is not linear.
#
# ### Pytrees in and out
#
# Inputs, outputs and residuals may be any pytrees. The cotangent that `bwd` receives has the
# structure of the output, and `bwd` returns a tuple with one entry per argument, each
# structured like that argument. If part of the output is not used downstream, its cotangent
# arrives as an array of zeros, not as `None`.
#
# ### Exercise 4: `polar` (3 points)
#
# Write `polar(point)`, the polar coordinates of points in the plane, with a hand-written
# backward pass.
#
# * `point` is a dict `{"x": x, "y": y}` of two floating-point arrays with the same shape (any
#   shape). Return the dict `{"r": r, "theta": theta}` with $r = \sqrt{x^2 + y^2}$ and
#   $\theta = \operatorname{atan2}(y, x)$, elementwise, shaped like `x`.
# * Decorate `polar` with `@jax.custom_vjp` and register `polar_fwd` and `polar_bwd`. Choose
#   the residuals yourself.
# * `polar_bwd` receives the cotangent dict `{"r": r_bar, "theta": theta_bar}` and returns a
#   1-tuple holding the dict `{"x": x_bar, "y": y_bar}`, computed by hand from the Jacobian
#
# $$\frac{\partial r}{\partial x} = \frac{x}{r}, \quad
# \frac{\partial r}{\partial y} = \frac{y}{r}, \quad
# \frac{\partial \theta}{\partial x} = -\frac{y}{r^2}, \quad
# \frac{\partial \theta}{\partial y} = \frac{x}{r^2}.$$
#
# * By hand means that `polar_fwd` and `polar_bwd` call none of JAX's differentiation
#   functions (`jax.vjp`, `jax.jvp`, `jax.grad`, `jax.jacfwd`, ...): the tests call them
#   directly with those functions disabled.
# * Only points away from the origin are tested. It must work under `jax.jit`.
# * Hint: a VJP multiplies by the *transposed* Jacobian, so `x_bar` collects the $x$ column:
#   $\bar x = \bar r\, \partial r / \partial x + \bar\theta\, \partial \theta / \partial x$.

# %% nbgrader={"grade_id": "polar", "solution": true}
@jax.custom_vjp
def polar(point):
    """Polar coordinates of points given in Cartesian coordinates.

    Args:
      point: a dict {"x": array, "y": array}, two arrays of the same shape.

    Returns:
      The dict {"r": sqrt(x**2 + y**2), "theta": atan2(y, x)}, computed elementwise.
    """
    ### BEGIN SOLUTION
    x, y = point["x"], point["y"]
    return {"r": jnp.hypot(x, y), "theta": jnp.arctan2(y, x)}
    ### END SOLUTION


def polar_fwd(point):
    """The forward pass: polar(point) and the residuals for polar_bwd."""
    ### BEGIN SOLUTION
    value = polar(point)
    return value, (point["x"], point["y"], value["r"])
    ### END SOLUTION


def polar_bwd(residuals, cotangent):
    """The backward pass: a 1-tuple holding the dict {"x": x_bar, "y": y_bar}."""
    ### BEGIN SOLUTION
    x, y, r = residuals
    r_bar, theta_bar = cotangent["r"], cotangent["theta"]
    r_squared = r * r
    return ({"x": r_bar * x / r - theta_bar * y / r_squared,
             "y": r_bar * y / r + theta_bar * x / r_squared},)
    ### END SOLUTION


polar.defvjp(polar_fwd, polar_bwd)

# %% nbgrader={"grade_id": "polar_tests", "points": 3}
adcheck.check_polar(polar)
### BEGIN HIDDEN TESTS
_Case = adcheck.Case
adcheck.check_polar(polar, jit=True, cases=[
    _Case("scalars in the third quadrant", {"x": jnp.array(-1.5), "y": jnp.array(-0.5)},
          {"r": jnp.array(2.0), "theta": jnp.array(-1.0)}),
    _Case("points of shape (2, 3), only r used",
          {"x": jnp.linspace(0.5, 3.0, 6).reshape(2, 3),
           "y": jnp.linspace(-2.0, 2.0, 6).reshape(2, 3)},
          {"r": jnp.ones((2, 3)), "theta": jnp.zeros((2, 3))}),
    _Case("far, near and on-axis points, only theta used",
          {"x": jnp.array([1e3, 1e-3, 0.0, -3.0]), "y": jnp.array([-2e3, 3e-3, 1.0, 0.0])},
          {"r": jnp.zeros(4), "theta": jnp.array([1e3, 1e-3, -2.0, 0.5])}),
])
with jax.enable_x64(True):
    adcheck.check_polar(polar, jit=True, cases=[
        _Case("float64, shape (3,)",
              {"x": jnp.array([1.0, -2.0, 0.3]), "y": jnp.array([0.5, 1.0, -0.7])},
              {"r": jnp.array([0.2, -1.0, 2.0]), "theta": jnp.array([1.0, 0.5, -0.25])}),
    ])
### END HIDDEN TESTS

# %% [markdown]
# We compare with plain autodiff of the same formulas at a few random points, pulling back a
# random cotangent dict, and look at the gradient of a loss that only uses $r$:

# %% tags=["demo"]
def polar_by_autodiff(point):
    x, y = point["x"], point["y"]
    return {"r": jnp.sqrt(x ** 2 + y ** 2), "theta": jnp.arctan2(y, x)}


points = {"x": normal((5,)), "y": normal((5,))}
cotangent = {"r": normal((5,)), "theta": normal((5,))}


@jax.jit
def polar_pullbacks(points, cotangent):
    """Our pullback, the pullback of plain autodiff, and the gradient of sum(r)."""
    (ours,) = jax.vjp(polar, points)[1](cotangent)
    (reference,) = jax.vjp(polar_by_autodiff, points)[1](cotangent)
    return ours, reference, jax.grad(lambda p: jnp.sum(polar(p)["r"]))(points)


ours, reference, radius_grad = polar_pullbacks(points, cotangent)
for name in ["x", "y"]:
    print(f"pullback[{name!r}] agrees with autodiff:",
          np.allclose(ours[name], reference[name], atol=1e-5))
print("gradient of sum(r) w.r.t. x:", rounded(radius_grad["x"]))
print("x / r                      :", rounded(points["x"] / jnp.hypot(points["x"], points["y"])))


# %% [markdown]
# ### Non-differentiable arguments: `nondiff_argnums`
#
# Arguments that are not arrays, such as a Python float used as a hyperparameter, a string,
# or a function, cannot have cotangents. Declare their positions in `nondiff_argnums`:
#
# * `fwd` keeps the signature of the function;
# * `bwd` receives the non-differentiable arguments **first**, wherever they are in the
#   function's signature, then the residuals and the cotangent: `bwd(*nondiff_args,
#   residuals, g)`; it returns cotangents for the other arguments only.
#
# (`custom_jvp` has the same option; there the rule becomes `rule(*nondiff_args, primals,
# tangents)`.) Here the hyperparameter is the second argument, and it moves to the front of
# `bwd`:

# %%
@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def scale_gradient(x, factor):
    """The identity on x; its backward pass multiplies the cotangent by factor."""
    return x


def scale_gradient_fwd(x, factor):
    return x, None


def scale_gradient_bwd(factor, residuals, g):
    return (g * factor,)  # one cotangent: for x only


scale_gradient.defvjp(scale_gradient_fwd, scale_gradient_bwd)
print(rounded(jax.grad(lambda x: 3 * scale_gradient(x, 0.1))(2.0)))  # 3, scaled by 0.1

# %% [markdown]
# Non-differentiable arguments must not be traced values. Passing one from inside a jitted
# function whose argument is traced fails:

# %%
try:
    jax.jit(lambda x, factor: jax.grad(lambda x: scale_gradient(x, factor))(x))(2.0, 0.1)
except jax.errors.UnexpectedTracerError as error:
    show_error(error)


# %% [markdown]
# So `nondiff_argnums` is for values that are fixed when the function is traced. Arrays that
# merely should not receive a gradient, like `lo` and `hi` in `clip_gradient`, are better
# passed as ordinary arguments whose cotangent is `None`: then they may be traced, jitted over
# and vmapped over.
#
# ### Exercise 5: `clip_gradient_norm` (design, 3 points)
#
# Clipping each entry of the gradient changes its direction. Clipping its **norm** keeps the
# direction and only shortens gradients that are too long:
#
# $$g \mapsto g \cdot \min\Big(1, \frac{c}{\|g\|}\Big),$$
#
# with $\|g\|$ the Euclidean norm over all entries of $g$ and $c$ the maximum norm.
#
# Write `clip_gradient_norm(max_norm, x)`. How the backward pass computes the factor is
# yours to design; what it must do:
#
# * `max_norm` is a positive Python float; `x` is a floating-point array of any shape.
# * Decorate it with `@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))`, and register
#   `clip_gradient_norm_fwd(max_norm, x)` and `clip_gradient_norm_bwd(max_norm, residuals, g)`
#   (the cell does this).
# * The forward pass returns `x` unchanged. The backward pass returns (in a 1-tuple) the
#   cotangent `g` rescaled as above, with the norm taken over all entries of `g`, in the dtype
#   of `g`.
# * Every cotangent comes back finite: a zero cotangent as zeros (not `nan`), a huge one
#   (norm beyond float32's range when squared) with norm `max_norm`, a tiny one unchanged. It
#   must work under `jax.jit`.
#
# The tests check cotangents of norm below, at and above `max_norm`, zero, tiny and huge
# ones, for several shapes and both float dtypes.

# %% tags=["demo"]
zero_cotangent = jnp.zeros(3)
factor = jnp.minimum(1.0, 1.0 / jnp.linalg.norm(zero_cotangent))
print("c / ||g|| =", 1.0 / jnp.linalg.norm(zero_cotangent), " min(1, c / ||g||) =", factor,
      " g * min(1, c / ||g||) =", zero_cotangent * factor)

# %% nbgrader={"grade_id": "clip_gradient_norm", "solution": true}
@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def clip_gradient_norm(max_norm, x):
    """The identity on x, whose backward pass shortens the cotangent to norm <= max_norm.

    Args:
      max_norm: a positive Python float.
      x: an array of any shape.

    Returns:
      x itself.
    """
    ### BEGIN SOLUTION
    return x
    ### END SOLUTION


def clip_gradient_norm_fwd(max_norm, x):
    """The forward pass: the output and the residuals for clip_gradient_norm_bwd."""
    ### BEGIN SOLUTION
    return x, None
    ### END SOLUTION


def clip_gradient_norm_bwd(max_norm, residuals, g):
    """The backward pass: a 1-tuple holding g * min(1, max_norm / ||g||)."""
    ### BEGIN SOLUTION
    largest = jnp.max(jnp.abs(g))
    scale = jnp.where(largest > 0, largest, 1.0)  # g / scale has entries of at most 1
    norm = scale * jnp.sqrt(jnp.sum((g / scale) ** 2))
    return (g * (max_norm / jnp.maximum(norm, max_norm)),)
    ### END SOLUTION


clip_gradient_norm.defvjp(clip_gradient_norm_fwd, clip_gradient_norm_bwd)

# %% nbgrader={"grade_id": "clip_gradient_norm_tests", "points": 3}
adcheck.check_clip_gradient_norm(clip_gradient_norm)
### BEGIN HIDDEN TESTS
_Case = adcheck.Case
adcheck.check_clip_gradient_norm(clip_gradient_norm, jit=True, cases=[
    _Case("a scalar, clipped", 0.5, jnp.array(1.0), jnp.array(-2.0)),
    _Case("shape (2, 3), clipped to norm 2", 2.0, jnp.ones((2, 3)),
          jnp.arange(6.0).reshape(2, 3) - 2.5),
    _Case("shape (2, 2, 2), not clipped", 100.0, jnp.zeros((2, 2, 2)),
          jnp.linspace(-1.0, 1.0, 8).reshape(2, 2, 2)),
    _Case("zeros of shape (3, 2)", 0.1, jnp.ones((3, 2)), jnp.zeros((3, 2))),
    _Case("a huge cotangent (its squares overflow float32)", 1.0, jnp.zeros(3),
          jnp.array([3e30, 0.0, -4e30])),
    _Case("a tiny cotangent (its squares underflow float32)", 1.0, jnp.zeros(3),
          jnp.array([3e-30, 0.0, -4e-30])),
])
with jax.enable_x64(True):
    adcheck.check_clip_gradient_norm(clip_gradient_norm, jit=True, cases=[
        _Case("float64, clipped", 1e-3, jnp.zeros(4), jnp.array([1.0, -2.0, 3.0, -4.0])),
    ])
### END HIDDEN TESTS

# %% [markdown]
# Pulling back cotangents of different lengths through `clip_gradient_norm(1.0, ·)`: long ones
# come back with norm 1 and the same direction, short ones and zero unchanged.

# %% tags=["demo"]
direction = normal((2, 3))
direction = direction / jnp.sqrt(jnp.sum(direction ** 2))


@jax.jit
def clipped_norm_and_cosine(g):
    """Pull g back through clip_gradient_norm(1.0, .); its norm and cosine with direction."""
    _, pullback = jax.vjp(lambda x: clip_gradient_norm(1.0, x), jnp.zeros_like(g))
    (pulled,) = pullback(g)
    norm = jnp.sqrt(jnp.sum(pulled ** 2))
    return norm, jnp.sum(pulled * direction) / jnp.maximum(norm, 1e-30)


for length in [10.0, 1.5, 0.3, 0.0]:
    norm, cosine = clipped_norm_and_cosine(length * direction)
    print(f"norm in {length:>5}: norm out {float(norm):.4f}, "
          f"cosine with the input direction {float(cosine):.4f}")


# %% [markdown]
# (At norm 0 there is no direction, hence the cosine 0.)
#
# ## 4. Differentiating through a custom VJP rule
#
# ### Reverse over reverse always works, forward over reverse when `fwd` allows it
#
# `jax.grad(f)` of a `custom_vjp` function runs `fwd`, then `bwd`. Both are JAX code, so an
# outer `jax.grad` simply differentiates them like any other code: the second derivative comes
# from **differentiating your backward rule**. To see that it really is the rule that gets
# differentiated, we give $\sum_i x_i^2$ a deliberately wrong rule, $3 x^2$ instead of $2x$:
# the second derivative is then $6x$, the derivative of the rule, not the true value 2.

# %% tags=["demo"]
@jax.custom_vjp
def sumsq_wrong_rule(x):
    return jnp.sum(x ** 2)


def sumsq_wrong_rule_fwd(x):
    return sumsq_wrong_rule(x), x


def sumsq_wrong_rule_bwd(x, g):
    return (g * 3 * x ** 2,)  # deliberately not the derivative 2x


sumsq_wrong_rule.defvjp(sumsq_wrong_rule_fwd, sumsq_wrong_rule_bwd)


@jax.jit
def reverse_derivatives(x):
    first = jax.grad(sumsq_wrong_rule)
    return (first(x), jax.grad(lambda x: jnp.sum(first(x)))(x),
            jax.jacrev(jax.jacrev(sumsq_wrong_rule))(x))


x_two = jnp.array([1.0, 2.0])
first, second, hessian_rev = reverse_derivatives(x_two)
print("grad           :", rounded(first))
print("grad of grad   :", rounded(second))
print("jacrev(jacrev) :\n", rounded(hessian_rev))
try:
    jax.hessian(sumsq_wrong_rule)(x_two)
except TypeError as error:
    print("jax.hessian    : ", end="")
    show_error(error)


# %% [markdown]
# Reverse over reverse (`grad` of `grad`, `jacrev` of `jacrev`) works. `jax.hessian`, forward
# over reverse, failed here, but not because forward mode cannot pass through a custom VJP:
# the outer JVP differentiates the code of `fwd` and `bwd` like any other code, and it only
# fails where it meets the `custom_vjp` function *itself*. Our `fwd` calls
# `sumsq_wrong_rule(x)` to compute the output, and that call is what raises. Compute the output
# directly in `fwd`, and every forward-over-reverse transformation works, again giving the
# derivative of the rule, $\operatorname{diag}(6x)$:

# %% tags=["demo"]
@jax.custom_vjp
def sumsq_direct_fwd(x):
    return jnp.sum(x ** 2)


sumsq_direct_fwd.defvjp(lambda x: (jnp.sum(x ** 2), x), sumsq_wrong_rule_bwd)
print("jax.hessian              :\n", rounded(jax.hessian(sumsq_direct_fwd)(x_two)))
print("jax.jacfwd(jax.grad(f))  :\n", rounded(jax.jacfwd(jax.grad(sumsq_direct_fwd))(x_two)))
try:
    jax.jvp(sumsq_direct_fwd, (x_two,), (jnp.ones(2),))
except TypeError as error:
    print("jax.jvp of f itself      : ", end="")
    show_error(error)


# %% [markdown]
# So: a forward-mode transformation of the function itself (`jax.jvp(f, ...)`, `jax.jacfwd(f)`)
# always raises, and a forward-mode transformation of its gradient works exactly when `fwd`
# does not call `f`. A backward rule that exists only for reverse mode does not make the
# function's Hessian wrong, only the ways to compute it fewer: what you get is still the
# derivative of your `bwd`.
#
# ### What the rule may and may not contain
#
# Since the outer derivative is obtained by tracing `fwd` and `bwd`, what they may contain
# depends on how they are run. We tried the usual suspects in the backward rule of $f(x) = x^2$
# (the correct rule is $2 x g$) and ran the first derivative, the second derivative
# (`grad(grad(f))`), each eagerly and under `jit`:
#
# * `x.item()` or `float(x)` on the residual, to get a Python number;
# * a Python `if` on the residual;
# * a NumPy function on the residual;
# * a constant Python number stored as a residual (fwd returns `(2.0, x)`).

# %% tags=["demo"]
def with_rule(fwd_residuals, bwd):
    """A custom_vjp x**2 with the given residuals and backward rule."""
    @jax.custom_vjp
    def fn(x):
        return x ** 2

    fn.defvjp(lambda x: (fn(x), fwd_residuals(x)), bwd)
    return fn


rule_variants = {
    "correct rule": (lambda x: x, lambda x, g: (2 * x * g,)),
    "x.item()": (lambda x: x, lambda x, g: (2 * x.item() * g,)),
    "float(x)": (lambda x: x, lambda x, g: (2 * float(x) * g,)),
    "Python if on x": (lambda x: x, lambda x, g: (2 * x * g if x > 0 else -2 * x * g,)),
    "np.multiply(2, x)": (lambda x: x, lambda x, g: (np.multiply(2, x) * g,)),
    "residuals (2.0, x)": (lambda x: (2.0, x), lambda r, g: (r[0] * r[1] * g,)),
}
transforms = {
    "grad": lambda fn: jax.grad(fn),
    "jit(grad)": lambda fn: jax.jit(jax.grad(fn)),
    "grad(grad)": lambda fn: jax.grad(jax.grad(fn)),
    "jit(grad(grad))": lambda fn: jax.jit(jax.grad(jax.grad(fn))),
}
errors_seen = {}
x_rule = jnp.array(1.5)
print(f"{'rule':<19}" + "".join(f"{name:>27}" for name in transforms))
for variant, (fwd_residuals, bwd) in rule_variants.items():
    fn = with_rule(fwd_residuals, bwd)
    cells = []
    for transform in transforms.values():
        try:
            cells.append(f"{float(transform(fn)(x_rule)):.4f}")
        except Exception as error:  # we want to see every kind of failure
            cells.append(type(error).__name__)
            errors_seen.setdefault(type(error).__name__, error)
    print(f"{variant:<19}" + "".join(f"{cell:>27}" for cell in cells))
print("\nexpected: 3.0 for the first derivative, 2.0 for the second")
for error in errors_seen.values():
    show_error(error)


# %% [markdown]
# What we observe with this version of JAX:
#
# * **Under `jit` every one of these conversions fails**, already at first order: `jit`
#   traces `bwd` with abstract values, which have no Python value, no truth value and no NumPy
#   array. The same happens under `vmap`.
# * **Eagerly, at first order, everything works.** The backward rule is then called with
#   concrete arrays (we pass an array `x`), and code that turns them into Python or NumPy
#   values runs fine. This is what makes such rules treacherous: they pass a quick test.
# * **Eagerly, at second order, the outcome depends on the conversion.** The residual `x` is
#   now a tracer of the outer differentiation that still carries its concrete value.
#   `float(x)` and NumPy raise. A Python `if` runs and is harmless here (the branch only
#   decides which formula applies). But `x.item()` returns the number and **silently drops the
#   dependence on x**: the second derivative comes out as 0 instead of 2, without any error
#   or warning.
# * A constant Python number as a residual is fine everywhere. (You may read that residuals
#   must be JAX arrays; that is too strong.) What matters is that residuals that *depend on
#   the input* stay JAX values. A residual that is not a number at all, such as a string, is
#   rejected with a `TypeError` already at first order.
#
# The cotangent `g` is no safer than the residuals. When the function is composed with
# something else, `g` depends on $x$ too, and `g.item()` drops that dependence. Whether the
# error is silent even depends on the outer transformation: `jax.jacrev` batches the cotangent
# with `vmap`, which turns the silent error into an exception.

# %% tags=["demo"]
def composed_second_derivative(bwd, second_order):
    fn = with_rule(lambda x: x, bwd)
    try:
        return f"{float(second_order(lambda x: jnp.sin(fn(x)))(x_rule)):.4f}"
    except Exception as error:  # we want to see every kind of failure
        return type(error).__name__


exact = -4 * 1.5 ** 2 * np.sin(1.5 ** 2) + 2 * np.cos(1.5 ** 2)
print(f"d²/dx² sin(x²) at 1.5 = {exact:.4f}")
for name, bwd in [("correct rule", lambda x, g: (2 * x * g,)),
                  ("g.item()", lambda x, g: (2 * x * g.item(),))]:
    by_grad = composed_second_derivative(bwd, lambda f: jax.grad(jax.grad(f)))
    by_jacrev = composed_second_derivative(bwd, lambda f: jax.jacrev(jax.jacrev(f)))
    print(f"{name:<13}: grad(grad) {by_grad}, jacrev(jacrev) {by_jacrev}")


# %% [markdown]
# The rule for rules: **write `fwd` and `bwd` with JAX operations only**, as if they were
# always going to be jitted and differentiated. Use `jnp` instead of `np`, `jnp.where` or
# `jax.lax.cond` instead of a Python `if` on values, and never convert a traced value to a
# Python number. Then first-order results, `jit`, `vmap` and higher derivatives all agree, and
# a quick eager test tells you something about all of them.
#
# ### Exercise 6: `custom_vjp_grad_of_grad` (3 points)
#
# Differentiate twice through a custom VJP rule.
#
# * Define `custom_sumsq(x)` $= \sum_i x_i^2$ decorated with `@jax.custom_vjp`, with a
#   module-level `_fwd(x)` that returns the value and the residual `x`, and a module-level
#   `_bwd(x, g)` that returns `(g * 2 * x,)` (mind the trailing comma). The cell registers them
#   with `custom_sumsq.defvjp(_fwd, _bwd)`.
# * Write `custom_vjp_grad_of_grad(x)` for a 1-D floating-point array `x`: the gradient of
#   $\sum_i \big(\nabla \texttt{custom\_sumsq}(x)\big)_i$, that is
#   `jax.grad(lambda x: jnp.sum(jax.grad(custom_sumsq)(x)))(x)`, an array shaped like `x`. For
#   this rule it is all 2.0s.
# * The result must come from differentiating through the registered rule: the tests swap in
#   another rule and expect your result to change accordingly. Hard-coded twos or a plain
#   `jnp.sum(x ** 2)` do not pass. It must work under `jax.jit`.
# * Hint: `jax.grad` needs a scalar output, hence the `jnp.sum` around the inner gradient.

# %% nbgrader={"grade_id": "custom_vjp_grad_of_grad", "solution": true}
@jax.custom_vjp
def custom_sumsq(x):
    """sum(x**2) for a 1-D array x."""
    ### BEGIN SOLUTION
    return jnp.sum(x ** 2)
    ### END SOLUTION


def _fwd(x):
    """The forward pass: the value and the residual x."""
    ### BEGIN SOLUTION
    return custom_sumsq(x), x
    ### END SOLUTION


def _bwd(x, g):
    """The backward pass: the 1-tuple (g * 2 * x,)."""
    ### BEGIN SOLUTION
    return (g * 2 * x,)
    ### END SOLUTION


custom_sumsq.defvjp(_fwd, _bwd)


def custom_vjp_grad_of_grad(x):
    """The gradient of sum(grad(custom_sumsq)(x)), differentiated through the custom rule.

    Args:
      x: a 1-D array.

    Returns:
      An array shaped like x (all 2.0s for the rule g * 2 * x).
    """
    ### BEGIN SOLUTION
    return jax.grad(lambda x: jnp.sum(jax.grad(custom_sumsq)(x)))(x)
    ### END SOLUTION


# %% nbgrader={"grade_id": "custom_vjp_grad_of_grad_tests", "points": 3}
adcheck.check_custom_vjp_grad_of_grad(custom_vjp_grad_of_grad, jit=True)
### BEGIN HIDDEN TESTS
_Case = adcheck.Case
adcheck.check_custom_vjp_grad_of_grad(custom_vjp_grad_of_grad, jit=True, cases=[
    _Case("a single entry", jnp.array([-0.75])),
    _Case("x of length 6, zeros included", jnp.array([-2.0, 0.0, 1.0, 0.0, 3.0, 0.5])),
])
with jax.enable_x64(True):
    adcheck.check_custom_vjp_grad_of_grad(custom_vjp_grad_of_grad, jit=True, cases=[
        _Case("float64, x of length 5", jnp.array([1.0, -2.0, 0.5, 4.0, -0.25])),
    ])
### END HIDDEN TESTS

# %% [markdown]
# The gradient through the custom rule next to $2x$, and the second-order gradient:

# %% tags=["demo"]
x_four = jnp.array([1.0, 2.0, -0.5, 3.0])
first, second = jax.jit(lambda x: (jax.grad(custom_sumsq)(x),
                                   custom_vjp_grad_of_grad(x)))(x_four)
print("grad of custom_sumsq   :", rounded(first))
print("2x                     :", rounded(2 * x_four))
print("custom_vjp_grad_of_grad:", rounded(second))


# %% [markdown]
# ## 5. A norm with a subgradient at zero
#
# The Euclidean norm $\|x\| = \sqrt{\sum_i x_i^2}$ has the gradient $x / \|x\|$ for
# $x \ne 0$. At $x = 0$ it is not differentiable, but 0 is a subgradient there (the norm is
# convex with its minimum at 0), and it is the natural convention: a loss that contains
# distances between points should not break when two points coincide. JAX returns `nan`, for
# the same reason as for $\sqrt x$ before: the derivative of the square root at 0 is infinite,
# and it is multiplied by $2x = 0$. A single `where` does not help; a double where does:

# %% tags=["demo"]
def norm_where(x):
    squares = jnp.sum(x ** 2)
    return jnp.where(squares > 0, jnp.sqrt(squares), 0.0)


def norm_double_where(x):
    squares = jnp.sum(x ** 2)
    safe_squares = jnp.where(squares > 0, squares, 1.0)
    return jnp.where(squares > 0, jnp.sqrt(safe_squares), 0.0)


norm_versions = {"jnp.linalg.norm": jnp.linalg.norm, "one where": norm_where,
                 "double where": norm_double_where}
grads = jax.jit(lambda x: [jax.grad(fn)(x) for fn in norm_versions.values()])(jnp.zeros(3))
for name, grad in zip(norm_versions, grads):
    print(f"{name:<16}: gradient at 0 = {rounded(grad)}")


# %% [markdown]
# The double where works, but the convention is hidden in the way the function is written;
# a custom rule states it. The same trap waits inside the rule: if the tangent is computed as
# `jnp.where(norm > 0, jnp.vdot(x, x_dot) / norm, 0.0)`, the forward-mode JVP is fine, but the
# transpose used by `jax.grad` sends a zero cotangent through the division by `norm = 0`, and
# $0/0$ is `nan`.
#
# ### Exercise 7: `safe_norm` (design, 2 points)
#
# Write `safe_norm(x)`, the Euclidean norm with the zero subgradient at the origin: a norm
# that a gradient step can pass through $x = 0$ without producing `nan`. The design of the
# rule is yours; what it must do:
#
# * `x` is a floating-point array of any shape; return the scalar $\sqrt{\sum x^2}$ over all
#   entries, with the dtype of `x`.
# * The derivative is stated by a `jax.custom_jvp` rule (decorate `safe_norm` with
#   `@jax.custom_jvp` and register the rule with `safe_norm.defjvp`): the tangent is
#   $\langle x / \|x\|, \dot x \rangle$ (a sum over all entries) for $x \ne 0$, and $0$ at
#   $x = 0$.
# * No `nan` or `inf` in the JVP or in the gradient, at 0 or anywhere else, also under
#   `jax.jit`. Remember the trap above: `jax.grad` transposes the rule, and what the
#   transpose divides by matters even where `jnp.where` discards the result.
#
# The tests check the value, the JVP and the gradient at the origin, near it and away from
# it, for several shapes, in float32 and float64.

# %% nbgrader={"grade_id": "safe_norm", "solution": true}
@jax.custom_jvp
def safe_norm(x):
    """The Euclidean norm of x over all its entries.

    Args:
      x: a floating-point array of any shape.

    Returns:
      A scalar, sqrt(sum(x**2)).
    """
    ### BEGIN SOLUTION
    return jnp.sqrt(jnp.sum(x * x))
    ### END SOLUTION


@safe_norm.defjvp
def safe_norm_jvp(primals, tangents):
    """The JVP rule of safe_norm: <x / ||x||, x_dot>, and 0 at x = 0."""
    ### BEGIN SOLUTION
    (x,), (x_dot,) = primals, tangents
    norm = safe_norm(x)
    direction = x / jnp.where(norm > 0, norm, 1.0)  # x = 0 gives the direction 0
    return norm, jnp.sum(direction * x_dot)
    ### END SOLUTION


# %% nbgrader={"grade_id": "safe_norm_tests", "points": 2}
adcheck.check_safe_norm(safe_norm)
### BEGIN HIDDEN TESTS
_Case = adcheck.Case
adcheck.check_safe_norm(safe_norm, jit=True, cases=[
    _Case("a scalar zero", jnp.array(0.0)),
    _Case("zeros of shape (2, 3)", jnp.zeros((2, 3))),
    _Case("a (2, 2, 2) array", jnp.linspace(-1.0, 2.0, 8).reshape(2, 2, 2)),
    _Case("one small nonzero entry", jnp.array([0.0, 0.0, -1e-3, 0.0])),
])
with jax.enable_x64(True):
    adcheck.check_safe_norm(safe_norm, jit=True, cases=[
        _Case("float64, shape (3,)", jnp.array([1.0, -2.0, 2.0])),
    ])
### END HIDDEN TESTS

# %% [markdown]
# An example where this matters: the sum of pairwise distances between points, used for
# instance to spread points apart. When two points coincide (here points 1 and 3), the
# gradient with `jnp.linalg.norm` is `nan` for both of them, and one step of gradient descent
# would turn their coordinates into `nan`. With `safe_norm`, the coinciding pair simply
# contributes nothing, and every other pair still pushes them apart.

# %% tags=["demo"]
cloud = jnp.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [1.0, 0.0]])
pair_i, pair_j = jnp.triu_indices(len(cloud), k=1)


def total_distance(points, norm):
    """The sum of the distances between all pairs of points, measured with norm."""
    return jnp.sum(jax.vmap(norm)(points[pair_i] - points[pair_j]))


results = jax.jit(lambda points: [jax.value_and_grad(total_distance)(points, norm)
                                  for norm in (jnp.linalg.norm, safe_norm)])(cloud)
for name, (value, gradient) in zip(["jnp.linalg.norm", "safe_norm"], results):
    print(f"{name}: total distance {float(value):.4f}, gradient\n{rounded(gradient)}")

# %% [markdown]
# ## 6. Design: the log-determinant through its Cholesky factor
#
# Every Gaussian likelihood contains $\log\det A$ for a symmetric positive definite matrix
# $A$. Computing $\det A$ first is a bad idea: for $A = 100\,I$ of size 30 the determinant is
# $10^{60}$, beyond float32's largest number, so `jnp.log(jnp.linalg.det(A))` is `inf`. The
# Cholesky factor $L$ ($A = L L^\top$, $L$ lower triangular with a positive diagonal) avoids
# it: $\det A = \prod_i L_{ii}^2$, so $\log\det A = 2 \sum_i \log L_{ii}$, a sum of moderate
# numbers.
#
# The derivative: $d \log\det A = \operatorname{tr}(A^{-1}\, dA)$, so the gradient with
# respect to the entries of $A$ is $A^{-\top} = A^{-1}$ (symmetric $A$), and the VJP of a
# cotangent $g$ is $g\,A^{-1}$. The backward pass does not need a fresh factorisation: with
# the $L$ of the forward pass, $A^{-1} = L^{-\top} L^{-1}$ costs two triangular solves,
# `jax.scipy.linalg.cho_solve((L, True), I)`.
#
# ### Exercise 8: `logdet` (design, 3 points)
#
# Make `logdet(A)` a `jax.custom_vjp` function for a symmetric positive definite `A` of shape
# `(n, n)`:
#
# * `logdet_fwd(A)` returns $2 \sum_i \log L_{ii}$ and, as the residual, the Cholesky factor
#   `L = jnp.linalg.cholesky(A)` (alone, or in a tuple);
# * `logdet_bwd(L, g)` returns the 1-tuple `(g * A^{-1},)`, computed from `L` with
#   `jax.scipy.linalg.cho_solve`, never from `det`.

# %% nbgrader={"grade_id": "logdet", "solution": true}
@jax.custom_vjp
def logdet(A):
    """log det A of a symmetric positive definite A, by its Cholesky factor."""
    ### BEGIN SOLUTION
    return logdet_fwd(A)[0]
    ### END SOLUTION


def logdet_fwd(A):
    ### BEGIN SOLUTION
    L = jnp.linalg.cholesky(A)
    return 2.0 * jnp.sum(jnp.log(jnp.diagonal(L))), L
    ### END SOLUTION


def logdet_bwd(L, g):
    ### BEGIN SOLUTION
    identity = jnp.eye(L.shape[0], dtype=L.dtype)
    return (g * jax.scipy.linalg.cho_solve((L, True), identity),)
    ### END SOLUTION


logdet.defvjp(logdet_fwd, logdet_bwd)

# %% nbgrader={"grade_id": "logdet_tests", "points": 3}
adcheck.check_logdet(logdet)
### BEGIN HIDDEN TESTS
_Case = adcheck.Case
_spd = adcheck._spd_matrix
adcheck.check_logdet(logdet, jit=True, cases=[
    _Case("a 1 x 1 matrix", jnp.array([[2.5]]), jnp.array(1.5)),
    _Case("a random 6 x 6 matrix", _spd(6, 10), jnp.array(-2.0)),
    _Case("an ill-conditioned 5 x 5 matrix (condition number 1e4)",
          _spd(5, 11, condition=1e4), jnp.array(1.0)),
    _Case("1e-3 times a 40 x 40 matrix (det = 1e-100, below float32's range)",
          1e-3 * _spd(40, 12), jnp.array(0.5)),
])
with jax.enable_x64(True):
    adcheck.check_logdet(logdet, jit=True, cases=[
        _Case("float64, a random 8 x 8 matrix", _spd(8, 13, dtype=jnp.float64),
              jnp.array(2.0, jnp.float64)),
    ])
### END HIDDEN TESTS

# %% [markdown]
# The determinant overflows where the factor does not, and the gradient agrees with
# `jnp.linalg.slogdet`'s:

# %% tags=["demo"]
A_big = 100.0 * jnp.eye(30)
print("log(det(A))   :", jnp.log(jnp.linalg.det(A_big)))
print("logdet(A)     :", logdet(A_big), " (30 log 100 =", 30 * np.log(100.0), ")")
A_small = jnp.array([[4.0, 1.0, 0.5], [1.0, 3.0, 0.2], [0.5, 0.2, 2.0]])
print("gradient      :\n", rounded(jax.grad(logdet)(A_small)))
print("slogdet's     :\n", rounded(jax.grad(lambda A: jnp.linalg.slogdet(A)[1])(A_small)))

# %% [markdown]
# ## 7. Summary
#
# | task | tool | remember |
# |---|---|---|
# | a stable or conventional derivative | `@jax.custom_jvp` + `f.defjvp(rule)` | `rule((x,), (x_dot,))` returns `(f(x), tangent)`; the tangent must be **linear** in `x_dot` |
# | one rule per argument | `f.defjvps(rule_0, rule_1, ...)` | `rule_i(t_i, out, *primals)`; `None` means a zero derivative |
# | reverse mode from a JVP rule | automatic | JAX linearizes and transposes; a non-linear rule raises, an affine one is silently inconsistent |
# | higher derivatives of a `custom_jvp` | automatic | JAX differentiates the rule's code, so the rule must be stably differentiable; call `f` in the rule for the output |
# | your own backward pass | `@jax.custom_vjp` + `f.defvjp(fwd, bwd)` | `fwd` returns `(out, residuals)`; `bwd(residuals, g)` returns a tuple with one cotangent per argument (`None` for zero) |
# | gradient surgery (clipping, scaling) | `custom_vjp` | not linear, so it cannot be a JVP rule |
# | inspect cotangents | `jax.debug.print` (or `jax.debug.breakpoint`) in `bwd` | `print` and `pdb` only see tracers under `jit` |
# | non-array arguments | `nondiff_argnums=(i, ...)` | they come first in `bwd` (and in a JVP rule); they must not be traced |
# | array arguments without gradient | ordinary arguments | return `None` as their cotangent |
# | forward mode of a `custom_vjp` function | raises a `TypeError` | use `jacrev`, or a `custom_jvp` if the rule is linear |
# | second derivatives through a `custom_vjp` | `grad(grad(f))`, `jacrev(jacrev(f))`; `jax.hessian` if `fwd` does not call `f` | JAX differentiates `fwd`'s and `bwd`'s code |
#
# A checklist before you trust a custom rule:
#
# 1. Compare it with autodiff (or finite differences) at a few ordinary points, in both modes.
# 2. Test the points that motivated the rule (overflow, boundaries, zeros) for `nan` and `inf`,
#    in the JVP **and** in the gradient: a `jnp.where` can protect one and not the other.
# 3. Run it under `jax.jit` and `jax.vmap`: that is where Python control flow, `.item()`,
#    `float()` and NumPy calls on traced values show up.
# 4. If anyone will differentiate it twice, check the second derivative too, since it comes
#    from the rule's code, not from the rule.
#
# Assignment 04 uses `custom_vjp` for one of its most important applications: differentiating
# the solution of a fixed-point equation or an optimisation problem with the implicit function
# theorem, instead of through the iterations that compute it.
