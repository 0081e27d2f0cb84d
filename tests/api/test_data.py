"""Vocabulary, split, batches and the built-in corpus."""

import numpy as np
import pytest

import rnnfast
from rnnfast.data import BUILTIN_MODULES, Batches, Vocab, char_listing, load_text, split


def test_vocab_from_text_is_sorted_code_points_and_round_trips():
    text = "hello, wörld ✓\n"
    vocab = Vocab.from_text(text)
    assert vocab.chars == "".join(sorted(set(text)))
    ids = vocab.encode(text)
    assert ids.dtype == np.int64
    assert vocab.decode(ids) == text
    assert len(vocab) == len(set(text))


def test_explicit_order_is_kept():
    vocab = Vocab(["b", "a", "c"])
    assert vocab.encode("abc").tolist() == [1, 0, 2]


def test_unknown_character_is_named():
    vocab = Vocab.from_text("abc")
    with pytest.raises(ValueError, match="'z'"):
        vocab.encode("abz")


def test_unknown_characters_are_listed_sorted_once_and_at_most_ten():
    v = Vocab.from_text("abc")
    assert v.unknown("zaxz") == ["x", "z"] and v.unknown("cab") == []
    assert char_listing(v.unknown("xz")) == "'x', 'z'"
    assert char_listing(list("ABCDEFGHIJKL")) == ", ".join(map(repr, "ABCDEFGHIJ")) + " ..."


def test_unknown_character_can_be_skipped_with_a_warning():
    vocab = Vocab.from_text("abc")
    with pytest.warns(UserWarning, match="'z'"):
        assert vocab.encode("azb", skip_unknown=True).tolist() == [0, 1]


@pytest.mark.parametrize(
    "chars, message", [([], "at least one"), (["a", "a"], "twice"), (["ab"], "single characters")]
)
def test_bad_vocabularies(chars, message):
    with pytest.raises(ValueError, match=message):
        Vocab(chars)


def test_empty_text_is_rejected():
    with pytest.raises(ValueError, match="empty"):
        Vocab.from_text("")


def test_decode_rejects_out_of_range_ids():
    with pytest.raises(ValueError, match="out of range"):
        Vocab.from_text("ab").decode([0, 2])


def test_split_is_contiguous_last_ten_percent():
    ids = np.arange(1000)
    train, val = split(ids)
    assert train.tolist() == list(range(900)) and val.tolist() == list(range(900, 1000))


def test_shakespeare_validation_split_matches_nanogpt(shakespeare):
    _, val = split(np.zeros(len(shakespeare)))
    assert len(val) == 111540


def test_batches_are_contiguous_streams_with_shifted_targets():
    """101 ids make 4 streams of 25 inputs (100 // 4), each read in 5 windows of 5: stream s
    is ids[25 s : 25 s + 25], window k its characters [5 k, 5 k + 5), targets one ahead."""
    ids = np.arange(101)
    batches = Batches(ids, batch_size=4, seq_length=5)
    assert len(batches) == 5
    windows = list(batches)
    assert len(windows) == 5
    for k, (x, y) in enumerate(windows):
        assert x.shape == y.shape == (5, 4) and x.dtype == y.dtype == np.int64
        for s in range(4):
            np.testing.assert_array_equal(x[:, s], np.arange(25 * s + 5 * k, 25 * s + 5 * k + 5))
        np.testing.assert_array_equal(y, x + 1)
        np.testing.assert_array_equal(x, batches.batch(k)[0])
    with pytest.raises(IndexError, match=r"batch 5 out of range \[0, 5\)"):
        batches.batch(5)


def test_text_shorter_than_one_batch_is_rejected():
    with pytest.raises(ValueError, match="shorter than one batch"):
        Batches(np.arange(20), batch_size=4, seq_length=5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"batch_size": 0, "seq_length": 2}, "batch_size: expected a positive integer, got 0"),
        ({"batch_size": 2, "seq_length": 1.5}, "seq_length: expected a positive integer, got 1.5"),
        (
            {"batch_size": True, "seq_length": 2},
            "batch_size: expected a positive integer, got True",
        ),
    ],
)
def test_bad_batch_sizes(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Batches(np.arange(100), **kwargs)


def test_builtin_corpus_is_python_source():
    text = rnnfast.builtin_corpus()
    assert len(text) > 500_000
    assert "def " in text and "import " in text
    assert list(BUILTIN_MODULES) == sorted(BUILTIN_MODULES)


def test_load_text_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such"):
        load_text(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(ValueError, match="empty"):
        load_text(tmp_path / "empty.txt")
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ValueError, match="UTF-8"):
        load_text(tmp_path / "bin.txt")
