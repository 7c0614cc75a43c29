"""Answers for source/05_inside/inside (inside autodiff)."""

from . import PATCH_COMPARISONS, Answer, attacks_on_the_checks, tampering_of

# The reference Dual, one method per entry, so that a wrong answer replaces one rule.
_DUAL_METHODS = {
    "__init__": """
    def __init__(self, primal, tangent):
        self.primal = primal
        self.tangent = tangent
    """,
    "lift": """
    @staticmethod
    def lift(other):
        return other if isinstance(other, Dual) else Dual(other, jnp.zeros_like(other))
    """,
    "__add__": """
    def __add__(self, other):
        other = Dual.lift(other)
        return Dual(self.primal + other.primal, self.tangent + other.tangent)
    """,
    "__radd__": """
    def __radd__(self, other):
        return self + other
    """,
    "__neg__": """
    def __neg__(self):
        return Dual(-self.primal, -self.tangent)
    """,
    "__sub__": """
    def __sub__(self, other):
        return self + (-Dual.lift(other))
    """,
    "__rsub__": """
    def __rsub__(self, other):
        return Dual.lift(other) + (-self)
    """,
    "__mul__": """
    def __mul__(self, other):
        other = Dual.lift(other)
        return Dual(self.primal * other.primal,
                    self.tangent * other.primal + self.primal * other.tangent)
    """,
    "__rmul__": """
    def __rmul__(self, other):
        return self * other
    """,
    "__truediv__": """
    def __truediv__(self, other):
        other = Dual.lift(other)
        q = self.primal / other.primal
        return Dual(q, (self.tangent - q * other.tangent) / other.primal)
    """,
    "__rtruediv__": """
    def __rtruediv__(self, other):
        return Dual.lift(other) / self
    """,
    "__pow__": """
    def __pow__(self, n):
        return Dual(self.primal**n, n * self.primal ** (n - 1) * self.tangent)
    """,
    "sin": """
    def sin(self):
        return Dual(jnp.sin(self.primal), jnp.cos(self.primal) * self.tangent)
    """,
    "exp": """
    def exp(self):
        return Dual(jnp.exp(self.primal), jnp.exp(self.primal) * self.tangent)
    """,
    "log": """
    def log(self):
        return Dual(jnp.log(self.primal), self.tangent / self.primal)
    """,
}


def _dual(**replaced):
    """The class Dual with the methods of ``replaced`` (name -> code) instead of the reference's."""
    import textwrap

    methods = dict(_DUAL_METHODS, **replaced)
    body = "\n".join(textwrap.indent(textwrap.dedent(code).strip(), "    ") + "\n"
                     for code in methods.values())
    return "class Dual:\n" + body


_NEWTON_STEPS = """
def newton_steps(f, x0, consts):
    def step(_, x):
        value, slope = jax.jvp(lambda x: f(x, *consts), (x,), (jnp.ones_like(x),))
        return x - value / slope

    return jax.lax.fori_loop(0, 30, step, x0)
"""


def _newton_rule(cotangents):
    """newton_root with the reference's forward pass and a bwd rule returning ``cotangents``."""
    return (_NEWTON_STEPS, """
        def newton_root(f, x0):
            converted, consts = jax.closure_convert(f, x0)
            return newton_solve(converted, x0, *consts)

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
            return (jnp.zeros_like(x_star), *pullback(""" + cotangents + """))

        newton_solve.defvjp(newton_solve_fwd, newton_solve_bwd)
    """)



# The reference jvp_of_jaxpr, which wrong answers change in one place.
_JVP_OF_JAXPR = '''
def jvp_of_jaxpr(jaxpr, consts, primals, tangents):
    """(outputs, output tangents) of the program `jaxpr`, by one JVP rule per equation."""
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
'''


def _jvp_of_jaxpr(old, new):
    """The reference jvp_of_jaxpr with ``old`` replaced by ``new`` (which must be there)."""
    assert old in _JVP_OF_JAXPR, old
    return _JVP_OF_JAXPR.replace(old, new)


_NO_RULE = 'raise NotImplementedError(f"no JVP rule for the primitive {eqn.primitive.name}")'


def _rnn_sum(checkpoint):
    """rnn_sum_remat with its step wrapped by ``checkpoint`` (code of a decorator line)."""
    return """
        def rnn_sum_remat(W, xs):
            """ + checkpoint + """
            def step(h, x):
                h = jnp.tanh(W @ h + x)
                return h, jnp.sum(h)

            _, sums = jax.lax.scan(step, jnp.zeros(W.shape[0], xs.dtype), xs)
            return jnp.sum(sums)
        """


_COLOURS = """
def banded_jacobian(f, x, bandwidth):
    n, colours = x.shape[0], 2 * bandwidth + 1
    columns = jnp.arange(n)
    seeds = (columns[None, :] % colours == jnp.arange(colours)[:, None]).astype(x.dtype)
    pushed = jax.vmap(lambda t: jax.jvp(f, (x,), (t,))[1])(seeds)
"""

WRONG = [
    Answer("Dual", "the product rule multiplies the tangents", _dual(__mul__="""
        def __mul__(self, other):
            other = Dual.lift(other)
            return Dual(self.primal * other.primal, self.tangent * other.tangent)
        """), says="The rule to use: (x y)' = x' y + x y'."),
    Answer("Dual", "the quotient rule adds where it subtracts", _dual(__truediv__="""
        def __truediv__(self, other):
            other = Dual.lift(other)
            q = self.primal / other.primal
            return Dual(q, (self.tangent + q * other.tangent) / other.primal)
        """), says="The rule to use: (x / y)' = (x' y - x y') / y**2."),
    Answer("Dual", "log's tangent multiplies by x instead of dividing", _dual(log="""
        def log(self):
            return Dual(jnp.log(self.primal), self.tangent * self.primal)
        """), says="The rule to use: log(x)' = x' / x."),
    Answer("Dual", "c - x computes x - c", _dual(__rsub__="""
        def __rsub__(self, other):
            return self - other
        """), says="the primal of the result is wrong for c - x"),
    Answer("Dual", "the power rule forgets the factor n", _dual(__pow__="""
        def __pow__(self, n):
            return Dual(self.primal**n, self.primal ** (n - 1) * self.tangent)
        """), says="The rule to use: (x**n)' = n x**(n - 1) x'."),
    Answer("Dual", "sin's tangent is cos(x), not multiplied by the tangent", _dual(sin="""
        def sin(self):
            return Dual(jnp.sin(self.primal), jnp.cos(self.primal))
        """), says="The rule to use: sin(x)' = cos(x) x'."),
    Answer("Dual", "sin calls jax.jvp", _dual(sin="""
        def sin(self):
            return Dual(*jax.jvp(jnp.sin, (self.primal,), (self.tangent,)))
        """), says="Dual must not call jax.jvp."),
    Answer("Dual", "sin calls jax.jvp through an alias imported before the check",
           ("from jax import jvp as _pushforward", _dual(sin="""
        def sin(self):
            return Dual(*_pushforward(jnp.sin, (self.primal,), (self.tangent,)))
        """)), says="Dual must not call jax.jvp."),
    Answer("Dual", "exp finds jax.jvp by a computed name, bound before the check",
           ("_tangent_map = getattr(jax, 'j' + 'vp')", _dual(exp="""
        def exp(self):
            return Dual(*_tangent_map(jnp.exp, (self.primal,), (self.tangent,)))
        """)), says="Dual must not call jax.jvp."),
    Answer("Dual", "log calls jax's private jax._src.api.jvp", _dual(log="""
        def log(self):
            import jax._src.api
            return Dual(*jax._src.api.jvp(jnp.log, (self.primal,), (self.tangent,)))
        """), says="Dual must not call jax.jvp."),
    Answer("Dual", "sin applies JAX's JVP rule from jax.interpreters.ad", _dual(sin="""
        def sin(self):
            import jax.interpreters.ad
            rule = jax.interpreters.ad.primitive_jvps[jax.lax.sin_p]
            return Dual(*rule((self.primal,), (self.tangent,), accuracy=None))
        """), says="Dual's methods ran JAX's own differentiation"),
    Answer("Dual", "exp returns a tuple, not a Dual", _dual(exp="""
        def exp(self):
            return jnp.exp(self.primal), jnp.exp(self.primal) * self.tangent
        """), says="returned a tuple of 2"),
    Answer("vjp_from_linearize", "the pullback is the JVP itself, not its transpose", """
        def vjp_from_linearize(f, *primals):
            out, jvp_fn = jax.linearize(f, *primals)
            return out, lambda u: (jvp_fn(u),)
        """, says="a pullback applies its transpose"),
    Answer("vjp_from_linearize", "the pullback returns the cotangent, not a tuple of them", """
        def vjp_from_linearize(f, *primals):
            out, jvp_fn = jax.linearize(f, *primals)
            return out, lambda u: jax.linear_transpose(jvp_fn, *primals)(u)[0]
        """, says="the pullback returns a tuple with one cotangent per input"),
    Answer("vjp_from_linearize", "calls jax.vjp", """
        def vjp_from_linearize(f, *primals):
            return jax.vjp(f, *primals)
        """, says="vjp_from_linearize must not call jax.vjp."),
    Answer("jvp_from_vjp", "one VJP: J^T t instead of J t", """
        def jvp_from_vjp(f, x, t):
            y, pullback = jax.vjp(f, x)
            return y, pullback(t)[0]
        """, says="This is J^T t, one VJP"),
    Answer("jvp_from_vjp", "calls jax.jvp", """
        def jvp_from_vjp(f, x, t):
            return jax.jvp(f, (x,), (t,))
        """, says="jvp_from_vjp must not call jax.jvp."),
    Answer("jvp_from_vjp", "builds the Jacobian with jax.jacrev", """
        def jvp_from_vjp(f, x, t):
            J = jax.jacrev(f)(x)
            return f(x), jnp.tensordot(J, t, axes=t.ndim)
        """, says="jvp_from_vjp must not call jax.jacrev."),
    Answer("deep_checkpointed", "no checkpoint at all", """
        def deep_checkpointed(params, x, every):
            return deep(params, x)
        """, says="nothing is checkpointed"),
    Answer("deep_checkpointed", "every layer checkpointed on its own", """
        def deep_checkpointed(params, x, every):
            for p in params:
                x = jax.checkpoint(layer)(p, x)
            return x
        """, says="each layer is checkpointed on its own"),
    Answer("deep_checkpointed", "one checkpoint around the whole chain", """
        def deep_checkpointed(params, x, every):
            return jax.checkpoint(deep)(params, x)
        """, says="fewer than the"),
    Answer("deep_checkpointed", "drops the shorter last run of layers", """
        def deep_checkpointed(params, x, every):
            @jax.checkpoint
            def segment(ps, x):
                for p in ps:
                    x = layer(p, x)
                return x

            full = params.shape[0] - params.shape[0] % every
            for start in range(0, full, every):
                x = segment(params[start:start + every], x)
            return x
        """, says="is wrong for 10 layers, every = 3"),
    Answer("rnn_loss", "a Python loop over the sequence", """
        def rnn_loss(params, xs):
            h, total = jnp.zeros(params["W"].shape[0], xs.dtype), 0.0
            for x in xs:
                h = jnp.tanh(params["W"] @ h + params["U"] @ x)
                total = total + params["v"] @ h
            return total
        """, says="the loop is unrolled in Python"),
    Answer("rnn_loss", "a while_loop, which reverse mode refuses", """
        def rnn_loss(params, xs):
            def body(state):
                t, h, total = state
                h = jnp.tanh(params["W"] @ h + params["U"] @ xs[t])
                return t + 1, h, total + params["v"] @ h

            h0 = jnp.zeros(params["W"].shape[0], xs.dtype)
            return jax.lax.while_loop(lambda s: s[0] < xs.shape[0], body,
                                      (0, h0, jnp.zeros((), xs.dtype)))[2]
        """, says="which reverse mode cannot differentiate"),
    Answer("rnn_loss", "sums v . h_(t-1), the state before the update", """
        def rnn_loss(params, xs):
            def step(h, x):
                return jnp.tanh(params["W"] @ h + params["U"] @ x), params["v"] @ h

            _, outputs = jax.lax.scan(step, jnp.zeros(params["W"].shape[0], xs.dtype), xs)
            return jnp.sum(outputs)
        """, says="rnn_loss is wrong for"),
    Answer("newton_root", "no custom rule: differentiates the Newton steps", (_NEWTON_STEPS, """
        def newton_root(f, x0):
            converted, consts = jax.closure_convert(f, x0)
            return newton_steps(converted, x0, consts)
        """), says="must differentiate through a jax.custom_vjp rule"),
    Answer("newton_root", "a custom_vjp whose function closes over the traced values", """
        def newton_root(f, x0):
            return newton_solve(f, x0)

        @functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
        def newton_solve(f, x0):
            def step(_, x):
                value, slope = jax.jvp(f, (x,), (jnp.ones_like(x),))
                return x - value / slope
            return jax.lax.fori_loop(0, 30, step, x0)

        def newton_solve_fwd(f, x0):
            x_star = newton_solve(f, x0)
            return x_star, x_star

        def newton_solve_bwd(f, x_star, g):
            return (jnp.zeros_like(x_star),)

        newton_solve.defvjp(newton_solve_fwd, newton_solve_bwd)
        """, says="jax.closure_convert"),
    Answer("newton_root", "the rule's sign is flipped", _newton_rule("g / slope"),
           says="The sign is flipped."),
    Answer("newton_root", "the rule forgets to divide by f'(x*)", _newton_rule("-g"),
           says="The implicit rule: with w = g / f'(x*)"),
    Answer("newton_root", "the rule gives x0 the cotangent g instead of zero",
           (_NEWTON_STEPS, _newton_rule("-g / slope")[1].replace(
               "return (jnp.zeros_like(x_star), *pullback(", "return (g, *pullback(")),
           says="the rule's cotangent of x0 is zero"),
    Answer("jvp_of_jaxpr", "mul's rule forgets the term x y'", _jvp_of_jaxpr(
        '"mul": _bilinear_rule,',
        '"mul": lambda p, xs, ts, out, params: ts[0] * xs[1],'),
        says="(x y)' = x' y + x y'"),
    Answer("jvp_of_jaxpr", "div's rule forgets the second term", _jvp_of_jaxpr(
        '(ts[0] - out * ts[1]) / xs[1]', 'ts[0] / xs[1]'),
        says="(x / y)' = (x' - (x / y) y') / y"),
    Answer("jvp_of_jaxpr", "reads a literal as if it were a variable", _jvp_of_jaxpr(
        """        if isinstance(v, jax.extend.core.Literal):
            return v.val, jnp.zeros_like(v.val)
""", ""), says="jvp_of_jaxpr failed on a literal"),
    Answer("jvp_of_jaxpr", "skips a primitive it has no rule for instead of raising",
           _jvp_of_jaxpr(_NO_RULE, "rule = lambda p, xs, ts, out, params: jnp.zeros_like(out)"),
           says="it must raise NotImplementedError naming the primitive"),
    Answer("jvp_of_jaxpr", "raises NotImplementedError without saying which primitive",
           _jvp_of_jaxpr(_NO_RULE, 'raise NotImplementedError("no rule")'),
           says="raised NotImplementedError without naming erf"),
    Answer("jvp_of_jaxpr", "a literal's zero tangent in the default dtype (float64 in x64 mode)",
           _jvp_of_jaxpr("return v.val, jnp.zeros_like(v.val)",
                         "return v.val, jnp.zeros(jnp.shape(v.val))"),
           says="lax.mul requires arguments to have the same dtypes"),
    Answer("jvp_of_jaxpr", "calls jax.jvp on the program turned back into a function", """
        def jvp_of_jaxpr(jaxpr, consts, primals, tangents):
            f = jax.extend.core.jaxpr_as_fun(jax.extend.core.ClosedJaxpr(jaxpr, consts))
            return jax.jvp(f, tuple(primals), tuple(tangents))
        """, says="jvp_of_jaxpr must not call jax.jvp."),
    Answer("jvp_of_jaxpr", "calls jax's private jax._src.api.jvp", """
        def jvp_of_jaxpr(jaxpr, consts, primals, tangents):
            import jax._src.api
            f = jax.extend.core.jaxpr_as_fun(jax.extend.core.ClosedJaxpr(jaxpr, consts))
            if any(eqn.primitive.name == "erf" for eqn in jaxpr.eqns):
                raise NotImplementedError("erf")
            return jax._src.api.jvp(f, tuple(primals), tuple(tangents))
        """, says="jvp_of_jaxpr must not call jax.jvp."),
    Answer("jvp_of_jaxpr", "calls jax.jvp through an alias bound before the check",
           ("_push_forward = getattr(jax, 'j' + 'vp')", """
        def jvp_of_jaxpr(jaxpr, consts, primals, tangents):
            f = jax.extend.core.jaxpr_as_fun(jax.extend.core.ClosedJaxpr(jaxpr, consts))
            if any(eqn.primitive.name == "erf" for eqn in jaxpr.eqns):
                raise NotImplementedError("erf")
            return _push_forward(f, tuple(primals), tuple(tangents))
        """), says="jvp_of_jaxpr uses jax.jvp, which this exercise forbids"),
    Answer("jvp_of_jaxpr", "takes each rule from JAX's table in jax.interpreters.ad", """
        import jax.interpreters.ad

        def jvp_of_jaxpr(jaxpr, consts, primals, tangents):
            values = dict(zip(jaxpr.constvars, consts)) | dict(zip(jaxpr.invars, primals))
            tangent_of = {v: jnp.zeros_like(c) for v, c in zip(jaxpr.constvars, consts)}
            tangent_of |= dict(zip(jaxpr.invars, tangents))

            def read(v):
                if isinstance(v, jax.extend.core.Literal):
                    return v.val, jnp.zeros_like(v.val)
                return values[v], tangent_of[v]

            for eqn in jaxpr.eqns:
                if eqn.primitive.name == "erf":
                    raise NotImplementedError("erf")
                rule = jax.interpreters.ad.primitive_jvps[eqn.primitive]
                inputs, input_tangents = zip(*map(read, eqn.invars))
                out, out_dot = rule(inputs, input_tangents, **eqn.params)
                values[eqn.outvars[0]] = out
                tangent_of[eqn.outvars[0]] = out_dot
            return [read(v)[0] for v in jaxpr.outvars], [read(v)[1] for v in jaxpr.outvars]
        """, says="jvp_of_jaxpr ran JAX's own differentiation"),
    Answer("rnn_sum_remat", "no checkpoint: the pullback keeps the tanh too", _rnn_sum(""),
           says="keeps 3 arrays of the size of xs besides xs, more than two"),
    Answer("rnn_sum_remat", "a checkpoint with the default policy recomputes the product",
           _rnn_sum("@jax.checkpoint"), says="its backward pass recomputes W h"),
    Answer("rnn_sum_remat", "everything_saveable: the same as no checkpoint",
           _rnn_sum("@functools.partial(jax.checkpoint, "
                    "policy=jax.checkpoint_policies.everything_saveable)"),
           says="it keeps the tanh (or more) instead of recomputing it"),
    Answer("rnn_sum_remat", "saves a name that nothing in the step carries", _rnn_sum(
        "@functools.partial(jax.checkpoint, "
        "policy=jax.checkpoint_policies.save_only_these_names('product'))"),
           says="its backward pass recomputes W h"),
    Answer("rnn_sum_remat", "a Python loop of checkpointed steps, not a scan", """
        def rnn_sum_remat(W, xs):
            @functools.partial(jax.checkpoint,
                               policy=jax.checkpoint_policies.dots_with_no_batch_dims_saveable)
            def step(h, x):
                return jnp.tanh(W @ h + x)

            h, total = jnp.zeros(W.shape[0], xs.dtype), 0.0
            for x in xs:
                h = step(h, x)
                total = total + jnp.sum(h)
            return total
        """, says="rnn_sum_remat's program has no scan"),
    Answer("rnn_sum_remat", "sums the state before the update", """
        def rnn_sum_remat(W, xs):
            @functools.partial(jax.checkpoint,
                               policy=jax.checkpoint_policies.dots_with_no_batch_dims_saveable)
            def step(h, x):
                return jnp.tanh(W @ h + x), jnp.sum(h)

            _, sums = jax.lax.scan(step, jnp.zeros(W.shape[0], xs.dtype), xs)
            return jnp.sum(sums)
        """, says="rnn_sum_remat is wrong for"),
    Answer("banded_jacobian", "calls jax.jacfwd", """
        def banded_jacobian(f, x, bandwidth):
            return jax.jacfwd(f)(x)
        """, says="banded_jacobian must not call jax.jacfwd."),
    Answer("banded_jacobian", "one JVP per column, as jacfwd does", """
        def banded_jacobian(f, x, bandwidth):
            return jax.vmap(lambda t: jax.jvp(f, (x,), (t,))[1], out_axes=1)(
                jnp.eye(x.shape[0], dtype=x.dtype))
        """, says="pushed 12 tangents through f, expected 3"),
    Answer("banded_jacobian", "reads every entry from its colour, outside the band too",
           _COLOURS + "    return pushed[columns[None, :] % colours, columns[:, None]]\n",
           says="banded_jacobian is wrong for"),
]

ALTERNATIVES = [
    Answer("Dual", "a dataclass, with quotient and power written out", """
        import dataclasses

        @dataclasses.dataclass
        class Dual:
            primal: object
            tangent: object

            @staticmethod
            def of(v):
                return v if isinstance(v, Dual) else Dual(v, 0.0 * jnp.asarray(v))

            def __add__(self, o):
                o = Dual.of(o)
                return Dual(self.primal + o.primal, self.tangent + o.tangent)

            __radd__ = __add__

            def __neg__(self):
                return Dual(-self.primal, -self.tangent)

            def __sub__(self, o):
                o = Dual.of(o)
                return Dual(self.primal - o.primal, self.tangent - o.tangent)

            def __rsub__(self, o):
                return Dual.of(o) - self

            def __mul__(self, o):
                o = Dual.of(o)
                return Dual(self.primal * o.primal,
                            self.primal * o.tangent + self.tangent * o.primal)

            __rmul__ = __mul__

            def __truediv__(self, o):
                o = Dual.of(o)
                return Dual(self.primal / o.primal,
                            (self.tangent * o.primal - self.primal * o.tangent) / o.primal**2)

            def __rtruediv__(self, o):
                return Dual.of(o) / self

            def __pow__(self, n):
                return Dual(self.primal**n, n * self.primal ** (n - 1) * self.tangent)

            def sin(self):
                return Dual(jnp.sin(self.primal), self.tangent * jnp.cos(self.primal))

            def exp(self):
                e = jnp.exp(self.primal)
                return Dual(e, e * self.tangent)

            def log(self):
                return Dual(jnp.log(self.primal), self.tangent / self.primal)
        """),
    Answer("vjp_from_linearize", "example arguments of zeros, and the pullback as a lambda", """
        def vjp_from_linearize(f, *primals):
            out, jvp_fn = jax.linearize(f, *primals)
            examples = jax.tree.map(jnp.zeros_like, primals)
            transposed = jax.linear_transpose(jvp_fn, *examples)
            return out, lambda u: transposed(u)
        """),
    Answer("jvp_from_vjp", "the second VJP at y, and linear_transpose of the pullback", """
        def jvp_from_vjp(f, x, t):
            y, pullback = jax.vjp(f, x)
            return y, jax.linear_transpose(lambda u: pullback(u)[0], y)(t)[0]
        """),
    Answer("jvp_from_vjp", "the second VJP at y instead of zeros", """
        def jvp_from_vjp(f, x, t):
            y, pullback = jax.vjp(f, x)
            return y, jax.vjp(lambda u: pullback(u)[0], y)[1](t)[0]
        """),
    Answer("deep_checkpointed", "jax.remat with an explicit policy, segments by index", """
        def deep_checkpointed(params, x, every):
            def run(ps, x):
                for p in ps:
                    x = layer(p, x)
                return x

            segment = jax.remat(run, policy=jax.checkpoint_policies.nothing_saveable)
            starts = list(range(0, len(params), every))
            for start, stop in zip(starts, starts[1:] + [len(params)]):
                x = segment(params[start:stop], x)
            return x
        """),
    Answer("deep_checkpointed", "a balanced split: ceil(L / every) runs of nearly equal length",
           """
        def deep_checkpointed(params, x, every):
            @jax.checkpoint
            def run(ps, x):
                for p in ps:
                    x = layer(p, x)
                return x

            layers = params.shape[0]
            runs = -(-layers // every)
            bounds = [round(k * layers / runs) for k in range(runs + 1)]
            for start, stop in zip(bounds, bounds[1:]):
                x = run(params[start:stop], x)
            return x
        """),
    Answer("rnn_loss", "a fori_loop with a static trip count, accumulating in the carry", """
        def rnn_loss(params, xs):
            def body(t, state):
                h, total = state
                h = jnp.tanh(params["W"] @ h + params["U"] @ xs[t])
                return h, total + params["v"] @ h

            h0 = jnp.zeros(params["W"].shape[0], xs.dtype)
            return jax.lax.fori_loop(0, xs.shape[0], body, (h0, jnp.zeros((), xs.dtype)))[1]
        """),
    Answer("newton_root", "a while_loop forward and the rule's cotangent named w",
           (_NEWTON_STEPS.replace("jax.lax.fori_loop(0, 30, step, x0)",
                                  "jax.lax.while_loop(lambda s: s[0] < 30, lambda s: "
                                  "(s[0] + 1, step(0, s[1])), (0, x0))[1]"),
            _newton_rule("-(g / slope)")[1])),
    Answer("jvp_of_jaxpr", "a chain of if on the primitive, rules with jax.lax", """
        def jvp_of_jaxpr(jaxpr, consts, primals, tangents):
            env = {}
            for v, c in zip(jaxpr.constvars, consts):
                env[v] = (c, jax.lax.full_like(c, 0))
            for v, x, t in zip(jaxpr.invars, primals, tangents):
                env[v] = (x, t)

            def read(v):
                if type(v).__name__ == "Literal":
                    return v.val, jax.lax.full_like(jnp.asarray(v.val), 0)
                return env[v]

            for eqn in jaxpr.eqns:
                name, params = eqn.primitive.name, eqn.params
                (xs, ts) = zip(*[read(v) for v in eqn.invars])
                out = eqn.primitive.bind(*xs, **params)
                if name in ("neg", "add", "sub", "reduce_sum", "broadcast_in_dim", "transpose",
                            "reshape"):
                    t = eqn.primitive.bind(*ts, **params)
                elif name in ("mul", "dot_general"):
                    t = jax.lax.add(eqn.primitive.bind(ts[0], xs[1], **params),
                                    eqn.primitive.bind(xs[0], ts[1], **params))
                elif name == "sin":
                    t = jax.lax.cos(xs[0]) * ts[0]
                elif name == "cos":
                    t = jax.lax.neg(jax.lax.sin(xs[0])) * ts[0]
                elif name == "tanh":
                    t = ts[0] - out * out * ts[0]
                elif name == "exp":
                    t = out * ts[0]
                elif name == "log":
                    t = ts[0] / xs[0]
                elif name == "div":
                    t = ts[0] / xs[1] - xs[0] * ts[1] / (xs[1] * xs[1])
                elif name == "integer_pow":
                    n = params["y"]
                    t = n * jax.lax.integer_pow(xs[0], n - 1) * ts[0] if n != 1 else ts[0]
                else:
                    raise NotImplementedError(name)
                env[eqn.outvars[0]] = (out, t)
            pairs = [read(v) for v in jaxpr.outvars]
            return tuple(p for p, _ in pairs), tuple(t for _, t in pairs)
        """),
    Answer("rnn_sum_remat", "the product tagged with checkpoint_name and saved by name", """
        def rnn_sum_remat(W, xs):
            policy = jax.checkpoint_policies.save_only_these_names("product")

            @functools.partial(jax.checkpoint, policy=policy)
            def step(h, x):
                h = jnp.tanh(jax.ad_checkpoint.checkpoint_name(W @ h, "product") + x)
                return h, jnp.sum(h)

            _, sums = jax.lax.scan(step, jnp.zeros(W.shape[0], xs.dtype), xs)
            return jnp.sum(sums)
        """),
    Answer("rnn_sum_remat", "one checkpoint around the whole scan, dots_saveable", """
        def rnn_sum_remat(W, xs):
            def states(W, xs):
                def step(h, x):
                    h = jnp.tanh(jnp.dot(W, h) + x)
                    return h, h

                return jax.lax.scan(step, jnp.zeros(W.shape[0], xs.dtype), xs)[1]

            hs = jax.checkpoint(states, policy=jax.checkpoint_policies.dots_saveable)(W, xs)
            return jnp.sum(hs)
        """),
    Answer("banded_jacobian", "a Python loop over the colours, entries set one band at a time", """
        def banded_jacobian(f, x, bandwidth):
            n, colours = x.shape[0], 2 * bandwidth + 1
            J = jnp.zeros((n, n), x.dtype)
            rows = jnp.arange(n)
            for c in range(colours):
                seed = (jnp.arange(n) % colours == c).astype(x.dtype)
                pushed = jax.jvp(f, (x,), (seed,))[1]
                for offset in range(-bandwidth, bandwidth + 1):
                    cols = rows + offset
                    ok = (cols >= 0) & (cols < n) & (cols % colours == c)
                    J = J.at[rows, jnp.clip(cols, 0, n - 1)].add(jnp.where(ok, pushed, 0.0))
            return J
        """),
]


TAMPERING = [
    tampering_of("patches numpy's comparisons", PATCH_COMPARISONS, WRONG,
                 "one VJP: J^T t instead of J t"),
] + attacks_on_the_checks(WRONG)
