"""Vocabulary, split, batches and the built-in corpus."""

import numpy as np
import pytest

import rnnfast
from rnnfast.data import BUILTIN_MODULES, Batches, Vocab, load_text, split


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
    ids = np.arange(101)
    batches = Batches(ids, batch_size=4, seq_length=5)
    # 4 streams of 25 characters, 5 windows of 5 each
    assert len(batches) == 5
    x0, y0 = batches.batch(0)
    assert x0.shape == (5, 4)
    assert x0[:, 1].tolist() == [25, 26, 27, 28, 29]
    np.testing.assert_array_equal(y0, x0 + 1)
    x1, _ = batches.batch(1)
    assert x1[0, 1] == x0[-1, 1] + 1  # step k + 1 continues every stream of step k
    assert len(list(batches)) == 5


def test_text_shorter_than_one_batch_is_rejected():
    with pytest.raises(ValueError, match="shorter than one batch"):
        Batches(np.arange(20), batch_size=4, seq_length=5)


@pytest.mark.parametrize(
    "kwargs", [{"batch_size": 0, "seq_length": 2}, {"batch_size": 2, "seq_length": 1.5}]
)
def test_bad_batch_sizes(kwargs):
    with pytest.raises(ValueError):
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
