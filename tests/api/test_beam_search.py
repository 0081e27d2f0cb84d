"""CharLM.beam_search against an exhaustive enumeration scored by ``forward``, against a plain
beam search that rescores every beam from the prime, and the C backend against NumPy's."""

import itertools
import math

import numpy as np
import pytest
from conftest import assert_close

import rnnfast
from rnnfast import sampling
from rnnfast.backends import BACKENDS

CELLS = ["rnn", "lstm", "gru"]


def tiny_model(vocab, cell, backend="c", dtype=np.float64, seed=2):
    model = rnnfast.CharLM(vocab, cell, hidden_size=6, num_layers=2, dtype=dtype,
                           backend=backend, seed=seed)  # fmt: skip
    model.params["W_y"][...] *= 6  # distributions far from flat: no near-ties
    return model


def logprob(model, prime: str, continuation: str) -> float:
    """The log-probability of ``continuation`` after ``prime`` from one ``forward`` over both
    (without a prime, the first character's is log(1 / V))."""
    ids = model.vocab.encode(prime + continuation)
    total = 0.0 if prime else -math.log(model.vocab_size)
    if len(ids) < 2:
        return total
    logits, _ = model.forward(ids[:-1, None])
    z = logits[:, 0].astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    z -= np.log(np.exp(z).sum(axis=1, keepdims=True))
    first = max(len(prime), 1)  # the first scored character
    for t in range(first, len(ids)):
        total += z[t - 1, ids[t]]
    return total


def ranked(model, prime, continuations):
    """(text, logprob) of each continuation, best first, ties by ids."""
    ids = {c: tuple(model.vocab.encode(c)) for c in continuations}
    scored = [(prime + c, logprob(model, prime, c), ids[c]) for c in continuations]
    scored.sort(key=lambda s: (-s[1], s[2]))
    return [(text, score) for text, score, _ in scored]


def plain_beam_search(model, length, prime, width):
    """Beam search spelled out: every beam rescored from the prime by ``logprob``."""
    chars = model.vocab.chars
    if prime:
        beams = [""]
    else:
        beams, length = list(chars), length - 1
        beams = [text for text, _ in ranked(model, prime, beams)]
    for _ in range(length):
        candidates = [beam + ch for beam in beams for ch in chars]
        beams = [text[len(prime) :] for text, _ in ranked(model, prime, candidates)[:width]]
    return ranked(model, prime, beams)[:width]


def assert_same(got, expected, dtype=np.float64):
    assert [text for text, _ in got] == [text for text, _ in expected]
    assert_close([lp for _, lp in got], [lp for _, lp in expected], dtype, "logprob")


@pytest.mark.parametrize("prime", ["ab", "c", ""])
@pytest.mark.parametrize("length", [3, 4])
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_wide_beam_is_the_exhaustive_ranking(backend, cell, length, prime):
    """width >= V^length: every continuation, in the order of their forward-scored logprobs."""
    model = tiny_model(rnnfast.Vocab("abc"), cell, backend)
    every = ["".join(c) for c in itertools.product("abc", repeat=length)]
    got = model.beam_search(length, prime, width=3**length)
    assert_same(got, ranked(model, prime, every))
    assert all(isinstance(lp, float) for _, lp in got)
    assert model.beam_search(length, prime, width=3**length + 5) == got  # no more there


@pytest.mark.parametrize("width", [1, 2, 5])
@pytest.mark.parametrize("prime", ["ab", ""])
@pytest.mark.parametrize("cell", CELLS)
def test_a_narrow_beam_is_the_plain_beam_search(cell, prime, width):
    model = tiny_model(rnnfast.Vocab("abc"), cell)
    assert_same(model.beam_search(4, prime, width), plain_beam_search(model, 4, prime, width))


def test_a_narrow_beam_over_a_larger_vocabulary():
    """V = 11: pruning to the width at every step, the state rows following their beams."""
    model = tiny_model(rnnfast.Vocab("abcdefghijk"), "lstm", seed=5)
    got = model.beam_search(5, "fig", 3)
    assert_same(got, plain_beam_search(model, 5, "fig", 3))
    assert len({text for text, _ in got}) == 3


@pytest.mark.parametrize("cell", CELLS)
def test_c_and_numpy_backends_find_the_same_beams(dtype, cell):
    vocab = rnnfast.Vocab.from_text("To be, or not to be, that is the question")
    models = [tiny_model(vocab, cell, backend, dtype, seed=9) for backend in BACKENDS]
    for prime, length, width in (("To be", 12, 4), ("", 6, 3), ("q", 1, 20)):
        got, expected = (m.beam_search(length, prime, width) for m in models)
        assert_same(got, expected, dtype)
        assert len(got) == min(width, len(vocab) ** length)


def test_ties_go_in_lexicographic_order_of_the_ids():
    """A flat model: every continuation has the same logprob, so the first ones by id win (by
    id, not by character)."""
    model = tiny_model(rnnfast.Vocab("cab"), "lstm")  # ids: c 0, a 1, b 2
    model.params["W_y"][...] = 0
    model.params["b_y"][...] = 0
    got = model.beam_search(2, "b", width=4)
    assert [text for text, _ in got] == ["bcc", "bca", "bcb", "bac"]
    assert {lp for _, lp in got} == {2 * -math.log(3)}
    assert [text for text, _ in model.beam_search(1, "", width=2)] == ["c", "a"]
    # the same logprobs at every step (b_y alone), likelier by id: beams c, b, a after one step,
    # then "bc" and "cb" tie exactly, and "bc" comes first, though beam c scored higher
    model = tiny_model(rnnfast.Vocab("abc"), "lstm")
    model.params["W_y"][...] = 0
    model.params["b_y"][...] = [0.0, 1.0, 2.0]
    got = model.beam_search(2, "a", width=3)
    assert [text for text, _ in got] == ["acc", "abc", "acb"] and got[1][1] == got[2][1]


def test_length_zero_and_the_model_left_as_it_was():
    model = tiny_model(rnnfast.Vocab("abc"), "gru")
    before = model.flat_params.copy()
    assert model.beam_search(0, "ab", width=3) == [("ab", 0.0)]
    assert model.beam_search(0, "", width=3) == [("", 0.0)]
    np.testing.assert_array_equal(model.flat_params, before)


def test_ids_without_a_vocabulary():
    model = rnnfast.CharLM(3, "rnn", hidden_size=4, num_layers=1, seed=0)
    ids, logprobs = sampling.beam_search_ids(model, 3, np.array([2, 0]), width=27)
    assert ids.shape == (27, 3) and len({tuple(row) for row in ids}) == 27
    assert np.all(np.diff(logprobs) <= 0)
    assert np.exp(logprobs).sum() == pytest.approx(1.0, rel=1e-5)  # every continuation's


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(width=0), ValueError, "width: expected a positive integer, got 0"),
        (dict(width=-2), ValueError, "width: expected a positive integer, got -2"),
        (dict(width=1.5), ValueError, "width: expected a positive integer, got 1.5"),
        (dict(width=True), ValueError, "width: expected a positive integer, got True"),
        (dict(length=-1), ValueError, "length: expected a non-negative integer, got -1"),
        (dict(prime="abz"), ValueError, "1 character(s) not in the vocabulary: 'z'"),
        (dict(prime=b"ab"), TypeError, "prime: expected str, got bytes"),
    ],
)
def test_bad_input_is_a_one_line_error(kwargs, error, message):
    model = tiny_model(rnnfast.Vocab("abc"), "lstm")
    kwargs = {"length": 3, "prime": "a", **kwargs}
    with pytest.raises(error) as info:
        model.beam_search(**kwargs)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_unknown_prime_characters_can_be_skipped():
    model = tiny_model(rnnfast.Vocab("abc"), "lstm")
    with pytest.warns(UserWarning, match="'z'"):
        skipped = model.beam_search(3, "azb", skip_unknown=True)
    assert skipped == model.beam_search(3, "ab")


def test_a_model_without_characters_points_to_the_ids():
    model = rnnfast.CharLM(3, "rnn", hidden_size=4, num_layers=1, seed=0)
    with pytest.raises(ValueError, match="rnnfast.sampling.beam_search_ids"):
        model.beam_search(3, "a")
