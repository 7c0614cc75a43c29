"""Assignment 05: inside autodiff (shipped to its students only).
"""

import contextlib
import operator
import sys

import jax
import jax.numpy as jnp
import numpy as np

from .calls import _DERIVATIVES, _JACOBIANS, Case, _call, _compare, _describe
from .evidence import Failed, Mistake, _oracle, _probing
from .exercise import Exercise, Require, _compare_tree, _normal, _run, _to64, _uses_mode
from .mechanisms import _program, _require_small_intermediates


class _Plain:
    """A JAX array behind the interface of the ``Dual`` exercise (arithmetic with numbers and
    with each other, ``x.sin()``, ``x.exp()``, ``x.log()``, ``x ** n``): the exercise's test
    functions run on it to give the oracle, ``jax.jvp`` of the same function."""

    def __init__(self, value):
        self.value = value

    def sin(self):
        return _Plain(jnp.sin(self.value))

    def exp(self):
        return _Plain(jnp.exp(self.value))

    def log(self):
        return _Plain(jnp.log(self.value))

    def __neg__(self):
        return _Plain(-self.value)


def _plain_operator(op, swapped):
    def apply(self, other):
        other = other.value if isinstance(other, _Plain) else other
        return _Plain(op(other, self.value) if swapped else op(self.value, other))
    return apply


for _op in ("add", "sub", "mul", "truediv", "pow"):
    setattr(_Plain, f"__{_op}__", _plain_operator(getattr(operator, _op), False))
    setattr(_Plain, f"__r{_op}__", _plain_operator(getattr(operator, _op), True))


del _op


# One operation each, in the order a dual number is built: the first that fails names its rule.
# Each function uses only its own operation and those of the rules before it.
_DUAL_RULES = (  # (code, the operation, a function that uses it, its rule)
    ("sin", "x.sin()", lambda x: x.sin(), "sin(x)' = cos(x) x'"),
    ("exp", "x.exp()", lambda x: x.exp(), "exp(x)' = exp(x) x'"),
    ("log", "x.log()", lambda x: x.log(), "log(x)' = x' / x"),
    ("negation", "-x", lambda x: -x, "(-x)' = -x'"),
    ("sum", "x + y", lambda x: x + x.sin(), "(x + y)' = x' + y'"),
    ("sum-constant", "x + c and c + x", lambda x: (2.0 + x) + 1.5, "(x + c)' = x'"),
    ("difference", "x - y", lambda x: x - x.exp(), "(x - y)' = x' - y'"),
    ("constant-minus", "c - x", lambda x: 3.0 - x, "(c - x)' = -x'"),
    ("product", "x * y", lambda x: x * x.sin(), "(x y)' = x' y + x y'"),
    ("constant-product", "c * x and x * c", lambda x: 2.0 * x * 3.0, "(c x)' = c x'"),
    ("quotient", "x / y", lambda x: x.sin() / x.exp(), "(x / y)' = (x' y - x y') / y**2"),
    ("constant-over", "c / x", lambda x: 2.0 / x, "(c / x)' = -c x' / x**2"),
    ("power", "x ** n", lambda x: x ** 3, "(x**n)' = n x**(n - 1) x'"),
)


def _dual_cases():
    x, t = jnp.array([0.5, 1.0, 2.0]), jnp.array([1.0, -1.0, 0.5])
    cases = [Case(f"{name}, x = [0.5, 1, 2]", f, x, t) for _, name, f, _ in _DUAL_RULES]
    return cases + [
        Case("f(x) = x.sin() * x.exp() / (1 + x ** 2), x of shape (3,)",
             lambda x: x.sin() * x.exp() / (1.0 + x ** 2), x, t),
        Case("f(x) = (x * x.log() - 2 / x) ** 2, x of shape (2, 2)",
             lambda x: (x * x.log() - 2.0 / x) ** 2, jnp.array([[0.5, 1.5], [2.0, 3.0]]),
             jnp.ones((2, 2))),
    ]


def _dual_rule(label):
    """The named mistake of the rule a case with this label tests, or None."""
    return next((Mistake(f"Dual/{code}", f"The rule to use: {rule}.")
                 for code, name, _, rule in _DUAL_RULES if label.startswith(name + ",")), None)


def _dual_case(exercise, Dual, case, jit):
    f, x, t = case.args

    def run(x, t):
        out = f(Dual(x, t))
        if not hasattr(out, "primal") or not hasattr(out, "tangent"):
            raise Failed(exercise.mistakes["not-a-dual"].format(got=_describe(out)),
                         exercise.mistakes["not-a-dual"].code)
        return out.primal, out.tangent

    primal, tangent = _run("Dual", run, (x, t), jit)
    y, y_dot = _oracle(lambda: jax.jit(
        lambda x, t: jax.jvp(lambda x: f(_Plain(x)).value, (x,), (t,)))(x, t), parts=2)
    _compare("the primal of the result", case, primal, y)
    rule = _dual_rule(case.label)
    _compare("the tangent of the result", case, tangent, y_dot, hints=[rule] if rule else [])


@contextlib.contextmanager
def _counting_differentiation():
    """Count every entry into JAX's differentiation while the block runs, whatever name reached
    it: a JVP, linearize or jet trace made (jax.jvp, grad, vjp, linearize, jet and their
    aliases and private paths all make one), or a JVP rule of JAX's table called directly.
    Yields a list that grows by one per entry."""
    from jax._src.interpreters import ad

    entries, patched = [], []
    traces = [ad.JVPTrace, ad.LinearizeTrace]
    jet = sys.modules.get("jax.experimental.jet")
    if jet is not None:
        traces.append(jet.JetTrace)
    for trace in traces:
        def counted_init(self, *args, _init=trace.__init__, **kwargs):
            entries.append(1)
            _init(self, *args, **kwargs)
        patched.append((trace, trace.__dict__["__init__"]))
        trace.__init__ = counted_init
    rules = dict(ad.primitive_jvps)

    def counted_rule(rule):
        def counted(*args, **kwargs):
            entries.append(1)
            return rule(*args, **kwargs)
        return counted

    for primitive, rule in rules.items():
        ad.primitive_jvps[primitive] = counted_rule(rule)
    try:
        yield entries
    finally:
        ad.primitive_jvps.update(rules)
        for trace, init in patched:
            trace.__init__ = init


def _dual_everything(x):
    """Every operation of the statement once."""
    y = (x.sin() * x.exp() + 2.0 - x) / (1.0 + x.log() ** 2) - (-x)
    return 3.0 / y + 1.5 * y - (4.0 - y) + y * 0.5 + y / 2.0


def _dual_without_jax_differentiation(exercise, Dual, cases, jit):
    """Every case and every operation again, counting entries into JAX's differentiation: run
    eagerly (visible tests), or as one program under ``jax.jit`` (hidden tests: the graded path
    is the traced one, and one program costs less than one per operation, shape and dtype).
    Either way the count sees an entry made while tracing and one made by a callback as the
    program runs, since the program runs to its end inside the counting block."""
    x, t = jnp.array([0.5, 1.0, 2.0]), jnp.array([1.0, -1.0, 0.5])
    runs = [(_dual_everything, x, t)] + [case.args for case in cases]
    functions = [f for f, _, _ in runs]

    def outputs(points):
        results = []
        for f, (x, t) in zip(functions, points):
            out = f(Dual(x, t))
            results.append((getattr(out, "primal", None), getattr(out, "tangent", None)))
        return results

    run = jax.jit(outputs) if jit else outputs

    def entries():
        with _counting_differentiation() as entries:
            jax.block_until_ready(run([(x, t) for _, x, t in runs]))
        return len(entries)

    if _call("Dual", entries):
        raise Failed(exercise.mistakes["jax-differentiation"],
                     exercise.mistakes["jax-differentiation"].code)


check_Dual = Exercise(
    "Dual", "Dual(primal, tangent): forward mode by dual numbers, whose arithmetic and sin, exp, "
    "log carry the tangent by the rules of calculus, with no JAX differentiation.",
    cases=_dual_cases, check_case=_dual_case, forbids=_DERIVATIVES + _JACOBIANS,
    requires=[Require("uses no differentiation of JAX's", _dual_without_jax_differentiation,
                      always=True)],
    mistakes={"not-a-dual": "An operation on Dual numbers returned {got}, not a Dual: every "
                            "method returns Dual(primal, tangent).",
              "jax-differentiation": "Dual's methods ran JAX's own differentiation (jax.jvp or "
                                     "another transformation of JAX's autodiff, under whatever "
                                     "name, or a JVP rule of jax.interpreters.ad): write each "
                                     "rule's tangent yourself, with jnp."})


def _several_inputs_cases():
    x, w = jnp.array([0.5, -1.0, 2.0]), jnp.array([[1.0, 2.0, 0.0], [0.5, -1.0, 3.0]])
    return [
        Case("f(x) = sin(x) * x[::-1], x of shape (3,)", lambda x: jnp.sin(x) * x[::-1], (x,),
             jnp.array([1.0, 0.5, -2.0])),
        Case("f(w, x) = tanh(w @ x), two inputs", lambda w, x: jnp.tanh(w @ x), (w, x),
             jnp.array([1.0, -1.0])),
        Case("a dict in, a tuple out", lambda p: (jnp.sum(p["a"] ** 2), p["a"] * p["b"]),
             ({"a": x, "b": jnp.array(2.0)},), (jnp.array(1.0), jnp.ones(3))),
    ]


def _vjp_from_linearize_case(exercise, vjp_from_linearize, case, jit):
    f, primals, cotangent = case.args

    def references():
        expected_out, pullback = jax.vjp(f, *primals)
        pushed = None
        if (jax.tree.structure(primals) == jax.tree.structure((cotangent,)) and all(
                np.shape(p) == np.shape(c)
                for p, c in zip(jax.tree.leaves(primals), jax.tree.leaves(cotangent)))):
            _, pushed = jax.jvp(f, primals, (cotangent,))
        return expected_out, pullback(cotangent), pushed

    expected_out, expected, pushed = _oracle(references, parts=3)

    def run(primals, cotangent):
        out, student_pullback = vjp_from_linearize(f, *primals)
        return out, student_pullback(cotangent)

    out, pulled = _run("vjp_from_linearize", run, (primals, cotangent), jit)
    _compare_tree("the output of vjp_from_linearize", case, out, expected_out)
    if _probing():
        return
    suspects = [(pushed, exercise.mistakes["untransposed"])] if pushed is not None else []
    if jax.tree.structure(pulled) != jax.tree.structure(expected):
        mistake = exercise.mistakes["tuple"]
        raise Failed(f"The pullback of vjp_from_linearize returned {_describe(pulled)} for "
                     f"{case.label}; expected {_describe(expected)}. {mistake}", mistake.code)
    for a, e in zip(jax.tree.leaves(pulled), jax.tree.leaves(expected)):
        _compare("the pullback of vjp_from_linearize", case, a, e,
                 suspects=[(jax.tree.leaves(s)[0], m) for s, m in suspects])


def _vjp_from_linearize_no_jacobian(exercise, vjp_from_linearize, cases, jit):
    n = 300

    def probe(x, v):
        return vjp_from_linearize(lambda x: jnp.sin(x) * x[::-1], x)[1](v)

    _require_small_intermediates("vjp_from_linearize", probe, (jnp.ones(n), jnp.ones(n)), n * n,
                                 f"for an input and an output of size {n}: it forms the whole "
                                 "Jacobian, where transposing the linear map is enough.",
                                 "dense-jacobian")


check_vjp_from_linearize = Exercise(
    "vjp_from_linearize", "vjp_from_linearize(f, *primals) returns (f(*primals), pullback) "
    "like jax.vjp, from jax.linearize and jax.linear_transpose.",
    cases=_several_inputs_cases, check_case=_vjp_from_linearize_case,
    forbids=("grad", "value_and_grad", "vjp", "jvp") + _JACOBIANS,
    requires=[Require("never forms the Jacobian", _vjp_from_linearize_no_jacobian)],
    mistakes={
        "untransposed": "The pullback applies the linear map J itself, a JVP: a pullback "
                        "applies its transpose, J^T, which jax.linear_transpose gives.",
        "tuple": "Like jax.vjp's, the pullback returns a tuple with one cotangent per input "
                 "of f (a 1-tuple for one input).",
    })


def _jvp_from_vjp_case(exercise, jvp_from_vjp, case, jit):
    f, x, t = case.args

    def references():
        expected_out, expected = jax.jvp(f, (x,), (t,))
        one_vjp = jax.vjp(f, x)[1](t)[0] if np.shape(x) == np.shape(expected_out) else None
        return expected_out, expected, one_vjp

    expected_out, expected, one_vjp = _oracle(references, parts=3)
    out, tangent = _run("jvp_from_vjp", lambda x, t: jvp_from_vjp(f, x, t), (x, t), jit)
    _compare("the output of jvp_from_vjp", case, out, expected_out)
    suspects = [(one_vjp, exercise.mistakes["one-vjp"])] if one_vjp is not None else []
    _compare("the tangent of jvp_from_vjp", case, tangent, expected, suspects=suspects)


def _jvp_from_vjp_cases():
    return [
        Case("f(x) = sin(x) * x[::-1], x of shape (3,)", lambda x: jnp.sin(x) * x[::-1],
             jnp.array([0.5, -1.0, 2.0]), jnp.array([1.0, 0.5, -2.0])),
        Case("f(x) = x @ x.T, x of shape (2, 3)", lambda x: x @ x.T, _normal(11, (2, 3)),
             _normal(12, (2, 3))),
    ]


def _jvp_from_vjp_no_jacobian(exercise, jvp_from_vjp, cases, jit):
    n = 300
    _require_small_intermediates(
        "jvp_from_vjp", lambda x: jvp_from_vjp(lambda x: jnp.sin(x) * x[::-1], x, x)[1],
        (jnp.ones(n),), n * n, f"for an input and an output of size {n}: it forms the whole "
        "Jacobian, where two VJPs are enough.", "dense-jacobian")


check_jvp_from_vjp = Exercise(
    "jvp_from_vjp", "jvp_from_vjp(f, x, t) returns (f(x), J t) like jax.jvp, from two VJPs: the "
    "pullback is linear in its cotangent, and the VJP of the pullback is J t.",
    cases=_jvp_from_vjp_cases, check_case=_jvp_from_vjp_case,
    forbids=("jvp", "linearize") + _JACOBIANS,
    requires=[Require("never forms the Jacobian", _jvp_from_vjp_no_jacobian),
              _uses_mode("reverse", lambda jvp_from_vjp, fn, plain: _call(
                  "jvp_from_vjp", jvp_from_vjp, fn, jnp.ones(3), jnp.ones(3)))],
    mistakes={
        "one-vjp": "This is J^T t, one VJP: pull back once more, differentiating the pullback "
                   "with respect to its cotangent, to get J t.",
    })


def _layer(p, x):
    return x + p * jnp.sin(x)


def _deep(params, x):
    for p in params:
        x = _layer(p, x)
    return x


def _deep_cases():
    x = jnp.linspace(-1.0, 1.0, 5)
    return [Case("12 layers, every = 4", jnp.linspace(0.1, 0.5, 12), x, 4),
            Case("6 layers, every = 1", jnp.linspace(-0.3, 0.3, 6), x, 1)]


def _deep_case(exercise, deep_checkpointed, case, jit):
    params, x, every = case.args
    loss = lambda forward: lambda p, x: jnp.sum(jnp.cos(forward(p, x)))
    expected = _oracle(lambda: jax.jit(jax.value_and_grad(loss(_deep), (0, 1)))(params, x))
    actual = _run("deep_checkpointed", jax.value_and_grad(
        loss(lambda p, x: deep_checkpointed(p, x, every)), (0, 1)), (params, x), jit)
    _compare("the value of sum(cos(deep_checkpointed(params, x, every)))", case, actual[0],
             expected[0])
    if _probing():
        return
    for label, a, e in zip(("params", "x"), actual[1], expected[1]):
        _compare(f"the gradient with respect to {label}", case, a, e)


def _saved_activations(deep_checkpointed, params, x, every):
    """How many arrays of x's size the pullback of deep_checkpointed keeps (its residuals),
    from their shapes alone: traced abstractly, nothing is compiled or computed."""
    pullback = jax.eval_shape(
        lambda p, x: jax.vjp(lambda p, x: deep_checkpointed(p, x, every), p, x)[1], params, x)
    return sum(leaf.size for leaf in jax.tree.leaves(pullback)
               if hasattr(leaf, "size") and leaf.size >= x.size) / x.size


def _deep_saves_segment_inputs(exercise, deep_checkpointed, cases, jit):
    layers, x = 12, jnp.linspace(-1.0, 1.0, 256)
    params = jnp.linspace(0.1, 0.5, layers)
    for every in (1, 3, 4, 12):
        saved = _call("deep_checkpointed", _saved_activations, deep_checkpointed, params, x,
                      every)
        wanted = -(-layers // every)
        if saved != wanted:
            code = ("no-checkpoint" if saved > layers else "per-layer" if saved == layers
                    else "whole-chain" if saved < wanted else "too-many")
            mistake = exercise.mistakes[code]
            raise Failed(mistake.format(layers=layers, every=every, saved=f"{saved:g}",
                                        wanted=wanted), mistake.code)


check_deep_checkpointed = Exercise(
    "deep_checkpointed", "deep_checkpointed(params, x, every) is deep(params, x), with every "
    "`every` consecutive layers in one jax.checkpoint: its pullback saves one activation per "
    "segment.",
    cases=_deep_cases, check_case=_deep_case,
    requires=[Require("saves one activation per segment", _deep_saves_segment_inputs)],
    mistakes={
        "no-checkpoint": "For {layers} layers and every = {every}, the pullback keeps {saved} "
                         "activations, more than the {layers} layers: nothing is checkpointed. "
                         "Wrap each segment of `every` layers in jax.checkpoint.",
        "per-layer": "For {layers} layers and every = {every}, the pullback keeps {saved} "
                     "activations, one per layer: each layer is checkpointed on its own. Wrap "
                     "segments of `every` layers, so that only {wanted} segment inputs are kept.",
        "whole-chain": "For {layers} layers and every = {every}, the pullback keeps {saved} "
                       "activations, fewer than the {wanted} segments: the checkpoints hold "
                       "more than `every` layers each, so the backward pass recomputes and "
                       "holds more at once.",
        "too-many": "For {layers} layers and every = {every}, the pullback keeps {saved} "
                    "activations, expected {wanted}, one per segment of `every` layers.",
    })


def _rnn_loss_by_loop(params, xs):
    """The recurrent loss by a Python loop (the checks' own reference)."""
    h = jnp.zeros(params["W"].shape[0], xs.dtype)
    total = 0.0
    for x in xs:
        h = jnp.tanh(params["W"] @ h + params["U"] @ x)
        total = total + params["v"] @ h
    return total


def _rnn_params(seed, hidden, inputs, dtype=jnp.float32):
    return {"W": _normal(seed, (hidden, hidden), dtype, scale=0.5),
            "U": _normal(seed + 1, (hidden, inputs), dtype),
            "v": _normal(seed + 2, (hidden,), dtype)}


def _rnn_case(exercise, rnn_loss, case, jit):
    params, xs = case.args
    expected = _oracle(lambda: jax.jit(jax.value_and_grad(_rnn_loss_by_loop))(params, xs))
    value, grads = _run("rnn_loss", jax.value_and_grad(rnn_loss), (params, xs), jit)
    _compare("rnn_loss", case, value, expected[0])
    _compare_tree("the gradient of rnn_loss", case, grads, expected[1])


def _rnn_scans(exercise, rnn_loss, cases, jit):
    params = _rnn_params(20, 3, 2)
    sizes = {}
    for steps in (3, 12):
        program = _call("rnn_loss", lambda: _program(jax.grad(rnn_loss), params,
                                                     jnp.ones((steps, 2))))
        sizes[steps] = len(program)
    if sizes[3] != sizes[12]:
        mistake = exercise.mistakes["unrolled"]
        raise Failed(mistake.format(small=sizes[3], large=sizes[12]), mistake.code)


check_rnn_loss = Exercise(
    "rnn_loss", "rnn_loss(params, xs) is sum_t v . h_t, h_t = tanh(W h_(t-1) + U x_t) from "
    "h_0 = 0, as one lax.scan over the sequence.",
    cases=lambda: [Case("3 hidden units, 5 steps of 2 inputs", _rnn_params(0, 3, 2),
                        _normal(3, (5, 2)))],
    check_case=_rnn_case, requires=[Require("is one scan", _rnn_scans)],
    mistakes={
        "unrolled": "rnn_loss's gradient is a program whose size grows with the sequence "
                    "({small} operations for 3 steps, {large} for 12): the loop is unrolled "
                    "in Python. Use jax.lax.scan.",
    })


def _root64(g, theta, x0, steps=60):
    """The root x of g(theta, x) = 0 by unrolled Newton steps in float64, which jax.grad can
    differentiate (converged, so the derivative is the implicit one): the checks' reference."""
    def step(_, x):
        value, slope = jax.jvp(lambda x: g(theta, x), (x,), (jnp.ones_like(x),))
        return x - value / slope

    return jax.lax.fori_loop(0, steps, step, x0)


def _root_cases():
    return [
        Case("g(a, x) = x**3 - a, a = [2, 8, 27]", lambda a, x: x**3 - a,
             jnp.array([2.0, 8.0, 27.0]), jnp.array([1.0, 2.0, 3.0])),
        Case("g(a, x) = x - a cos(x), a = 0.7", lambda a, x: x - a * jnp.cos(x),
             jnp.array(0.7), jnp.array(0.5)),
    ]


def _newton_root_case(exercise, newton_root, case, jit):
    g, theta, x0 = case.args
    dtype = x0.dtype

    def references():
        with jax.enable_x64(True):
            theta64, x064 = _to64(theta), _to64(x0)
            return (np.asarray(_root64(g, theta64, x064)).astype(dtype), jax.tree.map(
                lambda leaf: np.asarray(leaf).astype(dtype),
                jax.grad(lambda t: jnp.sum(_root64(g, t, x064)))(theta64)))

    root64, grad64 = _oracle(references, parts=2)

    def gradients(theta, x0):  # f closes over theta, which is being differentiated
        return jax.grad(lambda t, x0: jnp.sum(newton_root(lambda x: g(t, x), x0)),
                        argnums=(0, 1))(theta, x0)

    root = _run("newton_root", lambda t, x0: newton_root(lambda x: g(t, x), x0), (theta, x0),
                jit)
    _compare("newton_root", case, root, root64)
    grad, grad_x0 = _run("newton_root", gradients, (theta, x0), jit)
    _compare_tree("the derivative of sum(newton_root(f, x0)) in the value f closes over", case,
                  grad, grad64, hints=[exercise.mistakes["rule"]])
    _compare("the derivative of sum(newton_root(f, x0)) in x0", case, grad_x0,
             np.zeros(np.shape(x0), dtype), hints=[exercise.mistakes["x0"]])


def _newton_root_has_a_rule(exercise, newton_root, cases, jit):
    g, theta, x0 = _root_cases()[0].args
    program = _call("newton_root", lambda: _program(
        lambda t: newton_root(lambda x: g(t, x), x0), theta))
    if "custom_vjp_call" not in program:
        raise Failed(exercise.mistakes["no-rule"], exercise.mistakes["no-rule"].code)


check_newton_root = Exercise(
    "newton_root", "newton_root(f, x0) solves f(x) = 0 elementwise by Newton's method, with a "
    "custom_vjp implicit rule that differentiates the values f closes over "
    "(jax.closure_convert).",
    cases=_root_cases, check_case=_newton_root_case,
    requires=[Require("differentiates by a custom_vjp rule", _newton_root_has_a_rule,
                      first=True)],
    mistakes={
        "rule": "The implicit rule: with w = g / f'(x*) (elementwise), the cotangent of the "
                "closed-over values is minus the VJP of w through f in those values.",
        "no-rule": "newton_root must differentiate through a jax.custom_vjp rule (called with "
                   "the function jax.closure_convert returns), not through Newton's iterations.",
        "x0": "The root does not depend on where Newton's method starts: the rule's cotangent "
              "of x0 is zero.",
    })


def _band(x):
    """f(x)_i = sin(x_i) * x_(i+1) + x_(i-1)**2 (zero beyond the ends): half bandwidth 1."""
    right = jnp.concatenate([x[1:], jnp.zeros(1, x.dtype)])
    left = jnp.concatenate([jnp.zeros(1, x.dtype), x[:-1]])
    return jnp.sin(x) * right + left**2


def _banded_cases():
    return [
        Case("f(x)_i = sin(x_i) x_(i+1) + x_(i-1)**2, n = 7, bandwidth 1", _band,
             jnp.linspace(-1.0, 1.0, 7), 1),
        Case("f(x)_i = tanh(x_i) + x_(i-2) / 2 + x_(i+1)**3, n = 6, bandwidth 2",
             lambda x: jnp.tanh(x) + 0.5 * jnp.roll(x, 2).at[:2].set(0.0)
             + jnp.roll(x, -1).at[-1:].set(0.0) ** 3, jnp.linspace(0.5, 2.0, 6), 2),
    ]


def _banded_case(exercise, banded_jacobian, case, jit):
    f, x, bandwidth = case.args
    expected = _oracle(lambda: jax.jit(jax.jacfwd(f))(x))
    # Compiled in the visible tests too: run eagerly, each of its many small operations would
    # be compiled on its own, which takes seconds.
    actual = _run("banded_jacobian", lambda x: banded_jacobian(f, x, bandwidth), (x,), True)
    _compare("banded_jacobian", case, actual, expected,
             shape_hints=["The Jacobian of f: R^n -> R^n at x has shape (n, n)."])


def _banded_counts_jvps(exercise, banded_jacobian, cases, jit):
    # The count lives in this call's closure, out of reach of the answer that is counted.
    n, calls = 12, []

    @jax.custom_jvp
    def counted_band(x):
        return _band(x)

    @counted_band.defjvp
    def counted_band_jvp(primals, tangents):
        jax.debug.callback(lambda t: calls.append(1), tangents[0])
        return jax.jvp(_band, primals, tangents)

    def count():
        jax.block_until_ready(jax.jit(lambda x: banded_jacobian(counted_band, x, 1))(
            jnp.linspace(-1.0, 1.0, n)))
        jax.effects_barrier()
        return len(calls)

    pushed = _call("banded_jacobian", count)
    if pushed != 3:
        mistake = exercise.mistakes["jvps"]
        raise Failed(mistake.format(n=n, calls=pushed), mistake.code)


check_banded_jacobian = Exercise(
    "banded_jacobian", "banded_jacobian(f, x, bandwidth) is the dense Jacobian of f: R^n -> "
    "R^n, whose entries vanish beyond `bandwidth` off the diagonal, from 2 bandwidth + 1 JVPs.",
    cases=_banded_cases, check_case=_banded_case,
    forbids=("grad", "value_and_grad", "vjp") + _JACOBIANS,
    requires=[Require("pushes 2 bandwidth + 1 tangents", _banded_counts_jvps)],
    mistakes={
        "jvps": "For n = {n} and bandwidth 1, banded_jacobian pushed {calls} tangents through "
                "f, expected 3: colour column j by j mod (2 bandwidth + 1), push one tangent "
                "per colour, and read each entry back from its colour's JVP.",
    })


# The visible cases of jvp_of_jaxpr, a few primitives each, in an order where each case uses
# only its own primitives and those of the cases before it: (label, f, the rules).
_JAXPR_RULE_CASES = (
    ("add, sub and mul with a literal, f(x) = 3 * x - x * x + 1", lambda x: 3.0 * x - x * x + 1.0,
     "(x + y)' = x' + y', (x - y)' = x' - y', (x y)' = x' y + x y', and a literal's tangent "
     "is zero"),
    ("exp, log and neg, f(x) = -exp(x) + log(x)", lambda x: -jnp.exp(x) + jnp.log(x),
     "exp(x)' = exp(x) x', log(x)' = x' / x, (-x)' = -x'"),
    ("sin, cos and tanh, f(x) = sin(x) * cos(x) + tanh(x)",
     lambda x: jnp.sin(x) * jnp.cos(x) + jnp.tanh(x), "sin(x)' = cos(x) x', cos(x)' = "
     "-sin(x) x', tanh(x)' = (1 - tanh(x)**2) x'"),
    ("div and integer_pow, f(x) = x ** 3 / (1 + x ** 2)", lambda x: x ** 3 / (1.0 + x ** 2),
     "(x / y)' = (x' - (x / y) y') / y, (x**n)' = n x**(n - 1) x'"),
    ("reduce_sum, broadcast_in_dim, transpose and reshape, f(x) = (outer(x, x).T.reshape(-1)) "
     "+ sum(x)", lambda x: jnp.outer(x, x).T.reshape(-1) + jnp.sum(x),
     "a linear primitive's tangent is the primitive applied to the tangents"),
)


def _jvp_of_jaxpr_cases():
    x, t = jnp.array([0.5, 1.0, 2.0]), jnp.array([1.0, -1.0, 0.5])
    matrix = jnp.array([[1.0, 2.0, 0.0], [0.5, -1.0, 3.0]])
    return [Case(label, f, [x], [t]) for label, f, _ in _JAXPR_RULE_CASES] + [
        Case("dot_general of a closed-over matrix and an input, f(x) = W @ x", lambda x: matrix @ x,
             [x], [t]),
        Case("two inputs, two outputs, f(a, b) = (a @ b, sin(a) * 2), a of shape (2, 3)",
             lambda a, b: (a @ b, jnp.sin(a) * 2.0), [matrix, x], [jnp.ones((2, 3)), t]),
    ]


def _jaxpr_rules_hint(label):
    return next((f"The rules of this case: {rules}." for name, _, rules in _JAXPR_RULE_CASES
                 if label == name), None)


def _jvp_of_jaxpr_run(jvp_of_jaxpr, f):
    """The answer on the program of ``f``, as two lists."""
    def run(primals, tangents):
        closed = jax.make_jaxpr(f)(*primals)
        outputs, output_tangents = jvp_of_jaxpr(closed.jaxpr, closed.consts, list(primals),
                                                list(tangents))
        return [list(outputs), list(output_tangents)]
    return run


def _jvp_of_jaxpr_case(exercise, jvp_of_jaxpr, case, jit):
    f, primals, tangents = case.args
    expected = _oracle(lambda: tuple(jax.tree.leaves(part)
                                     for part in jax.jvp(f, tuple(primals), tuple(tangents))),
                       parts=2)
    try:
        actual = _run("jvp_of_jaxpr", _jvp_of_jaxpr_run(jvp_of_jaxpr, f), (primals, tangents),
                      jit)
    except Failed as failure:
        if "Literal" not in str(failure):
            raise
        raise Failed(exercise.mistakes["literal"], exercise.mistakes["literal"].code) from None
    if _probing():
        return
    if not (isinstance(actual, (list, tuple)) and len(actual) == 2
            and all(isinstance(part, (list, tuple)) for part in actual)):
        mistake = exercise.mistakes["not-two-lists"]
        raise Failed(mistake.format(got=_describe(actual)), mistake.code)
    _compare_tree("the outputs of jvp_of_jaxpr", case, list(actual[0]), list(expected[0]))
    hint = _jaxpr_rules_hint(case.label)
    _compare_tree("the output tangents of jvp_of_jaxpr", case, list(actual[1]),
                  list(expected[1]), hints=[hint] if hint else [])


def _every_listed_primitive(x, y):
    z = jnp.tanh(jnp.cos(x) @ y) * 2.0 - jnp.sum(jnp.log(jnp.exp(-x) + 1.0)) ** 2
    return (jnp.sum(jnp.sin(z)) / (1.0 + z).T.reshape(-1),)


def _jvp_of_jaxpr_no_jax_differentiation(exercise, jvp_of_jaxpr, cases, jit):
    """Counting entries into JAX's differentiation as in ``_dual_without_jax_differentiation``:
    eagerly, or as one program under ``jax.jit`` (hidden tests)."""
    x, y = jnp.array([[0.5, 1.0], [2.0, 0.1]]), jnp.array([[1.0], [-1.0]])
    run = _jvp_of_jaxpr_run(jvp_of_jaxpr, _every_listed_primitive)
    run = jax.jit(run) if jit else run

    def entries():
        with _counting_differentiation() as entries:
            jax.block_until_ready(run([x, y], [jnp.ones_like(x), jnp.ones_like(y)]))
        return len(entries)

    if _call("jvp_of_jaxpr", entries):
        raise Failed(exercise.mistakes["jax-differentiation"],
                     exercise.mistakes["jax-differentiation"].code)


def _jvp_of_jaxpr_refuses_unknown(exercise, jvp_of_jaxpr, cases, jit):
    run = _jvp_of_jaxpr_run(jvp_of_jaxpr, lambda x: jnp.sin(x) + jax.lax.erf(x))
    run = jax.jit(run) if jit else run

    def raised():
        try:
            jax.block_until_ready(run([jnp.array([0.5, 1.0])], [jnp.ones(2)]))
        except NotImplementedError as error:
            return "NotImplementedError", str(error)
        except Exception as error:  # noqa: BLE001 (the kind of error is what is checked)
            return type(error).__name__, str(error)
        return None, ""

    kind, message = _call("jvp_of_jaxpr", raised)
    if kind != "NotImplementedError" or "erf" not in message:
        what = ("returned without an error" if kind is None
                else f"raised {kind}" + (" without naming erf" if kind == "NotImplementedError"
                                         else ""))
        mistake = exercise.mistakes["unknown-primitive"]
        raise Failed(mistake.format(what=what), mistake.code)


check_jvp_of_jaxpr = Exercise(
    "jvp_of_jaxpr", "jvp_of_jaxpr(jaxpr, consts, primals, tangents) returns the outputs and "
    "output tangents of a jaxpr, as jax.jvp does, by interpreting its equations with JVP rules "
    "of one's own.",
    cases=_jvp_of_jaxpr_cases, check_case=_jvp_of_jaxpr_case,
    forbids=_DERIVATIVES + _JACOBIANS,
    requires=[Require("uses no differentiation of JAX's", _jvp_of_jaxpr_no_jax_differentiation,
                      always=True),
              Require("refuses a primitive it has no rule for", _jvp_of_jaxpr_refuses_unknown,
                      always=True)],
    mistakes={
        "literal": "jvp_of_jaxpr failed on a literal, a number written into the program (the "
                   "2.0 of mul x 2.0), which is no variable of your environment: take its value "
                   "from its .val, with a tangent of zero.",
        "not-two-lists": "jvp_of_jaxpr returned {got}: return (outputs, output_tangents), two "
                         "lists with one array per output variable of the program.",
        "jax-differentiation": "jvp_of_jaxpr ran JAX's own differentiation (jax.jvp or another "
                               "transformation of JAX's autodiff, under whatever name, or a JVP "
                               "rule of jax.interpreters.ad): write each primitive's rule "
                               "yourself.",
        "unknown-primitive": "On a program with the primitive erf, which the statement lists "
                             "no rule for, jvp_of_jaxpr {what}: it must raise "
                             "NotImplementedError naming the primitive.",
    })


def _rnn_sum_by_loop(W, xs):
    """The loss of rnn_sum_remat by a Python loop, without checkpoints (the checks'
    reference)."""
    state, total = jnp.zeros(W.shape[0], xs.dtype), jnp.zeros((), xs.dtype)
    for x in xs:
        state = jnp.tanh(jnp.dot(W, state) + x)
        total = total + state.sum()
    return total


def _rnn_sum_case(exercise, rnn_sum_remat, case, jit):
    W, xs = case.args
    expected = _oracle(lambda: jax.jit(jax.value_and_grad(_rnn_sum_by_loop, (0, 1)))(W, xs))
    value, grads = _run("rnn_sum_remat", jax.value_and_grad(rnn_sum_remat, (0, 1)), (W, xs),
                        jit)
    _compare("rnn_sum_remat", case, value, expected[0])
    if _probing():
        return
    for label, a, e in zip(("W", "xs"), grads, expected[1]):
        _compare(f"the gradient of rnn_sum_remat with respect to {label}", case, a, e)


def _kept_and_products(fn, W, xs):
    """(how many arrays of the size of xs fn's pullback keeps, apart from its arguments; the
    matrix products of fn's program; those of its gradient's; whether it scans)."""
    from jax._src.ad_checkpoint import saved_residuals

    kept = sum(int(np.prod(aval.shape)) for aval, where in saved_residuals(fn, W, xs)
               if not where.startswith("from the argument")) / xs.size
    forward, backward = _program(fn, W, xs), _program(jax.grad(fn), W, xs)
    return kept, forward.count("dot_general"), backward.count("dot_general"), "scan" in forward


def _rnn_sum_keeps_products(exercise, rnn_sum_remat, cases, jit):
    W, xs = _normal(80, (4, 4), scale=0.5), _normal(81, (6, 4))
    kept, forward, backward, scans = _call("rnn_sum_remat", _kept_and_products, rnn_sum_remat,
                                           W, xs)
    if not scans:
        raise Failed(exercise.mistakes["no-scan"], exercise.mistakes["no-scan"].code)
    if backward > 3 * forward:
        mistake = exercise.mistakes["recomputes-products"]
        raise Failed(mistake.format(products=backward, plain=3 * forward), mistake.code)
    if kept > 2:
        mistake = exercise.mistakes["keeps-too-much"]
        raise Failed(mistake.format(kept=f"{kept:g}"), mistake.code)


check_rnn_sum_remat = Exercise(
    "rnn_sum_remat", "rnn_sum_remat(W, xs) is the sum over t of the entries of h_t = tanh(W "
    "h_(t-1) + x_t) from h_0 = 0, as a scan whose pullback keeps the products W h_(t-1) and "
    "recomputes the tanh.",
    cases=lambda: [Case("n = 3, 5 steps", _normal(82, (3, 3), scale=0.5), _normal(83, (5, 3))),
                   Case("n = 2, 3 steps", jnp.array([[0.5, -1.0], [1.0, 0.2]]),
                        jnp.linspace(-1.0, 1.0, 6).reshape(3, 2))],
    check_case=_rnn_sum_case,
    requires=[Require("keeps the products and recomputes the tanh", _rnn_sum_keeps_products,
                      always=True)],
    mistakes={
        "no-scan": "rnn_sum_remat's program has no scan: write the recurrence as one "
                   "jax.lax.scan over the steps.",
        "recomputes-products": "The gradient of rnn_sum_remat computes {products} matrix "
                               "products for 6 steps of n = 4 where keeping the products needs "
                               "{plain}: its backward pass recomputes W h, which the pullback "
                               "must keep. Give jax.checkpoint a policy that saves it.",
        "keeps-too-much": "The pullback of rnn_sum_remat keeps {kept} arrays of the size of "
                          "xs besides xs, more than two: it keeps the tanh (or more) instead "
                          "of recomputing it. Checkpoint the step (or the scan) with a policy "
                          "that saves only the products.",
    })
