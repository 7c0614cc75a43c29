"""Answers for source/03_custom_rules/custom_rules (custom_jvp and custom_vjp rules)."""

import textwrap

from . import PATCH_COMPARISONS, SHADOW_BUILTINS, Answer, attacks_on_the_checks, tampering_of

# custom_sumsq's declaration, for answers whose rule of it is what is wrong.
_SUMSQ = """
@jax.custom_vjp
def custom_sumsq(x):
    return jnp.sum(x**2)
"""

# The reference rule of custom_sumsq, which the answers of custom_vjp_grad_of_grad that get
# something else wrong put in front of their code.
_SUMSQ_RULE = _SUMSQ + """
def _fwd(x):
    return custom_sumsq(x), x

def _bwd(x, g):
    return (g * 2 * x,)

custom_sumsq.defvjp(_fwd, _bwd)
"""

# The reference answer of custom_vjp_grad_of_grad, for answers whose rule of custom_sumsq is wrong.
_GRAD_OF_GRAD = """
def custom_vjp_grad_of_grad(x):
    return jax.grad(lambda x: jnp.sum(jax.grad(custom_sumsq)(x)))(x)
"""

# clip_gradient_norm's declaration, for answers whose rule is what is wrong.
_CLIP_HEAD = """
import functools

@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def clip_gradient_norm(max_norm, x):
    return x
"""

# clip_gradient's declaration (the identity), for answers whose rule is what is wrong.
_CLIP_GRADIENT_HEAD = """
@jax.custom_vjp
def clip_gradient(lo, hi, x):
    return x
"""

# The functions of the custom_jvp exercises (log1pexp's stable one), for answers whose rule is
# what is wrong.
_STABLE_LOG1PEXP = """
@jax.custom_jvp
def log1pexp(x):
    return jnp.logaddexp(0.0, x)
"""

_SHRINK = """
@jax.custom_jvp
def shrink(x):
    return x / (1 + jnp.sqrt(x))
"""

_SAFE_NORM = """
@jax.custom_jvp
def safe_norm(x):
    return jnp.sqrt(jnp.sum(x**2))
"""


def _jvp_rule(name, body):
    """The custom_jvp rule of ``name``, a function of one argument: ``body``, given x and x_dot."""
    return f"""
@{name}.defjvp
def _{name}_jvp(primals, tangents):
    (x,), (x_dot,) = primals, tangents
{textwrap.indent(textwrap.dedent(body).strip(), "    ")}
"""


def _log1pexp_rule(derivative):
    """A custom_jvp rule of log1pexp whose derivative is ``derivative``."""
    return _jvp_rule("log1pexp", f"return log1pexp(x), {derivative} * x_dot")


_LOG1PEXP_RULE = _log1pexp_rule("jax.nn.sigmoid(x)")

# polar's declaration, for answers whose rule is what is wrong.
_POLAR = """
@jax.custom_vjp
def polar(point):
    x, y = point["x"], point["y"]
    return {"r": jnp.sqrt(x**2 + y**2), "theta": jnp.arctan2(y, x)}
"""

# polar's formulas as a plain function, for answers that differentiate them with JAX.
_POLAR_FORMULAS = """
def _formulas(point):
    x, y = point["x"], point["y"]
    return {"r": jnp.sqrt(x**2 + y**2), "theta": jnp.arctan2(y, x)}
"""

_POLAR_RULE = """
def _polar_fwd(point):
    value = polar(point)
    return value, (point["x"], point["y"], value["r"])

polar.defvjp(_polar_fwd, _polar_bwd)
"""


def _polar_with_bwd(body, *helpers):
    """polar with the reference's forward pass and a bwd rule ``body``, given the residuals x, y, r
    and the cotangent g; ``helpers`` are code blocks put before the rule."""
    bwd = "def _polar_bwd(res, g):\n    x, y, r = res\n"
    return (_POLAR, *helpers, bwd + textwrap.indent(textwrap.dedent(body).strip(), "    "),
            _POLAR_RULE)


WRONG = [
    Answer("log1pexp", "no custom rule: plain autodiff of log(1 + exp(x))", """
        def log1pexp(x):
            return jnp.log(1.0 + jnp.exp(x))
    """,
        says='log1pexp must be a function decorated with @jax.custom_jvp.'),
    Answer("log1pexp", "a stable rule but an overflowing value", ("""
        @jax.custom_jvp
        def log1pexp(x):
            return jnp.log(1.0 + jnp.exp(x))
    """, _LOG1PEXP_RULE),
        says='log1pexp gives nan or inf for x from -100 to 100'),
    Answer("log1pexp", "a rule that writes the sigmoid as exp(x) / (1 + exp(x))",
           (_STABLE_LOG1PEXP, _log1pexp_rule("jnp.exp(x) / (1.0 + jnp.exp(x))")),
        says='the derivative of log1pexp gives nan or inf for x from -100 to 100'),
    Answer("log1pexp", "a rule with the wrong derivative, sigmoid(-x)",
           (_STABLE_LOG1PEXP, _log1pexp_rule("jax.nn.sigmoid(-x)")),
        says='the derivative of log1pexp is wrong for x from -100 to 100'),
    Answer("log1pexp", "a rule with jax.nn.sigmoid: second derivatives lose their digits",
           (_STABLE_LOG1PEXP, _LOG1PEXP_RULE), says="JAX differentiates your rule's tangent"),
    Answer("shrink", "no custom rule: nan at 0", """
        def shrink(x):
            return x / (1 + jnp.sqrt(x))
    """,
        says='shrink must be a function decorated with @jax.custom_jvp.'),
    Answer("shrink", "a where in the function instead of a custom rule", """
        def shrink(x):
            return jnp.where(x > 0, x / (1 + jnp.sqrt(x)), 0.0)
    """,
        says='shrink must be a function decorated with @jax.custom_jvp.'),
    Answer("shrink", "derivative 0 at the boundary instead of 1", (_SHRINK, _jvp_rule("shrink", """
            root = jnp.sqrt(jnp.where(x > 0, x, 1.0))
            slope = jnp.where(x > 0, (1 + root / 2) / (1 + root) ** 2, 0.0)
            return shrink(x), slope * x_dot
        """)),
        says='the derivative of shrink is wrong for x = 0, 0.25, 1 and 4'),
    Answer("shrink", "forgets the tangent: returns the derivative itself",
           (_SHRINK, _jvp_rule("shrink", """
            root = jnp.sqrt(jnp.where(x > 0, x, 1.0))
            return shrink(x), jnp.where(x > 0, (1 + root / 2) / (1 + root) ** 2, 1.0)
        """)),
        says='the derivative of shrink is wrong for x = 0, 0.25, 1 and 4'),
    Answer("clip_gradient", "clips the value in the forward pass instead", """
        def clip_gradient(lo, hi, x):
            return jnp.clip(x, lo, hi)
    """,
        says='clip_gradient must be a function decorated with @jax.custom_vjp.'),
    Answer("clip_gradient", "the bwd returns only the cotangent of x", (_CLIP_GRADIENT_HEAD, """
        clip_gradient.defvjp(lambda lo, hi, x: (x, (lo, hi)),
                             lambda res, g: (jnp.clip(g, res[0], res[1]),))
    """),
        says="clip_gradient's bwd rule must return a tuple with one cotangent for each"),
    Answer("clip_gradient", "hard-coded bounds -1 and 1", (_CLIP_GRADIENT_HEAD, """
        clip_gradient.defvjp(lambda lo, hi, x: (x, None),
                             lambda res, g: (None, None, jnp.clip(g, -1.0, 1.0)))
    """),
        says='clip_gradient (cotangent of x) is wrong for a scalar x, lo = -0.5, hi = 0.5'),
    Answer("clip_gradient", "clips the residual x instead of the cotangent",
           (_CLIP_GRADIENT_HEAD, """
        clip_gradient.defvjp(lambda lo, hi, x: (x, (lo, hi, x)),
                             lambda res, g: (None, None, g * jnp.clip(res[2], res[0], res[1])))
    """),
        says='clip_gradient (cotangent of x) is wrong for lo = -1, hi = 1'),
    Answer("polar", "no custom rule", """
        def polar(point):
            x, y = point["x"], point["y"]
            return {"r": jnp.sqrt(x**2 + y**2), "theta": jnp.arctan2(y, x)}
    """,
        says='polar must be a function decorated with @jax.custom_vjp.'),
    Answer("polar", "the bwd returns the dict without the 1-tuple", _polar_with_bwd("""
            return {"x": g["r"] * x / r - g["theta"] * y / r**2,
                    "y": g["r"] * y / r + g["theta"] * x / r**2}
        """), says="polar_bwd's cotangents returned a dict {'x'"),
    Answer("polar", "transposed Jacobian: the theta terms swapped between x and y",
           _polar_with_bwd("""
            return ({"x": g["r"] * x / r + g["theta"] * x / r**2,
                     "y": g["r"] * y / r - g["theta"] * y / r**2},)
        """),
        says='dr/dx = x/r, dr/dy = y/r, dtheta/dx = -y/r**2, dtheta/dy = x/r**2.'),
    Answer("polar", "multiplies the cotangent by the Jacobian J instead of its transpose",
           _polar_with_bwd("""
            return ({"x": g["r"] * x / r + g["theta"] * y / r,
                     "y": -g["r"] * y / r**2 + g["theta"] * x / r**2},)
        """),
        says='it multiplies the cotangent by the Jacobian J instead of its transpose.'),
    Answer("polar", "dtheta with 1/r instead of 1/r**2", _polar_with_bwd("""
            return ({"x": g["r"] * x / r - g["theta"] * y / r,
                     "y": g["r"] * y / r + g["theta"] * x / r},)
        """),
        says='dr/dx = x/r, dr/dy = y/r, dtheta/dx = -y/r**2, dtheta/dy = x/r**2.'),
    Answer("polar", "the backward pass pulls back through jax.vjp of the formulas",
           _polar_with_bwd("""
            return jax.vjp(_formulas, {"x": x, "y": y})[1](g)
        """, _POLAR_FORMULAS),
        says='polar must not call jax.vjp.'),
    Answer("polar", "the forward pass saves JAX's own pullback as the residual", ("""
        from jax import vjp as _pullback_of
    """, _POLAR_FORMULAS, """
        @jax.custom_vjp
        def polar(point):
            return _formulas(point)

        def _polar_fwd(point):
            return _pullback_of(_formulas, point)

        def _polar_bwd(pullback, g):
            return pullback(g)

        polar.defvjp(_polar_fwd, _polar_bwd)
    """),
        says='polar uses jax.vjp, which this exercise forbids.'),
    Answer("polar", "the Jacobian by jax.jacfwd, contracted with the cotangent", _polar_with_bwd("""
            J = jnp.vectorize(jax.jacfwd(_one, argnums=(0, 1)), signature="(),()->(2),(2)")
            dx, dy = J(x, y)
            return ({"x": g["r"] * dx[..., 0] + g["theta"] * dx[..., 1],
                     "y": g["r"] * dy[..., 0] + g["theta"] * dy[..., 1]},)
        """, """
        def _one(x, y):
            return jnp.stack([jnp.sqrt(x**2 + y**2), jnp.arctan2(y, x)])
        """),
        says='polar must not call jax.jacfwd.'),
    Answer("clip_gradient", "a NumPy clip through pure_callback: breaks under vmap", ("""
        def _numpy_clip(g, lo, hi):
            return np.clip(g, lo, hi).astype(g.dtype)
    """, _CLIP_GRADIENT_HEAD, """
        def clip_gradient_fwd(lo, hi, x):
            return x, (lo, hi)

        def clip_gradient_bwd(res, g):
            lo, hi = res
            clipped = jax.pure_callback(_numpy_clip, jax.ShapeDtypeStruct(g.shape, g.dtype),
                                        g, lo, hi)
            return None, None, clipped

        clip_gradient.defvjp(clip_gradient_fwd, clip_gradient_bwd)
    """),
        says='clip_gradient under jax.vmap calls jax.pure_callback (NumPy code), which'),
    Answer("shrink", "the slope from NumPy through pure_callback: breaks under vmap", ("""
        def _numpy_slope(x):
            root = np.sqrt(x)
            return np.where(x > 0, (1 + root / 2) / (1 + root) ** 2, 1.0).astype(x.dtype)
    """, _SHRINK, _jvp_rule("shrink", """
            slope = jax.pure_callback(_numpy_slope, jax.ShapeDtypeStruct(x.shape, x.dtype), x)
            return shrink(x), slope * x_dot
        """)),
        says='shrink under jax.vmap calls jax.pure_callback (NumPy code), which has no'),
    Answer("clip_gradient_norm", "no nondiff_argnums: max_norm treated as an input", """
        @jax.custom_vjp
        def clip_gradient_norm(max_norm, x):
            return x

        def _clip_fwd(max_norm, x):
            return x, max_norm

        def _clip_bwd(max_norm, g):
            norm = jnp.sqrt(jnp.sum(g**2))
            scale = jnp.minimum(1.0, max_norm / jnp.where(norm > 0, norm, 1.0))
            return (None, g * scale)

        clip_gradient_norm.defvjp(_clip_fwd, _clip_bwd)
    """,
        says='clip_gradient_norm must declare nondiff_argnums=(0,).'),
    Answer("clip_gradient_norm", "nan for a zero cotangent", (_CLIP_HEAD, """
        def _clip_bwd(max_norm, res, g):
            norm = jnp.sqrt(jnp.sum(g**2))
            return (g / norm * jnp.minimum(norm, max_norm),)

        clip_gradient_norm.defvjp(lambda max_norm, x: (x, None), _clip_bwd)
    """),
        says='the VJP of clip_gradient_norm gives nan or inf for a zero cotangent'),
    Answer("clip_gradient_norm", "clips each entry instead of the norm", (_CLIP_HEAD, """
        def _clip_bwd(max_norm, res, g):
            return (jnp.clip(g, -max_norm, max_norm),)

        clip_gradient_norm.defvjp(lambda max_norm, x: (x, None), _clip_bwd)
    """),
        says='the VJP of clip_gradient_norm is wrong for a long cotangent, max_norm = 1'),
    Answer("clip_gradient_norm", "jnp.linalg.norm of g as it is: overflows for huge entries",
           (_CLIP_HEAD, """
        def _clip_bwd(max_norm, res, g):
            norm = jnp.linalg.norm(g.ravel())
            return (jnp.where(norm > max_norm, g * max_norm / jnp.maximum(norm, 1e-30), g),)

        clip_gradient_norm.defvjp(lambda max_norm, x: (x, None), _clip_bwd)
    """),
        says='the VJP of clip_gradient_norm is wrong for a huge cotangent'),
    Answer("clip_gradient_norm", "always rescales to max_norm, even short cotangents",
           (_CLIP_HEAD, """
        def _clip_bwd(max_norm, res, g):
            norm = jnp.sqrt(jnp.sum(g**2))
            return (g * max_norm / jnp.where(norm > 0, norm, 1.0),)

        clip_gradient_norm.defvjp(lambda max_norm, x: (x, None), _clip_bwd)
    """),
        says='the VJP of clip_gradient_norm is wrong for a short cotangent, max_norm = 10'),
    Answer("custom_vjp_grad_of_grad", "hard-coded twos", (_SUMSQ_RULE, """
        def custom_vjp_grad_of_grad(x):
            return jnp.full_like(x, 2.0)
    """),
        says="The result must come from custom_sumsq's registered rule."),
    Answer("custom_vjp_grad_of_grad", "differentiates a plain sum of squares, not the rule",
           (_SUMSQ_RULE, """
        def custom_vjp_grad_of_grad(x):
            return jax.grad(lambda x: jnp.sum(jax.grad(lambda x: jnp.sum(x**2))(x)))(x)
    """),
        says="The result must come from custom_sumsq's registered rule."),
    Answer("custom_vjp_grad_of_grad", "the residual is the value, not x", (_SUMSQ, """
        def _fwd(x):
            value = custom_sumsq(x)
            return value, value

        def _bwd(value, g):
            return (g * 2 * jnp.sqrt(value),)

        custom_sumsq.defvjp(_fwd, _bwd)
    """, _GRAD_OF_GRAD),
        says='shape (), expected (2,).'),
    Answer("custom_vjp_grad_of_grad", "_bwd without the trailing comma", (_SUMSQ, """
        def _fwd(x):
            return custom_sumsq(x), x

        def _bwd(x, g):
            return g * 2 * x

        custom_sumsq.defvjp(_fwd, _bwd)
    """, _GRAD_OF_GRAD),
        says="custom_sumsq's _bwd must return a tuple holding one cotangent, (g * 2 * x,)"),
    Answer("custom_vjp_grad_of_grad", "the first derivative instead of the second",
           (_SUMSQ_RULE, """
        def custom_vjp_grad_of_grad(x):
            return jax.grad(custom_sumsq)(x)
    """),
        says='The answer is the gradient of sum(grad(custom_sumsq)(x)).'),
    Answer("safe_norm", "plain norm: nan gradient at zero", """
        def safe_norm(x):
            return jnp.sqrt(jnp.sum(x**2))
    """,
        says='safe_norm must be a function decorated with @jax.custom_jvp.'),
    Answer("safe_norm", "a rule with a single where: nan at zero",
           (_SAFE_NORM, _jvp_rule("safe_norm", """
            norm = safe_norm(x)
            return norm, jnp.where(norm > 0, jnp.sum(x * x_dot) / norm, 0.0)
        """)),
        says='the gradient of safe_norm gives nan or inf for x = 0 of shape (3,)'),
    Answer("safe_norm", "a rule with the derivative of the squared norm", (_SAFE_NORM, _jvp_rule(
        "safe_norm", "return safe_norm(x), jnp.sum(2 * x * x_dot)")),
        says='the gradient of safe_norm is wrong for x = [3, 4]'),
]

ALTERNATIVES = [
    Answer("log1pexp",
           "a where-based stable value and a defjvps rule with a sigmoid of its own", """
        @jax.custom_jvp
        def log1pexp(x):
            return jnp.where(x > 0, x + jnp.log1p(jnp.exp(-jnp.abs(x))),
                             jnp.log1p(jnp.exp(-jnp.abs(x))))

        @jax.custom_jvp
        def sigmoid(x):
            return jax.nn.sigmoid(x)

        sigmoid.defjvps(lambda x_dot, value, x: x_dot * jax.nn.sigmoid(x) * jax.nn.sigmoid(-x))
        log1pexp.defjvps(lambda x_dot, value, x: x_dot * sigmoid(x))
    """),
    Answer("shrink", "the derivative written as 1/(1+r) - r/(2(1+r)^2) with a safe root",
           (_SHRINK, _jvp_rule("shrink", """
            root = jnp.sqrt(jnp.maximum(x, 0.0))
            slope = 1 / (1 + root) - root / (2 * (1 + root) ** 2)
            return shrink(x), slope * x_dot
        """))),
    Answer("clip_gradient", "named fwd and bwd with zero cotangents for the bounds",
           (_CLIP_GRADIENT_HEAD, """
        def _clip_fwd(lo, hi, x):
            return x, (lo, hi)

        def _clip_bwd(bounds, g):
            lo, hi = bounds
            return jnp.zeros_like(lo), jnp.zeros_like(hi), jnp.minimum(jnp.maximum(g, lo), hi)

        clip_gradient.defvjp(_clip_fwd, _clip_bwd)
    """)),
    Answer("polar", "residuals are the outputs: cos and sin of theta", """
        @jax.custom_vjp
        def polar(point):
            x, y = point["x"], point["y"]
            return {"r": jnp.hypot(x, y), "theta": jnp.arctan2(y, x)}

        def _polar_fwd(point):
            value = polar(point)
            return value, (value["r"], jnp.cos(value["theta"]), jnp.sin(value["theta"]))

        def _polar_bwd(res, g):
            r, c, s = res
            return ({"x": g["r"] * c - g["theta"] * s / r, "y": g["r"] * s + g["theta"] * c / r},)

        polar.defvjp(_polar_fwd, _polar_bwd)
    """),
    Answer("clip_gradient_norm", "jnp.linalg.norm of g scaled by its largest entry", """
        from functools import partial

        @partial(jax.custom_vjp, nondiff_argnums=(0,))
        def clip_gradient_norm(max_norm, x):
            return x

        def _fwd_norm(max_norm, x):
            return x, ()

        def _bwd_norm(max_norm, _, g):
            largest = jnp.max(jnp.abs(g))
            unit = g / jnp.where(largest > 0, largest, 1.0)
            norm = largest * jnp.linalg.norm(unit.ravel())
            return (jnp.where(norm > max_norm, g * max_norm / jnp.maximum(norm, 1e-30), g),)

        clip_gradient_norm.defvjp(_fwd_norm, _bwd_norm)
    """),
    Answer("custom_vjp_grad_of_grad", "grad of a vdot with ones instead of a sum", (_SUMSQ_RULE, """
        def custom_vjp_grad_of_grad(x):
            first = jax.grad(custom_sumsq)
            return jax.grad(lambda x: jnp.vdot(first(x), jnp.ones_like(x)))(x)
    """)),
    Answer("safe_norm", "double where: a safe norm inside the rule",
           (_SAFE_NORM, _jvp_rule("safe_norm", """
            norm = safe_norm(x)
            is_zero = norm == 0
            denominator = jnp.where(is_zero, 1.0, norm)
            return norm, jnp.where(is_zero, 0.0, jnp.vdot(x, x_dot) / denominator)
        """))),
]


_LOGDET_FWD = """
def logdet_fwd(A):
    L = jnp.linalg.cholesky(A)
    return 2.0 * jnp.sum(jnp.log(jnp.diagonal(L))), L
"""

# logdet as the value of its forward pass, for answers whose rule is what is wrong.
_LOGDET_BY_FWD = """
@jax.custom_vjp
def logdet(A):
    return logdet_fwd(A)[0]
"""

# The reference's backward pass of logdet and the registration of the rule, for answers whose
# function or forward pass is what is wrong.
_LOGDET_BWD_AND_REGISTER = """
def logdet_bwd(L, g):
    return (g * jax.scipy.linalg.cho_solve((L, True), jnp.eye(L.shape[0], dtype=L.dtype)),)

logdet.defvjp(logdet_fwd, logdet_bwd)
"""

WRONG += [
    Answer("logdet", "the log of the determinant, which overflows", ("""
        @jax.custom_vjp
        def logdet(A):
            return jnp.log(jnp.linalg.det(A))

        def logdet_fwd(A):
            return jnp.log(jnp.linalg.det(A)), jnp.linalg.cholesky(A)
        """, _LOGDET_BWD_AND_REGISTER), says="The determinant overflows"),
    Answer("logdet", "forgets the factor 2 (the sum of log L_ii is half of log det A)",
           (_LOGDET_BY_FWD, """
        def logdet_fwd(A):
            L = jnp.linalg.cholesky(A)
            return jnp.sum(jnp.log(jnp.diagonal(L))), L
        """, _LOGDET_BWD_AND_REGISTER), says="Every value is half the expected one"),
    Answer("logdet", "the backward pass returns g A instead of g A^-1",
           (_LOGDET_FWD, _LOGDET_BY_FWD, """
        def logdet_bwd(L, g):
            return (g * L @ L.T,)

        logdet.defvjp(logdet_fwd, logdet_bwd)
        """), says="This is g A"),
    Answer("logdet", "saves A and inverts it in the backward pass", (_LOGDET_BY_FWD, """
        def logdet_fwd(A):
            L = jnp.linalg.cholesky(A)
            return 2.0 * jnp.sum(jnp.log(jnp.diagonal(L))), A

        def logdet_bwd(A, g):
            return (g * jnp.linalg.inv(A),)

        logdet.defvjp(logdet_fwd, logdet_bwd)
        """), says="must save the Cholesky factor"),
    Answer("logdet", "saves the factor, but rebuilds A and inverts it in the backward pass",
           (_LOGDET_FWD, _LOGDET_BY_FWD, """
        def logdet_bwd(L, g):
            return (g * jnp.linalg.inv(L @ L.T),)

        logdet.defvjp(logdet_fwd, logdet_bwd)
        """), says="logdet_bwd computes an LU factorisation"),
    Answer("logdet", "factors A again by Cholesky in the backward pass",
           (_LOGDET_FWD, _LOGDET_BY_FWD, """
        def logdet_bwd(L, g):
            again = jnp.linalg.cholesky(L @ L.T)
            identity = jnp.eye(L.shape[0], dtype=L.dtype)
            return (g * jax.scipy.linalg.cho_solve((again, True), identity),)

        logdet.defvjp(logdet_fwd, logdet_bwd)
        """), says="logdet_bwd computes a Cholesky factorisation"),
    Answer("logdet", "the value by slogdet, the factor computed only to be saved",
           (_LOGDET_BY_FWD, """
        def logdet_fwd(A):
            return jnp.linalg.slogdet(A)[1], jnp.linalg.cholesky(A)
        """, _LOGDET_BWD_AND_REGISTER), says="logdet_fwd computes an LU factorisation"),
    Answer("logdet", "no custom rule: JAX differentiates the Cholesky factorisation", """
        def logdet(A):
            return 2.0 * jnp.sum(jnp.log(jnp.diagonal(jnp.linalg.cholesky(A))))

        def logdet_fwd(A):
            L = jnp.linalg.cholesky(A)
            return logdet(A), L

        def logdet_bwd(L, g):
            return (g * jax.scipy.linalg.cho_solve((L, True), jnp.eye(L.shape[0])),)
        """, says="logdet must be a function decorated with @jax.custom_vjp."),
]

ALTERNATIVES += [
    Answer("logdet", "two triangular solves, and the factor in a tuple", ("""
        @jax.custom_vjp
        def logdet(A):
            return 2.0 * jnp.sum(jnp.log(jnp.diagonal(jnp.linalg.cholesky(A))))

        def logdet_fwd(A):
            L = jnp.linalg.cholesky(A)
            return 2.0 * jnp.sum(jnp.log(jnp.diagonal(L))), (L,)

        def logdet_bwd(residuals, g):
            (L,) = residuals
            identity = jnp.eye(L.shape[0], dtype=L.dtype)
            L_inv = jax.scipy.linalg.solve_triangular(L, identity, lower=True)
            return (g * (L_inv.T @ L_inv),)

        logdet.defvjp(logdet_fwd, logdet_bwd)
        """,)),
]


TAMPERING = [
    tampering_of("patches numpy's comparisons", PATCH_COMPARISONS, WRONG,
                 "no custom rule: plain autodiff of log(1 + exp(x))"),
    tampering_of("shadows builtins in the notebook", SHADOW_BUILTINS, WRONG, "hard-coded twos"),
]

TAMPERING += attacks_on_the_checks(WRONG)
