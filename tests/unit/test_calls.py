"""course/checks/calls.py: how the checks put values, arguments and mistakes into words, and
how close is close enough."""

import jax.numpy as jnp
import numpy as np
import pytest

from course.checks import calls


@pytest.mark.parametrize("value, words", [
    (np.zeros((3,), np.float32), "a float32 array of shape (3,)"),
    (np.float64(2.0), "a float64 scalar"),
    (jnp.ones((2, 3), jnp.int32), "a int32 array of shape (2, 3)"),
    (len, "a function"),
    ((np.ones(2), 1.5), "a tuple of 2 (a float64 array of shape (2,), the float 1.5)"),
    ({"w": np.ones((2, 2))}, "a dict {'w': a float64 array of shape (2, 2)}"),
    (object(), "a object"),
])
def test_values_in_words(value, words):
    assert calls._describe(value) == words


def test_arguments_in_words():
    assert calls._arguments(()) == "nothing"
    assert calls._arguments((len,)) == "a function"
    assert calls._arguments((len, 1, 2.5)) == "a function, the int 1 and the float 2.5"


def test_a_long_message_is_cut_at_a_sentence_or_a_word_never_inside_one():
    sentences = "First sentence is here. " + "word " * 100
    assert calls._shorten(sentences, 40) == "First sentence is here."
    cut = calls._shorten("abcdefghij " * 40, 100)
    assert cut.endswith(" …") and len(cut) <= 100
    assert all(word == "abcdefghij" for word in cut.removesuffix(" …").split())
    assert calls._shorten("  short \n text ") == "short text"


def test_float64_results_are_held_to_float64_precision():
    rtol64, atol64 = calls._tolerances(np.float64)
    rtol32, atol32 = calls._tolerances(np.float32)
    assert rtol64 < 1e-8 < rtol32
    assert calls._tolerances(np.float64, np.array([1e6, np.inf]))[1] == pytest.approx(atol64 * 1e6)


@pytest.mark.parametrize("factor, words", [(2, "twice"), (0.5, "half"), (8, "8 times"),
                                           (1 / 8, "1/8 of"), (1.5, None)])
def test_a_whole_factor_is_named(factor, words):
    expected = np.array([1.0, -2.0, 3.0])
    assert calls._factor_in_words(factor * expected, expected, 1e-9, 1e-12) == words
