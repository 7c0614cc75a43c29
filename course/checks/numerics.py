"""Assignment 06: autodiff meets numerics (shipped to its students only).
"""

import jax
import jax.numpy as jnp
import numpy as np

from .calls import _DERIVATIVES, _JACOBIANS, Case, _compare
from .evidence import Failed, _oracle, _probing
from .exercise import Exercise, _run
from .mechanisms import _referenced_objects, _require_no_forbidden_reference


def _finite(name, case, value, mistake):
    """``value`` has no nan or inf, else ``mistake`` (a named one, its ``{name}`` and ``{case}``
    filled in)."""
    if not _probing() and not np.all(np.isfinite(np.asarray(value))):
        raise Failed(mistake.format(name=name, case=case.label), mistake.code)


def _rule_functions(answer):
    """The answer and, for a custom rule, the functions it is made of (``fun``, ``fwd``,
    ``bwd``, ``jvp``)."""
    parts = [answer] + [getattr(answer, name, None) for name in ("fun", "fwd", "bwd", "jvp")]
    return [part for part in parts if callable(part)]


def _never_references(path, original):
    """A ``structure`` requirement: neither the answer nor its rule's functions name or reach
    ``original`` (the function of jax at ``path``) or the exercise's forbidden functions, even
    through an alias; calling them is refused by ``forbids``."""
    def check(exercise, answer):
        for part in _rule_functions(answer):
            _require_no_forbidden_reference(exercise.name, part, exercise.forbids)
            if any(value is original for value in _referenced_objects(part)):
                raise Failed(f"{exercise.name} uses jax.{path}, which this exercise forbids.",
                             f"{exercise.name}/forbidden-call")
    return check


def _symmetric(seed, n, eigenvalues=None, dtype=jnp.float32):
    """A symmetric n x n matrix: random, or Q diag(eigenvalues) Q^T for a random rotation Q."""
    rng = np.random.default_rng(seed)
    if eigenvalues is None:
        M = rng.standard_normal((n, n))
        return jnp.asarray((M + M.T) / 2, dtype)
    Q = np.linalg.qr(rng.standard_normal((n, n)))[0]
    A = (Q * np.asarray(eigenvalues, np.float64)) @ Q.T
    return jnp.asarray((A + A.T) / 2, dtype)


# ---------------------------------------------------------------------------------------------
# Exercise 1: sym_exp, a matrix function with a Daleckii-Krein rule

@jax.jit
def _expm_and_vjp(A, G):
    """The matrix exponential and its VJP by jax.scipy.linalg.expm (Pade, scaling and squaring,
    no eigenvectors): the oracle of sym_exp, which the exercise forbids."""
    value, pullback = jax.vjp(jax.scipy.linalg.expm, A)
    return value, pullback(G)[0]


def _sym_exp_cases():
    G = _symmetric(1, 3)
    return [Case("a random symmetric 3 x 3 matrix", _symmetric(2, 3), G),
            Case("0.5 times the 3 x 3 identity (every eigenvalue repeated)", 0.5 * jnp.eye(3), G),
            Case("eigenvalues 1, 1, 2 (repeated) in a random basis",
                 _symmetric(6, 3, [1.0, 1.0, 2.0]), G)]


def _sym_exp_case(exercise, sym_exp, case, jit):
    A, G = case.args
    value, pulled = _oracle(lambda: _expm_and_vjp(A, G), parts=2)
    vjp = jax.vjp  # the checks' own: the exercise forbids it to the answer only
    out, cotangent = _run("sym_exp", lambda A, G: (sym_exp(A), vjp(sym_exp, A)[1](G)[0]), (A, G),
                          jit)
    _compare("sym_exp", case, out, value)
    _finite("the VJP of sym_exp", case, cotangent, exercise.mistakes["not-finite"])
    repeated = "repeated" in case.label
    _compare("the VJP of sym_exp", case, cotangent, pulled,
             hints=[exercise.mistakes["ties"]] if repeated else [exercise.mistakes["formula"]])


check_sym_exp = Exercise(
    "sym_exp", "sym_exp(A) = V diag(exp(w)) V^T for a symmetric A = V diag(w) V^T, with a "
    "custom_vjp rule by divided differences that stays finite at repeated eigenvalues.",
    cases=_sym_exp_cases, check_case=_sym_exp_case, rule="vjp",
    forbids=_DERIVATIVES + _JACOBIANS + ("scipy.linalg.expm",),
    structure=[_never_references("scipy.linalg.expm", jax.scipy.linalg.expm)],
    mistakes={
        "not-finite": "{name} has nan or inf for {case}: where two eigenvalues are equal (and "
                      "always on the diagonal, i = j), the divided difference "
                      "(exp(w_i) - exp(w_j)) / (w_i - w_j) is 0 / 0 (differentiating through "
                      "jnp.linalg.eigh gives the same): use its limit exp(w_i) there.",
        "ties": "At repeated eigenvalues eigh returns values that differ by rounding (1 and "
                "1.0000001 in float32), and (exp(a) - exp(b)) / (a - b) of two such values is "
                "mostly rounding error: treat eigenvalues closer than a small relative "
                "tolerance as tied and use exp at their mean, or compute the divided "
                "difference as exp(b) expm1(a - b) / (a - b).",
        "formula": "The rule: with K_ij = (exp(w_i) - exp(w_j)) / (w_i - w_j) (exp(w_i) where "
                   "w_i = w_j), the cotangent of A is V (K * (V^T G V)) V^T.",
    })
