"""Mechanism checks: what a program is made of, and which mode it differentiates in (shipped).
"""

import functools
import types

import jax
import jax.numpy as jnp
import numpy as np

from .calls import _ORIGINALS, _call
from .evidence import Failed, _code
from .guard import _protected


def _referenced_objects(fn, depth=0, seen=None):
    """Objects a function can reach by name: globals, closures, and helpers defined by the user."""
    seen = set() if seen is None else seen
    if id(fn) in seen or depth > 5:
        return []
    seen.add(id(fn))
    code = getattr(fn, "__code__", None)
    if code is None:
        return []
    names, stack = set(), [code]
    while stack:
        current = stack.pop()
        names.update(current.co_names)
        stack.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
    values = [fn.__globals__[n] for n in names if n in fn.__globals__]
    values += [cell.cell_contents for cell in (fn.__closure__ or ())
               if cell.cell_contents is not None]
    values += list(fn.__defaults__ or ()) + list((fn.__kwdefaults__ or {}).values())
    found = []
    for value in values:
        for inner in _held(value):
            found.append(inner)
            if isinstance(inner, types.FunctionType) and not _protected(inner.__module__ or ""):
                found += _referenced_objects(inner, depth + 1, seen)
    return found


def _held(value):
    """``value`` and what it holds that can be called: the functions of a class the student
    wrote (its static and class methods, properties), of a ``functools.partial``, of a bound
    method, and the entries of a list, tuple or dict."""
    yield value
    if isinstance(value, type) and not _protected(getattr(value, "__module__", "") or ""):
        for member in vars(value).values():
            yield from _held(member)
    elif isinstance(value, (staticmethod, classmethod, types.MethodType)):
        yield value.__func__
    elif isinstance(value, property):
        yield from (f for f in (value.fget, value.fset, value.fdel) if f is not None)
    elif isinstance(value, functools.partial):
        yield value.func
    elif isinstance(value, (list, tuple)):
        for item in value[:64]:
            yield from _held(item) if not isinstance(item, (list, tuple, dict)) else ()
    elif isinstance(value, dict):
        for item in list(value.values())[:64]:
            yield from _held(item) if not isinstance(item, (list, tuple, dict)) else ()


def _require_no_forbidden_reference(name, fn, forbids):
    """Catch forbidden functions reached through an alias (``from jax import jacfwd as J``)."""
    for value in _referenced_objects(fn):
        if _ORIGINALS.get(id(value)) in forbids:
            raise Failed(f"{name} uses jax.{_ORIGINALS[id(value)]}, which this exercise forbids.",
                         f"{name}/forbidden-call")


def _equations(fn, *args):
    """Every equation of ``fn``'s program (its jaxpr), those of sub-programs (jit, cond, scan,
    custom rules, ...) included: the one walker of the checks that inspect a program."""
    stack = [jax.make_jaxpr(fn)(*args).jaxpr]
    while stack:
        for eqn in stack.pop().eqns:
            yield eqn
            for param in eqn.params.values():
                for sub in param if isinstance(param, (tuple, list)) else (param,):
                    inner = getattr(sub, "jaxpr", sub)
                    if hasattr(inner, "eqns"):
                        stack.append(inner)


def _program(fn, *args):
    """Primitive names of ``fn``'s program, sub-programs included."""
    return [eqn.primitive.name for eqn in _equations(fn, *args)]


def _require_vectorized(name, fn, small_args, large_args):
    """Equal program sizes for a small and a large batch mean no Python loop over the batch."""
    small = _call(name, lambda: _program(fn, *small_args))
    large = _call(name, lambda: _program(fn, *large_args))
    loops = sorted({p for p in large if p in ("scan", "while")})
    if loops:
        raise Failed(f"{name} runs a {loops[0]} loop over the vectors: use jax.vmap.",
                     _code("python-loop"))
    if len(small) != len(large):
        raise Failed(
            f"{name} builds a program whose size grows with the number of vectors "
            f"({len(small)} operations for a batch of {small_args[0].shape[0]}, {len(large)} for "
            f"{large_args[0].shape[0]}): use jax.vmap instead of a Python loop.",
            _code("python-loop"))


def _largest_intermediate(fn, *args):
    """Size of the largest array in ``fn``'s program, sub-programs included."""
    return max((int(np.prod(getattr(var.aval, "shape", ())))
                for eqn in _equations(fn, *args) for var in eqn.outvars), default=0)


def _require_small_intermediates(name, fn, args, limit, what, code):
    """No array of ``limit`` entries or more in ``fn``'s program; ``what`` ends the message."""
    largest = _call(name, lambda: _largest_intermediate(fn, *args))
    if largest >= limit:
        raise Failed(f"{name} builds an array of {largest} entries {what}", _code(code))


def _sin_twice(x):
    return jnp.sin(x) * 2.0


@jax.custom_vjp
def _reverse_only(x):
    """``_sin_twice`` with a custom VJP: forward mode raises on it."""
    return _sin_twice(x)


_reverse_only.defvjp(lambda x: (_sin_twice(x), jnp.cos(x)), lambda cos_x, g: (2.0 * cos_x * g,))


def _sin_plus_identity_twice(x):
    for _ in range(2):
        x = jnp.sin(x) + x
    return x


def _forward_only(x):
    """``_sin_plus_identity_twice`` as a while_loop, which reverse mode cannot differentiate."""
    return jax.lax.while_loop(lambda s: s[0] < 2, lambda s: (s[0] + 1, jnp.sin(s[1]) + s[1]),
                              (0, x))[1]


_MODE_PROBES = {"forward": (_forward_only, _sin_plus_identity_twice),
                "reverse": (_reverse_only, _sin_twice)}


def _require_mode(name, mode, run):
    """``run(fn, plain_fn)`` must work where ``fn`` only ``mode`` can differentiate."""
    other = "reverse" if mode == "forward" else "forward"
    try:
        run(*_MODE_PROBES[mode])
    except AssertionError as error:
        raise Failed(
            f"{name} must use {mode} mode, but it failed on a function that only {mode} mode "
            f"can differentiate: are you using {other} mode? What failed: {error}",
            _code("wrong-mode")) from None
