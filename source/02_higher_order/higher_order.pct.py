# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Assignment 02 — Composing transformations: curvature, per-example and meta-gradients, stopped gradients
#
# A derivative computed by JAX is again a JAX function, so it can be differentiated, batched
# and compiled like any other. This notebook composes transformations. You will learn
#
# * how to take second and higher derivatives, and how to build Hessians efficiently;
# * four ways to multiply a Hessian by a vector without forming the Hessian, and what each
#   one costs;
# * how to get one gradient per example of a batch, and what that is good for;
# * how to differentiate through a step of gradient descent (meta-gradients, MAML);
# * how to estimate the trace of a Hessian from Hessian-vector products, and how to multiply
#   by the Gauss–Newton matrix;
# * how `jax.lax.stop_gradient` removes *part* of a computation from its derivative: the TD(0)
#   update of reinforcement learning and straight-through estimators.
#
# **Exercises.** Each exercise asks you to write one function. Its answer cell contains the
# signature and the docstring: put your code where the placeholder is and run the cell, then run
# the locked test cell right after it. The visible tests try a handful of small inputs and, when
# one fails, try to tell you why. Your grade comes from hidden tests that run the same function
# on further inputs, shapes and dtypes, also inside `jax.jit`, and that check that you used the
# tools the statement asks for. Keep the names and signatures as they are.
#
# Cells that only show or time something carry the tag `demo`: grading does not run them, so
# what they print never counts towards your grade, and nothing that is graded depends on them.

# %% nbgrader={"grade_id": "setup", "locked": true}
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from jax.flatten_util import ravel_pytree

import adcheck

adcheck.setup()

# %% [markdown]
# The demos draw their random numbers from one seeded NumPy generator: `normal(shape)` returns
# standard normal samples as a JAX array. JAX's random keys appear where an exercise takes one
# (section 5), and are split before each use so that no key serves twice. `rounded` prepares
# JAX arrays for printing.

# %%
key = jax.random.key(2)
rng = np.random.default_rng(2)


def normal(shape, dtype=np.float32):
    """Standard normal samples of `shape`, drawn by NumPy, as a JAX array of `dtype`."""
    return jnp.asarray(rng.standard_normal(shape).astype(dtype))


def rounded(a, decimals=4):
    """A rounded NumPy copy of `a` for printing (adding 0.0 turns -0.0 into 0.0)."""
    return np.round(np.asarray(a), decimals) + 0.0


# %% [markdown]
# ## 1. Derivatives of derivatives
#
# ### Repeated `grad`
#
# `jax.grad(f)` is a function made of JAX operations, so `jax.grad` accepts it as input
# too. Applied $k$ times to a function of one real variable, it returns the $k$-th derivative.
# For $f(x) = x^3 - 2x$ the derivatives are $3x^2 - 2$, then $6x$, then $6$, then $0$.

# %% tags=["demo"]
def cubic(x):
    return x ** 3 - 2 * x


derivatives = [cubic]
for _ in range(4):
    derivatives.append(jax.grad(derivatives[-1]))

x_scalar = 1.5
print("jax.grad:", [float(rounded(d(x_scalar))) for d in derivatives])
print("by hand :", [x_scalar ** 3 - 2 * x_scalar, 3 * x_scalar ** 2 - 2, 6 * x_scalar, 6.0, 0.0])


# %% [markdown]
# ### Shapes of higher derivatives
#
# Now take $f : \mathbb{R}^n \to \mathbb{R}^m$. Every differentiation appends one axis of
# length $n$, one per input variable:
#
# | object | shape | entries |
# |---|---|---|
# | $f(x)$ | $m$ | $f_i(x)$ |
# | $\partial f(x)$, the Jacobian | $m \times n$ | $\partial f_i / \partial x_j$ |
# | $\partial^2 f(x)$ | $m \times n \times n$ | $\partial^2 f_i / \partial x_j \partial x_k$ |
# | $\partial^3 f(x)$ | $m \times n \times n \times n$ | $\partial^3 f_i / \partial x_j \partial x_k \partial x_l$ |
#
# `jax.jacfwd` and `jax.jacrev` put the output axes first and the input axes last, so nesting
# them produces exactly these shapes. We check on
# $f(x) = (x_0^2 x_1,\ x_1 \sin x_2)$, with $n = 3$ and $m = 2$. To get only the shapes,
# `jax.eval_shape` traces the function without computing anything.

# %% tags=["demo"]
def two_outputs(x):
    return jnp.stack([x[0] ** 2 * x[1], x[1] * jnp.sin(x[2])])


x3 = jnp.array([1.0, 2.0, 0.5])
derivative = two_outputs
for order in range(4):
    print(f"order {order}: shape {jax.eval_shape(derivative, x3).shape}")
    derivative = jax.jacfwd(derivative)

# %% [markdown]
# The slice for the first output is the matrix of second derivatives of $x_0^2 x_1$, which is
# $\begin{pmatrix} 2x_1 & 2x_0 & 0 \\ 2x_0 & 0 & 0 \\ 0 & 0 & 0 \end{pmatrix}$. Any nesting of
# the two Jacobian functions gives the same numbers.
#
# From here on we wrap most computations in `jax.jit`. Without it, a transformed function runs
# one operation at a time, and JAX compiles each new operation separately before running it;
# for the small arrays of these examples, compiling the whole computation once is much faster.

# %% tags=["demo"]
second = jax.jit(jax.jacfwd(jax.jacrev(two_outputs)))(x3)
print(rounded(second[0]))
print(rounded(jax.jit(jax.jacrev(jax.jacfwd(two_outputs)))(x3)[0]))

# %% [markdown]
# ### The Hessian
#
# For a scalar function $f : \mathbb{R}^n \to \mathbb{R}$ ($m = 1$), the second derivative is
# the $n \times n$ **Hessian** $H(x)$ with $H_{jk} = \partial^2 f / \partial x_j \partial x_k$.
# Row $j$ of $H$ is the gradient of $\partial f / \partial x_j$, so
#
# $$H(x) = \partial\big(\nabla f\big)(x):$$
#
# the Hessian is the Jacobian of the gradient map $\nabla f : \mathbb{R}^n \to \mathbb{R}^n$.
# When $f$ has continuous second derivatives, $H$ is symmetric.

# %% [markdown]
# ### Which composition?
#
# Four nestings of `jacfwd` and `jacrev` compute $H$. The cost model of assignment 01 tells
# them apart:
#
# * **Inner Jacobian.** The Jacobian of $f$ is a single row of length $n$, as wide as a
#   Jacobian gets. `jacrev(f)` finds it with one VJP; `jacfwd(f)` needs $n$ JVPs.
# * **Outer Jacobian.** $\nabla f$ maps $\mathbb{R}^n$ to $\mathbb{R}^n$, so its Jacobian is
#   square: `jacfwd` needs $n$ JVPs of $\nabla f$, `jacrev` needs $n$ VJPs of it. Neither count
#   is smaller.
#
# With `jacrev` inside, the Hessian costs about $n$ times one gradient. With `jacfwd` inside,
# every one of the $n$ outer passes runs through $n$ inner ones: about $n^2$ times the cost of
# $f$. For the outer Jacobian the counts are equal and only constant factors differ. The usual
# choice, and what `jax.hessian` does, is forward mode outside: **forward-over-reverse**,
# `jacfwd(jacrev(f))`. The argument given for it is memory: a JVP of the gradient program
# carries its tangents along and stores nothing for later, whereas a VJP of the gradient
# program must keep that program's residuals for a backward pass of its own. After XLA has
# compiled and fused the programs, the difference can shrink or even reverse: section 2
# measures one case (its benchmark).
#
# We time all four on $f(x) = \sum_i \tanh\big((Wx)_i\big)^2$ with $W \in \mathbb{R}^{32 \times
# n}$, compiled, for a few $n$.

# %%
def best_time(fn, *args, repeats=7):
    """Best wall-clock time of fn(*args) in seconds, after one warm-up call."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return min(times)


# %% tags=["demo", "nbval-ignore-output"]
W_wide = normal((32, 256))

def tanh_squares(n):
    """The scalar function x -> sum(tanh(W x)**2) of n inputs."""
    W = W_wide[:, :n] / np.sqrt(n)
    return lambda x: jnp.sum(jnp.tanh(W @ x) ** 2)

compositions = {
    "jacfwd(jacrev)": lambda f: jax.jacfwd(jax.jacrev(f)),
    "jacrev(jacrev)": lambda f: jax.jacrev(jax.jacrev(f)),
    "jacfwd(jacfwd)": lambda f: jax.jacfwd(jax.jacfwd(f)),
    "jacrev(jacfwd)": lambda f: jax.jacrev(jax.jacfwd(f)),
}
print(f"{'n':>5}" + "".join(f"{name:>16}" for name in compositions) + "   (ms)")
for n in [32, 256]:
    f_n, x_n = tanh_squares(n), jnp.linspace(-1.0, 1.0, n)
    ms = [best_time(jax.jit(make(f_n)), x_n, repeats=3) * 1e3
          for make in compositions.values()]
    print(f"{n:>5}" + "".join(f"{t:>16.3f}" for t in ms))

# %% [markdown]
# The two compositions with `jacfwd` inside fall further behind as $n$ grows, as the $n^2$
# count predicts. The two with `jacrev` inside are much faster, and close to each other; their
# order can change from one machine or run to the next. Forward-over-reverse is not a promise
# of speed. The rule that matters is *reverse inside*; outside, either mode is reasonable, and
# only timing your own function can pick one.
#
# ### Exercise 1: `hessian` (2 points)
#
# Write `hessian(f)` that returns a function mapping `x` to the Hessian of `f` at `x`.
#
# * `f` maps a floating-point array `x` of any shape (a scalar, a vector, a matrix, ...) to a
#   scalar. The Hessian has shape `x.shape + x.shape` and the dtype of `x`; its entry
#   `[i..., j...]` is $\partial^2 f / \partial x_{i\ldots} \partial x_{j\ldots}$.
# * Use forward-over-reverse: `jax.jacfwd` applied to `jax.jacrev`. Do not use
#   `jax.hessian`.
# * Hint: for a scalar `f`, `jax.jacrev(f)(x)` is the gradient, shaped like `x`, so no reshaping
#   is needed anywhere.

# %% nbgrader={"grade_id": "hessian", "solution": true}
def hessian(f):
    """Dense Hessian of a scalar function, by forward-over-reverse differentiation.

    Args:
      f: a function from an array of any shape to a scalar.

    Returns:
      A function that maps x to the Hessian of f at x, of shape x.shape + x.shape.
    """
    ### BEGIN SOLUTION
    return jax.jacfwd(jax.jacrev(f))
    ### END SOLUTION


# %% nbgrader={"grade_id": "hessian_tests", "points": 2}
adcheck.check_hessian(hessian, jit=True)
### BEGIN HIDDEN TESTS
_Case = adcheck.Case
adcheck.check_hessian(hessian, jit=True, cases=[
    _Case("a scalar input, f(x) = x**4", lambda x: x**4, jnp.array(1.3)),
    _Case("f(x) = logsumexp(x), x of shape (5,)", jax.nn.logsumexp, jnp.linspace(-1.0, 1.0, 5)),
    _Case("f(X) = sum(sin(X) @ X.T), X of shape (2, 3)", lambda X: jnp.sum(jnp.sin(X) @ X.T),
          jnp.arange(6.0).reshape(2, 3) / 6),
    _Case("f(x) = prod(x), x of shape (4,)", jnp.prod, jnp.array([1.0, 2.0, -1.0, 0.5])),
])
with jax.enable_x64(True):
    adcheck.check_hessian(hessian, jit=True, cases=[
        _Case("float64, f(x) = sum(x**2 cos x)", lambda x: jnp.sum(x**2 * jnp.cos(x)),
              jnp.linspace(0.0, 2.0, 4)),
    ])
### END HIDDEN TESTS


# %% [markdown]
# For a $2 \times 2$ matrix argument the Hessian has four axes. Flattened to a $4 \times 4$
# matrix, it must be symmetric, and it must agree with `jax.hessian`.

# %% tags=["demo"]
def sin_of_square(X):
    return jnp.sum(jnp.sin(X @ X))


X2 = jnp.array([[0.3, -0.5], [0.8, 0.1]])
H4 = jax.jit(hessian(sin_of_square))(X2)
H_flat = H4.reshape(4, 4)
print(H4.shape, H4.dtype)
print(rounded(H_flat))
print("symmetric:", np.allclose(H_flat, H_flat.T, atol=1e-6),
      " matches jax.hessian:", np.allclose(H4, jax.jit(jax.hessian(sin_of_square))(X2), atol=1e-6))

# %% [markdown]
# ## 2. Hessian-vector products
#
# Many algorithms need the Hessian only through its action on vectors: truncated Newton and
# Newton–CG methods solve $H d = -\nabla f$ with conjugate gradients, power iteration and
# Lanczos find extreme eigenvalues of $H$ (how sharp a minimum is), and trace estimators
# (section 5) average $v^\top H v$. For a network with $n = 10^7$ parameters, $H$ would have
# $10^{14}$ entries; a **Hessian-vector product** (HVP) $v \mapsto H(x)\, v$ costs a small
# multiple of one evaluation of $f$ and never stores $H$.

# %% [markdown]
# ### Four ways
#
# Let $g = \nabla f$, so that $H(x) = \partial g(x)$.
#
# 1. **Reverse-over-reverse.** The function $x \mapsto \langle \nabla f(x), v \rangle$ is
#    scalar. Its gradient is $\partial g(x)^\top v = H(x)^\top v = H(x)\, v$. In JAX,
#    `jax.grad` of a `jnp.vdot` with `jax.grad(f)`.
# 2. **Forward-over-reverse.** The JVP of $g$ at $x$ along $v$ is $\partial g(x)\, v = H(x)\,
#    v$: `jax.jvp` of `jax.grad(f)`.
# 3. **Reverse-over-forward.** The directional derivative $x \mapsto \partial f(x)\, v$ is the
#    same scalar function as in 1, $\langle \nabla f(x), v \rangle$, but evaluated with one JVP
#    of $f$ instead of a gradient. Its gradient is again $H(x)\, v$: `jax.grad` of a function
#    that calls `jax.jvp(f, ...)`.
# 4. **Dense.** Build $H$ (section 1), then multiply. This costs about $n$ HVPs and $n^2$
#    numbers of memory.
#
# Methods 1 to 3 compute the same vector, up to rounding, each at a small constant multiple of
# the cost of $f$.

# %% [markdown]
# ### Exercise 2: `hvp` (3 points)
#
# Write `hvp(f, primals, tangents)`, a forward-over-reverse HVP with the calling convention of
# `jax.jvp`.
#
# * `f` takes **one** argument `x`, a pytree of floating-point arrays (an array, a tuple, a
#   dict, ...), and returns a scalar. `primals` is the one-element tuple `(x,)` and `tangents`
#   is `(v,)`, where `v` has the structure, shapes and dtypes of `x`.
# * Return $H(x)\, v$ as a bare pytree with the structure, shapes and dtypes of `x` (not
#   wrapped in a tuple). For a dict `x`, the leaf under key `a` is
#   $\sum_b \partial_a \partial_b f(x)\, v_b$, summed over all leaves `b`.
# * Use forward-over-reverse: `jax.jvp` of `jax.grad`. Never build the Hessian: no
#   `jax.hessian`, `jax.jacfwd`, `jax.jacrev` or `jax.jacobian`.
# * Hint: `jax.jvp` returns a pair; here its first element is the gradient itself, which you
#   can drop.

# %% nbgrader={"grade_id": "hvp", "solution": true}
def hvp(f, primals, tangents):
    """Hessian-vector product of a scalar function of one pytree, forward-over-reverse.

    Args:
      f: a function from one pytree of arrays to a scalar.
      primals: the tuple (x,), the point.
      tangents: the tuple (v,), v shaped like x.

    Returns:
      H(x) v, a pytree with the structure, shapes and dtypes of x.
    """
    ### BEGIN SOLUTION
    return jax.jvp(jax.grad(f), primals, tangents)[1]
    ### END SOLUTION


# %% nbgrader={"grade_id": "hvp_tests", "points": 3}
adcheck.check_hvp(hvp, jit=True)
### BEGIN HIDDEN TESTS
_Case = adcheck.Case
adcheck.check_hvp(hvp, jit=True, cases=[
    _Case("a tuple of arrays", lambda p: jnp.sum(p[0] ** 2 * jnp.sin(p[1])),
          (jnp.arange(3.0), jnp.array([0.1, 0.2, 0.3])),
          (jnp.ones(3), jnp.array([1.0, 0.0, -1.0]))),
    _Case("a nested dict", lambda p: jnp.sum(jnp.tanh(p["layer"]["w"] @ p["x"])) + p["layer"]["b"] ** 3,
          {"layer": {"w": jnp.arange(6.0).reshape(2, 3) / 6, "b": jnp.array(0.5)},
           "x": jnp.array([1.0, -1.0, 0.5])},
          {"layer": {"w": jnp.ones((2, 3)), "b": jnp.array(2.0)}, "x": jnp.array([0.0, 1.0, 0.0])}),
    _Case("a matrix, f(X) = sum(tanh(X)**2)", lambda X: jnp.sum(jnp.tanh(X) ** 2),
          jnp.linspace(-1.0, 1.0, 12).reshape(3, 4), jnp.ones((3, 4))),
    _Case("a scalar, f(x) = x sin x", lambda x: jnp.sin(x) * x, jnp.array(0.3), jnp.array(2.0)),
])
with jax.enable_x64(True):
    adcheck.check_hvp(hvp, jit=True, cases=[
        _Case("float64, f(x) = sum(exp(x) * x[::-1])", lambda x: jnp.sum(jnp.exp(x) * x[::-1]),
              jnp.linspace(-1.0, 1.0, 5), jnp.linspace(1.0, 2.0, 5)),
    ])
### END HIDDEN TESTS


# %% [markdown]
# Here are the other three methods, written for a flat vector `x`. Our reverse-over-forward
# differentiates with respect to `x` itself and returns an array. (Versions that differentiate
# with respect to the whole tuple `primals` return a one-element tuple instead.)

# %%
def hvp_revrev(f, x, v):
    return jax.grad(lambda y: jnp.vdot(jax.grad(f)(y), v))(x)


def hvp_revfwd(f, x, v):
    return jax.grad(lambda y: jax.jvp(f, (y,), (v,))[1])(x)


def hvp_fwdrev(f, x, v):
    return hvp(f, (x,), (v,))


def hvp_dense(f, x, v):
    return hessian(f)(x) @ v


# %% [markdown]
# Our test function for the rest of this section is the mean squared error of a network with
# one hidden layer of `hidden` tanh units, on a fixed batch of 256 examples with 32 features,
# seen as a function of its $n = 34 \cdot \text{hidden}$ parameters stored in one flat vector.
# Its Hessian is dense, unlike that of an elementwise function such as
# $\sum_i \tanh(x_i)^2$ whose Hessian is diagonal.

# %% tags=["demo"]
D_IN, BATCH = 32, 256
mlp_inputs = normal((BATCH, D_IN))
mlp_targets = normal((BATCH,))


def mlp_loss(hidden):
    """The loss of a one-hidden-layer network as a function of its flat parameters, and n."""
    n_first = D_IN * hidden

    def loss(w):
        W1 = w[:n_first].reshape(D_IN, hidden)
        b1 = w[n_first:n_first + hidden]
        w2 = w[n_first + hidden:]
        return jnp.mean((jnp.tanh(mlp_inputs @ W1 + b1) @ w2 - mlp_targets) ** 2)
    return loss, n_first + 2 * hidden


loss_small, n_small = mlp_loss(4)
w_small = 0.3 * normal((n_small,))
v_small = normal((n_small,))
methods = {"reverse-over-reverse": hvp_revrev, "forward-over-reverse": hvp_fwdrev,
           "reverse-over-forward": hvp_revfwd, "dense Hessian": hvp_dense}
products = jax.jit(lambda w, v: [m(loss_small, w, v) for m in methods.values()])(w_small, v_small)
for name, product in zip(list(methods)[:3], products):
    print(f"{name}: agrees with the dense product:",
          np.allclose(product, products[-1], rtol=1e-4, atol=1e-5))

# %% [markdown]
# ### Benchmark
#
# We time the four methods, each compiled with `jax.jit`, for $n$ from 272 to 17408
# parameters. The dense method is only run up to $n = 1088$, where its Hessian already holds
# over a million numbers. Each point is the best of a few runs after a warm-up call. We compile
# explicitly (`.lower(...).compile()`) so that we can also ask XLA, below, what each compiled
# program costs.

# %% tags=["demo", "nbval-ignore-output"]
sizes, seconds, xla_costs = [], {name: [] for name in methods}, {}
for hidden in [8, 32, 512]:
    loss_h, n = mlp_loss(hidden)
    w, v = 0.3 * normal((n,)), normal((n,))
    sizes.append(n)
    if n == 1088:
        xla_costs[n, "loss"] = jax.jit(loss_h).lower(w).compile().cost_analysis()["flops"]
    for name, method in methods.items():
        if name == "dense Hessian" and n > 1100:
            continue
        product = jax.jit(lambda w, v, method=method: method(loss_h, w, v))
        compiled = product.lower(w, v).compile()
        xla_costs[n, name] = (compiled.cost_analysis()["flops"],
                              compiled.memory_analysis().temp_size_in_bytes)
        seconds[name].append(best_time(compiled, w, v, repeats=3 if "dense" in name else 10))

# %% tags=["demo", "nbval-ignore-output"]
fig, ax = plt.subplots(figsize=(5.5, 3.8))
for (name, secs), marker in zip(seconds.items(), "os^D"):
    ax.loglog(sizes[:len(secs)], np.array(secs) * 1e6, marker + "-", label=name)
ax.set_xlabel("number of parameters n")
ax.set_ylabel("best time (µs)")
ax.set_title("Hessian-vector product of an MLP loss")
ax.legend()
plt.show()
print(f"{'n':>6}" + "".join(f"{name:>22}" for name in methods) + "   (µs)")
for i, n in enumerate(sizes):
    print(f"{n:>6}" + "".join(f"{secs[i] * 1e6:>22.1f}" if i < len(secs) else f"{'-':>22}"
                              for secs in seconds.values()))

# %% [markdown]
# The dense method is far slower than the others at every size, and its curve is much steeper:
# it does the work of $n$ HVPs, so its time grows at least like $n^2$, and theirs far more
# slowly. The order of the three HVPs is another matter: at small $n$ a call takes tens of
# microseconds, so a fixed cost per call and the noise of the machine decide it, and at every
# size it depends on the compiler and the hardware. If HVPs dominate your running time, time
# the variants where they will run.
#
# Running time is not the only cost. XLA reports how many floating-point operations a compiled
# program performs and how much scratch memory it needs; here they are for $n = 1088$, with the
# operation count divided by that of the loss itself.

# %% tags=["demo"]
print(f"{'method':<22}{'FLOPs / FLOPs of f':>20}{'temporary bytes':>17}")
for name in methods:
    flops, temp = xla_costs[1088, name]
    print(f"{name:<22}{flops / xla_costs[1088, 'loss']:>20.2f}{temp:>17}")

# %% [markdown]
# The three HVPs perform almost the same arithmetic, a bit over three times that of the
# loss, so their differences in time come from how well XLA compiles each program, not from
# the amount of work. Their scratch memory is of the same order, and here reverse-over-reverse
# needs less than forward-over-reverse: the memory argument of section 1 counts what each pass
# stores, not what XLA keeps after fusing the compiled program. The dense route does more than a thousand times as much
# work and holds the whole Hessian in memory.
#
# ### Pytrees and multiple arguments
#
# Because `hvp` only calls `jax.jvp` and `jax.grad`, it works on any pytree. Method 1 would
# need a dot product between two pytrees: `jnp.vdot` only accepts arrays.

# %% tags=["demo"]
def dict_fn(p):
    return jnp.sum(jnp.tanh(p["a"]) ** 2) * jnp.sum(p["b"] ** 3)


p0 = {"a": jnp.array([0.2, -0.7, 1.1]), "b": jnp.array([0.5, 1.5])}
tangent = {"a": jnp.array([1.0, 0.0, -1.0]), "b": jnp.array([2.0, 0.5])}
Hv = jax.jit(lambda p, t: hvp(dict_fn, (p,), (t,)))(p0, tangent)

flat_p, unflatten = ravel_pytree(p0)
flat_t, _ = ravel_pytree(tangent)
dense = unflatten(jax.jit(jax.hessian(lambda flat: dict_fn(unflatten(flat))))(flat_p) @ flat_t)
for name in Hv:
    print(f"{name}: hvp {rounded(Hv[name])}, dense {rounded(dense[name])}")

try:
    hvp_revrev(dict_fn, p0, tangent)
except TypeError as error:
    print("reverse-over-reverse with jnp.vdot:", type(error).__name__)


# %% [markdown]
# Why does the exercise restrict `f` to one argument? `jax.grad(f)` differentiates with
# respect to the **first** argument only. For $f(x, y)$ with `primals = (x, y)`,
# `jax.jvp(jax.grad(f), (x, y), (u, w))` returns $H_{xx} u + H_{xy} w$: the $x$ rows of the
# full product, without the $y$ rows $H_{yx} u + H_{yy} w$. To get the full HVP of a function
# of several arguments, pack them into one tuple (or pass `argnums=(0, 1)` to `jax.grad`).

# %% tags=["demo"]
def two_args(x, y):
    return jnp.sum(jnp.sin(x) * y ** 2) + jnp.sum(x ** 2 * y)


x_a, y_a = jnp.array([0.3, 0.7]), jnp.array([1.1, -0.4])
u_a, w_a = jnp.array([1.0, 2.0]), jnp.array([-1.0, 0.5])
only_x_rows = jax.jit(lambda *args: jax.jvp(jax.grad(two_args), args[:2], args[2:])[1])
print("jvp of grad(f), two primals:", rounded(only_x_rows(x_a, y_a, u_a, w_a)))
full = jax.jit(lambda xy, uw: hvp(lambda z: two_args(*z), (xy,), (uw,)))((x_a, y_a), (u_a, w_a))
print("hvp of the packed function :", rounded(full[0]), rounded(full[1]))

# %% [markdown]
# ## 3. Per-example gradients
#
# `jax.grad` of a batch loss returns one gradient: the sum (or mean) of the gradients of the
# individual examples. Some methods need the individual gradients:
#
# * **differential privacy** (DP-SGD) clips each example's gradient to a maximum norm before
#   averaging and adds noise, so that no single example can move the parameters much;
# * **importance sampling** and prioritized replay pick examples according to the size of
#   their gradients;
# * **diagnostics** such as the variance of the gradient across examples.
#
# Write the loss of a *single* example, `loss(params, x, y)`. Its gradient with respect to
# `params` is that example's gradient. `jax.vmap` with `in_axes=(None, 0, 0)` maps it over the
# leading axis of the data while sharing the parameters, and returns gradients with a new
# leading batch axis. Our example is logistic regression with labels in $\{0, 1\}$ and
# parameters in a dict.

# %% tags=["demo"]
def logistic_loss(params, x, y):
    """Cross-entropy of one example: features x of shape (d,), label y in {0, 1}."""
    logit = jnp.dot(x, params["w"]) + params["b"]
    return jax.nn.softplus(logit) - y * logit


D_FEATURES = 8
params = {"w": normal((D_FEATURES,)), "b": normal(())}
all_xs = normal((1024, D_FEATURES))
all_ys = jnp.asarray(rng.random(1024) < 0.5, jnp.float32)


# %% [markdown]
# ### Exercise 3: `perex_grads` (2 points)
#
# Write `perex_grads(loss, params, xs, ys)` that returns the gradient of `loss` with respect
# to `params` for every example of a batch.
#
# * `loss(params, x, y)` returns a scalar for one example; `params` is a pytree of
#   floating-point arrays; `xs` and `ys` are arrays whose leading axis (of length `B`) indexes
#   the examples.
# * Return a pytree with the structure of `params` whose leaves have shape
#   `(B,) + leaf.shape`; entry `i` is the gradient of `loss(params, xs[i], ys[i])`.
# * Batch over the examples with `jax.vmap`; no Python loop over them.
# * Hint: `in_axes` takes one entry per positional argument; `None` means "not mapped".

# %% nbgrader={"grade_id": "perex_grads", "solution": true}
def perex_grads(loss, params, xs, ys):
    """Per-example gradients of loss(params, x, y) with respect to params.

    Args:
      loss: a function (params, x, y) -> scalar, the loss of one example.
      params: a pytree of arrays.
      xs: inputs with a leading batch axis of length B.
      ys: targets with a leading batch axis of length B.

    Returns:
      A pytree like params whose leaves have a leading axis of length B.
    """
    ### BEGIN SOLUTION
    return jax.vmap(jax.grad(loss), in_axes=(None, 0, 0))(params, xs, ys)
    ### END SOLUTION


# %% nbgrader={"grade_id": "perex_grads_tests", "points": 2}
adcheck.check_perex_grads(perex_grads, jit=True)
### BEGIN HIDDEN TESTS
_Case = adcheck.Case
adcheck.check_perex_grads(perex_grads, jit=True, cases=[
    _Case("one example", lambda p, x, y: (p["w"] @ x - y) ** 2, {"w": jnp.array([1.0, -1.0])},
          jnp.array([[0.5, 2.0]]), jnp.array([1.0])),
    _Case("a tuple of parameters and matrix inputs",
          lambda p, x, y: jnp.sum((jnp.tanh(p[0] @ x) + p[1] - y) ** 2),
          (jnp.arange(6.0).reshape(2, 3) / 6, jnp.array([0.1, -0.1])),
          jnp.linspace(-1.0, 1.0, 5 * 3 * 2).reshape(5, 3, 2), jnp.ones((5, 2, 2))),
])
with jax.enable_x64(True):
    adcheck.check_perex_grads(perex_grads, jit=True, cases=[
        _Case("float64, a nested dict", lambda p, x, y: jnp.log1p((p["a"]["w"] @ x + p["b"] - y) ** 2),
              {"a": {"w": jnp.array([0.5, -0.5, 1.0])}, "b": jnp.array(0.2)},
              jnp.arange(12.0).reshape(4, 3) / 12, jnp.array([0.0, 1.0, -1.0, 0.5])),
    ])
### END HIDDEN TESTS

# %% [markdown]
# The shapes gain a batch axis, and the mean of the per-example gradients is the gradient of
# the mean loss:

# %% tags=["demo"]
def mean_loss(params, xs, ys):
    return jnp.mean(jax.vmap(logistic_loss, in_axes=(None, 0, 0))(params, xs, ys))


xs, ys = all_xs[:4], all_ys[:4]
grads = jax.jit(lambda p, x, y: perex_grads(logistic_loss, p, x, y))(params, xs, ys)
batch_grad = jax.jit(jax.grad(mean_loss))(params, xs, ys)
for name in params:
    print(f"{name}: per-example shape {grads[name].shape}; mean equals the batch gradient:",
          np.allclose(jnp.mean(grads[name], axis=0), batch_grad[name], atol=1e-6))

# %% [markdown]
# ### Benchmark: `vmap` versus a loop
#
# The loop calls a compiled single-example gradient once per example (the examples are sliced
# out in advance). We also time the vmapped function without `jax.jit`: it then runs operation
# by operation, and each operation is dispatched from Python.

# %% tags=["demo", "nbval-ignore-output"]
grad_one = jax.jit(jax.grad(logistic_loss))
vmapped = jax.vmap(jax.grad(logistic_loss), in_axes=(None, 0, 0))
vmapped_jit = jax.jit(vmapped)
print(f"{'B':>5}{'loop (µs)':>12}{'vmap (µs)':>12}{'jit(vmap) (µs)':>16}")
for B in [32, 1024]:
    examples = [(all_xs[i], all_ys[i]) for i in range(B)]
    t_loop = best_time(lambda: [grad_one(params, x, y) for x, y in examples], repeats=3)
    t_vmap = best_time(vmapped, params, all_xs[:B], all_ys[:B], repeats=5)
    t_jit = best_time(vmapped_jit, params, all_xs[:B], all_ys[:B], repeats=20)
    print(f"{B:>5}{t_loop * 1e6:>12.0f}{t_vmap * 1e6:>12.0f}{t_jit * 1e6:>16.1f}")

# %% [markdown]
# The loop's time grows in proportion to the batch, since every example pays a full dispatch.
# The vmapped gradient without `jit` pays a dispatch per operation instead of per example, so
# its time barely depends on the batch here but stays far above the compiled version, which
# is the fastest of the three at every size.
#
# ### Clipping per-example gradients
#
# The core of DP-SGD: compute every example's gradient norm over all leaves, scale down the
# gradients whose norm exceeds a threshold $C$, then average. (DP-SGD then adds Gaussian noise
# proportional to $C$, which we leave out.)

# %% tags=["demo"]
def clipped_mean(grads, max_norm):
    """Mean over the batch of the per-example gradients, each clipped to norm max_norm."""
    leaves = jax.tree.leaves(grads)
    norms = jnp.sqrt(sum(jnp.sum(g.reshape(g.shape[0], -1) ** 2, axis=1) for g in leaves))
    scale = jnp.minimum(1.0, max_norm / norms)
    clipped = jax.tree.map(lambda g: g * scale.reshape((-1,) + (1,) * (g.ndim - 1)), grads)
    mean = jax.tree.map(lambda g: jnp.mean(g, axis=0), clipped)
    return mean, norms


logistic_perex = jax.jit(lambda p, x, y: perex_grads(logistic_loss, p, x, y))
grads = logistic_perex(params, all_xs[:8], all_ys[:8])
mean, norms = jax.jit(clipped_mean)(grads, 1.0)
print("per-example norms:", rounded(norms, 3))
for name, g in mean.items():
    print(f"clipped mean, {name}:", rounded(g, 3))


# %% [markdown]
# ## 4. Meta-gradients
#
# Some methods optimise a quantity that itself involves a gradient step. In model-agnostic
# meta-learning (MAML), the parameters $\theta$ are an initialisation; each task adapts them
# with one step of gradient descent on its training data, and $\theta$ is judged by the loss
# of the adapted parameters on the task's test data:
#
# $$\theta' = \theta - \alpha\, \nabla L_{\text{train}}(\theta), \qquad
# M(\theta) = L_{\text{test}}(\theta').$$
#
# By the chain rule, with $\partial\theta'/\partial\theta = I - \alpha\, \nabla^2
# L_{\text{train}}(\theta)$ (a symmetric matrix),
#
# $$\nabla M(\theta) = \big(I - \alpha\, \nabla^2 L_{\text{train}}(\theta)\big)\,
# \nabla L_{\text{test}}(\theta').$$
#
# The Hessian of the training loss appears, but `jax.grad` of $M$ never forms it: reverse
# mode through the inner `jax.grad` applies it to a vector, a reverse-over-reverse HVP.
# **First-order MAML** ignores that term, keeping only $\nabla L_{\text{test}}(\theta')$; it is
# cheaper, but it is not the gradient of $M$.
#
# For a quadratic $L(\theta) = \frac12 \theta^\top A \theta - b^\top \theta$ with symmetric
# $A$, we have $\nabla L = A\theta - b$ and $\nabla^2 L = A$, so
#
# $$\nabla M(\theta) = (I - \alpha A_{\text{train}})\,(A_{\text{test}}\, \theta' -
# b_{\text{test}}), \qquad \theta' = \theta - \alpha\,(A_{\text{train}}\, \theta -
# b_{\text{train}}).$$

# %% [markdown]
# ### Exercise 4: `maml_grad` (3 points)
#
# Write `maml_grad(loss, params, train_batch, test_batch, lr)` that returns $\nabla M$ at
# `params`.
#
# * `loss(params, batch)` returns a scalar; `params` is a pytree of floating-point arrays;
#   the batches are whatever `loss` accepts; `lr` is a Python float.
# * The inner step is $\theta' = \theta - \text{lr} \cdot g$, where $g$ is the gradient of
#   `loss(params, train_batch)` with respect to `params`, applied leaf by leaf
#   (`jax.tree.map`).
# * Return the gradient of the test loss at $\theta'$, `loss(θ', test_batch)`, with respect to
#   `params`, **through** the inner step (the second-order term included), as a pytree like
#   `params`.
# * Hint: write the meta-loss as a function of the parameters alone and apply `jax.grad`
#   to it; do not stop any gradient.

# %% nbgrader={"grade_id": "maml_grad", "solution": true}
def maml_grad(loss, params, train_batch, test_batch, lr):
    """Gradient of the loss after one inner SGD step, differentiated through the step.

    Args:
      loss: a function (params, batch) -> scalar.
      params: a pytree of arrays, the initial parameters.
      train_batch: the batch of the inner step.
      test_batch: the batch on which the adapted parameters are evaluated.
      lr: the inner learning rate.

    Returns:
      The gradient of loss(params - lr * grad loss(params, train_batch), test_batch) with
      respect to params, a pytree like params.
    """
    ### BEGIN SOLUTION
    def meta_loss(p):
        inner_grad = jax.grad(loss)(p, train_batch)
        adapted = jax.tree.map(lambda leaf, g: leaf - lr * g, p, inner_grad)
        return loss(adapted, test_batch)
    return jax.grad(meta_loss)(params)
    ### END SOLUTION


# %% nbgrader={"grade_id": "maml_grad_tests", "points": 3}
adcheck.check_maml_grad(maml_grad, jit=True)
### BEGIN HIDDEN TESTS
_Case = adcheck.Case
_quadratic = lambda p, batch: 0.5 * p @ batch[0] @ p - batch[1] @ p
_A = jnp.array([[3.0, 1.0, 0.0], [1.0, 2.0, 0.5], [0.0, 0.5, 1.0]])
adcheck.check_maml_grad(maml_grad, jit=True, cases=[
    _Case("a quadratic loss, lr = 0.05", _quadratic, jnp.array([1.0, 0.0, -1.0]),
          (_A, jnp.array([1.0, 1.0, 0.0])), (2 * _A, jnp.array([0.0, -1.0, 1.0])), 0.05),
    _Case("lr = 0: the plain test gradient", _quadratic, jnp.array([0.5, 0.5, 0.5]),
          (_A, jnp.zeros(3)), (_A, jnp.ones(3)), 0.0),
    _Case("a dict of parameters and a non-quadratic loss",
          lambda p, batch: jnp.mean((jnp.tanh(batch[0] @ p["w"]) + p["b"] - batch[1]) ** 2),
          {"w": jnp.array([0.5, -0.3]), "b": jnp.array(0.1)},
          (jnp.arange(8.0).reshape(4, 2) / 8, jnp.array([0.0, 1.0, 0.0, 1.0])),
          (jnp.arange(8.0).reshape(4, 2)[::-1] / 8, jnp.array([1.0, 1.0, 0.0, 0.0])), 0.3),
])
with jax.enable_x64(True):
    adcheck.check_maml_grad(maml_grad, jit=True, cases=[
        _Case("float64, a quadratic loss", _quadratic, jnp.array([1.0, 2.0, 3.0]),
              (jnp.eye(3), jnp.ones(3)), (jnp.diag(jnp.array([1.0, 2.0, 3.0])), jnp.zeros(3)), 0.1),
    ])
### END HIDDEN TESTS


# %% [markdown]
# We compare with the closed form on random quadratics, and with first-order MAML, written
# with a `stop_gradient` on the inner gradient.

# %% tags=["demo"]
def quadratic_loss(theta, batch):
    A, b = batch
    return 0.5 * theta @ A @ theta - b @ theta


def random_quadratic(n):
    M = normal((n, n))
    return M @ M.T / n + 0.5 * jnp.eye(n), normal((n,))


def first_order_maml_grad(loss, params, train_batch, test_batch, lr):
    def meta_loss(p):
        inner_grad = jax.lax.stop_gradient(jax.grad(loss)(p, train_batch))
        return loss(jax.tree.map(lambda leaf, g: leaf - lr * g, p, inner_grad), test_batch)
    return jax.grad(meta_loss)(params)


train_q, test_q = random_quadratic(4), random_quadratic(4)
theta_q, lr_q = normal((4,)), 0.3
(A_tr, b_tr), (A_te, b_te) = train_q, test_q
theta_adapted = theta_q - lr_q * (A_tr @ theta_q - b_tr)
for name, meta_grad in [("maml_grad", maml_grad), ("first-order MAML", first_order_maml_grad)]:
    value = jax.jit(lambda th: meta_grad(quadratic_loss, th, train_q, test_q, lr_q))(theta_q)
    print(f"{name:<18}:", rounded(value))
print("closed form       :", rounded((jnp.eye(4) - lr_q * A_tr) @ (A_te @ theta_adapted - b_te)))
print("A_te theta' - b_te:", rounded(A_te @ theta_adapted - b_te))


# %% [markdown]
# The first-order version differs by $\alpha A_{\text{train}} (A_{\text{test}} \theta' -
# b_{\text{test}})$, which is not small unless $\alpha \|A_{\text{train}}\|$ is. With dict
# parameters `maml_grad` returns a dict, and flattening the parameters does not change the
# answer:

# %% tags=["demo"]
def linear_regression_loss(p, batch):
    inputs, targets = batch
    return jnp.mean((inputs @ p["w"] + p["b"] - targets) ** 2)


train_lr = (normal((10, 3)), normal((10,)))
test_lr = (normal((10, 3)), normal((10,)))
p_lr = {"w": jnp.array([0.5, -1.0, 0.2]), "b": jnp.array(0.1)}
flat, unflatten = ravel_pytree(p_lr)
from_dict = jax.jit(lambda p: maml_grad(linear_regression_loss, p, train_lr, test_lr, 0.1))(p_lr)
flat_loss = lambda g, batch: linear_regression_loss(unflatten(g), batch)
from_flat = jax.jit(lambda f: maml_grad(flat_loss, f, train_lr, test_lr, 0.1))(flat)
for name, g in from_dict.items():
    print(f"maml_grad, {name}:", rounded(g))
print("same as with flat parameters:",
      np.allclose(ravel_pytree(from_dict)[0], from_flat, atol=1e-6))

# %% [markdown]
# ## 5. Hutchinson's trace estimator
#
# The trace of the Hessian, $\operatorname{tr} H = \sum_i \partial^2 f / \partial x_i^2$,
# measures the average curvature (for a loss, it is used as a sharpness measure and in
# second-order methods). Building $H$ to read its diagonal is out of the question for large
# $n$. Hutchinson's estimator uses HVPs instead. If $v$ is random with
# $\mathbb{E}[v v^\top] = I$, then
#
# $$\mathbb{E}[v^\top H v] = \mathbb{E}[\operatorname{tr}(H v v^\top)] =
# \operatorname{tr}(H\, \mathbb{E}[v v^\top]) = \operatorname{tr} H .$$
#
# **Rademacher** vectors, whose entries are $\pm 1$ with probability one half each, have
# $\mathbb{E}[v v^\top] = I$ and $\operatorname{Var}(v^\top H v) = 2 \sum_{i \ne j}
# H_{ij}^2$: the diagonal contributes no noise at all, since $v_i^2 = 1$. Among probes with
# independent entries of mean 0 and variance 1 this is the smallest possible variance
# (Gaussian probes give $2 \sum_{i, j} H_{ij}^2$, diagonal included). Averaging over $N$
# independent probes divides the variance by $N$, so the error shrinks like $1/\sqrt{N}$.

# %% [markdown]
# ### Exercise 5: `hutchinson_trace` (3 points)
#
# Write `hutchinson_trace(f, x, key, num_samples)` that estimates the trace of the Hessian of
# `f` at `x`.
#
# * `f` maps a 1-D floating-point array `x` of length $n$ to a scalar; `key` is a JAX random
#   key; `num_samples` is a positive Python int. Return a scalar with the dtype of `x`.
# * Draw all probes at once with
#   `jax.random.rademacher(key, (num_samples,) + x.shape, dtype=x.dtype)`, exactly this call
#   (the tests compare with this draw). Return the mean over the probes $v$ of $v^\top H v$.
# * Compute each $H v$ with a forward-over-reverse HVP, batched over the probes with
#   `jax.vmap`. Never build the Hessian (no `jax.hessian`, `jax.jacfwd`, `jax.jacrev`), and no
#   Python loop over the probes.
# * Hint: one HVP is one `jax.jvp` of `jax.grad(f)`, as in exercise 2 (write it again here, so
#   that this exercise stands on its own); the dot product of each probe with its product is a
#   sum over the last axis.

# %% nbgrader={"grade_id": "hutchinson_trace", "solution": true}
def hutchinson_trace(f, x, key, num_samples):
    """Hutchinson estimate of the trace of the Hessian of f at x, from Rademacher probes.

    Args:
      f: a function from a 1-D array to a scalar.
      x: the point, a 1-D array.
      key: a JAX random key.
      num_samples: the number of probe vectors.

    Returns:
      The mean over the probes v of v @ H(x) @ v, a scalar.
    """
    ### BEGIN SOLUTION
    probes = jax.random.rademacher(key, (num_samples,) + x.shape, dtype=x.dtype)
    products = jax.vmap(lambda v: jax.jvp(jax.grad(f), (x,), (v,))[1])(probes)
    return jnp.mean(jnp.sum(probes * products, axis=-1))
    ### END SOLUTION


# %% nbgrader={"grade_id": "hutchinson_trace_tests", "points": 3}
adcheck.check_hutchinson_trace(hutchinson_trace, jit=True)
### BEGIN HIDDEN TESTS
_Case = adcheck.Case
adcheck.check_hutchinson_trace(hutchinson_trace, jit=True, cases=[
    _Case("f(x) = sum(tanh(W x)**2), 16 samples",
          lambda x: jnp.sum(jnp.tanh(jnp.outer(jnp.arange(1.0, 4.0), x).sum(axis=1)) ** 2)
          + jnp.sum(jnp.sin(x) * x[::-1]), jnp.linspace(-1.0, 1.0, 6), jax.random.key(11), 16),
    _Case("a single sample", lambda x: jnp.sum(jnp.exp(x) * jnp.roll(x, 1)),
          jnp.linspace(0.0, 0.5, 4), jax.random.key(12), 1),
    _Case("f(x) = logsumexp(x), 5 samples", jax.nn.logsumexp, jnp.linspace(-2.0, 2.0, 7),
          jax.random.key(13), 5),
])
with jax.enable_x64(True):
    adcheck.check_hutchinson_trace(hutchinson_trace, jit=True, cases=[
        _Case("float64, f(x) = sum(x**3 * x[::-1]), 9 samples", lambda x: jnp.sum(x**3 * x[::-1]),
              jnp.linspace(-1.0, 1.0, 5), jax.random.key(14), 9),
    ])
### END HIDDEN TESTS


# %% [markdown]
# We try it on $f(x) = \sum_i \tanh\big((Wx)_i\big)^2$ with $W \in \mathbb{R}^{16 \times 64}$,
# whose Hessian is dense, and compare with the exact trace and with the predicted standard
# deviation of a single probe, $\sigma = \sqrt{2 \sum_{i \ne j} H_{ij}^2}$.

# %% tags=["demo"]
W_h = normal((16, 64)) / 4.0
x_h = normal((64,))


def tanh_features(x):
    return jnp.sum(jnp.tanh(W_h @ x) ** 2)


H_h = jax.jit(jax.hessian(tanh_features))(x_h)
exact_trace = jnp.trace(H_h)
sigma = jnp.sqrt(2 * (jnp.sum(H_h ** 2) - jnp.sum(jnp.diag(H_h) ** 2)))
key, key_probe = jax.random.split(key)
print("exact trace               :", rounded(exact_trace))
estimate = jax.jit(lambda k: hutchinson_trace(tanh_features, x_h, k, 1000))(key_probe)
print("estimate with 1000 probes :", rounded(estimate))
print("sigma, one probe          :", rounded(sigma))

# %% [markdown]
# To see the $1/\sqrt{N}$ law, we repeat the estimate 64 times for each number of probes $N$
# and plot the root-mean-square error over the repetitions against $N$, together with the
# prediction $\sigma / \sqrt{N}$. Compiling `hutchinson_trace` once for every $N$ would take
# longer than the computation itself, so we compile it once, for single probes, and run it
# with $64 \times 1024$ different keys: repetition $r$ with $N$ probes averages the first $N$
# single-probe estimates of row $r$. Averaging $N$ independent single-probe estimates has the
# same distribution as one call with $N$ probes.

# %% tags=["demo"]
RUNS, MAX_PROBES = 64, 1024
key, key_runs = jax.random.split(key)
single_keys = jax.random.split(key_runs, RUNS * MAX_PROBES)
single = jax.jit(jax.vmap(lambda k: hutchinson_trace(tanh_features, x_h, k, 1)))(single_keys)
single = np.asarray(single).reshape(RUNS, MAX_PROBES)  # the statistics below are NumPy's
probe_counts = [1, 4, 16, 64, 256, 1024]
errors = [single[:, :N].mean(axis=1) - float(exact_trace) for N in probe_counts]
rms_errors = [float(np.sqrt(np.mean(e ** 2))) for e in errors]
fig, ax = plt.subplots(figsize=(5, 3.5))
ax.loglog(probe_counts, rms_errors, "o-", label=f"RMS error over {RUNS} repetitions")
ax.loglog(probe_counts, float(sigma) / np.sqrt(probe_counts), "k--", lw=1,
          label=r"$\sigma / \sqrt{N}$")
ax.set_xlabel("number of probes N")
ax.set_ylabel("error of the trace estimate")
ax.set_title("Hutchinson's estimator")
ax.legend()
plt.show()


# %% [markdown]
# The measured errors follow the predicted line: every factor of 4 in the number of probes
# halves the error. Accuracy is expensive (one more digit costs 100 times more probes), which
# is why the estimator is used when a rough value of the trace suffices.

# %% [markdown]
# ## 6. Gauss–Newton products
#
# For a least-squares loss $L(\theta) = \frac12 \|r(\theta)\|^2$ with residuals
# $r : \mathbb{R}^n \to \mathbb{R}^m$ and Jacobian $J = \partial r(\theta)$, the chain rule
# gives $\nabla L = J^\top r$ and
#
# $$\nabla^2 L = J^\top J + \sum_{i=1}^m r_i\, \nabla^2 r_i .$$
#
# The **Gauss–Newton matrix** $G = J^\top J$ keeps the first term. It is positive
# semi-definite ($v^\top G v = \|J v\|^2 \ge 0$) even where the Hessian is not, which makes it
# a safer matrix for conjugate-gradient and trust-region steps, and it equals the Hessian when
# the residuals vanish. A product $G v$ is a JVP followed by a VJP: push $v$ forward to
# $u = J v$, then pull $u$ back to $J^\top u$.
#
# Our residuals compare $a e^{-k t} + c$, with $\theta = (a, k, c)$, to 20 noisy samples. We
# compare $G v$ with the dense $J^\top J v$, and the Hessian-vector product with $G v$ plus the
# second-order term, where $H_i$ is the Hessian of $r_i$.

# %% tags=["demo"]
def gauss_newton_product(residuals, theta, v):
    """G v = J^T (J v) for the Jacobian J of residuals at theta, from one JVP and one VJP."""
    _, Jv = jax.jvp(residuals, (theta,), (v,))
    _, pullback = jax.vjp(residuals, theta)
    return pullback(Jv)[0]


t_fit = jnp.linspace(0.0, 3.0, 20)
y_fit = 2.0 * jnp.exp(-1.3 * t_fit) + 0.5 + 0.05 * normal((20,))


def decay_residuals(theta):
    a, k, c = theta
    return a * jnp.exp(-k * t_fit) + c - y_fit


def half_squares(theta):
    return 0.5 * jnp.sum(decay_residuals(theta) ** 2)


@jax.jit
def curvature_products(theta, v):
    J, r = jax.jacfwd(decay_residuals)(theta), decay_residuals(theta)
    residual_term = jnp.einsum("i,ijk,k->j", r, jax.hessian(decay_residuals)(theta), v)
    return [gauss_newton_product(decay_residuals, theta, v), J.T @ (J @ v),
            hvp(half_squares, (theta,), (v,)), J.T @ (J @ v) + residual_term]


theta_fit = jnp.array([1.5, 1.0, 0.3])
v_fit = jnp.array([1.0, -2.0, 0.5])
names = ["G v, one JVP and one VJP", "J^T J v, dense J", "H v, hvp",
         "J^T J v + sum_i r_i H_i v"]
for name, product in zip(names, curvature_products(theta_fit, v_fit)):
    print(f"{name:<26}:", rounded(product))

# %% [markdown]
# ## 7. Stopping gradients: the TD(0) update
#
# ### Temporal-difference learning
#
# In reinforcement learning, a value function $v_\theta(s)$ estimates the future reward an
# agent will collect from state $s$. After a transition from $s_{t-1}$ to $s_t$ with reward
# $r_t$, TD(0) compares the current estimate with the one-step **target**
# $r_t + v_\theta(s_t)$ (we use no discount factor). The difference is the TD error
#
# $$\delta = r_t + v_\theta(s_t) - v_\theta(s_{t-1}),$$
#
# and TD(0) moves $\theta$ along the update
#
# $$\Delta\theta = \delta\, \nabla_\theta v_\theta(s_{t-1}), \qquad \theta \leftarrow \theta +
# \alpha\, \Delta\theta .$$
#
# It pushes $v_\theta(s_{t-1})$ towards the target but treats the target as fixed, although
# the target depends on $\theta$ as well.
#
# ### A pseudo-loss
#
# Consider $L(\theta) = \frac12 \big(\text{target} - v_\theta(s_{t-1})\big)^2$. If the target
# is held constant, $-\nabla_\theta L = \delta\, \nabla_\theta v_\theta(s_{t-1}) = \Delta
# \theta$, so a gradient-descent step on $L$ is a TD(0) step. If the target is differentiated
# too, the chain rule adds a term:
#
# $$-\nabla_\theta L = \delta\, \big(\nabla_\theta v_\theta(s_{t-1}) - \nabla_\theta
# v_\theta(s_t)\big).$$
#
# We use a linear value function, $v_\theta(s) = \theta^\top s$, whose gradient is $s$.

# %%
def value_fn(theta, state):
    """A linear value function: the estimated value of `state` for the parameters `theta`."""
    return jnp.dot(theta, state)


theta = jnp.array([0.2, -0.3, 0.5])
s_tm1 = jnp.array([1.0, 0.0, 2.0])
r_t = jnp.array(0.5)
s_t = jnp.array([0.0, 1.0, 1.0])


def naive_pseudo_loss(theta):
    target = r_t + value_fn(theta, s_t)
    return 0.5 * (target - value_fn(theta, s_tm1)) ** 2


delta = r_t + value_fn(theta, s_t) - value_fn(theta, s_tm1)
print("TD error delta             :", rounded(delta))
print("TD(0) update, delta * s_tm1:", rounded(delta * s_tm1))
print("-grad of the naive loss    :", rounded(-jax.grad(naive_pseudo_loss)(theta)))
print("delta * (s_tm1 - s_t)      :", rounded(delta * (s_tm1 - s_t)))

# %% [markdown]
# The naive gradient also changes $\theta$ to move the target towards the estimate, here even
# changing a weight ($\theta_1$) that the TD(0) update leaves alone. It is a different
# algorithm (the "residual gradient"), not TD(0).
#
# ### `jax.lax.stop_gradient`
#
# `jax.lax.stop_gradient(y)` returns `y` unchanged, but its derivative is zero: its JVP sends
# every tangent to zero, so no derivative flows back through it in either mode. It acts on the
# differentiation, not on the value. For example, $x \cdot \operatorname{sg}(x)$ evaluates to
# $x^2$, but its derivative is $\operatorname{sg}(x) = x$, not $2x$:

# %% tags=["demo"]
print(rounded(jax.grad(lambda x: x * jax.lax.stop_gradient(x))(3.0)))
print(rounded(jax.grad(lambda x: x * x)(3.0)))


# %% [markdown]
# ### Exercise 6: `td_update` (2 points)
#
# Write `td_update(theta, s_tm1, r_t, s_t)` that returns the TD(0) update
# $\Delta\theta = \big(r_t + v_\theta(s_t) - v_\theta(s_{t-1})\big)\, \nabla_\theta
# v_\theta(s_{t-1})$.
#
# * `theta` is a floating-point array, `s_tm1` and `s_t` are states that `value_fn` accepts
#   (1-D arrays here), and `r_t` is a scalar. Return an array with the shape and dtype of
#   `theta`.
# * Compute it with `jax.grad` of the pseudo-loss
#   $\tfrac12 \big(\text{target} - v_\theta(s_{t-1})\big)^2$, in which the target
#   $r_t + v_\theta(s_t)$, and only the target, is wrapped in `jax.lax.stop_gradient`.
#   Return the **update**, the direction in which TD(0) moves `theta`: mind the sign.
# * The tests also differentiate `td_update` with respect to `theta`, as the cells after this
#   exercise do: the target must be a constant to that derivative, and the prediction
#   $v_\theta(s_{t-1})$ a function of `theta`.
# * Compute every value with the module-level `value_fn`. The hidden tests replace
#   `value_fn` by non-linear value functions, whose gradient is not the state, so the linear
#   closed form $\delta\, s_{t-1}$ fails them.
# * Hint: define the pseudo-loss inside `td_update`, as a function of the parameters alone.
#   `jax.grad` of it points uphill on the loss; the update points the other way.

# %% nbgrader={"grade_id": "td_update", "solution": true}
def td_update(theta, s_tm1, r_t, s_t):
    """The TD(0) parameter update for one transition, via stop_gradient.

    Args:
      theta: parameters of the module-level value_fn.
      s_tm1: the state before the transition.
      r_t: the reward observed during the transition, a scalar.
      s_t: the state after the transition.

    Returns:
      delta * grad_theta value_fn(theta, s_tm1), shaped like theta, where
      delta = r_t + value_fn(theta, s_t) - value_fn(theta, s_tm1).
    """
    ### BEGIN SOLUTION
    def pseudo_loss(params):
        target = jax.lax.stop_gradient(r_t + value_fn(params, s_t))
        return 0.5 * (target - value_fn(params, s_tm1)) ** 2
    return -jax.grad(pseudo_loss)(theta)
    ### END SOLUTION


# %% nbgrader={"grade_id": "td_update_tests", "points": 2}
adcheck.check_td_update(td_update, jit=True)
### BEGIN HIDDEN TESTS
_Case = adcheck.Case
_theta, _s0, _s1 = jnp.array([0.3, -0.2, 0.5]), jnp.array([1.0, 0.5, -1.0]), jnp.array([0.0, 2.0, 1.0])
adcheck.check_td_update(td_update, jit=True, cases=[
    _Case("a tanh value function", lambda theta, s: jnp.tanh(jnp.dot(theta, s)), _theta, _s0,
          jnp.array(0.5), _s1),
    _Case("a quadratic value function", lambda theta, s: 0.5 * jnp.dot(theta, s) ** 2, _theta, _s0,
          jnp.array(-1.0), _s1),
    _Case("a softplus value function", lambda theta, s: jax.nn.softplus(jnp.dot(theta, s)),
          _theta, _s1, jnp.array(2.0), _s0),
    _Case("the linear value function, another transition", lambda theta, s: jnp.dot(theta, s),
          _theta, _s1, jnp.array(0.0), _s0),
])
with jax.enable_x64(True):
    adcheck.check_td_update(td_update, jit=True, cases=[
        _Case("float64, a tanh value function", lambda theta, s: jnp.tanh(jnp.dot(theta, s)),
              jnp.array([0.3, -0.2]), jnp.array([1.0, 0.5]), jnp.array(0.5), jnp.array([2.0, 1.0])),
    ])
### END HIDDEN TESTS

# %% [markdown]
# Your update should match the closed form for the linear value function:

# %% tags=["demo"]
print("td_update    :", rounded(td_update(theta, s_tm1, r_t, s_t)))
print("delta * s_tm1:", rounded(delta * s_tm1))

# %% [markdown]
# The TD(0) update is not the gradient of *any* function of $\theta$. If it were, its Jacobian
# with respect to $\theta$ would be a Hessian, hence symmetric. For the linear value function,
# differentiating $\Delta\theta = (r_t + \theta^\top s_t - \theta^\top s_{t-1})\, s_{t-1}$
# gives $s_{t-1} (s_t - s_{t-1})^\top$, which is not symmetric.
#
# Checking this with autodiff needs care: `stop_gradient` hides the target's dependence on
# $\theta$ from *every* differentiation, including one applied on top of `td_update`. So
# `jax.jacfwd(td_update)` returns $-s_{t-1} s_{t-1}^\top$, the negated Hessian of the pseudo-loss
# with the target frozen, which is symmetric. To differentiate the update map itself, we write
# it without `stop_gradient`.

# %% tags=["demo"]
def td_update_map(theta):
    """The TD(0) update as a function of theta, written without stop_gradient."""
    delta = r_t + value_fn(theta, s_t) - value_fn(theta, s_tm1)
    return delta * jax.grad(value_fn)(theta, s_tm1)


for name, jacobian in [
        ("Jacobian of the update map", jax.jit(jax.jacfwd(td_update_map))(theta)),
        ("s_tm1 (s_t - s_tm1)^T", jnp.outer(s_tm1, s_t - s_tm1)),
        ("jax.jacfwd(td_update)", jax.jit(jax.jacfwd(td_update))(theta, s_tm1, r_t, s_t))]:
    print(f"{name}, symmetric: {bool(np.allclose(jacobian, jacobian.T))}")
    print(rounded(jacobian))

# %% [markdown]
# This is why the pseudo-loss, with its stopped target, is the practical way to write TD
# learning with autodiff. `stop_gradient` is useful whenever one part of a loss should only
# train some of the parameters, or a quantity (a target network, a baseline) should be used
# as a constant.

# %% [markdown]
# ## 8. Straight-through estimators
#
# Rounding is piecewise constant: its derivative is zero wherever it exists, and undefined at
# the jumps. JAX returns zero everywhere, so no gradient passes through a `jnp.round`. (Note
# also that `jnp.round` rounds halves to the nearest even integer: 1.5 and 2.5 both become 2.)

# %% tags=["demo"]
points = jnp.array([-1.7, -0.2, 0.4, 1.5, 2.5])
print("round     :", rounded(jnp.round(points)))
print("d round/dx:", rounded(jax.vmap(jax.grad(jnp.round))(points)))


# %% [markdown]
# A model that quantizes its activations or weights to integers therefore cannot be trained by
# gradient descent as written. The **straight-through estimator** keeps rounding in the
# forward pass and pretends, when differentiating, that rounding was the identity: its JVP
# passes the tangent through unchanged, and its VJP passes the cotangent back unchanged. This
# "derivative" is not the derivative of the function that is computed; it is a useful
# surrogate.
#
# With `stop_gradient` we can write such a function as a sum of terms, each of which
# contributes to either the value or the derivative: a term that evaluates to zero but has
# derivative one, plus a term that evaluates to `round(x)` but has derivative zero.
#
# ### Exercise 7: `straight_through_round` (2 points)
#
# Write `straight_through_round(x)`.
#
# * `x` is a floating-point array of any shape. The value is `jnp.round(x)`, elementwise (as a
#   number; a zero may come out as `0.0` where `jnp.round` gives `-0.0`), with the shape and
#   dtype of `x`.
# * Its JVP is the identity: `jax.jvp(straight_through_round, (x,), (t,))[1]` equals `t`, and
#   so `jax.grad(lambda x: jnp.sum(straight_through_round(x)))` returns ones.
# * It must work under `jax.jit` and `jax.vmap`. `jax.lax.stop_gradient` is all you need.
# * Hint: `x - jax.lax.stop_gradient(x)` is zero, and its derivative is one.

# %% nbgrader={"grade_id": "straight_through_round", "solution": true}
def straight_through_round(x):
    """Round to the nearest integer, with the identity as derivative.

    Args:
      x: a floating-point array of any shape.

    Returns:
      jnp.round(x) in the forward pass; JVPs and VJPs pass through unchanged.
    """
    ### BEGIN SOLUTION
    zero = x - jax.lax.stop_gradient(x)
    return zero + jax.lax.stop_gradient(jnp.round(x))
    ### END SOLUTION


# %% nbgrader={"grade_id": "straight_through_round_tests", "points": 2}
adcheck.check_straight_through_round(straight_through_round, jit=True)
### BEGIN HIDDEN TESTS
_Case = adcheck.Case
adcheck.check_straight_through_round(straight_through_round, jit=True, cases=[
    _Case("a scalar", jnp.array(2.6)),
    _Case("halves and negatives, shape (2, 3)", jnp.array([[0.5, 1.5, -0.5], [-2.5, 3.49, -7.51]])),
    _Case("large values, shape (4,)", jnp.array([1e6 + 0.25, -3e5 - 0.75, 12.0, 0.0])),
])
with jax.enable_x64(True):
    adcheck.check_straight_through_round(straight_through_round, jit=True, cases=[
        _Case("float64, shape (3,)", jnp.array([0.1, -1.6, 2.5])),
    ])
### END HIDDEN TESTS

# %% [markdown]
# ### Is the value exactly `round(x)`?
#
# Two ways of writing the estimator are common:
#
# * `(x - sg(x)) + sg(round(x))`: for every finite float, `x - x` is exactly zero (the exact
#   result, 0, is representable), and adding zero changes nothing. This form is exact for any
#   function in place of `round`.
# * `x + sg(round(x) - x)`: here `round(x) - x` is rounded to the nearest float before `x` is
#   added back, so for a general function the result can differ from $f(x)$, badly so when
#   $|f(x)|$ is much smaller than $|x|$. For `round` itself the difference happens to be exact
#   (Sterbenz's lemma: `round(x)` is zero or within a factor of two of `x`), and then the sum,
#   whose exact value `round(x)` is a float, is exact too.
#
# We check both forms, with `round` and with two other functions, on a million float32 numbers
# spread over the whole range: every 4099th bit pattern.

# %% tags=["demo"]
sg = jax.lax.stop_gradient


def count_changes(fn, x):
    """The number of finite values of fn(x), and how many of them each form changes."""
    exact = fn(x)
    finite = jnp.isfinite(exact)
    zero_form = (x - sg(x)) + sg(fn(x))
    difference_form = x + sg(fn(x) - x)
    return [jnp.sum(finite), jnp.sum(finite & (zero_form != exact)),
            jnp.sum(finite & (difference_form != exact))]


def negative_zeros(x):
    """How many results are -0.0: for jnp.round, and for straight_through_round."""
    return [jnp.sum(jnp.signbit(r) & (r == 0)) for r in (jnp.round(x), straight_through_round(x))]


bit_patterns = np.arange(0, 2 ** 32, 4099, dtype=np.uint64).astype(np.uint32)
floats = bit_patterns.view(np.float32)
floats = jnp.asarray(floats[np.isfinite(floats)])
for name, fn in [("round", jnp.round), ("square", jnp.square), ("1e-9 * x", lambda x: 1e-9 * x)]:
    n_finite, n_zero, n_difference = jax.jit(count_changes, static_argnums=0)(fn, floats)
    print(f"{name:<8}: {int(n_finite)} finite results; values changed by the zero form: "
          f"{int(n_zero)}, by the difference form: {int(n_difference)}")
n_round, n_straight = jax.jit(negative_zeros)(floats)
print(f"results equal to -0.0: {int(n_round)} from jnp.round, "
      f"{int(n_straight)} from straight_through_round")
print("at infinity:", rounded(straight_through_round(jnp.array([jnp.inf, -jnp.inf]))))

# %% [markdown]
# Both forms reproduce `round(x)` as numbers for every finite input of the sample. For the other
# two functions only the zero form stays exact; with $f(x) = 10^{-9} x$ the difference form
# is wrong almost everywhere (at $x = 1$, for example, $10^{-9} - 1$ rounds to $-1$, and the
# result is 0). Two caveats remain: for inputs in $[-0.5, 0]$ both forms return `+0.0` where
# `jnp.round` returns `-0.0` (equal as numbers), and for infinite inputs `x - x` is `nan`, so
# the estimator returns `nan`.
#
# ### Training through rounding
#
# A toy model predicts an integer $\operatorname{round}(w x)$ from a real input $x$; we fit
# $w$ to integer labels generated with $w = 1.7$ by gradient descent on the squared error.
# With `jnp.round` the gradient is zero and $w$ never moves; with the straight-through version
# it converges in a few steps to a $w$ that reproduces every label.

# %% tags=["demo"]
xs_q = jnp.linspace(0.5, 3.0, 6)
ys_q = jnp.round(1.7 * xs_q)


def quantized_loss(w, rounder):
    return jnp.mean((rounder(w * xs_q) - ys_q) ** 2)


for name, rounder in [("jnp.round", jnp.round), ("straight-through", straight_through_round)]:
    step = jax.jit(jax.value_and_grad(lambda w, rounder=rounder: quantized_loss(w, rounder)))
    w = jnp.array(0.5)
    history = []
    for i in range(21):
        loss_value, grad_w = step(w)
        if i % 5 == 0:
            history.append(f"step {i:>2}: w = {float(w):.3f}, loss = {float(loss_value):.3f}")
        w = w - 0.05 * grad_w
    print(name)
    print("\n".join("    " + line for line in history))

# %% [markdown]
# ## 9. Design: the largest curvature, without the Hessian
#
# How sharp is a minimum? The eigenvalue of the Hessian with the largest magnitude,
# $\lambda_{\max}$, tells: gradient descent with a step larger than $2/\lambda_{\max}$
# diverges along its eigenvector. For a network with a million parameters the Hessian has
# $10^{12}$ entries, but *power iteration* needs only products $Hv$: from a vector $v_0$,
# repeat $v \leftarrow Hv / \lVert Hv \rVert$. The component of $v$ along each eigenvector is
# multiplied by its eigenvalue at every step, so after $k$ steps the eigenvector of the
# largest $|\lambda|$ dominates, with an error shrinking like $|\lambda_2 / \lambda_1|^k$. The
# Rayleigh quotient $v^\top H v$ (for $\lVert v \rVert = 1$) then gives $\lambda_{\max}$ with
# its sign, which $\lVert Hv \rVert$ would lose.
#
# ### Exercise 8: `top_eigenvalue(f, x, v0, num_iters)` (design, 3 points)
#
# Return the eigenvalue of largest magnitude of the Hessian of the scalar function `f` at `x`
# (an array of any shape), by `num_iters` steps of power iteration from `v0` (an array of
# `x`'s shape, not necessarily of norm 1), followed by the Rayleigh quotient of the final unit
# vector.
#
# You may assume what power iteration needs, and the checks only use such cases: one
# eigenvalue is strictly larger in magnitude than every other (if $\lambda$ and $-\lambda$ tie,
# $v$ swings between their eigenvectors and no estimate settles), and `v0` has a component
# along its eigenvector (otherwise the iteration converges to another eigenvalue).
#
# * Use forward-over-reverse HVPs, never the Hessian (no `jax.hessian`, `jacfwd`, `jacrev`).
# * `num_iters` is a Python int. Loop with `jax.lax.fori_loop`, `lax.scan` or
#   `lax.while_loop`, whichever you prefer: the tests accept any loop whose program does not
#   grow with `num_iters`, and refuse a Python loop, which unrolls into one HVP per step.

# %% nbgrader={"grade_id": "top_eigenvalue", "solution": true}
def top_eigenvalue(f, x, v0, num_iters):
    """The eigenvalue of largest magnitude of the Hessian of f at x, by power iteration."""
    ### BEGIN SOLUTION
    def hessian_times(v):
        return jax.jvp(jax.grad(f), (x,), (v,))[1]

    def step(_, v):
        w = hessian_times(v)
        return w / jnp.linalg.norm(w)

    v = jax.lax.fori_loop(0, num_iters, step, v0 / jnp.linalg.norm(v0))
    return jnp.vdot(v, hessian_times(v))
    ### END SOLUTION


# %% nbgrader={"grade_id": "top_eigenvalue_tests", "points": 3}
adcheck.check_top_eigenvalue(top_eigenvalue)
### BEGIN HIDDEN TESTS
_Case = adcheck.Case
_quadratic = adcheck._quadratic_with
adcheck.check_top_eigenvalue(top_eigenvalue, jit=True, cases=[
    _Case("a quadratic with eigenvalues 4, -1, 0.5, 0.1", _quadratic([4.0, -1.0, 0.5, 0.1], 5),
          jnp.ones(4), jnp.array([1.0, 0.0, 0.0, 0.0]), 50),
    _Case("a negative dominant eigenvalue, 8 dimensions",
          _quadratic([-9.0, 3.0, 2.0, 1.0, 0.5, -0.5, 0.2, 0.1], 6), jnp.zeros(8),
          jnp.linspace(-1.0, 1.0, 8), 60),
    _Case("x of shape (2, 2), f(x) = sum(x**4) + sum(x[0] * x[1])",
          lambda x: jnp.sum(x**4) + jnp.sum(x[0] * x[1]), jnp.array([[1.0, -2.0], [0.5, 0.0]]),
          jnp.ones((2, 2)), 80),
])
with jax.enable_x64(True):
    adcheck.check_top_eigenvalue(top_eigenvalue, jit=True, cases=[
        _Case("float64, eigenvalues 3, 1, -0.5", _quadratic([3.0, 1.0, -0.5], 7, jnp.float64),
              jnp.zeros(3, jnp.float64), jnp.ones(3, jnp.float64), 80),
    ])
### END HIDDEN TESTS

# %% [markdown]
# How fast the estimate converges, for a quadratic whose two largest eigenvalues are 10 and
# $-7$, against the eigenvalues of `jax.hessian`'s matrix. The vector's error shrinks like
# $0.7^k$, and the Rayleigh quotient's like its square, $0.49^k$, until float32's rounding
# ($10^{-6}$ relative) stops it:

# %% tags=["demo"]
f_sharp = adcheck._quadratic_with([10.0, -7.0, 3.0, 1.0, 0.5, 0.1], 8)
x_sharp, v_start = jnp.zeros(6), jnp.ones(6)
power_iteration = jax.jit(top_eigenvalue, static_argnums=(0, 3))  # f and the step count are static
estimates = {k: float(power_iteration(f_sharp, x_sharp, v_start, k)) for k in range(0, 41, 5)}
exact = np.linalg.eigvalsh(np.asarray(jax.jit(jax.hessian(f_sharp))(x_sharp), np.float64))
print("eigenvalues of the dense Hessian:", np.round(exact, 4))
for k, estimate in estimates.items():
    print(f"{k:2} steps: {estimate:9.5f}   error {abs(estimate - 10.0):.1e}")

# %% [markdown]
# ## 10. Summary
#
# | goal | JAX | cost |
# |---|---|---|
# | $k$-th derivative of a scalar function | `jax.grad` applied $k$ times | each `grad` multiplies the cost by a small factor |
# | Hessian of $f : \mathbb{R}^n \to \mathbb{R}$ | `jax.jacfwd(jax.jacrev(f))` (= `jax.hessian`); keep `jacrev` inside | about $n$ gradients, $n^2$ memory |
# | Hessian-vector product | `jax.jvp(jax.grad(f), (x,), (v,))[1]`; or reverse-over-reverse, reverse-over-forward | a few times $f$; measure which variant is fastest |
# | per-example gradients | `jax.vmap(jax.grad(loss), in_axes=(None, 0, 0))` under `jit` | one batched program |
# | meta-gradient through an SGD step | `jax.grad` of the loss after the step | includes an HVP |
# | trace of the Hessian | mean of $v^\top H v$ over Rademacher $v$, vmapped HVPs | $N$ HVPs, error $\propto 1/\sqrt{N}$ |
# | Gauss–Newton product $J^\top J v$ | `jax.jvp` of $r$, then `jax.vjp` of $r$ | one JVP and one VJP of $r$ |
# | treat a value as a constant | `jax.lax.stop_gradient` | free |
# | TD(0) update | $-\nabla$ of $\frac12(\operatorname{sg}(\text{target}) - v_\theta(s))^2$ | one gradient |
# | straight-through estimator | `x - sg(x) + sg(round(x))` | free |
