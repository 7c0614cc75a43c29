"""The ``Exercise`` runner, shared by every assignment's declarations (shipped).
"""

import contextlib

import jax
import jax.numpy as jnp
import numpy as np

from .calls import Case, _call, _compare, _describe
from .evidence import (
    Failed,
    Mistake,
    _active,
    _at,
    _checking,
    _code,
    _judging,
    _observe,
    _probing,
    _Replayed,
    _ReplayedNamespace,
    _told,
)
from .guard import _MISSING
from .mechanisms import _require_mode, _require_no_forbidden_reference


def _passed(what, cases, jit, mechanisms=()):
    """Say that ``what`` passed its ``cases`` (under jit, if so) and had the ``mechanisms``."""
    if _probing():
        return
    count = f"{len(cases)} case" + ("" if len(cases) == 1 else "s")
    also = ""
    if mechanisms:
        also = (", " + ", ".join(mechanisms[:-1]) if len(mechanisms) > 1 else "")
        also += " and " + mechanisms[-1]
    print(f"{what} passed {count}" + (" under jax.jit" if jit else "") + also + ".")


def _normal(seed, shape, dtype=jnp.float32, scale=1.0):
    """Normal samples (``scale`` times standard ones, in ``dtype``) drawn by NumPy: no JAX
    program to compile for each shape."""
    return _array(scale * np.random.default_rng(seed).standard_normal(shape).astype(dtype), dtype)


def _array(values, dtype=np.float32):
    """``jnp.array(values, dtype)`` for the checks' own data, by a copy to the device: eagerly,
    jnp.array compiles a conversion program for every new shape."""
    return jax.device_put(np.asarray(values, dtype))


def _run(name, fn, args, jit):
    """``fn(*args)`` called eagerly, or compiled with ``jax.jit`` (hidden tests)."""
    if not jit:
        return _call(name, fn, *args)
    try:  # a fresh wrapper: jax's trace cache must not serve a compilation of an earlier case
        return _call(name, jax.jit(lambda *args: fn(*args)), *args)
    except AssertionError as error:
        text = str(error)
        if text[:2].istitle():  # a sentence of its own ("The function ..."), not a name
            text = text[0].lower() + text[1:]
        raise Failed(f"Under jax.jit, {text}", getattr(error, "code", None)) from None


def _compare_tree(name, case, actual, expected, **hints):
    """``_compare`` leaf by leaf, after checking that the pytree structures agree."""
    if _probing():
        return
    if jax.tree.structure(actual) != jax.tree.structure(expected):
        raise Failed(f"{name} returned {_describe(actual)} for {case.label}; expected "
                     f"{_describe(expected)}.", _code("wrong-structure"))
    paths = [p for p, _ in jax.tree_util.tree_leaves_with_path(expected)]
    for path, a, e in zip(paths, jax.tree.leaves(actual), jax.tree.leaves(expected)):
        _compare(_leaf_in_words(name, path), case, a, e, **hints)


def _leaf_in_words(name, path):
    """A leaf of a pytree as a student reads it: ``the 'x' entry of element 0 of polar's
    cotangents`` for the path ``[0]['x']``."""
    words = []
    for key in reversed(path):
        if isinstance(key, jax.tree_util.DictKey):
            words.append(f"the {key.key!r} entry")
        elif isinstance(key, jax.tree_util.SequenceKey):
            words.append(f"element {key.idx}")
        else:
            words.append(f"the part {jax.tree_util.keystr((key,))}")
    return " of ".join(words + [name])


def _swap_global(fn, name, value):
    """Context: ``fn``'s global ``name`` replaced by ``value``, put back afterwards.

    Compilation caches are cleared on the way in and out, so that a student function wrapped
    in ``jax.jit`` is traced again with the swapped global.
    """
    @contextlib.contextmanager
    def swapped():
        if _judging():  # the kernel did it; the judge has only the record of it
            yield
            return
        namespace = _student_globals(fn)
        saved = namespace.get(name, _MISSING)
        namespace[name] = value
        jax.clear_caches()
        try:
            yield
        finally:
            if saved is _MISSING:
                namespace.pop(name, None)
            else:
                namespace[name] = saved
            jax.clear_caches()
    return swapped()


def _student_globals(fn):
    """The notebook namespace of a student function, through jit and custom_vjp wrappers."""
    if isinstance(fn, _Replayed):
        return _ReplayedNamespace()
    for _ in range(5):
        if hasattr(fn, "__globals__"):
            return fn.__globals__
        fn = getattr(fn, "__wrapped__", None) or getattr(fn, "fun", None)
    return {}


def _require_custom_rule(name, fn, kind):
    """``fn`` must be a ``jax.custom_jvp`` / ``jax.custom_vjp`` object with its rule defined."""
    cls, rule = {"jvp": (jax.custom_jvp, "jvp"), "vjp": (jax.custom_vjp, "bwd")}[kind]
    if not isinstance(fn, cls):
        raise Failed(f"{name} must be a function decorated with @jax.custom_{kind}.",
                     _code("no-custom-rule"))
    if getattr(fn, rule, None) is None:
        raise Failed(f"{name} has no rule yet: register it with {name}.def{kind}(...).",
                     _code("no-custom-rule"))


def _rule_helpers_at_module_level(exercise, answer):
    """The statement's ``_fwd`` and ``_bwd``, defined in the notebook's namespace."""
    namespace = _student_globals(answer)
    for helper in ("_fwd", "_bwd"):
        if not callable(namespace.get(helper)):
            raise Failed(f"Define the rule's {helper} at module level, as the statement says.",
                         _code("no-module-level-rule"))


def _one_cotangent(returned, mistake):
    """The one cotangent of a bwd rule's ``returned`` tuple; ``mistake`` if it is no 1-tuple."""
    if not (isinstance(returned, tuple) and len(returned) == 1):
        raise Failed(mistake, mistake.code)
    return returned[0]


def _float32_only(args):
    """Whether ``args`` hold arrays, all of them float32 (functions and Python numbers aside)."""
    leaves = [leaf for leaf in jax.tree.leaves(args)
              if isinstance(leaf, (jax.Array, np.ndarray))]
    return bool(leaves) and all(leaf.dtype == np.float32 for leaf in leaves)


def _strongly_typed(args):
    """``args`` with every weakly typed array (``jnp.array(2.0)`` is one) made an ordinary
    array of its dtype: in 64-bit mode a weakly typed float32 scalar acts as a Python number,
    and ``jnp.logaddexp(0.0, x)`` of one is float64, rightly."""
    return jax.tree.map(lambda leaf: _array(leaf, leaf.dtype)
                        if isinstance(leaf, jax.Array) and leaf.weak_type else leaf, args)


def _to64(tree):
    with jax.enable_x64(True):  # callers are in x64 mode already; this keeps others warning-free
        return jax.tree.map(lambda leaf: _array(leaf, np.float64), tree)


def _uses_mode(mode, run):
    """``Require``: ``run(answer, fn)`` must work on a function only ``mode`` can differentiate
    (``fn`` is it and ``plain`` the same function without the trick)."""
    return Require(f"uses {mode} mode", lambda exercise, answer, cases, jit: _require_mode(
        exercise.name, mode, lambda fn, plain: run(answer, fn, plain)))


class Require:
    """A mechanism the statement asks for: ``words`` says it in the pass message (``is
    vectorized``), ``check(exercise, answer, cases, jit)`` raises unless the answer has it.
    It runs after the visible cases have passed (before them when ``first``), or after every
    set of cases when ``always``."""

    def __init__(self, words, check, always=False, first=False):
        self.words, self.check, self.always, self.first = words, check, always, first


class Exercise:
    """One exercise's specification, in the order of its statement; the checks are its runner.

    ``name``: the function the student writes. ``statement``: what it computes, in one line.
    ``cases()``: the visible cases (the hidden tests pass their own). ``check_case(exercise,
    answer, case, jit)``: the answer against the oracle on one case. ``rule``: ``"jvp"`` or
    ``"vjp"`` when the answer must be a ``jax.custom_jvp`` / ``custom_vjp`` with its rule;
    ``nondiff_argnums``: the ones that rule must declare. ``forbids``: the jax functions the
    answer may neither call nor name. ``structure``: more requirements on the answer's form,
    each ``(exercise, answer)``. ``requires``: the mechanisms (:class:`Require`). ``mistakes``:
    the named mistakes, code -> message, which ``check_case`` and the requirements raise as
    ``exercise.mistakes[code]``. ``facts``: what a ``check_case`` shared by two exercises
    needs to tell them apart (``mode="forward"``).

    Calling it checks an answer: ``check_vgrad(vgrad)`` in the visible test cell, and
    ``check_vgrad(vgrad, cases=[...], jit=True)`` in the hidden tests.
    """

    def __init__(self, name, statement, *, cases, check_case, rule=None, nondiff_argnums=None,
                 forbids=(), structure=(), requires=(), mistakes=None, **facts):
        self.name, self.__doc__ = name, statement
        self.cases, self.check_case = cases, check_case
        self.rule, self.nondiff_argnums = rule, nondiff_argnums
        self.forbids, self.structure, self.requires = forbids, structure, requires
        self.mistakes = {code: Mistake(f"{name}/{code}", message)
                         for code, message in (mistakes or {}).items()}
        self.facts = facts

    def __call__(self, answer, cases=None, jit=False):
        visible = cases is None
        cases = self.cases() if visible else cases
        _active.append(self)
        try:
            with _checking(self.name, {"visible": visible, "jit": bool(jit),
                                       "cases": [str(case.label) for case in cases]}):
                self._check(answer, cases, visible, jit)
        finally:
            _active.pop()

    def _check(self, answer, cases, visible, jit):
        try:
            _observe(f"the form of {self.name}", lambda: self._require_form(answer))
            checked = [r for r in self.requires if visible or r.always]
            for requirement in (r for r in checked if r.first):
                _at("first", self.requires.index(requirement))
                requirement.check(self, answer, cases, jit)
            for index, case in enumerate(cases):
                _at("case", index)
                self.check_case(self, answer, case, jit)
            for requirement in (r for r in checked if not r.first):
                _at("after", self.requires.index(requirement))
                requirement.check(self, answer, cases, jit)
            if not visible and not jax.config.jax_enable_x64:
                self._check_float32_under_x64(answer, cases, jit)
        except AssertionError as failure:  # raised afresh: the traceback ends at the test line
            raise _told(failure) from None
        _passed(self.name, cases, jit, [r.words for r in checked])

    def _check_float32_under_x64(self, answer, cases, jit):
        """The first hidden case whose arrays are all float32, again with 64-bit mode on, where
        an array made with the default dtype (``jnp.zeros(n)``, ``jnp.eye(n)``) is float64:
        float32 inputs must still give float32 results. One case is enough to catch such an
        array, and each case run again compiles the answer's programs again."""
        for index, case in enumerate(cases):
            if _float32_only(case.args):
                _at("float32 under x64", index)
                with jax.enable_x64(True):
                    relabelled = Case(f"{case.label}, float32 with 64-bit mode on",
                                      *_strongly_typed(case.args))
                    self.check_case(self, answer, relabelled, jit)
                return

    def _require_form(self, answer):
        if self.rule:
            _require_custom_rule(self.name, answer, self.rule)
        if self.nondiff_argnums is not None:
            wanted, why = self.nondiff_argnums
            if tuple(getattr(answer, "nondiff_argnums", ())) != wanted:
                raise Failed(f"{self.name} must declare nondiff_argnums={wanted}{why}",
                             _code("nondiff-argnums"))
        if self.forbids:
            _require_no_forbidden_reference(self.name, answer, self.forbids)
        for requirement in self.structure:
            requirement(self, answer)
