"""The bad-input table: every public entry point, the malformed inputs a user can produce, the
exception and message each one gets, and the model left unchanged by a failed call."""

import numpy as np
import pytest

import rnnfast
from rnnfast import checkpoint
from rnnfast.__main__ import main
from rnnfast.sampling import iter_sample

TEXT = "abcdefgh ij\n" * 50
V = len(set(TEXT))


@pytest.fixture
def model():
    return rnnfast.CharLM(rnnfast.Vocab.from_text(TEXT), hidden_size=8, num_layers=2, seed=0)


def ids(*shape, high=V, low=0):
    return np.random.default_rng(0).integers(low, high, shape)


def saved(tmp_path, model):
    path = tmp_path / "model.npz"
    checkpoint.save(path, model)
    return path


# (id, call(model, tmp_path), exception, message)
TABLE = [
    # model construction
    ("vocab of size 0", lambda m, p: rnnfast.CharLM(0), ValueError, "at least 1"),
    ("vocab of wrong type", lambda m, p: rnnfast.CharLM("abc"), TypeError, "Vocab or an int"),
    ("hidden_size 0", lambda m, p: rnnfast.CharLM(5, hidden_size=0), ValueError, "hidden_size"),
    ("num_layers -1", lambda m, p: rnnfast.CharLM(5, num_layers=-1), ValueError, "num_layers"),
    ("unknown cell", lambda m, p: rnnfast.CharLM(5, cell="gru"), ValueError, "cell"),
    ("float16", lambda m, p: rnnfast.CharLM(5, dtype=np.float16), ValueError, "float16"),
    # forward and loss
    ("float ids", lambda m, p: m.loss(ids(4, 2).astype(float), ids(4, 2)), TypeError, "integer"),
    ("1-d ids", lambda m, p: m.loss(ids(4), ids(4)), ValueError, r"shape \(T, B\)"),
    ("id = V", lambda m, p: m.loss(ids(4, 2, low=V, high=V + 1), ids(4, 2)), ValueError,
     f"id {V} out of range"),
    ("negative id", lambda m, p: m.loss(ids(4, 2), ids(4, 2) - 5), ValueError, "out of range"),
    ("zero steps", lambda m, p: m.loss(ids(0, 2), ids(0, 2)), ValueError, "at least one"),
    ("x, y shapes differ", lambda m, p: m.loss(ids(4, 2), ids(5, 2)), ValueError, "shape of x"),
    ("state of wrong batch", lambda m, p: m.loss(ids(4, 2), ids(4, 2), m.zero_state(3)),
     ValueError, "state.h"),
    ("state with NaN", lambda m, p: m.loss(ids(4, 2), ids(4, 2), rnnfast.State(
        np.full((2, 2, 8), np.nan, np.float32), np.zeros((2, 2, 8), np.float32))),
     ValueError, "NaN"),
    ("state as a list", lambda m, p: m.loss(ids(4, 2), ids(4, 2), [1, 2, 3]), TypeError, "State"),
    # backward, training step, step API
    ("grads: bad ids", lambda m, p: m.loss_and_grads(ids(3, 1) + V, ids(3, 1)), ValueError,
     "out of range"),
    ("train_step: bad ids", lambda m, p: m.train_step(ids(3, 1) - V, ids(3, 1), rnnfast.Adam(m)),
     ValueError, "out of range"),
    ("train_step: foreign optimizer", lambda m, p: m.train_step(
        ids(3, 1), ids(3, 1), rnnfast.Adam(rnnfast.CharLM(V))), ValueError, "different model"),
    ("train_step: clip 0", lambda m, p: m.train_step(ids(3, 1), ids(3, 1), rnnfast.SGD(m), clip=0),
     ValueError, "clip"),
    ("step: 2-d ids", lambda m, p: m.step(ids(2, 2)), ValueError, r"\(B,\)"),
    # optimizers
    ("lr inf", lambda m, p: rnnfast.SGD(m, lr=float("inf")), ValueError, "lr"),
    ("momentum 1", lambda m, p: rnnfast.SGD(m, momentum=1.0), ValueError, "momentum"),
    ("beta2 -0.1", lambda m, p: rnnfast.Adam(m, beta2=-0.1), ValueError, "beta2"),
    ("grads of wrong dtype", lambda m, p: rnnfast.Adam(m).step(np.zeros(m.num_params)),
     ValueError, "float32"),
    # sampling
    ("length -1", lambda m, p: m.sample(-1), ValueError, "length"),
    ("temperature 0", lambda m, p: m.sample(5, temperature=0), ValueError, "temperature"),
    ("temperature nan", lambda m, p: m.sample(5, temperature=float("nan")), ValueError,
     "temperature"),
    ("top_k 0", lambda m, p: m.sample(5, top_k=0), ValueError, "top_k"),
    ("num_samples 0", lambda m, p: m.sample(5, num_samples=0), ValueError, "num_samples"),
    ("unknown prime", lambda m, p: m.sample(5, prime="xyz"), ValueError, "'x'"),
    ("prime of ids out of range", lambda m, p: list(iter_sample(m, 5, [V + 3])), ValueError,
     "out of range"),
    # vocabulary and data
    ("empty corpus", lambda m, p: rnnfast.Vocab.from_text(""), ValueError, "empty"),
    ("one-character corpus batches", lambda m, p: rnnfast.Batches(np.zeros(1, int), 1, 1),
     ValueError, "shorter than one batch"),
    ("decode id V", lambda m, p: m.vocab.decode([V]), ValueError, "out of range"),
    # checkpoints
    ("missing checkpoint", lambda m, p: checkpoint.load(p / "nope.npz"), checkpoint.CheckpointError,
     "nope"),
    ("text file as checkpoint", lambda m, p: (p / "t.npz").write_text("hello")
     and checkpoint.load(p / "t.npz"), checkpoint.CheckpointError, "t.npz"),
]  # fmt: skip


@pytest.mark.parametrize("call, error, message", [t[1:] for t in TABLE], ids=[t[0] for t in TABLE])
def test_bad_input_is_a_clear_error_and_changes_nothing(call, error, message, model, tmp_path):
    before = model.flat_params.copy()
    with pytest.raises(error, match=message):
        call(model, tmp_path)
    np.testing.assert_array_equal(model.flat_params, before)


CLI_TABLE = [
    ("train: text shorter than a batch", ["train", "--data", "{tiny}", "--steps", "1"],
     "shorter than one batch"),
    ("train: missing file", ["train", "--data", "{dir}/missing.txt"], "missing.txt"),
    ("train: empty file", ["train", "--data", "{empty}"], "empty"),
    ("sample: unknown prime", ["sample", "{ck}", "--prime", "xyz"], "'x'"),
    ("sample: negative length", ["sample", "{ck}", "--length", "-5"], "non-negative"),
    ("sample: top-k 0 is refused before a huge length starts", ["sample", "{ck}", "--length",
     "1000000000", "--top-k", "0"], "positive"),
    ("sample: temperature 0", ["sample", "{ck}", "--temperature", "0"], "positive"),
    ("eval: foreign file", ["eval", "{tiny}"], "tiny.txt"),
    ("info: missing checkpoint", ["info", "{dir}/none"], "none"),
]  # fmt: skip


@pytest.mark.parametrize("argv, message", [t[1:] for t in CLI_TABLE], ids=[t[0] for t in CLI_TABLE])
def test_cli_bad_input_is_one_line_and_exit_2(argv, message, model, tmp_path, capsys):
    (tmp_path / "tiny.txt").write_text("ab")
    (tmp_path / "empty.txt").write_text("")
    paths = {"tiny": tmp_path / "tiny.txt", "empty": tmp_path / "empty.txt", "dir": tmp_path,
             "ck": saved(tmp_path, model)}  # fmt: skip
    argv = [a.format(**paths) for a in argv] + (["--out", str(tmp_path / "out")]
                                                if argv[0] == "train" else [])  # fmt: skip
    try:
        status = main(argv)
    except SystemExit as exit_:  # argparse rejects a malformed flag value itself
        status = exit_.code
    err = capsys.readouterr().err
    assert status == 2
    assert "Traceback" not in err
    assert any(__import__("re").search(message, line) for line in err.splitlines()), err
