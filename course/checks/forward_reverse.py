"""Assignment 01: forward and reverse mode (shipped to its students only).
"""

import jax
import jax.numpy as jnp
import numpy as np

from .calls import _JACOBIANS, Case, _call, _close, _compare, _describe
from .evidence import Failed, _code, _oracle, _probing
from .exercise import Exercise, Require, _normal, _run, _uses_mode
from .mechanisms import _program, _require_small_intermediates, _require_vectorized


def _visible_function_cases():
    x = jnp.array([0.5, -1.0, 2.0])
    return [
        Case("f(x) = 3 x**2, x of shape (3,)", lambda x: 3 * x**2, x),
        Case("f(x) = sin(x) summed over axis 1, x of shape (2, 3)",
             lambda x: jnp.sum(jnp.sin(x), axis=1), _normal(0, (2, 3))),
    ]


def _vgrad_case(exercise, vgrad, case, jit):
    f, x = case.args
    expected = _oracle(lambda: jax.jit(jax.grad(lambda x: jnp.sum(f(x)).real))(x))
    actual = _run("vgrad", lambda x: vgrad(f, x), (x,), jit)
    _compare("vgrad", case, actual, expected,
             shape_hints=[exercise.mistakes["cotangent-shape"]])


def _vgrad_probe(vgrad):
    return lambda x: vgrad(lambda x: jnp.sin(x) * x[::-1], x)


def _vgrad_one_pullback(exercise, vgrad, cases, jit):
    n = 300
    _require_small_intermediates("vgrad", _vgrad_probe(vgrad), (jnp.ones(n),), n * n,
                                 exercise.mistakes["dense-jacobian"].format(n=n),
                                 "dense-jacobian")
    sizes = {m: len(_call("vgrad", lambda: _program(_vgrad_probe(vgrad), jnp.ones(m))))
             for m in (3, 8)}
    if sizes[3] != sizes[8]:
        raise Failed(exercise.mistakes["loop"].format(small=sizes[3], large=sizes[8]),
                     exercise.mistakes["loop"].code)


check_vgrad = Exercise(
    "vgrad", "vgrad(f, x) is the gradient of sum(f(x)): one VJP with a cotangent of ones.",
    cases=_visible_function_cases, check_case=_vgrad_case,
    forbids=("grad", "value_and_grad") + _JACOBIANS,
    requires=[Require("never forms the Jacobian", _vgrad_one_pullback),
              _uses_mode("reverse", lambda vgrad, fn, plain: _call("vgrad", vgrad, fn,
                                                                   jnp.ones(3)))],
    mistakes={
        "cotangent-shape": "The cotangent must have the shape of f(x), not of x.",
        "dense-jacobian": "for an input and an output of size {n}: it forms the whole "
                          "Jacobian, where one VJP with a cotangent of ones is enough.",
        "loop": "vgrad builds a program whose size grows with the size of f(x) ({small} "
                "operations for 3 outputs, {large} for 8): one pullback of a cotangent of ones "
                "is enough, with no loop.",
    })


def _product_cases(kind):
    def cases():
        found = []
        for case in _visible_function_cases():
            f, x = case.args
            shape = jax.eval_shape(f, x).shape if kind == "mjp" else x.shape
            found.append(Case(case.label + ", 4 vectors", f, x, _normal(7, (4,) + shape)))
        return found
    return cases


def _product_case(exercise, implementation, case, jit):
    f, x, M = case.args

    def products():
        y_shape = jax.eval_shape(f, x).shape
        J = np.asarray(jax.jit(jax.jacfwd(f))(x)).reshape(-1, x.size)
        rows = np.asarray(M).reshape(M.shape[0], -1)
        if exercise.facts["mode"] == "reverse":
            return (rows @ J).reshape((M.shape[0],) + x.shape)
        return (rows @ J.T).reshape((M.shape[0],) + y_shape)

    expected = _oracle(products)
    actual = _run(exercise.name, lambda x, M: implementation(f, x, M), (x, M), jit)
    _compare(exercise.name, case, actual, expected)


def _products_vectorized(exercise, implementation, cases, jit):
    f = lambda x: jnp.tanh(x) * x[::-1]
    x = jnp.linspace(-1.0, 1.0, 5)
    _require_vectorized(exercise.name, lambda M: implementation(f, x, M), (jnp.ones((2, 5)),),
                        (jnp.ones((9, 5)),))
    n = 300
    _require_small_intermediates(
        exercise.name, lambda M: implementation(lambda x: jnp.sin(x) * x[::-1], jnp.ones(n), M),
        (jnp.ones((2, n)),), n * n,
        f"for 2 vectors of size {n}: it forms the whole Jacobian, which the products of 2 "
        "vectors never need.", "dense-jacobian")


def _products(name, kind, mode, statement):
    return Exercise(
        name, statement, cases=_product_cases(kind), check_case=_product_case, mode=mode,
        forbids=_JACOBIANS,
        requires=[Require("is vectorized", _products_vectorized),
                  _uses_mode(mode, lambda answer, fn, plain: _call(
                      name, answer, fn, jnp.ones(3), jnp.ones((2, 3))))])


check_vmap_mjp = _products(
    "vmap_mjp", "mjp", "reverse",
    "vmap_mjp(f, x, M) pulls back each row of M (a cotangent) through f at x.")


check_vmap_jmp = _products(
    "vmap_jmp", "jmp", "forward",
    "vmap_jmp(f, x, M) pushes forward each row of M (a tangent) through f at x.")


def _jacobian_cases():
    return [
        Case("f(x) = sin(x) * x[::-1], x of shape (3,)", lambda x: jnp.sin(x) * x[::-1],
             jnp.array([0.3, -1.2, 2.0])),
        Case("f(x) = x @ x.T, x of shape (2, 3)", lambda x: x @ x.T, _normal(1, (2, 3))),
        Case("f(x) = sum(x**3), x of shape (4,)", lambda x: jnp.sum(x**3), _normal(2, (4,))),
    ]


def _jacobian_case(exercise, builder, case, jit):
    name = f"{exercise.name}(f)"
    reference = {"forward": jax.jacfwd, "reverse": jax.jacrev}[exercise.facts["mode"]]
    f, x = case.args

    def jacobians():
        expected = np.asarray(jax.jit(reference(f))(x))
        out_axes = expected.ndim - np.ndim(x)
        return expected, np.transpose(expected, tuple(range(out_axes, expected.ndim))
                                      + tuple(range(out_axes)))

    expected, swapped = _oracle(jacobians, parts=2)
    jacobian_fn = _call(exercise.name, builder, f)
    actual = _run(name, jacobian_fn, (x,), jit)
    _compare(name, case, actual, expected, shape_hints=[exercise.mistakes["shape"]],
             suspects=[(swapped, exercise.mistakes["transposed"])])


def _jacobian_vectorized(exercise, builder, cases, jit):
    _require_vectorized(exercise.name, lambda x: builder(jnp.sin)(x), (jnp.ones(2),),
                        (jnp.ones(7),))


def _jacobian_in_mode(name, mode):
    def run(builder, fn, plain):
        probe = Case(f"a function only {mode} mode can differentiate", jnp.linspace(0.0, 1.0, 3))
        jacobian = _call(f"{name}(f)", _call(name, builder, fn), *probe.args)
        _compare(f"{name}(f)", probe, jacobian,
                 _oracle(lambda: jax.jit(jax.jacfwd(plain))(*probe.args)))

    return _uses_mode(mode, run)


def _jacobian(name, mode, statement):
    return Exercise(
        name, statement, cases=_jacobian_cases, check_case=_jacobian_case, mode=mode,
        forbids=_JACOBIANS,
        requires=[Require("is vectorized", _jacobian_vectorized), _jacobian_in_mode(name, mode)],
        mistakes={
            "shape": "The Jacobian of f at x has shape f(x).shape + x.shape.",
            "transposed": "its axes are swapped (the Jacobian transposed). Entry [i, j] is the "
                          "derivative of output i with respect to input j: the output's axes "
                          "come first, then the input's, f(x).shape + x.shape.",
        })


check_our_jacfwd = _jacobian("our_jacfwd", "forward",
                             "our_jacfwd(f)(x) equals jax.jacfwd(f)(x), built on jvp and vmap.")


check_our_jacrev = _jacobian("our_jacrev", "reverse",
                             "our_jacrev(f)(x) equals jax.jacrev(f)(x), built on vjp and vmap.")


def _wirtinger_cases():
    z = jnp.array(0.7 - 0.4j, dtype=jnp.complex64)
    return [
        Case("f(z) = sin(z)", jnp.sin, z),
        Case("f(z) = conj(z)", jnp.conj, z),
        Case("f(z) = z * conj(z)", lambda z: z * jnp.conj(z), z),
    ]


def _wirtinger_reference(f, z):
    """(df/dz, df/dzbar) = ((f_x - i f_y) / 2, (f_x + i f_y) / 2), from the gradients of the
    real and imaginary parts of f in x and y (jax.grad, which the exercise forbids), compiled
    as one program."""
    def partials(z):
        def part(which):
            return lambda x, y: which(f(jax.lax.complex(x, y)))

        x, y = jnp.real(z), jnp.imag(z)
        u_x, u_y = jax.grad(part(jnp.real), argnums=(0, 1))(x, y)
        v_x, v_y = jax.grad(part(jnp.imag), argnums=(0, 1))(x, y)
        f_x, f_y = jax.lax.complex(u_x, v_x), jax.lax.complex(u_y, v_y)
        return (f_x - 1j * f_y) / 2, (f_x + 1j * f_y) / 2

    return tuple(np.asarray(d, z.dtype) for d in jax.jit(partials)(z))


@jax.custom_jvp
def _doubled_by_its_rule(z):
    """The identity, whose JVP rule doubles the tangent: only a JVP sees the derivative 2."""
    return z


_doubled_by_its_rule.defjvp(lambda primals, tangents: (primals[0], 2 * tangents[0]))


def _wirtinger_case(exercise, wirtinger, case, jit):
    f, z = case.args
    expected = _oracle(lambda: _wirtinger_reference(f, z), parts=2)
    result = _run("wirtinger", lambda z: wirtinger(f, z), (z,), jit)
    if not isinstance(result, tuple) or len(result) != 2:
        raise Failed("wirtinger must return a tuple (df_dz, df_dzbar), got "
                     f"{_describe(result)}.", _code("not-a-pair"))
    swapped = not _probing() and all(np.allclose(np.asarray(r), np.asarray(e), atol=1e-5)
                                     for r, e in zip(result, expected[::-1]))
    hint = [exercise.mistakes["swapped"]] if swapped else []
    _compare("wirtinger (df/dz)", case, result[0], expected[0], hint, factors=True)
    _compare("wirtinger (df/dzbar)", case, result[1], expected[1], hint, factors=True)


def _wirtinger_by_jvp(exercise, wirtinger, cases, jit):
    z = jnp.array(0.3 + 0.2j, jnp.complex64)
    df_dz, df_dzbar = _call("wirtinger", wirtinger, _doubled_by_its_rule, z)
    if not (_close(df_dz, 2 * jnp.ones_like(z)) and _close(df_dzbar, jnp.zeros_like(z))):
        mistake = exercise.mistakes["no-jvp"]
        raise Failed(mistake.format(got=f"({complex(np.asarray(df_dz)):.4g}, "
                                        f"{complex(np.asarray(df_dzbar)):.4g})"), mistake.code)


check_wirtinger = Exercise(
    "wirtinger", "wirtinger(f, z) returns (df/dz, df/dzbar) of a complex f at a scalar z, "
    "from JVPs.",
    cases=_wirtinger_cases, check_case=_wirtinger_case,
    forbids=("grad", "value_and_grad", "vjp"),
    requires=[Require("uses jax.jvp", _wirtinger_by_jvp)],
    mistakes={
        "swapped": "You swapped df/dz and df/dzbar.",
        "no-jvp": "wirtinger must use jax.jvp: on a function whose derivative JAX knows only "
                  "from its JVP rule (the identity, with a rule that doubles the tangent) it "
                  "returned {got}, expected (2, 0). Finite differences, or a formula of your "
                  "own, cannot see the rule.",
    })
