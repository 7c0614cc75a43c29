# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Assignment 01 — Forward and reverse mode
#
# `jax.grad` is one special case of two more basic transformations: the
# **Jacobian-vector product** (`jax.jvp`, forward mode) and the **vector-Jacobian product**
# (`jax.vjp`, reverse mode). In this notebook you will learn
#
# * what JVPs and VJPs compute, how they are called, and what they cost in time and memory;
# * how to push many tangents or pull back many cotangents at once with `jax.vmap`;
# * how `jax.jacfwd` and `jax.jacrev` are built, and when each one is faster;
# * how both modes handle pytrees, `jax.jit`, and complex numbers.
#
# **How the exercises work.** Each exercise is a function with a docstring. Replace the
# placeholder in its answer cell with your code, run the cell, then run the test cell below it.
# The visible tests try a few small cases and, when something is wrong, say what they think the
# mistake is. At grading time hidden tests call your function again with more inputs, shapes
# and dtypes, and also under `jax.jit`, so write code that works for any shape, not only for the
# examples. Do not rename the functions or change their signatures.
#
# Cells that only show or time something carry the tag `demo`: grading does not run them, so
# what they print never counts towards your grade, and nothing that is graded depends on them.

# %% nbgrader={"grade_id": "setup", "locked": true}
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import adcheck

adcheck.setup()

# %% [markdown]
# All random numbers in this notebook come from one seeded NumPy generator: `normal(shape)`
# returns standard normal samples as a JAX array. Printed numbers go through `rounded`, which
# turns JAX arrays into rounded NumPy arrays.

# %%
rng = np.random.default_rng(0)


def normal(shape, dtype=np.float32):
    """Standard normal samples of `shape`, drawn by NumPy, as a JAX array of `dtype`."""
    return jnp.asarray(rng.standard_normal(shape).astype(dtype))


def rounded(a, decimals=4):
    """A rounded NumPy copy of `a` for printing (adding 0.0 turns -0.0 into 0.0)."""
    return np.round(np.asarray(a), decimals) + 0.0


# %% [markdown]
# ## 1. Jacobian-vector products (forward mode)
#
# ### The Jacobian as a linear map
#
# Take $f : \mathbb{R}^n \to \mathbb{R}^m$ and a point $x \in \mathbb{R}^n$. The Jacobian
# $\partial f(x)$ is usually written as an $m \times n$ matrix of partial derivatives,
# $\partial f(x)_{ij} = \partial f_i / \partial x_j$. It is more useful to read it as a
# **linear map**
#
# $$\partial f(x) : \mathbb{R}^n \to \mathbb{R}^m, \qquad v \mapsto \partial f(x)\, v,$$
#
# that sends a direction $v$ at the input (a *tangent* vector) to the direction in which $f(x)$
# moves, to first order: $f(x + \varepsilon v) = f(x) + \varepsilon\, \partial f(x)\, v +
# O(\varepsilon^2)$. This map is called the **pushforward** of $f$ at $x$; the matrix is just
# its representation in the standard bases.
#
# Forward-mode autodiff evaluates the **Jacobian-vector product** (JVP)
#
# $$(x, v) \mapsto \big(f(x),\ \partial f(x)\, v\big)$$
#
# without ever forming the matrix.

# %% [markdown]
# ### `jax.jvp` in code
#
# `jax.jvp(f, primals, tangents)` takes a tuple of inputs and a tuple of tangents of the same
# structure, shapes and dtypes, and returns the pair `(f(x), ∂f(x) v)`. In a Haskell-like
# notation, where `T a` is the type of tangents of values of type `a`:
#
# ```
# jvp :: (a -> b) -> a -> T a -> (b, T b)
# ```
#
# A small example, $f(x) = (x_0 x_1,\ \sin x_1 + x_2^2)$, whose Jacobian we can write by hand:
#
# $$\partial f(x) = \begin{pmatrix} x_1 & x_0 & 0 \\ 0 & \cos x_1 & 2 x_2 \end{pmatrix}.$$

# %% tags=["demo"]
def f(x):
    return jnp.stack([x[0] * x[1], jnp.sin(x[1]) + x[2] ** 2])


def jacobian_by_hand(x):
    return jnp.array([[x[1], x[0], 0.0],
                      [0.0, jnp.cos(x[1]), 2 * x[2]]])


x = jnp.array([1.0, 2.0, 3.0])
v = jnp.array([1.0, 0.5, -1.0])

y, jv = jax.jvp(f, (x,), (v,))
print("f(x)         =", rounded(y))
print("jvp          =", rounded(jv))
print("J(x) @ v     =", rounded(jacobian_by_hand(x) @ v))

# %% [markdown]
# A one-hot tangent $e_j$ picks out one **column** of the Jacobian: $\partial f(x)\, e_j$ is
# column $j$. So $n$ JVPs give the whole matrix, one column each.

# %% tags=["demo"]
columns = [jax.jvp(f, (x,), (e,))[1] for e in jnp.eye(3)]
print(rounded(jnp.stack(columns, axis=1)))
print(rounded(jacobian_by_hand(x)))

# %% [markdown]
# ### What a JVP costs
#
# `jax.jvp` runs `f` once, primitive by primitive, and next to every primitive it applies that
# primitive's JVP rule to the incoming tangent (for `sin`: multiply the tangent by `cos(x)`).
# The tangent produced by one step is consumed by the next one, so nothing has to be kept until
# the end:
#
# * **memory**: besides the values `f` itself keeps alive, a JVP only keeps their tangents, so
#   nothing accumulates as the number of sequential steps in `f` (its depth) grows;
# * **time**: each primitive's JVP rule costs a small constant multiple of the primitive
#   itself, so a JVP costs a small constant multiple of one evaluation of `f`.
#
# Let us measure both on a chain of dense layers $x \mapsto \tanh(W x)$ repeated `depth` times.
# We ask XLA for its own count of floating-point operations and for the size of the temporary
# buffers of the compiled programs.

# %% tags=["demo"]
WIDTH = 128
W = normal((WIDTH, WIDTH)) / np.sqrt(WIDTH)
x0 = normal((WIDTH,))


def tanh_chain(depth):
    """The map x -> tanh(W x), applied `depth` times."""
    def chain(x):
        for _ in range(depth):
            x = jnp.tanh(W @ x)
        return x
    return chain


def compiled_cost(fn, *args):
    """(FLOPs, temporary bytes) of fn compiled by XLA for these arguments."""
    compiled = jax.jit(fn).lower(*args).compile()
    return compiled.cost_analysis()["flops"], compiled.memory_analysis().temp_size_in_bytes


DEPTHS = [2, 4, 8]
costs = {}  # depth -> (FLOPs of f, temporary bytes of the JVP), reused in the next section
print(f"{'depth':>5} {'FLOPs f':>9} {'FLOPs jvp':>10} {'ratio':>6} {'jvp temp bytes':>15}")
for depth in DEPTHS:
    chain = tanh_chain(depth)
    flops_f, _ = compiled_cost(chain, x0)
    flops_jvp, temp_jvp = compiled_cost(lambda x, t: jax.jvp(chain, (x,), (t,)), x0, x0)
    costs[depth] = (flops_f, temp_jvp)
    print(f"{depth:>5} {flops_f:>9.0f} {flops_jvp:>10.0f} {flops_jvp / flops_f:>6.2f} "
          f"{temp_jvp:>15}")

# %% [markdown]
# The JVP does about twice the arithmetic of `f` at every depth (one matrix-vector product for
# the value, one for the tangent), and its temporary memory stays flat as the chain gets
# deeper.
#
# ### `jax.linearize`
#
# When you need many JVPs at the *same* point, `jax.linearize(f, x)` returns `f(x)` together
# with the function $v \mapsto \partial f(x)\, v$. It evaluates `f` once and keeps the values the
# linear map needs, so later calls only do the tangent arithmetic. The price is memory: it holds
# on to intermediate values, just like reverse mode (next section).

# %% tags=["demo"]
y, f_jvp = jax.linearize(f, x)
print(rounded(f_jvp(v)))
print(rounded(jax.jvp(f, (x,), (v,))[1]))

# %% [markdown]
# ## 2. Vector-Jacobian products (reverse mode)
#
# ### VJPs in math
#
# A JVP pushes a tangent forward. Reverse mode goes the other way: it takes a *cotangent*
# $w \in \mathbb{R}^m$, a vector shaped like the output, and returns
#
# $$(x, w) \mapsto w^\top \partial f(x) = \big(\partial f(x)^\top w\big)^\top \in \mathbb{R}^n,$$
#
# a vector shaped like the input. The linear map $w \mapsto \partial f(x)^\top w$ is called the
# **pullback** of $f$ at $x$. It is the transpose of the pushforward, which means it is the only
# linear map satisfying
#
# $$\langle w,\ \partial f(x)\, v \rangle = \langle \partial f(x)^\top w,\ v \rangle
# \quad \text{for all } v, w.$$
#
# ### `jax.vjp` in code
#
# `jax.vjp(f, x)` evaluates `f(x)` and returns it together with the pullback `vjp_fun`:
#
# ```
# vjp :: (a -> b) -> a -> (b, CT b -> CT a)
# ```
#
# where `CT a` is the type of cotangents for `a`. `vjp_fun` returns a **tuple** with one
# cotangent per positional argument of `f`, even when there is only one.

# %% tags=["demo"]
w = jnp.array([1.0, -1.0])

y, vjp_fun = jax.vjp(f, x)
(wJ,) = vjp_fun(w)
print("vjp        =", rounded(wJ))
print("J(x).T @ w =", rounded(jacobian_by_hand(x).T @ w))
print("<w, J v> =", rounded(jnp.dot(w, jv)), "  <J^T w, v> =", rounded(jnp.dot(wJ, v)))

# %% [markdown]
# A one-hot cotangent $e_i$ picks out one **row** of the Jacobian, so $m$ VJPs give the whole
# matrix, one row each:

# %% tags=["demo"]
rows = [vjp_fun(e)[0] for e in jnp.eye(2)]
print(rounded(jnp.stack(rows)))


# %% [markdown]
# For a scalar function $g : \mathbb{R}^n \to \mathbb{R}$ the Jacobian has a single row, the
# gradient. One VJP with the cotangent `1.0` returns it, whatever $n$ is. This is what
# `jax.grad` does, and why gradients of losses with millions of parameters are cheap.

# %% tags=["demo"]
def loss(x):
    return jnp.sum(jnp.tanh(x) ** 2)


value, loss_vjp = jax.vjp(loss, x)
print(rounded(loss_vjp(1.0)[0]))
print(rounded(jax.grad(loss)(x)))

# %% [markdown]
# ### What a VJP costs
#
# The pullback runs through `f` backwards: it needs the cotangent of the *last* step first. But
# each step's pullback depends on values computed on the way forward (for `tanh`, its output).
# So `jax.vjp` runs the forward pass, **stores** those intermediate values, called
# *residuals*, and the pullback reads them later.
#
# * **time**: again a small constant multiple of one evaluation of `f`;
# * **memory**: the residuals of every step are alive at the same time, so memory grows with
#   the depth of `f`.
#
# The functions returned by `jax.vjp` and `jax.linearize` are pytrees whose leaves are the
# arrays they hold on to, so we can count them. We also compile a JVP and a full VJP
# (forward pass and pullback in one program) and compare XLA's temporary buffers.

# %% tags=["demo"]
print(f"{'depth':>5} {'vjp arrays':>10} {'vjp bytes':>10} {'linearize arrays':>16} "
      f"{'FLOPs vjp/f':>11} {'jvp temp':>9} {'vjp temp':>9}")
for depth in DEPTHS:
    chain = tanh_chain(depth)
    _, chain_vjp = jax.vjp(chain, x0)
    _, chain_lin = jax.linearize(chain, x0)
    kept = jax.tree_util.tree_leaves(chain_vjp)
    flops_f, temp_jvp = costs[depth]
    flops_vjp, temp_vjp = compiled_cost(lambda x, c: jax.vjp(chain, x)[1](c), x0, x0)
    print(f"{depth:>5} {len(kept):>10} {sum(a.nbytes for a in kept):>10} "
          f"{len(jax.tree_util.tree_leaves(chain_lin)):>16} {flops_vjp / flops_f:>11.2f} "
          f"{temp_jvp:>9} {temp_vjp:>9}")


# %% [markdown]
# The pullback keeps the weight matrix (the backward pass multiplies by $W^\top$) plus two
# vectors per layer, so the number of stored arrays grows linearly with the depth. The compiled
# VJP's temporary memory grows linearly too, while the JVP's stays flat; the arithmetic of both
# is about twice that of `f`. For a deep network with large activations, these residuals are
# often what limits the batch size during training.

# %% [markdown]
# ## 3. Vector-valued gradients
#
# `jax.grad` only accepts functions with a scalar output. For $f : \mathbb{R}^n \to
# \mathbb{R}^m$ a useful substitute is the VJP with the cotangent of all ones,
#
# $$\mathbf{1}^\top \partial f(x) = \nabla_x \Big(\sum_i f_i(x)\Big),$$
#
# the gradient of the sum of the outputs. When `f` acts elementwise (like `jnp.tanh`), its
# Jacobian is diagonal and this is exactly the vector of elementwise derivatives.
#
# ### Exercise 1: `vgrad` (2 points)
#
# Write `vgrad(f, x)` that returns the gradient of `sum(f(x))` with respect to `x`.
#
# * `x` is a floating-point array of any shape; `f(x)` is an array of any shape, real or
#   complex. The result has the shape and dtype of `x`.
# * For a complex `f(x)`, "the gradient of `sum(f(x))`" means the gradient of its real part,
#   $\mathrm{Re} \sum f(x)$, a real function of the real `x` (section 9 returns to complex
#   functions).
# * Use **one** call of `jax.vjp`, and never form the Jacobian. Do not use `jax.grad`,
#   `jax.value_and_grad`, `jax.jacfwd`, `jax.jacrev`, `jax.jacobian` or `jax.hessian`.
# * Hint: the cotangent must look like the *output* `f(x)` (shape and dtype), and the pullback
#   returns a tuple.

# %% nbgrader={"grade_id": "vgrad", "solution": true}
def vgrad(f, x):
    """Gradient of sum(f(x)) with respect to x, computed with a single VJP.

    Args:
      f: a function from an array to an array.
      x: the point, an array of any shape.

    Returns:
      An array shaped like x: the pullback of a cotangent of ones shaped like f(x).
    """
    ### BEGIN SOLUTION
    y, vjp_fun = jax.vjp(f, x)
    (grad_x,) = vjp_fun(jnp.ones_like(y))
    return grad_x
    ### END SOLUTION


# %% nbgrader={"grade_id": "vgrad_tests", "points": 2}
adcheck.check_vgrad(vgrad)
### BEGIN HIDDEN TESTS
_Case = adcheck.Case
adcheck.check_vgrad(vgrad, jit=True, cases=[
    _Case("a scalar input, f(x) = (x, x**2, sin x)", lambda x: jnp.stack([x, x**2, jnp.sin(x)]),
         jnp.array(0.7)),
    _Case("f(x) = tanh(x) @ x.T, x of shape (3, 2)", lambda x: jnp.tanh(x) @ x.T,
         jnp.linspace(-1.0, 1.0, 6).reshape(3, 2)),
    _Case("a scalar output, x of shape (2, 2, 2)", lambda x: jnp.sum(x**2 * jnp.cos(x)),
         jnp.arange(8.0).reshape(2, 2, 2) / 8),
    _Case("f(x) = outer(x, cos x), x of shape (4,)", lambda x: jnp.outer(x, jnp.cos(x)),
         jnp.linspace(0.0, 1.0, 4)),
    _Case("a complex output, f(x) = x exp(ix)", lambda x: x * jnp.exp(1j * x),
         jnp.array([0.3, 1.2, -0.5])),
])
with jax.enable_x64(True):
    adcheck.check_vgrad(vgrad, jit=True, cases=[
        _Case("float64, f(x) = exp(x) * x[::-1]", lambda x: jnp.exp(x) * x[::-1],
             jnp.linspace(-1.0, 1.0, 5)),
        _Case("float64, f(x) = x @ x.T, x of shape (3, 3)", lambda x: x @ x.T,
             jnp.arange(9.0).reshape(3, 3) / 9),
    ])
### END HIDDEN TESTS

# %% [markdown]
# Two examples: the elementwise derivative of `tanh`, and `cumsum`, where input $j$ appears in
# the outputs $j, j+1, \dots, n-1$, so its gradient entry counts them.

# %% tags=["demo"]
print(rounded(vgrad(jnp.tanh, x)))
print(rounded(1 - jnp.tanh(x) ** 2))
print(rounded(vgrad(jnp.cumsum, jnp.zeros(5))))


# %% [markdown]
# ## 4. Jacobian-matrix and matrix-Jacobian products
#
# Often we need the Jacobian applied to many vectors at the same point, e.g. a block of
# probe vectors in a trace estimator, or all basis vectors (next section). Stack $k$
# cotangents as the rows of a matrix $M \in \mathbb{R}^{k \times m}$; pulling each one back
# gives the rows of the **matrix-Jacobian product**
#
# $$M\, \partial f(x) \in \mathbb{R}^{k \times n}.$$
#
# Stacking $k$ tangents as the rows of $M \in \mathbb{R}^{k \times n}$ and pushing each forward
# gives the rows of the **Jacobian-matrix product**, written with rows as the batch axis:
#
# $$\big(\partial f(x)\, M^\top\big)^\top = M\, \partial f(x)^\top \in \mathbb{R}^{k \times m}.$$
#
# The obvious implementation is a Python loop over the rows:

# %%
def loop_mjp(f, x, M):
    _, vjp_fun = jax.vjp(f, x)
    return jnp.stack([vjp_fun(row)[0] for row in M])


def loop_jmp(f, x, M):
    return jnp.stack([jax.jvp(f, (x,), (row,))[1] for row in M])


# %% [markdown]
# The loop runs $k$ separate matrix-vector computations, each dispatched on its own, and its
# program grows with $k$ if you `jit` it. Because the pullback and the pushforward are ordinary
# JAX functions of the (co)tangent, `jax.vmap` can instead batch them: every matrix-vector
# product inside becomes one matrix-matrix product, in one program whose size does not depend
# on $k$. For the pullback you only need to call `jax.vjp` once; the forward pass and its
# residuals are shared by all $k$ cotangents.
#
# Below, $M$ may have any number of trailing axes: its rows have the shape of $f(x)$
# (cotangents) or of $x$ (tangents), whatever those shapes are.
#
# ### Exercise 2: `vmap_mjp` (2 points)
#
# Write `vmap_mjp(f, x, M)` that pulls back every row of `M` through `f` at `x`.
#
# * `M` has shape `(k,) + f(x).shape`; the result has shape `(k,) + x.shape`, and row `i` is the
#   VJP of `M[i]`.
# * Use `jax.vjp` once and `jax.vmap`; no Python loop over the rows. Never form the Jacobian
#   (no `jax.jacfwd`, `jax.jacrev`, `jax.jacobian` or `jax.hessian`).
# * Hint: `jax.vmap` maps over the leading axis of its argument by default, and the pullback
#   returns a tuple (so does its vmapped version).

# %% nbgrader={"grade_id": "vmap_mjp", "solution": true}
def vmap_mjp(f, x, M):
    """Matrix-Jacobian product: pull back each row of M through f at x.

    Args:
      f: a function from an array to an array.
      x: the point, an array of any shape.
      M: cotangents stacked along axis 0, shape (k,) + f(x).shape.

    Returns:
      An array of shape (k,) + x.shape whose row i is the VJP of M[i].
    """
    ### BEGIN SOLUTION
    _, vjp_fun = jax.vjp(f, x)
    return jax.vmap(vjp_fun)(M)[0]
    ### END SOLUTION


# %% nbgrader={"grade_id": "vmap_mjp_tests", "points": 2}
adcheck.check_vmap_mjp(vmap_mjp)
### BEGIN HIDDEN TESTS
_Case = adcheck.Case
adcheck.check_vmap_mjp(vmap_mjp, jit=True, cases=[
    _Case("f(x) = x @ x.T, x of shape (2, 3), 5 covectors", lambda x: x @ x.T,
         jnp.linspace(-1.0, 1.0, 6).reshape(2, 3), jnp.linspace(0.0, 1.0, 20).reshape(5, 2, 2)),
    _Case("a scalar output, x of shape (4,), 3 covectors", lambda x: jnp.sum(jnp.sin(x) * x),
         jnp.arange(4.0), jnp.array([1.0, -2.0, 0.5])),
    _Case("a scalar input, f(x) = (x, x**2, x**3), 2 covectors",
         lambda x: jnp.stack([x, x**2, x**3]), jnp.array(1.5), jnp.arange(6.0).reshape(2, 3)),
    _Case("one covector, f(x) = cumsum(x)", jnp.cumsum, jnp.linspace(0.0, 2.0, 6),
         jnp.linspace(1.0, -1.0, 6)[None]),
])
with jax.enable_x64(True):
    adcheck.check_vmap_mjp(vmap_mjp, jit=True, cases=[
        _Case("float64, f(x) = tanh(x) * x[::-1], 4 covectors", lambda x: jnp.tanh(x) * x[::-1],
             jnp.linspace(-1.0, 1.0, 3), jnp.arange(12.0).reshape(4, 3) / 12),
    ])
### END HIDDEN TESTS


# %% [markdown]
# ### Exercise 3: `vmap_jmp` (2 points)
#
# Write `vmap_jmp(f, x, M)` that pushes every row of `M` forward through `f` at `x`.
#
# * `M` has shape `(k,) + x.shape`; the result has shape `(k,) + f(x).shape`, and row `i` is the
#   JVP of `M[i]`.
# * Use `jax.jvp` and `jax.vmap`; no Python loop over the rows. Never form the Jacobian
#   (no `jax.jacfwd`, `jax.jacrev`, `jax.jacobian` or `jax.hessian`).
# * Hint: write a function of a single tangent that returns only the tangent output of
#   `jax.jvp`, then vmap it.

# %% nbgrader={"grade_id": "vmap_jmp", "solution": true}
def vmap_jmp(f, x, M):
    """Jacobian-matrix product: push each row of M forward through f at x.

    Args:
      f: a function from an array to an array.
      x: the point, an array of any shape.
      M: tangents stacked along axis 0, shape (k,) + x.shape.

    Returns:
      An array of shape (k,) + f(x).shape whose row i is the JVP of M[i].
    """
    ### BEGIN SOLUTION
    return jax.vmap(lambda t: jax.jvp(f, (x,), (t,))[1])(M)
    ### END SOLUTION


# %% nbgrader={"grade_id": "vmap_jmp_tests", "points": 2}
adcheck.check_vmap_jmp(vmap_jmp)
### BEGIN HIDDEN TESTS
_Case = adcheck.Case
adcheck.check_vmap_jmp(vmap_jmp, jit=True, cases=[
    _Case("f(x) = x @ x.T, x of shape (2, 3), 5 vectors", lambda x: x @ x.T,
         jnp.linspace(-1.0, 1.0, 6).reshape(2, 3), jnp.linspace(0.0, 1.0, 30).reshape(5, 2, 3)),
    _Case("a scalar output, x of shape (4,), 3 vectors", lambda x: jnp.sum(jnp.sin(x) * x),
         jnp.arange(4.0), jnp.arange(12.0).reshape(3, 4)),
    _Case("a scalar input, f(x) = (x, x**2, x**3), 2 vectors",
         lambda x: jnp.stack([x, x**2, x**3]), jnp.array(1.5), jnp.array([1.0, -0.5])),
    _Case("one vector, f(x) = cumsum(x)", jnp.cumsum, jnp.linspace(0.0, 2.0, 6),
         jnp.linspace(1.0, -1.0, 6)[None]),
])
with jax.enable_x64(True):
    adcheck.check_vmap_jmp(vmap_jmp, jit=True, cases=[
        _Case("float64, f(x) = tanh(x) * x[::-1], 4 vectors", lambda x: jnp.tanh(x) * x[::-1],
             jnp.linspace(-1.0, 1.0, 3), jnp.arange(12.0).reshape(4, 3) / 12),
    ])
### END HIDDEN TESTS

# %% [markdown]
# Both versions agree with the loops:

# %% tags=["demo"]
chain = tanh_chain(2)
M_all = normal((256, WIDTH))  # 256 vectors; also used by the benchmark
M = M_all[:8]
print(np.allclose(vmap_mjp(chain, x0, M), loop_mjp(chain, x0, M), atol=1e-5))
print(np.allclose(vmap_jmp(chain, x0, M), loop_jmp(chain, x0, M), atol=1e-5))


# %% [markdown]
# ### Benchmark: loop versus `vmap`
#
# We time both on the two-layer chain above for a growing number $k$ of vectors. To be fair to
# the loop, its single-vector pullback and pushforward are compiled once with `jax.jit` and
# reused for every row, the rows are sliced out of $M$ in advance, and the loop returns the list
# of results (stacking them would only add time). The vmapped versions are compiled once per
# $k$. We report the best of a few repeats after a
# warm-up call, which also triggers compilation.

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
_, chain_vjp = jax.vjp(chain, x0)
pull_one = jax.jit(lambda c: chain_vjp(c)[0])
push_one = jax.jit(lambda t: jax.jvp(chain, (x0,), (t,))[1])
all_rows = [M_all[i] for i in range(len(M_all))]
ks = [1, 4, 16, 64, 256]
timings = {"loop mjp": [], "vmap mjp": [], "loop jmp": [], "vmap jmp": []}
for k in ks:
    M, rows = M_all[:k], all_rows[:k]
    timings["loop mjp"].append(best_time(lambda rows: [pull_one(r) for r in rows], rows))
    timings["loop jmp"].append(best_time(lambda rows: [push_one(r) for r in rows], rows))
    timings["vmap mjp"].append(best_time(jax.jit(lambda M: vmap_mjp(chain, x0, M)), M))
    timings["vmap jmp"].append(best_time(jax.jit(lambda M: vmap_jmp(chain, x0, M)), M))

fig, ax = plt.subplots(figsize=(5, 3.5))
for label, seconds in timings.items():
    ax.loglog(ks, np.array(seconds) * 1e6, "o-" if "vmap" in label else "s--", label=label)
ax.set_xlabel("number of vectors k")
ax.set_ylabel("best time (µs)")
ax.set_title("Python loop vs vmap")
ax.legend()
plt.show()

# %% [markdown]
# For one or a few vectors the loop can even win: the jitted `vmap_mjp` reruns the forward
# pass on every call, while the loop reuses residuals computed once, outside the timing. As $k$
# grows, the loops' time grows roughly in proportion to $k$, since every row pays a dispatch
# and a matrix-vector product. The vmapped versions grow much more slowly, because one program
# running one matrix-matrix product uses the hardware far better than $k$ separate
# matrix-vector products; for many vectors they are many times faster.

# %% [markdown]
# ## 5. Building `jacfwd` and `jacrev`
#
# The full Jacobian is the Jacobian-matrix product with the identity: pushing forward every
# standard basis vector of the input space gives every column, and pulling back every standard
# basis vector of the output space gives every row. With `jax.vmap` both are a single batched
# computation.
#
# For arrays of arbitrary shape, JAX's convention is that the Jacobian of $f$ at $x$ has shape
# `f(x).shape + x.shape`, with entry `J[i..., j...]` $= \partial f(x)_{i\ldots} / \partial
# x_{j\ldots}$. A standard basis of the input space is a stack of `x.size` one-hot arrays shaped
# like `x`; you get it by reshaping an identity matrix:

# %% tags=["demo"]
x_2d = jnp.zeros((2, 3))
basis = jnp.eye(x_2d.size, dtype=x_2d.dtype).reshape((x_2d.size,) + x_2d.shape)
print(basis.shape)
print(basis[4])


# %% [markdown]
# ### Exercise 4: `our_jacfwd` (3 points)
#
# Write `our_jacfwd(f)` that returns a function `jacfun(x)` equal to `jax.jacfwd(f)(x)`.
#
# * `x` and `f(x)` are arrays of any shapes (including scalars). The result has shape
#   `f(x).shape + x.shape` and the dtype that `jax.jacfwd` gives (the dtype of `f(x)`).
# * Use `jax.jvp` and `jax.vmap` over a basis of the input space. Do not use `jax.jacfwd`,
#   `jax.jacrev`, `jax.jacobian` or `jax.hessian`, and no Python loop over the basis.
# * Hint: vmapping over the basis puts the basis axis **first**, `(x.size,) + f(x).shape`;
#   `jnp.moveaxis` moves it to the end before you reshape it into `x.shape`.

# %% nbgrader={"grade_id": "our_jacfwd", "solution": true}
def our_jacfwd(f):
    """Forward-mode Jacobian of f, built from jax.jvp and jax.vmap.

    Args:
      f: a function from an array to an array.

    Returns:
      A function jacfun(x) returning the Jacobian of f at x, of shape f(x).shape + x.shape.
    """
    ### BEGIN SOLUTION
    def jacfun(x):
        basis = jnp.eye(x.size, dtype=x.dtype).reshape((x.size,) + x.shape)
        columns = jax.vmap(lambda t: jax.jvp(f, (x,), (t,))[1])(basis)
        y_shape = columns.shape[1:]
        return jnp.moveaxis(columns, 0, -1).reshape(y_shape + x.shape)
    return jacfun
    ### END SOLUTION


# %% nbgrader={"grade_id": "our_jacfwd_tests", "points": 3}
adcheck.check_our_jacfwd(our_jacfwd, jit=True)
### BEGIN HIDDEN TESTS
_Case = adcheck.Case
adcheck.check_our_jacfwd(our_jacfwd, jit=True, cases=[
    _Case("scalar to scalar, f(x) = x sin x", lambda x: x * jnp.sin(x), jnp.array(0.4)),
    _Case("scalar to vector, f(x) = (x, exp x, x**3)", lambda x: jnp.stack([x, jnp.exp(x), x**3]),
         jnp.array(-0.3)),
    _Case("matrix to scalar, f(x) = sum(tanh(x)**2), x of shape (3, 2)",
         lambda x: jnp.sum(jnp.tanh(x) ** 2), jnp.linspace(-1.0, 1.0, 6).reshape(3, 2)),
    _Case("vector to matrix, f(x) = outer(x, cos x), x of shape (4,)",
         lambda x: jnp.outer(x, jnp.cos(x)), jnp.linspace(0.0, 1.0, 4)),
    _Case("(2, 3) to (3, 2, 2), f(x)[j, i, k] = x[i, j] * sin(x[k, j])",
         lambda x: jnp.einsum("ij,kj->jik", x, jnp.sin(x)), jnp.arange(6.0).reshape(2, 3) / 6),
    _Case("a wide Jacobian, R^6 -> R^2", lambda x: jnp.stack([jnp.sum(x**2), jnp.prod(x)]),
         jnp.linspace(0.5, 1.5, 6)),
])
with jax.enable_x64(True):
    adcheck.check_our_jacfwd(our_jacfwd, jit=True, cases=[
        _Case("float64, f(x) = tanh(x @ x.T), x of shape (2, 3)", lambda x: jnp.tanh(x @ x.T),
             jnp.arange(6.0).reshape(2, 3) / 6),
        _Case("float64, scalar to vector", lambda x: jnp.stack([jnp.sin(x), x**2]),
             jnp.array(0.25)),
    ])
### END HIDDEN TESTS


# %% [markdown]
# ### Exercise 5: `our_jacrev` (3 points)
#
# Write `our_jacrev(f)` that returns a function `jacfun(x)` equal to `jax.jacrev(f)(x)`.
#
# * Same shapes as above: `f(x).shape + x.shape`, with the dtype that `jax.jacrev` gives (the
#   dtype of `x`).
# * Use one `jax.vjp` and `jax.vmap` over a basis of the **output** space (shape and dtype of
#   `f(x)`). Do not use `jax.jacfwd`, `jax.jacrev`, `jax.jacobian` or `jax.hessian`, and no
#   Python loop over the basis.
# * Hint: here the basis axis indexes the outputs, and the outputs come first in the Jacobian,
#   so check whether you need to move any axis at all.

# %% nbgrader={"grade_id": "our_jacrev", "solution": true}
def our_jacrev(f):
    """Reverse-mode Jacobian of f, built from jax.vjp and jax.vmap.

    Args:
      f: a function from an array to an array.

    Returns:
      A function jacfun(x) returning the Jacobian of f at x, of shape f(x).shape + x.shape.
    """
    ### BEGIN SOLUTION
    def jacfun(x):
        y, vjp_fun = jax.vjp(f, x)
        basis = jnp.eye(y.size, dtype=y.dtype).reshape((y.size,) + y.shape)
        (rows,) = jax.vmap(vjp_fun)(basis)
        return rows.reshape(y.shape + x.shape)
    return jacfun
    ### END SOLUTION


# %% nbgrader={"grade_id": "our_jacrev_tests", "points": 3}
adcheck.check_our_jacrev(our_jacrev, jit=True)
### BEGIN HIDDEN TESTS
_Case = adcheck.Case
adcheck.check_our_jacrev(our_jacrev, jit=True, cases=[
    _Case("scalar to scalar, f(x) = x sin x", lambda x: x * jnp.sin(x), jnp.array(0.4)),
    _Case("scalar to vector, f(x) = (x, exp x, x**3)", lambda x: jnp.stack([x, jnp.exp(x), x**3]),
         jnp.array(-0.3)),
    _Case("matrix to scalar, f(x) = sum(tanh(x)**2), x of shape (3, 2)",
         lambda x: jnp.sum(jnp.tanh(x) ** 2), jnp.linspace(-1.0, 1.0, 6).reshape(3, 2)),
    _Case("vector to matrix, f(x) = outer(x, cos x), x of shape (4,)",
         lambda x: jnp.outer(x, jnp.cos(x)), jnp.linspace(0.0, 1.0, 4)),
    _Case("(2, 3) to (3, 2, 2), f(x)[j, i, k] = x[i, j] * sin(x[k, j])",
         lambda x: jnp.einsum("ij,kj->jik", x, jnp.sin(x)), jnp.arange(6.0).reshape(2, 3) / 6),
    _Case("a wide Jacobian, R^6 -> R^2", lambda x: jnp.stack([jnp.sum(x**2), jnp.prod(x)]),
         jnp.linspace(0.5, 1.5, 6)),
])
with jax.enable_x64(True):
    adcheck.check_our_jacrev(our_jacrev, jit=True, cases=[
        _Case("float64, f(x) = tanh(x @ x.T), x of shape (2, 3)", lambda x: jnp.tanh(x @ x.T),
             jnp.arange(6.0).reshape(2, 3) / 6),
        _Case("float64, scalar to vector", lambda x: jnp.stack([jnp.sin(x), x**2]),
             jnp.array(0.25)),
    ])
### END HIDDEN TESTS


# %% [markdown]
# A check on a function from $2 \times 3$ matrices to $2 \times 2$ matrices, whose Jacobian has
# four axes:

# %% tags=["demo"]
def gram_tanh(X):
    return jnp.tanh(X @ X.T)


X = jnp.asarray(np.arange(6.0, dtype=np.float32).reshape(2, 3) / 6)
J_builtin = jax.jit(jax.jacfwd(gram_tanh))(X)
for name, builder in [("our_jacfwd", our_jacfwd), ("our_jacrev", our_jacrev)]:
    J = jax.jit(builder(gram_tanh))(X)
    print(name, J.shape, J.dtype, np.allclose(J, J_builtin, atol=1e-6))
print("jax.jacfwd", J_builtin.shape, J_builtin.dtype)

# %% [markdown]
# ## 6. When forward beats reverse
#
# For $f : \mathbb{R}^n \to \mathbb{R}^m$:
#
# * `jacfwd` pushes forward $n$ basis vectors: its cost is about $n$ times a JVP, and its memory
#   does not grow with the depth of $f$;
# * `jacrev` pulls back $m$ basis vectors: its cost is about $m$ times a VJP, plus the residuals
#   of one forward pass.
#
# So forward mode should win for **tall** Jacobians ($m \gg n$, few inputs, many outputs) and
# reverse mode for **wide** ones ($n \gg m$; a loss has $m = 1$). Near $m = n$ the constant
# factors decide, and those depend on the function, the sizes and the hardware, so the only
# reliable answer there is a measurement.
#
# Below, $f$ is a small network: a dense layer from $\mathbb{R}^n$ to 64 units, two hidden
# $64 \times 64$ layers with `tanh`, and a dense layer to $\mathbb{R}^m$. We keep the size of
# the Jacobian fixed, $n \cdot m = 4096$, and sweep the aspect ratio $m/n$ from $1/256$ to
# $256$ ($n = 1024, 64, 4$).
# Both Jacobians are jitted and timed after compilation.

# %% tags=["demo", "nbval-ignore-output"]
HIDDEN, SIZE, N_MAX = 64, 4096, 1024
# One draw of four (N_MAX, HIDDEN) blocks; every network uses slices of them.
blocks = np.asarray(normal((4, N_MAX, HIDDEN)))  # NumPy: slicing it compiles nothing
W_in_all = blocks[0].T  # (HIDDEN, N_MAX): the first n columns feed n inputs
W_hidden = [blocks[i, :HIDDEN] / HIDDEN ** 0.5 for i in (1, 2)]
W_out_all = blocks[3] / HIDDEN ** 0.5  # (N_MAX, HIDDEN): the first m rows give m outputs

def make_network(n, m):
    """A network R^n -> R^m built from slices of the shared weights."""
    layers = [W_in_all[:, :n] / n ** 0.5] + W_hidden

    def network(x):
        for layer in layers:
            x = jnp.tanh(layer @ x)
        return W_out_all[:m] @ x
    return network

ratios, t_fwd, t_rev = [], [], []
for n in [1024, 64, 4]:
    m = SIZE // n
    network, x_in = make_network(n, m), jnp.asarray(np.linspace(-1.0, 1.0, n, dtype=np.float32))
    ratios.append(m / n)
    t_fwd.append(best_time(jax.jit(jax.jacfwd(network)), x_in))
    t_rev.append(best_time(jax.jit(jax.jacrev(network)), x_in))

fig, ax = plt.subplots(figsize=(5, 3.5))
ax.loglog(ratios, np.array(t_fwd) * 1e6, "o-", label="jax.jacfwd")
ax.loglog(ratios, np.array(t_rev) * 1e6, "s-", label="jax.jacrev")
ax.axvline(1.0, color="gray", lw=0.8)
ax.set_xlabel("m / n  (outputs per input), n·m = 4096")
ax.set_ylabel("best time (µs)")
ax.set_title("Jacobian of R^n -> R^m")
ax.legend()
plt.show()

# %% [markdown]
# At the two ends the cost model holds: `jacrev` is many times faster for the widest Jacobian
# (left end) and `jacfwd` for the tallest (right end). Around $m/n \approx 1$ the two curves
# are close, and which one is ahead changes between runs and machines: this measurement gives
# no reason to expect either mode to have a systematic edge for square Jacobians. If it matters
# for your function, time both. (Memory is a separate argument: `jacfwd` stores no residuals,
# which can decide in its favour for deep functions.)

# %% [markdown]
# ## 7. Pytrees
#
# `jax.jvp`, `jax.vjp` and the Jacobian functions work on pytrees, not only arrays: tangents
# have the structure of the inputs, cotangents the structure of the outputs, and a pullback
# returns something with the structure of the inputs. Here is a tiny logistic model whose
# parameters are a dictionary.

# %% tags=["demo"]
params = {"W": normal((3,)), "b": normal(())}
inputs = jnp.array([[0.5, 1.1, 0.8],
                    [0.9, -1.1, 0.2],
                    [0.5, 0.1, -1.3],
                    [0.7, -2.5, 1.4]])


def predict(params, inputs):
    return jax.nn.sigmoid(inputs @ params["W"] + params["b"])


def predict_from_params(params):
    return predict(params, inputs)


# A tangent is a dictionary shaped like the parameters.
direction = jax.tree.map(jnp.ones_like, params)
probs, dprobs = jax.jvp(predict_from_params, (params,), (direction,))
print("predictions:", rounded(probs))
print("JVP        :", rounded(dprobs))

# A cotangent is shaped like the output; the pullback returns a dictionary.
probs, pull = jax.vjp(predict_from_params, params)
(cotangent_params,) = pull(jnp.ones_like(probs))
for name, value in cotangent_params.items():
    print(f"pullback[{name!r}]:", rounded(value))

# The Jacobian has one entry per parameter leaf, each of shape output.shape + leaf.shape.
jac = jax.jacrev(predict_from_params)(params)
print({name: value.shape for name, value in jac.items()})


# %% [markdown]
# The dictionary returned by the pullback is the gradient of the summed predictions, leaf by
# leaf, which is why `jax.grad` of a loss returns gradients with the same structure as the
# parameters, ready for `jax.tree.map(lambda p, g: p - lr * g, params, grads)`.

# %% [markdown]
# ## 8. `jit` of a pullback
#
# `jax.jit` traces a function with abstract values, so Python control flow that looks at the
# *value* of an input fails under `jit`:

# %%
def piecewise(x):
    if x < 3:
        return 2 * x ** 3
    return jnp.pi * x


try:
    jax.jit(piecewise)(4.0)
except jax.errors.TracerBoolConversionError as error:
    print(type(error).__name__)

# %% [markdown]
# `jax.vjp` evaluates the forward pass on the concrete input, so the `if` sees a real number and
# picks a branch. The pullback it returns is a pure, linear function of the cotangent alone: the
# residuals are fixed constants and the branch is already decided. That function contains no
# Python control flow on traced values, so it **can** be jitted. Like the pullback itself, the
# jitted version returns a tuple.

# %% tags=["demo"]
for point in [2.0, 4.0]:
    y, piecewise_vjp = jax.vjp(piecewise, point)
    fast_pull = jax.jit(piecewise_vjp)
    out_1, out_2 = fast_pull(1.0), fast_pull(2.0)
    print(f"x = {point}: returns a {type(out_1).__name__} of length {len(out_1)}; "
          f"pullback of 1.0 -> {rounded(out_1[0])!s}, "
          f"pullback of 2.0 -> {rounded(out_2[0])!s}")

print(jax.make_jaxpr(piecewise_vjp)(1.0).pretty_print(use_color=False))


# %% [markdown]
# At $x = 2$ the derivative is $6x^2 = 24$, at $x = 4$ it is $\pi$, and doubling the cotangent
# doubles the result, as it must for a linear map. The jaxpr of the pullback at $x = 4$ is a
# single multiplication by a stored constant. The compiled pullback is specialised to the
# point it came from: for another `x`, call `jax.vjp` again.

# %% [markdown]
# ## 9. Complex numbers
#
# ### $\mathbb{C}$ as $\mathbb{R}^2$
#
# Write $z = x + iy$ and $f(z) = u(x, y) + i\, v(x, y)$. As a map of $\mathbb{R}^2$, $f$ has the
# real $2 \times 2$ Jacobian
#
# $$J_{\mathbb{R}} = \begin{pmatrix} u_x & u_y \\ v_x & v_y \end{pmatrix}.$$
#
# A complex tangent $t = c + id$ is the real vector $(c, d)$, so the JVP of $f$ is
# unambiguous, holomorphic or not:
#
# $$\partial f(z)\, t = \begin{pmatrix} 1 & i \end{pmatrix} J_{\mathbb{R}}
# \begin{pmatrix} c \\ d \end{pmatrix} = (u_x c + u_y d) + i\,(v_x c + v_y d).$$
#
# We check this on the non-holomorphic $f(z) = z^2 \bar z$.

# %%
def f_complex(z):
    return z ** 2 * jnp.conj(z)


def f_as_real(p):
    """f_complex viewed as a map R^2 -> R^2."""
    out = f_complex(p[0] + 1j * p[1])
    return jnp.stack([jnp.real(out), jnp.imag(out)])


z = jnp.array(0.7 - 1.3j, dtype=jnp.complex64)
t = jnp.array(0.4 + 2.1j, dtype=jnp.complex64)
J_real = jax.jacfwd(f_as_real)(jnp.array([z.real, z.imag]))
print("J_R =\n", rounded(J_real))

_, jvp_complex = jax.jvp(f_complex, (z,), (t,))
c_d = J_real @ jnp.array([t.real, t.imag])
print("jax.jvp      :", rounded(jvp_complex))
print("[1 i] J_R t  :", rounded(c_d[0] + 1j * c_d[1]))


# %% [markdown]
# ### Wirtinger derivatives
#
# The JVP is real-linear in $t$ but not necessarily complex-linear. Every real-linear map
# $\mathbb{C} \to \mathbb{C}$ can be written uniquely as $t \mapsto A t + B \bar t$ for two
# complex numbers $A, B$. For the JVP of $f$ these are the **Wirtinger derivatives**
#
# $$A = \frac{\partial f}{\partial z} = \tfrac12 (f_x - i f_y), \qquad
# B = \frac{\partial f}{\partial \bar z} = \tfrac12 (f_x + i f_y),$$
#
# where $f_x = u_x + i v_x$ and $f_y = u_y + i v_y$. Writing $J(t)$ for the JVP along $t$, we
# have $J(1) = A + B$ and $J(i) = i(A - B)$, hence
#
# $$\frac{\partial f}{\partial z} = \frac{J(1) - i\, J(i)}{2}, \qquad
# \frac{\partial f}{\partial \bar z} = \frac{J(1) + i\, J(i)}{2}.$$
#
# $f$ is **holomorphic** exactly when $\partial f / \partial \bar z = 0$ (these are the
# Cauchy–Riemann equations); then the JVP is multiplication by the single complex number
# $f'(z) = \partial f / \partial z$. For $f(z) = z^2 \bar z$ we expect
# $\partial f / \partial z = 2 z \bar z = 2|z|^2$ and $\partial f / \partial \bar z = z^2$.
#
# ### Exercise 6: `wirtinger` (3 points)
#
# Write `wirtinger(f, z)` that returns the tuple `(df_dz, df_dzbar)`.
#
# * `z` is a complex scalar array (e.g. `complex64`) and `f` maps it to a complex scalar. Both
#   results are complex scalars of the dtype of `f(z)`.
# * Use forward mode: two calls of `jax.jvp` are enough. Do not use `jax.grad` or `jax.vjp`,
#   and no finite differences.
# * Hint: the tangents $1$ and $i$ must have the dtype of `z`; `jnp.ones_like(z)` and
#   `1j * jnp.ones_like(z)` do.

# %% nbgrader={"grade_id": "wirtinger", "solution": true}
def wirtinger(f, z):
    """Wirtinger derivatives of a complex function at a complex scalar, from two JVPs.

    Args:
      f: a function from a complex scalar to a complex scalar.
      z: the point, a complex scalar array.

    Returns:
      The tuple (df_dz, df_dzbar).
    """
    ### BEGIN SOLUTION
    one = jnp.ones_like(z)
    _, along_1 = jax.jvp(f, (z,), (one,))
    _, along_i = jax.jvp(f, (z,), (1j * one,))
    return (along_1 - 1j * along_i) / 2, (along_1 + 1j * along_i) / 2
    ### END SOLUTION


# %% nbgrader={"grade_id": "wirtinger_tests", "points": 3}
adcheck.check_wirtinger(wirtinger)
### BEGIN HIDDEN TESTS
_Case = adcheck.Case
_z = jnp.array(-0.6 + 1.1j, dtype=jnp.complex64)
_w = jnp.array(1.3 + 0.2j, jnp.complex64)
adcheck.check_wirtinger(wirtinger, jit=True, cases=[
    _Case("f(z) = exp(z)", jnp.exp, _z),
    _Case("f(z) = z**2 conj(z)", lambda z: z**2 * jnp.conj(z), _z),
    _Case("f(z) = real(z)", lambda z: jnp.real(z) + 0j, _z),
    _Case("f(z) = 3z + 2i conj(z)**2", lambda z: 3 * z + 2j * jnp.conj(z) ** 2, _z),
    _Case("f(z) = |z|**2 as a complex number", lambda z: z * jnp.conj(z), 0.5 * _z),
    _Case("f(z) = sin(z) at another point", jnp.sin, _w),
])
with jax.enable_x64(True):
    _u, _v = jnp.array(0.9 - 0.3j, jnp.complex128), jnp.array(2.0 + 1.0j, jnp.complex128)
    adcheck.check_wirtinger(wirtinger, jit=True, cases=[
        _Case("complex128, f(z) = z conj(z)**3", lambda z: z * jnp.conj(z) ** 3, _u),
        _Case("complex128, f(z) = log(z)", jnp.log, _v),
    ])
### END HIDDEN TESTS


# %% [markdown]
# `sin` is holomorphic, `conj` is the simplest function that is not, and $z^2 \bar z$ matches
# the values predicted above:

# %%
def show(name, pair):
    print(f"{name:<9} df/dz = {rounded(pair[0])!s}, "
          f"df/dzbar = {rounded(pair[1])!s}")


show("sin", wirtinger(jnp.sin, z))
print(f"{'':<9} cos(z) = {rounded(jnp.cos(z))!s}")
show("conj", wirtinger(jnp.conj, z))
show("z^2 conj", wirtinger(f_complex, z))
print(f"{'':<9} 2|z|^2 = {rounded(2 * abs(z) ** 2)!s}, "
      f"z^2 = {rounded(z ** 2)!s}")

# %% [markdown]
# ### The VJP convention
#
# JAX transposes complex-linear operations **without** conjugating: the transpose of
# $t \mapsto a t$ is $w \mapsto a w$, and the transpose of $t \mapsto \bar t$ is
# $w \mapsto \bar w$. Applied to $t \mapsto A t + B \bar t$, this gives the pullback
#
# $$w \mapsto A\, w + \overline{B\, w}.$$
#
# In terms of the real Jacobian, with $w = c + id$, this is
# $(c\, u_x - d\, v_x) - i\,(c\, u_y - d\, v_y)$: conjugate $w$, apply $J_{\mathbb{R}}^\top$
# to it as a real vector, and conjugate the result. We verify both forms numerically.

# %% tags=["demo"]
A, B = wirtinger(f_complex, z)
w = jnp.array(0.4 + 2.1j, dtype=jnp.complex64)
_, f_complex_vjp = jax.vjp(f_complex, z)
(pulled,) = f_complex_vjp(w)
(ux, uy), (vx, vy) = J_real
c, d = w.real, w.imag
print("jax.vjp                   :", rounded(pulled))
print("A w + conj(B w)           :", rounded(A * w + jnp.conj(B * w)))
print("(c ux - d vx) - i(c uy - d vy):",
      rounded((c * ux - d * vx) - 1j * (c * uy - d * vy)))

# %% [markdown]
# ### `jax.grad` with `holomorphic=True`
#
# For a function with complex output, `jax.grad(f, holomorphic=True)(z)` is the pullback of the
# cotangent $w = 1$, which by the formula above is
#
# $$\frac{\partial f}{\partial z} + \overline{\frac{\partial f}{\partial \bar z}}.$$
#
# For a holomorphic $f$ the second term vanishes and this is $f'(z)$: `grad` of `sin` is `cos`.
# JAX does **not** check the promise. For a non-holomorphic $f$ you silently get
# $A + \bar B$, which is not a derivative of $f$ in any complex sense; it equals `jax.grad` of
# the real part $\operatorname{Re} f$. For `conj` that is $0 + \bar 1 = 1$.

# %% tags=["demo"]
for name, fn in [("sin", jnp.sin), ("conj", jnp.conj), ("z^2 conj", f_complex)]:
    A, B = wirtinger(fn, z)
    print(f"{name:<9} grad(holomorphic=True) = "
          f"{rounded(jax.grad(fn, holomorphic=True)(z))!s}, "
          f"A + conj(B) = {rounded(A + jnp.conj(B))!s}, "
          f"grad(Re f) = {rounded(jax.grad(lambda s: jnp.real(fn(s)))(z))!s}")

# %% [markdown]
# ### Real losses of complex parameters
#
# For a real-valued $L(z)$, no `holomorphic` flag is needed. Since $L$ is real,
# $\partial L / \partial \bar z = \overline{\partial L / \partial z}$, and `jax.grad` returns
#
# $$\texttt{jax.grad}(L)(z) = 2\, \frac{\partial L}{\partial z} = L_x - i\, L_y .$$
#
# The direction of steepest *ascent* in the plane is $(L_x, L_y)$, i.e. the complex number
# $L_x + i L_y = 2\, \partial L / \partial \bar z$: the **conjugate** of what `jax.grad`
# returns. Gradient descent on complex parameters must therefore step along
# `-jnp.conj(jax.grad(L)(z))`. For $L(z) = |z - z^\star|^2$ we get
# `jax.grad(L)(z)` $= 2\,\overline{(z - z^\star)}$.

# %% tags=["demo"]
target = jnp.array(1.0 + 2.0j, dtype=jnp.complex64)


def distance_loss(z):
    return jnp.abs(z - target) ** 2


grad_loss = jax.jit(jax.grad(distance_loss))
print("jax.grad     :", rounded(grad_loss(z)))
print("2 conj(z - z*):", rounded(2 * jnp.conj(z - target)))

learning_rate = 0.1
z_right = z_wrong = jnp.zeros((), dtype=jnp.complex64)
print(f"{'step':>4} {'|z - z*|, conj step':>20} {'|z - z*|, raw step':>19}")
for step in range(21):
    if step % 5 == 0:
        print(f"{step:>4} {float(jnp.abs(z_right - target)):>20.4f} "
              f"{float(jnp.abs(z_wrong - target)):>19.4f}")
    z_right = z_right - learning_rate * jnp.conj(grad_loss(z_right))
    z_wrong = z_wrong - learning_rate * grad_loss(z_wrong)

# %% [markdown]
# With the conjugate the error shrinks by the factor $1 - 2\eta = 0.8$ every step. Without it the
# real part of the error still shrinks, but the step pushes the imaginary part *away* from the
# target, by the factor $1 + 2\eta = 1.2$ per step, so the iteration diverges.

# %% [markdown]
# ## 10. Summary
#
# | | JVP, forward mode | VJP, reverse mode |
# |---|---|---|
# | computes | $v \mapsto \partial f(x)\, v$ (pushforward) | $w \mapsto \partial f(x)^\top w$ (pullback) |
# | JAX call | `y, jv = jax.jvp(f, (x,), (v,))` | `y, vjp_fun = jax.vjp(f, x)`; `(g,) = vjp_fun(w)` |
# | one call reveals | a column of the Jacobian | a row of the Jacobian (a gradient, for scalar $f$) |
# | time | small constant multiple of $f$ | small constant multiple of $f$ |
# | extra memory | independent of the depth of $f$ | residuals of every step: grows with depth |
# | full Jacobian | `vmap` over $n$ input basis vectors: `jacfwd` | `vmap` over $m$ output basis vectors: `jacrev` |
# | use when | few inputs, many outputs ($m \gg n$), or memory is tight | many inputs, few outputs ($n \gg m$), e.g. losses |
# | complex numbers | $t \mapsto A t + B \bar t$, unambiguous | $w \mapsto A w + \overline{B w}$; descend along $-\overline{\texttt{grad}}$ |
#
# Near-square Jacobians have no fixed winner: measure.
