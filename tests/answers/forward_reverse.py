"""Answers for source/01_forward_reverse/forward_reverse (vgrad, products, Jacobians, Wirtinger)."""

import textwrap

from . import (
    DISABLE_JIT,
    PATCH_BUILTINS_MODULE,
    PATCH_COMPARISONS,
    REPLACE_CHECKS,
    SHADOW_BUILTINS,
    SILENCE_ERRORS,
    Answer,
    Tampering,
    attacks_on_the_checks,
    calls_the_builtin,
    tampering_of,
)


def _our_jac(name, jac_body):
    """``name``(f) (our_jacfwd or our_jacrev) that returns the function jac(x) of body
    ``jac_body``."""
    return f"""
def {name}(f):
    def jac(x):
{textwrap.indent(textwrap.dedent(jac_body).strip(), "        ")}
    return jac
"""


WRONG = [
    Answer("vgrad", "cotangent shaped like the input, not the output", """
        def vgrad(f, x):
            y, vjp_fn = jax.vjp(f, x)
            return vjp_fn(jnp.ones(x.shape))[0]
    """,
        says='vgrad gave a pullback (the function jax.vjp returns) a cotangent that is a'),
    Answer("vgrad", "returns the tuple of cotangents instead of its element", """
        def vgrad(f, x):
            y, vjp_fn = jax.vjp(f, x)
            return vjp_fn(jnp.ones_like(y))
    """,
        says='vgrad returned a tuple of length 1'),
    Answer("vgrad", "forward mode: J @ ones instead of ones @ J", """
        def vgrad(f, x):
            return jax.jvp(f, (x,), (jnp.ones_like(x),))[1]
    """,
        says='shape (2,), expected (2, 3).'),
    Answer("vgrad", "hard-coded to the first visible case, f(x) = 3 x**2", """
        def vgrad(f, x):
            return 6 * x
    """,
        says='vgrad is wrong for f(x) = sin(x) summed over axis 1, x of shape (2, 3)'),
    Answer("vgrad", "uses jax.grad, which the exercise forbids", """
        def vgrad(f, x):
            return jax.grad(lambda x: jnp.sum(f(x)).real)(x)
    """,
        says='vgrad must not call jax.grad.'),
    Answer("vgrad", "tuned to the two visible cases", """
        def vgrad(f, x):
            if x.ndim == 1:
                return 6 * x
            return jnp.cos(x)
    """,
        says='vgrad is wrong for a scalar input, f(x) = (x, x**2, sin x)'),
    Answer("vgrad", "a float32 cotangent whatever the output dtype", """
        def vgrad(f, x):
            y, vjp_fn = jax.vjp(f, x)
            return vjp_fn(jnp.ones(y.shape, dtype=jnp.float32))[0]
    """,
        says='vgrad gave a pullback (the function jax.vjp returns) a cotangent that is a'),
    Answer("vgrad", "sums the rows of the Jacobian built by jax.jacrev", """
        def vgrad(f, x):
            J = jax.jacrev(lambda x: f(x).real)(x)
            return jnp.sum(J, axis=tuple(range(J.ndim - x.ndim)))
    """,
        says='vgrad must not call jax.jacrev.'),
    Answer("vgrad", "pulls back every basis cotangent with vmap, then sums: forms the Jacobian", """
        def vgrad(f, x):
            y, vjp_fn = jax.vjp(f, x)
            basis = jnp.eye(y.size, dtype=y.dtype).reshape((y.size,) + y.shape)
            (rows,) = jax.vmap(vjp_fn)(basis)
            return jnp.sum(rows, axis=0)
    """,
        says='vgrad builds an array of 90000 entries for an input and an output of size'),
    Answer("vgrad", "a Python loop: one pullback per basis cotangent, summed", """
        def vgrad(f, x):
            y, vjp_fn = jax.vjp(f, x)
            total = jnp.zeros_like(x)
            for i in range(y.size):
                basis = jnp.zeros(y.size, y.dtype).at[i].set(1).reshape(y.shape)
                total = total + vjp_fn(basis)[0]
            return total
    """,
        says='vgrad builds a program whose size grows with the size of f(x) (32'),
    Answer("vmap_mjp", "M times the Jacobian from jax.jacrev", """
        def vmap_mjp(f, x, M):
            J = jax.jacrev(f)(x)
            y_ndim = J.ndim - x.ndim
            return jnp.tensordot(M, J, axes=y_ndim)
    """,
        says='vmap_mjp must not call jax.jacrev.'),
    Answer("vmap_mjp", "M times a Jacobian built from vmapped VJPs of the basis", """
        def vmap_mjp(f, x, M):
            y, vjp_fn = jax.vjp(f, x)
            basis = jnp.eye(y.size, dtype=y.dtype).reshape((y.size,) + y.shape)
            (J,) = jax.vmap(vjp_fn)(basis)
            return jnp.tensordot(M.reshape(M.shape[0], -1), J, axes=1)
    """,
        says='vmap_mjp builds an array of 90000 entries for 2 vectors of size 300'),
    Answer("vmap_jmp", "the Jacobian from jax.jacfwd applied to each row", """
        def vmap_jmp(f, x, M):
            J = jax.jacfwd(f)(x)
            y_ndim = J.ndim - x.ndim
            return jnp.moveaxis(jnp.tensordot(J, M, axes=(tuple(range(y_ndim, J.ndim)),
                                                          tuple(range(1, M.ndim)))), -1, 0)
    """,
        says='vmap_jmp must not call jax.jacfwd.'),
    Answer("vmap_mjp", "Python loop over the covectors", """
        def vmap_mjp(f, x, M):
            y, vjp_fn = jax.vjp(f, x)
            return jnp.stack([vjp_fn(m)[0] for m in M])
    """,
        says='vmap_mjp builds a program whose size grows with the number of vectors (23'),
    Answer("vmap_mjp", "returns the tuple from the vmapped VJP", """
        def vmap_mjp(f, x, M):
            y, vjp_fn = jax.vjp(f, x)
            return jax.vmap(vjp_fn)(M)
    """,
        says='vmap_mjp returned a tuple of length 1'),
    Answer("vmap_mjp", "pushes forward (JVP) instead of pulling back", """
        def vmap_mjp(f, x, M):
            return jax.vmap(lambda m: jax.jvp(f, (x,), (m,))[1])(M)
    """,
        says='vmap_mjp called jax.jvp with a tangent of shape (2,) for an input of shape'),
    Answer("vmap_jmp", "Python loop over the vectors", """
        def vmap_jmp(f, x, M):
            return jnp.stack([jax.jvp(f, (x,), (m,))[1] for m in M])
    """,
        says='vmap_jmp builds a program whose size grows with the number of vectors (27'),
    Answer("vmap_jmp", "pulls back (VJP) instead of pushing forward", """
        def vmap_jmp(f, x, M):
            y, vjp_fn = jax.vjp(f, x)
            return jax.vmap(vjp_fn)(M)[0]
    """,
        says='vmap_jmp gave a pullback (the function jax.vjp returns) a cotangent that is'),
    Answer("vmap_jmp", "maps over the wrong axis of M", """
        def vmap_jmp(f, x, M):
            return jax.vmap(lambda m: jax.jvp(f, (x,), (m,))[1], in_axes=1, out_axes=1)(M)
    """,
        says='vmap_jmp called jax.jvp with a tangent of shape (4,) for an input of shape'),
    calls_the_builtin("our_jacfwd", "jacfwd"),
    Answer("our_jacfwd", "calls the built-in through an alias imported in the cell", """
        from jax import jacobian as _jacobian

        def our_jacfwd(f):
            return _jacobian(f)
    """,
        says='our_jacfwd uses jax.jacobian, which this exercise forbids.'),
    Answer("our_jacfwd", "calls the built-in through JAX's private module", """
        import jax._src.api

        def our_jacfwd(f):
            return jax._src.api.jacfwd(f)
    """,
        says='our_jacfwd must not call jax.jacfwd.'),
    Answer("our_jacfwd", "calls the built-in through a static method of a class", """
        class _Tools:
            jacobian = staticmethod(jax.jacfwd)

        def our_jacfwd(f):
            return _Tools.jacobian(f)
    """,
        says='our_jacfwd uses jax.jacfwd, which this exercise forbids.'),
    Answer("our_jacfwd", "calls the function the built-in wraps, found by a computed name", """
        def our_jacfwd(f):
            return getattr(jax, "jac" + "fwd").__wrapped__(f)
    """,
        says='our_jacfwd must not call jax.jacfwd.'),
    Answer("our_jacfwd", "1-D only: eye(len(x)) and a transpose", _our_jac("our_jacfwd", """
            pushforward = lambda t: jax.jvp(f, (x,), (t,))[1]
            return jnp.transpose(jax.vmap(pushforward, in_axes=1)(jnp.eye(len(x))))
        """),
        says='our_jacfwd(f) called jax.jvp with a tangent of shape (2,) for an input of'),
    Answer("our_jacfwd", "Python loop over the basis", _our_jac("our_jacfwd", """
            basis = jnp.eye(x.size, dtype=x.dtype).reshape((x.size,) + x.shape)
            columns = [jax.jvp(f, (x,), (t,))[1] for t in basis]
            return jnp.stack(columns, axis=-1).reshape(columns[0].shape + x.shape)
        """),
        says='our_jacfwd builds a program whose size grows with the number of vectors (16'),
    Answer("our_jacfwd", "reverse mode under the forward-mode name", _our_jac("our_jacfwd", """
            y, vjp_fn = jax.vjp(f, x)
            basis = jnp.eye(y.size, dtype=y.dtype).reshape((y.size,) + y.shape)
            return jax.vmap(vjp_fn)(basis)[0].reshape(y.shape + x.shape)
        """),
        says='our_jacfwd must use forward mode, but it failed on a function that only'),
    Answer("our_jacfwd", "leaves the basis axis first: x.shape + y.shape",
           _our_jac("our_jacfwd", """
            basis = jnp.eye(x.size, dtype=x.dtype).reshape((x.size,) + x.shape)
            columns = jax.vmap(lambda t: jax.jvp(f, (x,), (t,))[1])(basis)
            return columns.reshape(x.shape + columns.shape[1:])
        """),
        says='its axes are swapped (the Jacobian transposed).'),
    Answer("our_jacfwd", "a basis made with the default dtype, float64 in 64-bit mode",
           _our_jac("our_jacfwd", """
            basis = jnp.eye(x.size).reshape((x.size,) + x.shape)
            columns = jax.vmap(lambda t: jax.jvp(f, (x,), (t,))[1])(basis)
            return jnp.moveaxis(columns, 0, -1).reshape(columns.shape[1:] + x.shape)
        """),
        says='called jax.jvp with a float64 tangent for a float32 input'),
    calls_the_builtin("our_jacrev", "jacrev"),
    Answer("our_jacrev", "1-D only: eye(len(y))", _our_jac("our_jacrev", """
            y, vjp_fn = jax.vjp(f, x)
            return jax.vmap(vjp_fn)(jnp.eye(len(y)))[0]
        """),
        says='our_jacrev(f) gave a pullback (the function jax.vjp returns) a cotangent'),
    Answer("our_jacrev", "forward mode under the reverse-mode name", _our_jac("our_jacrev", """
            basis = jnp.eye(x.size, dtype=x.dtype).reshape((x.size,) + x.shape)
            columns = jax.vmap(lambda t: jax.jvp(f, (x,), (t,))[1])(basis)
            return jnp.moveaxis(columns, 0, -1).reshape(columns.shape[1:] + x.shape)
        """),
        says='our_jacrev must use reverse mode, but it failed on a function that only'),
    Answer("our_jacrev", "Python loop over the rows", _our_jac("our_jacrev", """
            y, vjp_fn = jax.vjp(f, x)
            basis = jnp.eye(y.size, dtype=y.dtype).reshape((y.size,) + y.shape)
            rows = [vjp_fn(e)[0] for e in basis]
            return jnp.stack(rows).reshape(y.shape + x.shape)
        """),
        says='our_jacrev builds a program whose size grows with the number of vectors (14'),
    Answer("our_jacrev", "moves the row axis last, transposing the Jacobian",
           _our_jac("our_jacrev", """
            y, vjp_fn = jax.vjp(f, x)
            basis = jnp.eye(y.size, dtype=y.dtype).reshape((y.size,) + y.shape)
            rows = jax.vmap(vjp_fn)(basis)[0].reshape(y.shape + x.shape)
            return jnp.moveaxis(rows, tuple(range(y.ndim)), tuple(range(-y.ndim, 0)))
        """),
        says='its axes are swapped (the Jacobian transposed).'),
    Answer("wirtinger", "df/dz and df/dzbar swapped", """
        def wirtinger(f, z):
            along_real = jax.jvp(f, (z,), (jnp.ones_like(z),))[1]
            along_imag = jax.jvp(f, (z,), (1j * jnp.ones_like(z),))[1]
            return (along_real + 1j * along_imag) / 2, (along_real - 1j * along_imag) / 2
    """,
        says='You swapped df/dz and df/dzbar.'),
    Answer("wirtinger", "forgets the factor 1/2", """
        def wirtinger(f, z):
            along_real = jax.jvp(f, (z,), (jnp.ones_like(z),))[1]
            along_imag = jax.jvp(f, (z,), (1j * jnp.ones_like(z),))[1]
            return along_real - 1j * along_imag, along_real + 1j * along_imag
    """,
        says='Every value is twice the expected one: a factor is missing or extra.'),
    Answer("wirtinger", "from the real 2x2 Jacobian, but cast to complex64 always", """
        def wirtinger(f, z):
            def as_real(a, b):
                w = f(a + 1j * b)
                return jnp.real(w), jnp.imag(w)
            (ux, uy), (vx, vy) = jax.jacfwd(as_real, argnums=(0, 1))(jnp.real(z), jnp.imag(z))
            df_dz = (ux + vy + 1j * (vx - uy)) / 2
            df_dzbar = (ux - vy + 1j * (vx + uy)) / 2
            return df_dz.astype(jnp.complex64), df_dzbar.astype(jnp.complex64)
    """,
        says='dtype complex64, expected complex128.'),
    Answer("wirtinger", "grad(holomorphic=True) as df/dz and zero for df/dzbar", """
        def wirtinger(f, z):
            return jax.grad(f, holomorphic=True)(z), jnp.zeros_like(z)
    """,
        says='wirtinger must not call jax.grad.'),
    Answer("wirtinger", "drops the i on the imaginary direction", """
        def wirtinger(f, z):
            along_real = jax.jvp(f, (z,), (jnp.ones_like(z),))[1]
            along_imag = jax.jvp(f, (z,), (1j * jnp.ones_like(z),))[1]
            return (along_real - along_imag) / 2, (along_real + along_imag) / 2
    """,
        says='wirtinger (df/dz) is wrong for f(z) = sin(z)'),
    Answer("wirtinger", "central finite differences along 1 and i", """
        def wirtinger(f, z):
            h = 1e-3
            along_real = (f(z + h) - f(z - h)) / (2 * h)
            along_imag = (f(z + 1j * h) - f(z - 1j * h)) / (2 * h)
            return (along_real - 1j * along_imag) / 2, (along_real + 1j * along_imag) / 2
    """,
        says='wirtinger must use jax.jvp'),
    Answer("wirtinger", "hard-coded to sin: (cos z, 0)", """
        def wirtinger(f, z):
            return jnp.cos(z), jnp.zeros_like(z)
    """,
        says='wirtinger (df/dz) is wrong for f(z) = conj(z)'),
]

ALTERNATIVES = [
    Answer("vgrad", "one VJP of the summed output", """
        def vgrad(f, x):
            total, pullback = jax.vjp(lambda x: jnp.sum(f(x)), x)
            return pullback(jnp.ones_like(total))[0]
    """),
    Answer("vgrad", "explicit dtype and shape for the cotangent, tuple unpacking", """
        def vgrad(f, x):
            y, pullback = jax.vjp(f, x)
            (g,) = pullback(jnp.ones(y.shape, y.dtype))
            return g
    """),
    Answer("vmap_mjp", "vmaps a lambda that unpacks each pulled-back row", """
        def vmap_mjp(f, x, M):
            _, pullback = jax.vjp(f, x)
            return jax.vmap(lambda m: pullback(m)[0], in_axes=0, out_axes=0)(M)
    """),
    Answer("vmap_jmp", "linearize once, then vmap the linear map", """
        def vmap_jmp(f, x, M):
            _, f_lin = jax.linearize(f, x)
            return jax.vmap(f_lin)(M)
    """),
    Answer("our_jacfwd", "basis as a vmapped one-hot, output axis moved with transpose",
           _our_jac("our_jacfwd", """
            flat = x.reshape(-1)
            one_hot = lambda i: jax.nn.one_hot(i, flat.size, dtype=x.dtype).reshape(x.shape)
            push = lambda i: jax.jvp(f, (x,), (one_hot(i),))[1]
            cols = jax.vmap(push)(jnp.arange(flat.size))
            out_ndim = cols.ndim - 1
            order = tuple(range(1, out_ndim + 1)) + (0,)
            return jnp.transpose(cols, order).reshape(cols.shape[1:] + x.shape)
        """)),
    Answer("our_jacrev", "vmap over one-hot cotangents built from indices",
           _our_jac("our_jacrev", """
            y, pullback = jax.vjp(f, x)
            one_hot = lambda i: jax.nn.one_hot(i, y.size, dtype=y.dtype).reshape(y.shape)
            rows, = jax.vmap(lambda i: pullback(one_hot(i)))(jnp.arange(y.size))
            return rows.reshape(y.shape + x.shape)
        """)),
    Answer("wirtinger", "jax.linearize once, then the linear map along 1 and i", """
        def wirtinger(f, z):
            _, pushforward = jax.linearize(f, z)
            a = pushforward(jnp.ones_like(z))
            b = pushforward(jnp.full_like(z, 1j))
            return 0.5 * (a - 1j * b), 0.5 * (a + 1j * b)
    """),
]


TAMPERING = [
    tampering_of("patches numpy.testing, np.allclose, np.isclose and jnp.allclose",
                 PATCH_COMPARISONS, WRONG, "hard-coded to the first visible case, f(x) = 3 x**2"),
    tampering_of("shadows isinstance, all, abs and AssertionError in the notebook",
                 SHADOW_BUILTINS, WRONG, "moves the row axis last, transposing the Jacobian"),
    tampering_of("patches the builtins module itself", PATCH_BUILTINS_MODULE, WRONG,
                 "forgets the factor 1/2"),
    tampering_of("silences IPython's error display", SILENCE_ERRORS, WRONG,
                 "Python loop over the covectors"),
    tampering_of("replaces the check functions of adcheck", REPLACE_CHECKS, WRONG,
                 "pulls back (VJP) instead of pushing forward"),
    Tampering("patches numpy from inside the answer while it is being checked", (
        Answer("our_jacfwd", "", """
            def our_jacfwd(f):
                def jac(x):
                    import numpy
                    numpy.allclose = lambda *args, **kwargs: True
                    numpy.testing.assert_allclose = lambda *args, **kwargs: None
                    return jnp.zeros(jax.eval_shape(f, x).shape + x.shape, x.dtype)
                return jac
        """),)),
]

TAMPERING += attacks_on_the_checks(WRONG)

_PEEK_AT_THE_CHECK = """
def wirtinger(f, z):
    import sys
    frame = sys._getframe(1)
    while frame is not None:
        found = frame.f_locals.get("expected")
        if isinstance(found, tuple) and len(found) == 2:
            return found
        frame = frame.f_back
    return z, z
"""

_PEEK_THROUGH_A_TRACEBACK = """
def vgrad(f, x):
    try:
        raise RuntimeError
    except RuntimeError as error:
        frame = error.__traceback__.tb_frame
    while frame is not None:
        found = frame.f_locals.get("expected")
        if found is not None:
            return found
        frame = frame.f_back
    return x
"""

_LYING_ARRAY = """
import numpy as np

class _Close(float):
    def __sub__(self, other):
        return _Close(0.0)
    __rsub__ = __add__ = __radd__ = __sub__

    def __abs__(self):
        return _Close(0.0)

    def __lt__(self, other):
        return True
    __le__ = __gt__ = __ge__ = __eq__ = __lt__


def our_jacfwd(f):
    def jacobian(x):
        shape = jax.eval_shape(f, x).shape + x.shape
        return np.full(shape, _Close(0.0), dtype=object)
    return jacobian
"""

TAMPERING += [
    Tampering("reads the expected values from the frames of the check, or returns objects that "
              "compare equal to anything", (
                  Answer("wirtinger", "", _PEEK_AT_THE_CHECK),
                  Answer("vgrad", "", _PEEK_THROUGH_A_TRACEBACK),
                  Answer("our_jacfwd", "", _LYING_ARRAY))),
    Tampering("turns jit off for an answer that only works eagerly", (
        Answer("vgrad", "", DISABLE_JIT + """
def vgrad(f, x):
    np.asarray(x)  # fails on a tracer: the hidden tests run under jax.jit
    y, pullback = jax.vjp(f, x)
    return pullback(jnp.ones_like(y))[0]
"""),)),
]
