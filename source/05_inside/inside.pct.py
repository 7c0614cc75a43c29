# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Assignment 05 — Inside autodiff
#
# The first four assignments used JAX's transformations. This one opens them up. You will
# build forward mode yourself, then see that JAX builds reverse mode out of forward mode, and
# that you can build forward mode back out of reverse mode; you will measure where the memory
# of reverse mode goes and trade it for time; and you will differentiate loops, branches and
# solvers the way JAX wants them written. In this notebook you will learn
#
# * forward mode as arithmetic on dual numbers, written from scratch;
# * reverse mode as a linearization followed by a transpose (`jax.linearize`,
#   `jax.linear_transpose`), and forward mode from two VJPs;
# * what a pullback keeps in memory, and how `jax.checkpoint` trades it for recomputation;
# * how `lax.scan`, `lax.while_loop`, `lax.cond` and `jnp.where` are differentiated;
# * how a custom rule differentiates values its function closes over (`jax.closure_convert`);
# * how a sparse Jacobian costs a few JVPs instead of one per input (colouring);
# * how JAX's transformations interpret traced programs (jaxprs): forward mode and the
#   transpose written as interpreters of your own, and checkpoint policies inside a scan.

# %% [markdown]
# **Exercises.** An answer cell holds the functions of one exercise. Replace every placeholder,
# keep the names and signatures, and run the cell; then run the locked test cell below it. The
# visible tests try a few inputs and say what they suspect when something is off. The grade
# comes from hidden tests that use more inputs, shapes and dtypes, run under `jax.jit`, and
# check the mechanism each exercise asks for (no built-in derivative where you build one, the
# memory a checkpoint saves, the number of JVPs).
#
# Cells that only show or time something carry the tag `demo`: grading does not run them, so
# what they print never counts towards your grade, and nothing that is graded depends on them.

# %% nbgrader={"grade_id": "setup", "locked": true}
import contextlib
import functools
import io
import textwrap
import time

import jax
import jax.ad_checkpoint
import jax.extend.core
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
# ## 1. Forward mode is arithmetic on pairs
#
# Write every number of a computation as a pair $(x, \dot x)$: its value and its derivative in
# one fixed direction. If every operation maps pairs to pairs by the rules of calculus,
# $$(x, \dot x) + (y, \dot y) = (x + y,\ \dot x + \dot y), \qquad
#   (x, \dot x)\,(y, \dot y) = (x y,\ \dot x\, y + x\, \dot y), \qquad
#   \sin (x, \dot x) = (\sin x,\ \cos x\ \dot x),$$
# then the pair that comes out of a function $f$ is $(f(x), f'(x)\,\dot x)$: its value and
# its JVP. These pairs are *dual numbers*, $x + \dot x\,\varepsilon$ with $\varepsilon^2 = 0$:
# the product rule is just $(x + \dot x \varepsilon)(y + \dot y \varepsilon) = xy + (\dot x y +
# x \dot y)\varepsilon$. This is all forward mode is; `jax.jvp` does the same with tracers
# that carry a tangent beside each value.

# %% [markdown]
# ### Exercise 1: `Dual` (3 points)
#
# Complete the class `Dual(primal, tangent)`, where `primal` and `tangent` are arrays of one
# shape, so that a function written with `+`, `-`, `*`, `/`, `**` (a number as exponent),
# unary `-` and the methods `.sin()`, `.exp()` and `.log()` returns `Dual(f(x), J t)` when
# called on `Dual(x, t)`.
#
# * Every operation returns a new `Dual`. The other operand may be a `Dual` or a plain number
#   or array (a constant, whose tangent is zero): `2.0 * x`, `1.0 - x` and `3.0 / x` must work,
#   which is what the reflected methods `__rmul__`, `__rsub__` and `__rtruediv__` are for.
# * Use `jnp` for values; do not call any of JAX's differentiation (`jax.jvp`, `jax.grad`, ...).

# %% nbgrader={"grade_id": "Dual", "solution": true}
class Dual:
    """A value and a tangent, carried together through arithmetic (forward mode)."""

    def __init__(self, primal, tangent):
        self.primal = primal
        self.tangent = tangent

    @staticmethod
    def lift(other):
        """`other` as a Dual: a constant has tangent zero."""
        if isinstance(other, Dual):
            return other
        return Dual(other, jnp.zeros_like(other))

    def __add__(self, other):
        ### BEGIN SOLUTION
        other = Dual.lift(other)
        return Dual(self.primal + other.primal, self.tangent + other.tangent)
        ### END SOLUTION

    def __radd__(self, other):
        ### BEGIN SOLUTION
        return self + other
        ### END SOLUTION

    def __neg__(self):
        ### BEGIN SOLUTION
        return Dual(-self.primal, -self.tangent)
        ### END SOLUTION

    def __sub__(self, other):
        ### BEGIN SOLUTION
        return self + (-Dual.lift(other))
        ### END SOLUTION

    def __rsub__(self, other):
        ### BEGIN SOLUTION
        return Dual.lift(other) + (-self)
        ### END SOLUTION

    def __mul__(self, other):
        ### BEGIN SOLUTION
        other = Dual.lift(other)
        return Dual(self.primal * other.primal,
                    self.tangent * other.primal + self.primal * other.tangent)
        ### END SOLUTION

    def __rmul__(self, other):
        ### BEGIN SOLUTION
        return self * other
        ### END SOLUTION

    def __truediv__(self, other):
        ### BEGIN SOLUTION
        other = Dual.lift(other)
        quotient = self.primal / other.primal
        return Dual(quotient, (self.tangent - quotient * other.tangent) / other.primal)
        ### END SOLUTION

    def __rtruediv__(self, other):
        ### BEGIN SOLUTION
        return Dual.lift(other) / self
        ### END SOLUTION

    def __pow__(self, n):
        ### BEGIN SOLUTION
        return Dual(self.primal**n, n * self.primal ** (n - 1) * self.tangent)
        ### END SOLUTION

    def sin(self):
        ### BEGIN SOLUTION
        return Dual(jnp.sin(self.primal), jnp.cos(self.primal) * self.tangent)
        ### END SOLUTION

    def exp(self):
        ### BEGIN SOLUTION
        value = jnp.exp(self.primal)
        return Dual(value, value * self.tangent)
        ### END SOLUTION

    def log(self):
        ### BEGIN SOLUTION
        return Dual(jnp.log(self.primal), self.tangent / self.primal)
        ### END SOLUTION


# %% nbgrader={"grade_id": "Dual_tests", "points": 3}
adcheck.check_Dual(Dual)
### BEGIN HIDDEN TESTS
_Case = adcheck.Case
adcheck.check_Dual(Dual, jit=True, cases=[
    _Case("a scalar, f(x) = x.exp().sin() / x", lambda x: x.exp().sin() / x, jnp.array(0.8),
          jnp.array(2.0)),
    _Case("f(x) = (1 - x) * (x ** 2.5).log(), x of shape (2, 3)",
          lambda x: (1.0 - x) * (x ** 2.5).log(), jnp.linspace(0.5, 3.0, 6).reshape(2, 3),
          jnp.linspace(-1.0, 1.0, 6).reshape(2, 3)),
    _Case("a long chain, f(x) = ((x * x).sin() - 3 / x) ** 2 * x.exp()",
          lambda x: ((x * x).sin() - 3.0 / x) ** 2 * x.exp(), jnp.array([0.3, 1.1, 2.5, 4.0]),
          jnp.array([1.0, 0.0, -2.0, 0.5])),
    _Case("c - x and c / x mixed, f(x) = 2 - 1 / (1 + x.exp())",
          lambda x: 2.0 - 1.0 / (1.0 + x.exp()), jnp.linspace(-3.0, 3.0, 5), jnp.ones(5)),
])
with jax.enable_x64(True):
    adcheck.check_Dual(Dual, jit=True, cases=[
        _Case("float64, f(x) = x.log() * x.sin() - x ** 3",
              lambda x: x.log() * x.sin() - x ** 3, jnp.array([0.2, 1.0, 5.0], jnp.float64),
              jnp.array([1.0, 2.0, 3.0], jnp.float64)),
    ])
### END HIDDEN TESTS

# %% [markdown]
# One pass with `Dual` gives the value and one directional derivative, as `jax.jvp` does:

# %% tags=["demo"]
def f_demo(x):
    return x.sin() * x.exp() / (1.0 + x ** 2)


x_demo, t_demo = jnp.array([0.5, 1.0, 2.0]), jnp.array([1.0, 0.0, 0.0])
ours = f_demo(Dual(x_demo, t_demo))
jax_y, jax_t = jax.jvp(lambda x: jnp.sin(x) * jnp.exp(x) / (1.0 + x**2), (x_demo,), (t_demo,))
print("Dual   :", rounded(ours.primal), rounded(ours.tangent))
print("jax.jvp:", rounded(jax_y), rounded(jax_t))

# %% [markdown]
# ## 2. Reverse mode is forward mode, linearized and transposed
#
# A JVP $t \mapsto J t$ is a *linear* function of the tangent. `jax.linearize(f, x)` runs $f$
# once and returns $f(x)$ with that linear function, as a program of linear operations on the
# tangent alone. A linear program can be run backwards: `jax.linear_transpose` turns the
# program of $t \mapsto Jt$ into the program of $u \mapsto J^\top u$, reversing the order of
# its operations and transposing each one. $u \mapsto J^\top u$ is the VJP. This is how JAX
# differentiates in reverse mode: its primitives have JVP rules and transpose rules, and no
# VJP rules.
#
# What of the `custom_vjp` rules you wrote in assignment 03? `jax.linearize` of such a function
# does not look inside it: the linear program holds one primitive, `custom_lin`, that carries
# your `bwd` function and the residuals `fwd` returned. The transpose rule of `custom_lin` calls
# `bwd` on the cotangent. So a VJP rule enters JAX as the transpose of an opaque linear
# operation; the second demo below prints both programs.

# %% tags=["demo"]
W_demo = jnp.array([[1.0, 2.0, 0.0], [0.0, -1.0, 3.0]])
y_lin, jvp_fn = jax.linearize(lambda x: jnp.tanh(W_demo @ x), jnp.array([0.1, 0.2, 0.3]))
vjp_fn = jax.linear_transpose(jvp_fn, jnp.zeros(3))
print("J e_1 (a column of J):", rounded(jvp_fn(jnp.array([1.0, 0.0, 0.0]))))
print("J^T e_1 (a row of J)  :", rounded(vjp_fn(jnp.array([1.0, 0.0]))[0]))


# %% tags=["demo"]
@jax.custom_vjp
def sin_by_rule(x):
    return jnp.sin(x)


sin_by_rule.defvjp(lambda x: (jnp.sin(x), jnp.cos(x)), lambda cos_x, g: (cos_x * g,))
_, linear_sin = jax.linearize(sin_by_rule, 0.5)
print("linearized:", jax.make_jaxpr(linear_sin)(1.0).pretty_print(use_color=False))
print("transposed:", jax.make_jaxpr(jax.linear_transpose(linear_sin, 1.0))(1.0)
      .pretty_print(use_color=False))

# %% [markdown]
# ### Exercise 2: `vjp_from_linearize(f, *primals)` (3 points)
#
# Return `(f(*primals), pullback)` as `jax.vjp(f, *primals)` does for floating-point
# arguments: `pullback(u)` returns a tuple with one cotangent per argument of `f`, and
# arguments and outputs may be pytrees. (For an integer argument `jax.vjp` returns a cotangent
# of the special dtype `float0`; the tests use floating-point arguments only.)
# Build it from `jax.linearize` and `jax.linear_transpose` only: no `jax.vjp`, `jax.grad`,
# `jax.jvp` or Jacobian.

# %% nbgrader={"grade_id": "vjp_from_linearize", "solution": true}
def vjp_from_linearize(f, *primals):
    """jax.vjp(f, *primals), from a linearization and its transpose."""
    ### BEGIN SOLUTION
    out, jvp_fn = jax.linearize(f, *primals)
    return out, jax.linear_transpose(jvp_fn, *primals)
    ### END SOLUTION


# %% nbgrader={"grade_id": "vjp_from_linearize_tests", "points": 3}
adcheck.check_vjp_from_linearize(vjp_from_linearize)
### BEGIN HIDDEN TESTS
_Case = adcheck.Case
adcheck.check_vjp_from_linearize(vjp_from_linearize, jit=True, cases=[
    _Case("a scalar in, a vector out", lambda x: jnp.stack([x, jnp.sin(x), x**3]),
          (jnp.array(0.4),), jnp.array([1.0, -1.0, 2.0])),
    _Case("three inputs, f(a, b, c) = a * sin(b) + c ** 2",
          lambda a, b, c: a * jnp.sin(b) + c**2, (jnp.array([1.0, 2.0]), jnp.array([0.5, -0.5]),
                                                  jnp.array([3.0, 1.0])), jnp.array([1.0, 2.0])),
    _Case("a matrix in, a scalar out", lambda m: jnp.sum(jnp.tanh(m) ** 2),
          (jnp.linspace(-1.0, 1.0, 6).reshape(2, 3),), jnp.array(1.5)),
    _Case("a square Jacobian that is not symmetric", lambda x: jnp.cumsum(x) * x[::-1],
          (jnp.array([0.5, 1.0, -2.0, 3.0]),), jnp.array([1.0, 0.0, 2.0, -1.0])),
])
with jax.enable_x64(True):
    adcheck.check_vjp_from_linearize(vjp_from_linearize, jit=True, cases=[
        _Case("float64, a dict of two leaves", lambda p: p["w"] @ p["x"],
              ({"w": jnp.ones((2, 3), jnp.float64), "x": jnp.arange(3.0, dtype=jnp.float64)},),
              jnp.array([1.0, -2.0], jnp.float64)),
    ])
### END HIDDEN TESTS

# %% [markdown]
# ## 3. Forward mode from reverse mode
#
# The other way round also works. For fixed $x$, the pullback $u \mapsto J^\top u$ is a linear
# function of $u$, and the VJP of a linear function $u \mapsto A u$ with cotangent $t$ is
# $A^\top t$. With $A = J^\top$ that is $J t$: pulling $t$ back through the pullback gives the
# JVP. The point $u$ at which we differentiate the pullback does not matter (it is linear), so
# zeros will do. This "double VJP" trick gives forward mode on a system that has only reverse
# mode, at about twice the cost of one VJP.
#
# ### Exercise 3: `jvp_from_vjp(f, x, t)` (2 points)
#
# Return `(f(x), J t)`, as `jax.jvp(f, (x,), (t,))` does, for an array `x` and a tangent `t` of
# its shape, using `jax.vjp` twice and no forward mode (`jax.jvp`, `jax.linearize`, Jacobians).
# The tests run it on a function with a `custom_vjp` rule, which forward mode cannot
# differentiate.

# %% nbgrader={"grade_id": "jvp_from_vjp", "solution": true}
def jvp_from_vjp(f, x, t):
    """(f(x), J t) from two VJPs."""
    ### BEGIN SOLUTION
    y, pullback = jax.vjp(f, x)
    _, pullback_of_pullback = jax.vjp(lambda u: pullback(u)[0], jnp.zeros_like(y))
    return y, pullback_of_pullback(t)[0]
    ### END SOLUTION


# %% nbgrader={"grade_id": "jvp_from_vjp_tests", "points": 2}
adcheck.check_jvp_from_vjp(jvp_from_vjp)
### BEGIN HIDDEN TESTS
_Case = adcheck.Case
adcheck.check_jvp_from_vjp(jvp_from_vjp, jit=True, cases=[
    _Case("a scalar input, f(x) = (x, x**2, sin x)", lambda x: jnp.stack([x, x**2, jnp.sin(x)]),
          jnp.array(0.7), jnp.array(2.0)),
    _Case("a scalar output, x of shape (2, 2)", lambda x: jnp.sum(jnp.exp(x) * x),
          jnp.array([[0.1, 0.2], [0.3, 0.4]]), jnp.array([[1.0, 0.0], [-1.0, 2.0]])),
    _Case("a square Jacobian that is not symmetric", lambda x: jnp.cumsum(x**2),
          jnp.array([1.0, -2.0, 0.5, 3.0]), jnp.array([1.0, 1.0, 0.0, -1.0])),
])
with jax.enable_x64(True):
    adcheck.check_jvp_from_vjp(jvp_from_vjp, jit=True, cases=[
        _Case("float64, f(x) = tanh(x) @ x", lambda x: jnp.tanh(x) @ x,
              jnp.linspace(-1.0, 1.0, 4, dtype=jnp.float64), jnp.ones(4, jnp.float64)),
    ])
### END HIDDEN TESTS

# %% [markdown]
# ## 4. Where reverse mode keeps its memory, and checkpoints
#
# A pullback must remember what the backward pass needs: for $y = x + p \sin x$ it needs
# $\sin x$ and $\cos x$. These *residuals* are the memory of reverse mode, and they grow with
# the depth of the computation. `jax.vjp` returns them inside the pullback, so we can count
# them: the arrays among the pullback's leaves.

# %% nbgrader={"grade_id": "deep_definition", "locked": true}
def layer(p, x):
    return x + p * jnp.sin(x)


def deep(params, x):
    """The layers of `params` (one number each) applied in turn to x."""
    for p in params:
        x = layer(p, x)
    return x


# %% tags=["demo"]
def saved_arrays(fn, *args):
    """The number of arrays the size of the last argument that fn's pullback keeps."""
    _, pullback = jax.vjp(fn, *args)
    size = args[-1].size
    return sum(leaf.size for leaf in jax.tree.leaves(pullback) if leaf.size >= size) / size


x_wide = jnp.linspace(-1.0, 1.0, 10_000)
for depth in (4, 8, 16):
    print(f"{depth:2} layers: the pullback keeps {saved_arrays(deep, jnp.full(depth, 0.1), x_wide):g}"
          " arrays of x's size")

# %% [markdown]
# Two arrays per layer. `jax.checkpoint(g)` (also called `jax.remat`) keeps only the *inputs*
# of `g` and recomputes what its backward pass needs from them when that pass runs. Wrap every
# layer and the pullback keeps one array per layer; wrap segments of $k$ layers and it keeps
# one array per segment, $L/k$ of them, but recomputes $k$ layers' residuals at a time during
# the backward pass. The memory at the peak is about $L/k + 2k$ arrays, smallest near
# $k = \sqrt{L/2}$: the square-root memory of checkpointing, paid for with one more forward
# pass.
#
# ### Exercise 4: `deep_checkpointed(params, x, every)` (3 points)
#
# Return `deep(params, x)`, computed with each run of `every` consecutive layers (the last run
# may be shorter) inside one `jax.checkpoint`, so that the pullback keeps one array per run:
# $\lceil L / k \rceil$ arrays for $L$ layers and `every` $= k$. Call `layer`; `every` is a
# Python int. When $k$ does not divide $L$, the split is yours: runs of $k$ and a shorter last
# one, or $\lceil L / k \rceil$ runs of nearly equal length. The tests count the arrays the
# pullback keeps for 12 layers and $k$ = 1, 3, 4 and 12, and check the values and gradients
# for other depths, so either split passes.

# %% nbgrader={"grade_id": "deep_checkpointed", "solution": true}
def deep_checkpointed(params, x, every):
    """deep(params, x), checkpointed every `every` layers."""
    ### BEGIN SOLUTION
    @jax.checkpoint
    def segment(ps, x):
        for p in ps:
            x = layer(p, x)
        return x

    for start in range(0, params.shape[0], every):
        x = segment(params[start:start + every], x)
    return x
    ### END SOLUTION


# %% nbgrader={"grade_id": "deep_checkpointed_tests", "points": 3}
adcheck.check_deep_checkpointed(deep_checkpointed)
### BEGIN HIDDEN TESTS
_Case = adcheck.Case
adcheck.check_deep_checkpointed(deep_checkpointed, jit=True, cases=[
    _Case("10 layers, every = 3 (a shorter last run)", jnp.linspace(-0.5, 0.5, 10),
          jnp.linspace(-2.0, 2.0, 7), 3),
    _Case("one layer, every = 1", jnp.array([0.3]), jnp.array([0.5, 1.0]), 1),
    _Case("8 layers in one run, x of shape (2, 3)", jnp.linspace(0.1, 0.8, 8),
          jnp.arange(6.0).reshape(2, 3) / 6, 8),
])
with jax.enable_x64(True):
    adcheck.check_deep_checkpointed(deep_checkpointed, jit=True, cases=[
        _Case("float64, 9 layers, every = 2", jnp.linspace(0.1, 0.9, 9, dtype=jnp.float64),
              jnp.linspace(-1.0, 1.0, 4, dtype=jnp.float64), 2),
    ])
### END HIDDEN TESTS

# %% [markdown]
# What each segment length saves and costs, for 8 layers on $10^4$ numbers: the arrays the
# pullback keeps, the arrays at the peak of the backward pass (those, plus the $2k$ residuals
# of the segment being recomputed), and the time of one gradient.

# %% tags=["demo", "nbval-ignore-output"]
params_8 = jnp.full(8, 0.05)
x_long = jnp.linspace(-1.0, 1.0, 10_000)
segment_lengths = [1, 2, 4, 8]
kept, seconds = [], []
for k in segment_lengths:
    kept.append(saved_arrays(lambda p, x, k=k: deep_checkpointed(p, x, k), params_8, x_long))
    gradient = jax.jit(jax.grad(lambda p, x, k=k: jnp.sum(deep_checkpointed(p, x, k))))
    gradient(params_8, x_long).block_until_ready()
    start = time.perf_counter()
    for _ in range(3):
        gradient(params_8, x_long).block_until_ready()
    seconds.append((time.perf_counter() - start) / 3)
plain = saved_arrays(deep, params_8, x_long)
fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
left.plot(segment_lengths, kept, "o-", label="kept by the pullback")
left.plot(segment_lengths, [n + 2 * k for n, k in zip(kept, segment_lengths)], "s--",
          label="at the peak (+ 2k recomputed)")
left.axhline(plain, color="gray", linestyle=":", label="no checkpoint")
left.set_xlabel("layers per checkpoint, k")
left.set_ylabel("arrays of x's size")
left.legend()
right.plot(segment_lengths, 1e3 * np.array(seconds), "o-")
right.set_xlabel("layers per checkpoint, k")
right.set_ylabel("ms per gradient (jit)")
fig.tight_layout()
plt.show()

# %% [markdown]
# `jax.checkpoint` also takes a *policy* that names what may be kept instead of recomputed.
# `jax.checkpoint_policies.nothing_saveable` keeps only the inputs (the default),
# `everything_saveable` keeps all (no checkpoint at all), and `dots_saveable` keeps the
# results of matrix products, the expensive part of a neural network, while recomputing
# the cheap elementwise functions around them:

# %% tags=["demo"]
def mlp(W1, W2, x):
    return jnp.sum(jnp.tanh(W2 @ jnp.tanh(W1 @ x)))


def residuals_of(fn, *args):
    """What fn's pullback keeps, as jax.ad_checkpoint.print_saved_residuals lists it."""
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        jax.ad_checkpoint.print_saved_residuals(fn, *args)
    return [line.split(" from /")[0] for line in text.getvalue().splitlines()]


W1_demo, W2_demo, x_mlp = jnp.ones((64, 64)) / 64, jnp.ones((64, 64)) / 64, jnp.ones(64)
for name in ("nothing_saveable", "dots_saveable", "everything_saveable"):
    policy = getattr(jax.checkpoint_policies, name)
    kept = residuals_of(jax.checkpoint(mlp, policy=policy), W1_demo, W2_demo, x_mlp)
    print(f"{name}:\n  " + "\n  ".join(kept))

# %% [markdown]
# ## 5. Loops and branches
#
# A Python loop is unrolled when JAX traces it: 1,000 steps make a program of 1,000 copies.
# `lax.scan` traces its body once; its derivative is a scan too, running backwards through
# the saved states (backpropagation through time). `lax.while_loop` stops at a condition that
# is only known at run time, so its backward pass would not know how many states to keep:
# reverse mode refuses it, and forward mode does not.

# %% tags=["demo"]
def halve_until_small(x):
    return jax.lax.while_loop(lambda x: x > 1.0, lambda x: 0.5 * x, x)


print("forward mode through while_loop:", jax.jvp(halve_until_small, (10.0,), (1.0,)))
try:
    jax.grad(halve_until_small)(10.0)
except ValueError as error:
    show_error(error)

# %% [markdown]
# `lax.fori_loop` with Python ints as bounds is a scan, and reverse mode works through it.
#
# Branches: `jnp.where(c, a, b)` computes both `a` and `b`. In forward mode its JVP *selects*
# the tangent of the branch in use, so an unused branch whose derivative is `inf` does no harm.
# In reverse mode the transpose of that selection sends the cotangent to the used branch and
# a zero to the other, which the other branch's pullback then multiplies by its derivative:
# $0 \cdot \infty$ is `nan`. That is the trap of assignment 03, fixed by a second `where` that
# makes the unused branch's input harmless. Both modes, on $\sqrt x$ at 0:

# %% tags=["demo"]
def sqrt_or_zero_where(x):
    return jnp.where(x > 0, jnp.sqrt(x), 0.0)


print("jax.jvp, tangent at 0 :", float(jax.jvp(sqrt_or_zero_where, (0.0,), (1.0,))[1]))
print("jax.grad at 0         :", float(jax.grad(sqrt_or_zero_where)(0.0)))

# %% [markdown]
# `lax.cond` runs one branch, so for a scalar predicate there is no trap. Under
# `vmap`, with one predicate per example, `cond` cannot run one branch per example: it runs
# both and selects. JAX then feeds each branch, on the examples that do not take it, a
# stopped-gradient copy of the input (the program below shows it), which is the double `where`
# done for us: batched or not, differentiated before or after batching, `cond` stays safe.

# %% tags=["demo"]
def sqrt_or_zero_cond(x):
    return jax.lax.cond(x > 0, jnp.sqrt, lambda x: 0.0 * x, x)


def sqrt_or_zero_double_where(x):
    safe = jnp.where(x > 0, x, 1.0)
    return jnp.where(x > 0, jnp.sqrt(safe), 0.0)


xs_demo = jnp.array([0.0, 4.0])
for fn in (sqrt_or_zero_where, sqrt_or_zero_cond, sqrt_or_zero_double_where):
    batched_sum = lambda x, fn=fn: jnp.sum(jax.vmap(fn)(x))
    print(f"{fn.__name__:26} grad at 0: {float(jax.grad(fn)(0.0)):5}   at [0, 4], "
          f"vmap(grad): {rounded(jax.vmap(jax.grad(fn))(xs_demo))}   "
          f"grad(sum of vmap): {rounded(jax.grad(batched_sum)(xs_demo))}")
print(jax.make_jaxpr(jax.vmap(sqrt_or_zero_cond))(xs_demo).pretty_print(use_color=False))

# %% [markdown]
# ### Exercise 5: `rnn_loss(params, xs)` (2 points)
#
# A recurrent network reads a sequence `xs` of shape `(T, m)` one step at a time:
# $h_0 = 0$, $h_t = \tanh(W h_{t-1} + U x_t)$, and the loss is $\sum_{t=1}^{T} v \cdot h_t$,
# for `params = {"W": (n, n), "U": (n, m), "v": (n,)}`. Write it as one `jax.lax.scan` over
# the sequence (no Python loop), so that its gradient, backpropagation through time, is one
# program whatever $T$.

# %% nbgrader={"grade_id": "rnn_loss", "solution": true}
def rnn_loss(params, xs):
    """sum over t of v . h_t, with h_t = tanh(W h_(t-1) + U x_t) from h_0 = 0."""
    ### BEGIN SOLUTION
    def step(h, x):
        h = jnp.tanh(params["W"] @ h + params["U"] @ x)
        return h, params["v"] @ h

    _, outputs = jax.lax.scan(step, jnp.zeros(params["W"].shape[0], xs.dtype), xs)
    return jnp.sum(outputs)
    ### END SOLUTION


# %% nbgrader={"grade_id": "rnn_loss_tests", "points": 2}
adcheck.check_rnn_loss(rnn_loss)
### BEGIN HIDDEN TESTS
_Case = adcheck.Case
_rnn_params = adcheck._rnn_params
adcheck.check_rnn_loss(rnn_loss, jit=True, cases=[
    _Case("one step", _rnn_params(30, 4, 3), jnp.ones((1, 3))),
    _Case("5 hidden units, 20 steps of one input", _rnn_params(40, 5, 1),
          jnp.sin(jnp.arange(20.0)).reshape(20, 1)),
    _Case("2 hidden units, 7 steps of 4 inputs", _rnn_params(50, 2, 4),
          jnp.linspace(-1.0, 1.0, 28).reshape(7, 4)),
])
with jax.enable_x64(True):
    adcheck.check_rnn_loss(rnn_loss, jit=True, cases=[
        _Case("float64, 3 hidden units, 6 steps", _rnn_params(60, 3, 2, jnp.float64),
              jnp.linspace(0.0, 1.0, 12, dtype=jnp.float64).reshape(6, 2)),
    ])
### END HIDDEN TESTS

# %% [markdown]
# ## 6. Custom rules and closures
#
# A `custom_vjp` rule differentiates the arguments of its function. A function *argument*
# (such as the equation a solver solves) is not differentiable; it goes in `nondiff_argnums`.
# But if that function closes over a value being differentiated, the value is hidden from the
# rule, and JAX stops with an `UnexpectedTracerError` rather than return a wrong zero.
# `jax.closure_convert(f, *example_args)` fixes this: it returns `(f_converted, consts)`, where
# `f_converted(*args, *consts)` equals `f(*args)` and `consts` are the traced values `f`
# closed over, now ordinary arguments that the rule can differentiate.

# %% tags=["demo"]
def outer(c):
    converted, consts = jax.closure_convert(lambda x: c * x**2, 1.0)
    print(f"{len(consts)} traced value taken out of the closure, of shape "
          f"{consts[0].shape} and dtype {consts[0].dtype}")
    return converted(3.0, *consts)


print("d/dc of c * 3**2 at c = 2:", jax.grad(outer)(2.0))

# %% [markdown]
# ### Exercise 6: `newton_root(f, x0)` (3 points)
#
# Solve $f(x) = 0$ elementwise (each entry of $f(x)$ depends on the same entry of $x$ only)
# by Newton's method from `x0`, $x \leftarrow x - f(x) / f'(x)$ with $f'(x)$ from one JVP with
# a tangent of ones, for a fixed 30 steps; differentiate the root through a `jax.custom_vjp`
# rule, never through the steps.
#
# * With $\theta$ the values $f$ closes over, the implicit function theorem gives, for a
#   cotangent $g$ of the root, $w = g / f'(x^*)$ and $\bar\theta = -\,(\partial f / \partial
#   \theta)^\top w$: the VJP of $f$ in $\theta$, with cotangent $-w$.
# * Use `jax.closure_convert(f, x0)` to get $\theta$ as arguments, and write the rule for a
#   function `solve(f_converted, x0, *consts)` with `nondiff_argnums=(0,)`. The cotangent of
#   `x0` is zero.

# %% nbgrader={"grade_id": "newton_root", "solution": true}
def newton_root(f, x0):
    """x with f(x) = 0 elementwise, by Newton's method, differentiable in what f closes over."""
    ### BEGIN SOLUTION
    converted, consts = jax.closure_convert(f, x0)
    return newton_solve(converted, x0, *consts)


def newton_steps(f, x0, consts):
    def step(_, x):
        value, slope = jax.jvp(lambda x: f(x, *consts), (x,), (jnp.ones_like(x),))
        return x - value / slope

    return jax.lax.fori_loop(0, 30, step, x0)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def newton_solve(f, x0, *consts):
    return newton_steps(f, x0, consts)


def newton_solve_fwd(f, x0, *consts):
    x_star = newton_steps(f, x0, consts)
    return x_star, (x_star, consts)


def newton_solve_bwd(f, residuals, g):
    x_star, consts = residuals
    _, slope = jax.jvp(lambda x: f(x, *consts), (x_star,), (jnp.ones_like(x_star),))
    _, pullback = jax.vjp(lambda *consts: f(x_star, *consts), *consts)
    return (jnp.zeros_like(x_star), *pullback(-g / slope))


newton_solve.defvjp(newton_solve_fwd, newton_solve_bwd)
### END SOLUTION


# %% nbgrader={"grade_id": "newton_root_tests", "points": 3}
adcheck.check_newton_root(newton_root)
### BEGIN HIDDEN TESTS
_Case = adcheck.Case
adcheck.check_newton_root(newton_root, jit=True, cases=[
    _Case("g(a, x) = exp(x) - a, a of shape (2, 2)", lambda a, x: jnp.exp(x) - a,
          jnp.array([[1.0, 2.0], [5.0, 0.5]]), jnp.ones((2, 2))),
    _Case("a pytree a = {'s', 't'}, g = x**3 + s x - t", lambda a, x: x**3 + a["s"] * x - a["t"],
          {"s": jnp.array(1.0), "t": jnp.array([2.0, -1.0, 10.0])}, jnp.zeros(3)),
    _Case("square roots far from the start, g = x**2 - a, a = [0.25, 9, 100]",
          lambda a, x: x**2 - a,
          jnp.array([0.25, 9.0, 100.0]), jnp.array([1.0, 2.0, 5.0])),
])
with jax.enable_x64(True):
    adcheck.check_newton_root(newton_root, jit=True, cases=[
        _Case("float64, g(a, x) = x - a cos(x)", lambda a, x: x - a * jnp.cos(x),
              jnp.array([0.2, 0.9], jnp.float64), jnp.zeros(2, jnp.float64)),
    ])
### END HIDDEN TESTS

# %% [markdown]
# ## 7. Sparse Jacobians by colouring
#
# `jax.jacfwd` pushes one tangent per input: $n$ JVPs for $n$ inputs. When the Jacobian is
# *banded*, $J_{ij} = 0$ for $|i - j| > b$, columns $j$ and $j'$ with $|j - j'| > 2b$ never
# have a nonzero in the same row. Give column $j$ the colour $j \bmod (2b + 1)$, and push one
# tangent per colour, the sum of the unit vectors of its columns: each row of the result holds
# the one entry of that row among the colour's columns. So $2b + 1$ JVPs give the whole
# Jacobian, whatever $n$: for a tridiagonal Jacobian, 3 instead of $n$.
#
# ### Exercise 7: `banded_jacobian(f, x, bandwidth)` (3 points)
#
# Return the dense Jacobian (shape `(n, n)`) of `f`, from a vector `x` of shape `(n,)` to a
# vector of the same shape, whose entries vanish beyond `bandwidth` $= b$ off the diagonal,
# from exactly $2b + 1$ JVPs (one per colour, batched with `jax.vmap` or in a loop) and no
# other derivative: entry $(i, j)$ is row $i$ of the JVP of colour $j \bmod (2b+1)$, kept only
# where $|i - j| \le b$. When $n < 2b + 1$, some colours have no column: pushing their zero
# tangents too, or only the $\min(n, 2b + 1)$ colours that have one, is accepted. The tests
# count the tangents pushed for $n = 12$ and $b = 1$, where it must be 3.

# %% nbgrader={"grade_id": "banded_jacobian", "solution": true}
def banded_jacobian(f, x, bandwidth):
    """The Jacobian of f at x, banded with half bandwidth `bandwidth`, from 2b + 1 JVPs."""
    ### BEGIN SOLUTION
    n, colours = x.shape[0], 2 * bandwidth + 1
    columns = jnp.arange(n)
    seeds = (columns[None, :] % colours == jnp.arange(colours)[:, None]).astype(x.dtype)
    pushed = jax.vmap(lambda t: jax.jvp(f, (x,), (t,))[1])(seeds)
    rows = columns[:, None]
    in_band = jnp.abs(rows - columns[None, :]) <= bandwidth
    return jnp.where(in_band, pushed[columns[None, :] % colours, rows], 0.0)
    ### END SOLUTION


# %% nbgrader={"grade_id": "banded_jacobian_tests", "points": 3}
adcheck.check_banded_jacobian(banded_jacobian)
### BEGIN HIDDEN TESTS
_Case = adcheck.Case
adcheck.check_banded_jacobian(banded_jacobian, jit=True, cases=[
    _Case("a diagonal Jacobian, bandwidth 0", lambda x: jnp.sin(x) * x, jnp.linspace(0.0, 1.0, 5),
          0),
    _Case("a discrete Laplacian plus a cube, n = 9, bandwidth 1",
          lambda x: jnp.convolve(x, jnp.array([1.0, -2.0, 1.0]), mode="same") + x**3,
          jnp.linspace(-1.0, 1.0, 9), 1),
    _Case("bandwidth 3 on n = 4 (wider than the matrix)", lambda x: jnp.cumsum(x) ** 2,
          jnp.array([0.5, 1.0, -1.0, 2.0]), 3),
])
with jax.enable_x64(True):
    adcheck.check_banded_jacobian(banded_jacobian, jit=True, cases=[
        _Case("float64, bandwidth 2, n = 8", lambda x: jnp.convolve(jnp.tanh(x),
              jnp.array([0.5, 1.0, 2.0, 1.0, 0.5]), mode="same"),
              jnp.linspace(-2.0, 2.0, 8, dtype=jnp.float64), 2),
    ])
### END HIDDEN TESTS

# %% [markdown]
# The time of a tridiagonal Jacobian by `jax.jacfwd` ($n$ JVPs) and by colouring (3 JVPs),
# both compiled, as $n$ grows:

# %% tags=["demo", "nbval-ignore-output"]
def tridiagonal_f(x):
    return jnp.convolve(jnp.sin(x), jnp.array([1.0, -2.0, 1.0]), mode="same") + x**2


sizes, dense_ms, coloured_ms = [64, 128, 256], [], []
for n in sizes:
    x_n = jnp.linspace(-1.0, 1.0, n)
    jacobians = []
    for fn, times in ((jax.jit(jax.jacfwd(tridiagonal_f)), dense_ms),
                      (jax.jit(lambda x: banded_jacobian(tridiagonal_f, x, 1)), coloured_ms)):
        jacobians.append(fn(x_n).block_until_ready())
        start = time.perf_counter()
        for _ in range(3):
            fn(x_n).block_until_ready()
        times.append(1e3 * (time.perf_counter() - start) / 3)
    assert np.allclose(*jacobians, atol=1e-5)
fig, ax = plt.subplots(figsize=(5, 3.2))
ax.loglog(sizes, dense_ms, "o-", label="jax.jacfwd (n JVPs)")
ax.loglog(sizes, coloured_ms, "s-", label="colouring (3 JVPs)")
ax.set_xlabel("n")
ax.set_ylabel("ms per Jacobian")
ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# Both still write the $n^2$ entries of the dense result; storing only the $2b + 1$ bands
# (the pushed tangents themselves) would make the cost linear in $n$ for any fixed bandwidth.

# %% [markdown]
# ## 8. A tracer of your own
#
# Section 2 used `jax.linearize` and `jax.linear_transpose` as black boxes. Both work on
# programs that JAX records by *tracing*: `jax.make_jaxpr(f)(x)` runs `f` on stand-ins for its
# arguments and writes down every primitive operation it applies, as a *jaxpr*. A jaxpr has
# input variables (`invars`), constants it closed over (`constvars`, whose values come with it
# in `closed.consts`), equations (`eqns`: a primitive, its input variables or literal numbers,
# its parameters, its output variables) and output variables (`outvars`).

# %% tags=["demo"]
scale_demo = jnp.array([1.0, -1.0])
closed_demo = jax.make_jaxpr(lambda x: jnp.sin(x) * 2.0 + scale_demo * x ** 2)(
    jnp.array([0.5, 1.5]))
print(closed_demo.pretty_print(use_color=False))
for eqn in closed_demo.jaxpr.eqns:
    print(f"{eqn.primitive.name:12} inputs {[type(v).__name__ for v in eqn.invars]}, "
          f"parameters {eqn.params}")

# %% [markdown]
# Running a jaxpr is a loop over its equations with an environment, a dictionary from variables
# to values. Each equation reads its inputs (a `Literal` carries its value in `.val`), applies
# its primitive with `eqn.primitive.bind(*inputs, **eqn.params)`, and stores its outputs. This
# is an *interpreter* of jaxprs; `jax.jvp`, `jax.vmap` and `jax.jit` are interpreters too,
# each giving the primitives another meaning.

# %% tags=["demo"]
def eval_jaxpr(jaxpr, consts, *args):
    """The outputs of the program `jaxpr` on `args`, one equation at a time."""
    env = dict(zip(jaxpr.constvars, consts)) | dict(zip(jaxpr.invars, args))

    def read(v):
        return v.val if isinstance(v, jax.extend.core.Literal) else env[v]

    for eqn in jaxpr.eqns:
        outputs = eqn.primitive.bind(*map(read, eqn.invars), **eqn.params)
        env.update(zip(eqn.outvars,
                       outputs if eqn.primitive.multiple_results else [outputs]))
    return [read(v) for v in jaxpr.outvars]


x_eval = jnp.array([0.5, 1.5])
print("our interpreter:", rounded(eval_jaxpr(closed_demo.jaxpr, closed_demo.consts, x_eval)[0]))
print("the function   :", rounded(jnp.sin(x_eval) * 2.0 + scale_demo * x_eval ** 2))

# %% [markdown]
# Forward mode is another interpreter: beside each value, carry its tangent. An equation's
# output value is the primitive applied to the input values, and its output tangent comes from
# a *JVP rule* of that primitive: for `sin`, $\cos(x)\,\dot x$; for `mul`, $\dot x\, y +
# x\, \dot y$; for a linear primitive such as `add`, `neg`, `reduce_sum` or `dot_general`
# in one argument, the primitive itself applied to the tangents. Literals and constants are
# not differentiated: their tangent is zero. JAX keeps such a table of rules, one per
# primitive, and `jax.jvp` applies it while tracing, as your `Dual` did.
#
# ### Exercise 8: `jvp_of_jaxpr(jaxpr, consts, primals, tangents)` (design, 3 points)
#
# Goal: forward mode on jaxprs. Given `closed = jax.make_jaxpr(f)(*primals)`, the call
# `jvp_of_jaxpr(closed.jaxpr, closed.consts, primals, tangents)` returns `(outputs,
# output_tangents)`: two lists (or tuples) with one array per output variable of the program,
# equal to the outputs and output tangents of `jax.jvp(f, primals, tangents)`. `primals` and
# `tangents` are lists of arrays, one per input variable. How you organize the rules (a dict,
# a chain of `if`, a class) is yours to choose. The constraints, which the tests check:
#
# * Interpret the program: walk its equations, apply each primitive with `bind`, and compute
#   each tangent by a JVP rule that you write, with `jnp` or `jax.lax`. No differentiation of
#   JAX's by any path: not `jax.jvp`, `jax.linearize`, `jax.grad`, `jax.vjp`, their aliases,
#   nor the rules of `jax.interpreters.ad` (the tests watch JAX's autodiff while your code runs).
# * The tests give flat programs (no sub-programs) made of `sin`, `cos`, `tanh`, `exp`, `log`,
#   `neg`, `add`, `sub`, `mul`, `div`, `integer_pow`, `dot_general`, `reduce_sum`,
#   `broadcast_in_dim`, `transpose` and `reshape`, with literals and closed-over constants,
#   several inputs and outputs (an input may be an output), on float32 and float64 arrays of
#   any shape, scalars included. Each tangent has its value's dtype, also for float32 programs
#   run with 64-bit mode on.
# * Any other primitive raises `NotImplementedError` with the primitive's name in its message
#   (the tests give a program with an `erf`).
# * It works under `jax.jit` (the tests trace it there).

# %% nbgrader={"grade_id": "jvp_of_jaxpr", "solution": true}
def jvp_of_jaxpr(jaxpr, consts, primals, tangents):
    """(outputs, output tangents) of the program `jaxpr`, by one JVP rule per equation."""
    ### BEGIN SOLUTION
    values = dict(zip(jaxpr.constvars, consts)) | dict(zip(jaxpr.invars, primals))
    tangent_of = {v: jnp.zeros_like(c) for v, c in zip(jaxpr.constvars, consts)}
    tangent_of |= dict(zip(jaxpr.invars, tangents))

    def read(v):
        if isinstance(v, jax.extend.core.Literal):
            return v.val, jnp.zeros_like(v.val)
        return values[v], tangent_of[v]

    for eqn in jaxpr.eqns:
        rule = JVP_RULES.get(eqn.primitive.name)
        if rule is None:
            raise NotImplementedError(f"no JVP rule for the primitive {eqn.primitive.name}")
        inputs, input_tangents = zip(*map(read, eqn.invars))
        output = eqn.primitive.bind(*inputs, **eqn.params)
        values[eqn.outvars[0]] = output
        tangent_of[eqn.outvars[0]] = rule(eqn.primitive, inputs, input_tangents, output,
                                          eqn.params)
    return [read(v)[0] for v in jaxpr.outvars], [read(v)[1] for v in jaxpr.outvars]


def _linear_rule(primitive, values, tangents, output, params):
    return primitive.bind(*tangents, **params)


def _bilinear_rule(primitive, values, tangents, output, params):
    (x, y), (x_dot, y_dot) = values, tangents
    return primitive.bind(x_dot, y, **params) + primitive.bind(x, y_dot, **params)


JVP_RULES = {  # primitive name -> rule(primitive, values, tangents, output, params)
    "sin": lambda p, xs, ts, out, params: jnp.cos(xs[0]) * ts[0],
    "cos": lambda p, xs, ts, out, params: -jnp.sin(xs[0]) * ts[0],
    "tanh": lambda p, xs, ts, out, params: (1 - out**2) * ts[0],
    "exp": lambda p, xs, ts, out, params: out * ts[0],
    "log": lambda p, xs, ts, out, params: ts[0] / xs[0],
    "div": lambda p, xs, ts, out, params: (ts[0] - out * ts[1]) / xs[1],
    "integer_pow": lambda p, xs, ts, out, params: (
        params["y"] * xs[0] ** (params["y"] - 1) * ts[0]),
    "mul": _bilinear_rule,
    "dot_general": _bilinear_rule,
    **{name: _linear_rule for name in ("neg", "add", "sub", "reduce_sum", "broadcast_in_dim",
                                       "transpose", "reshape")},
}
### END SOLUTION


# %% nbgrader={"grade_id": "jvp_of_jaxpr_tests", "points": 3}
adcheck.check_jvp_of_jaxpr(jvp_of_jaxpr)
### BEGIN HIDDEN TESTS
_Case = adcheck.Case
_W = jnp.array([[1.0, -2.0, 0.5], [0.0, 3.0, 1.0]])
adcheck.check_jvp_of_jaxpr(jvp_of_jaxpr, jit=True, cases=[
    _Case("a scalar, f(x) = exp(sin(x)) / x - log(x) ** 3", lambda x: jnp.exp(jnp.sin(x)) / x
          - jnp.log(x) ** 3, [jnp.array(0.7)], [jnp.array(2.0)]),
    _Case("a closed-over matrix, f(x) = tanh(W @ x) * 2 + sum(x), x of shape (3,)",
          lambda x: jnp.tanh(_W @ x) * 2.0 + jnp.sum(x), [jnp.array([0.3, -0.2, 0.9])],
          [jnp.array([1.0, 0.5, -1.0])]),
    _Case("three outputs, one of them an input, f(x, y) = (x, x * y, cos(x) - y)",
          lambda x, y: (x, x * y, jnp.cos(x) - y), [jnp.linspace(0.0, 1.0, 4),
                                                    jnp.linspace(2.0, 3.0, 4)],
          [jnp.ones(4), -jnp.ones(4)]),
    _Case("a matrix product of two inputs, transposed, flattened and squared",
          lambda a, b: (a @ b).T.reshape(-1) ** 2, [jnp.arange(6.0).reshape(2, 3) / 6,
                                                    jnp.arange(12.0).reshape(3, 4) / 12],
          [jnp.ones((2, 3)), jnp.eye(3, 4)]),
])
with jax.enable_x64(True):
    adcheck.check_jvp_of_jaxpr(jvp_of_jaxpr, jit=True, cases=[
        _Case("float64, f(x) = sin(x) * x ** 4 / cos(x)",
              lambda x: jnp.sin(x) * x ** 4 / jnp.cos(x),
              [jnp.array([0.1, 0.4, 1.2], jnp.float64)], [jnp.array([1.0, 2.0, 3.0], jnp.float64)]),
        _Case("float32 with 64-bit mode on, f(x) = 2 * exp(x) - 1.5 / x",
              lambda x: 2.0 * jnp.exp(x) - 1.5 / x, [jnp.array([0.5, 1.5], jnp.float32)],
              [jnp.array([1.0, -1.0], jnp.float32)]),
    ])
### END HIDDEN TESTS

# %% [markdown]
# Reverse mode needs one more interpreter: the transpose. The program that `jax.linearize`
# returns is linear in its input, the tangent; the values it multiplies by (the cosines,
# the inputs: the residuals) are its constants. Transposing it walks the equations backwards
# with a cotangent for each variable: an equation hands the cotangent of its output to its
# linear inputs by the *transpose rule* of its primitive. For `mul` by a constant $c$ it is
# $\bar x = c\,\bar y$ (a linear map $x \mapsto c x$ is its own transpose); for `add_any` both
# inputs get $\bar y$; for `sub` the second gets $-\bar y$. A variable used twice collects the
# sum of its cotangents. Here is that walk for the four primitives this program uses, against
# `jax.linear_transpose`:

# %% tags=["demo"]
def transpose_linear(jaxpr, consts, cotangent):
    """The transpose of the linear program `jaxpr` (one input, one output, only mul by a
    constant, add_any, sub and neg) applied to `cotangent`."""
    constants = dict(zip(jaxpr.constvars, consts))
    cotangents = {jaxpr.outvars[0]: cotangent}

    def send(v, c):
        cotangents[v] = cotangents[v] + c if v in cotangents else c

    for eqn in reversed(jaxpr.eqns):
        c = cotangents.pop(eqn.outvars[0])
        a, *b = eqn.invars
        if eqn.primitive.name == "mul":
            linear, constant = (b[0], a) if a in constants else (a, b[0])
            send(linear, c * constants[constant])
        elif eqn.primitive.name in ("add_any", "sub"):
            send(a, c)
            send(b[0], c if eqn.primitive.name == "add_any" else -c)
        elif eqn.primitive.name == "neg":
            send(a, -c)
        else:
            raise NotImplementedError(f"no transpose rule for {eqn.primitive.name}")
    return cotangents[jaxpr.invars[0]]


x_lin = jnp.array([0.5, 1.0])
_, linear_demo = jax.linearize(lambda x: jnp.sin(x) * x - jnp.exp(x), x_lin)
closed_linear = jax.make_jaxpr(linear_demo)(x_lin)
print(closed_linear.pretty_print(use_color=False))
u_demo = jnp.array([1.0, -2.0])
print("our transpose       :", rounded(transpose_linear(closed_linear.jaxpr, closed_linear.consts,
                                                        u_demo)))
print("jax.linear_transpose:", rounded(jax.linear_transpose(linear_demo, x_lin)(u_demo)[0]))

# %% [markdown]
# ## 9. Design: what a scan's checkpoint keeps
#
# Section 4 checkpointed segments of a Python loop. In a `lax.scan`, `jax.checkpoint` goes
# around the body, and its *policy* decides, value by value, what the pullback keeps of each
# step and what the backward pass recomputes. `jax.checkpoint_policies.nothing_saveable`
# keeps nothing (only the body's inputs, the states, which the scan keeps anyway);
# `dots_with_no_batch_dims_saveable` keeps the results of matrix products; and
# `save_only_these_names(...)` keeps the values you tag with
# `jax.ad_checkpoint.checkpoint_name(value, name)`. A matrix product costs much more than
# the elementwise functions around it, so keeping products and recomputing the rest is the
# usual trade. `jax.ad_checkpoint.print_saved_residuals(f, *args)` lists what the pullback of
# `f` keeps: here a scan of 5 steps whose body applies two matrices.

# %% tags=["demo"]
def two_products_step(h, x, A, B):
    first = jax.ad_checkpoint.checkpoint_name(A @ h, "first")
    return jnp.sin(B @ jnp.cos(first)) + x


def scan_loss(step):
    def loss(A, B, xs):
        def body(h, x):
            h = step(h, x, A, B)
            return h, h
        return jnp.sum(jax.lax.scan(body, jnp.zeros(A.shape[0]), xs)[1])
    return loss


A_demo, B_demo, xs_scan = jnp.eye(3) / 2, jnp.ones((3, 3)) / 3, jnp.ones((5, 3))
policies = jax.checkpoint_policies
for label, step in (
        ("no checkpoint", two_products_step),
        ("nothing_saveable", jax.checkpoint(two_products_step)),
        ("dots_with_no_batch_dims_saveable", jax.checkpoint(
            two_products_step, policy=policies.dots_with_no_batch_dims_saveable)),
        ('save_only_these_names("first")', jax.checkpoint(
            two_products_step, policy=policies.save_only_these_names("first")))):
    kept = residuals_of(scan_loss(step), A_demo, B_demo, xs_scan)
    print(f"{label}:\n  " + "\n  ".join(kept))

# %% [markdown]
# ### Exercise 9: `rnn_sum_remat(W, xs)` (design, 2 points)
#
# Goal: the loss $\sum_{t=1}^{T} \sum_i (h_t)_i$ of the recurrence $h_0 = 0$,
# $h_t = \tanh(W h_{t-1} + x_t)$, for `W` of shape `(n, n)` and `xs` of shape `(T, n)`, whose
# pullback keeps the product $W h_{t-1}$ of every step and recomputes the $\tanh$. Where you
# put `jax.checkpoint` (around the body, around the whole scan) and which policy you give it
# are yours to choose. The tests check:
#
# * the value and the gradients in `W` and in `xs` against a plain scan, in float32 and
#   float64, under `jax.jit`;
# * that it is one `lax.scan` over the steps, whose gradient computes no more matrix products
#   than the plain scan's (one forward, two backward per step: the product is kept, never
#   recomputed);
# * that its pullback keeps at most two arrays of the size of `xs`, besides `xs` itself, as
#   `print_saved_residuals` lists them (the plain scan keeps three: it keeps the $\tanh$ too).

# %% nbgrader={"grade_id": "rnn_sum_remat", "solution": true}
def rnn_sum_remat(W, xs):
    """sum over t of the entries of h_t = tanh(W h_(t-1) + x_t), keeping only the products."""
    ### BEGIN SOLUTION
    @functools.partial(jax.checkpoint,
                       policy=jax.checkpoint_policies.dots_with_no_batch_dims_saveable)
    def step(h, x):
        h = jnp.tanh(W @ h + x)
        return h, jnp.sum(h)

    _, sums = jax.lax.scan(step, jnp.zeros(W.shape[0], xs.dtype), xs)
    return jnp.sum(sums)
    ### END SOLUTION


# %% nbgrader={"grade_id": "rnn_sum_remat_tests", "points": 2}
adcheck.check_rnn_sum_remat(rnn_sum_remat)
### BEGIN HIDDEN TESTS
_Case = adcheck.Case
_normal = adcheck._normal
adcheck.check_rnn_sum_remat(rnn_sum_remat, jit=True, cases=[
    _Case("one step, n = 2", _normal(70, (2, 2), scale=0.5), _normal(71, (1, 2))),
    _Case("n = 5, 12 steps", 0.4 * _normal(72, (5, 5)), _normal(73, (12, 5))),
    _Case("n = 1, 4 steps", jnp.array([[0.9]]), jnp.linspace(-1.0, 1.0, 4).reshape(4, 1)),
])
with jax.enable_x64(True):
    adcheck.check_rnn_sum_remat(rnn_sum_remat, jit=True, cases=[
        _Case("float64, n = 3, 7 steps", _normal(74, (3, 3), jnp.float64, scale=0.5),
              _normal(75, (7, 3), jnp.float64)),
    ])
### END HIDDEN TESTS
