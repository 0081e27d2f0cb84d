"""The bad-input tables: every public entry point, the malformed inputs a user can produce, and
the exception and message (argument, expected, actual) each one gets.  A failed call on a model
leaves everything it could have changed as it was: parameters, optimizer moments, step count and
hyperparameters, the recurrent state passed in, a cell's carried state."""

import numpy as np
import pytest

import rnnfast
from rnnfast import checkpoint, layers
from rnnfast.__main__ import main
from rnnfast.model import Sampler
from rnnfast.sampling import iter_sample

TEXT = "abcdefgh ij\n" * 50
V = len(set(TEXT))
NAN = float("nan")


@pytest.fixture
def model():
    return rnnfast.CharLM(rnnfast.Vocab.from_text(TEXT), hidden_size=8, num_layers=2, seed=0)


def ids(*shape, high=V, low=0):
    return np.random.default_rng(0).integers(low, high, shape)


def saved(tmp_path, model):
    path = tmp_path / "model.npz"
    checkpoint.save(path, model)
    return path


class Trained:
    """A model, its Adam optimizer and the recurrent state after one real training step (so
    the moments, the step count and the state are not their initial zeros), and an LSTM cell
    that has taken a step."""

    def __init__(self, model):
        self.model = model
        self.opt = rnnfast.Adam(model, lr=1e-2)
        _, self.state = model.train_step(ids(5, 2), ids(5, 2), self.opt)
        self.sgd = rnnfast.SGD(model)
        self.cell = rnnfast.LSTM(3, 4, 2, seed=0)
        self.cell.step(np.ones((2, 3), np.float32))

    def snapshot(self):
        opt = self.opt.state_dict()
        return [self.model.flat_params, *self.state, *opt["moments"].values(),
                np.array(opt["step_count"]), np.array(list(opt["hyperparameters"].values())),
                self.cell.params.flat, self.cell.h, self.cell.c]  # fmt: skip


# (id, call(trained), exception, message): each call reaches the model, its optimizer, its
# state or a cell that has taken a step
CALLS = [
    # forward and loss
    ("float ids", lambda t: t.model.loss(ids(4, 2).astype(float), ids(4, 2)), TypeError,
     "x: expected integer character ids, got dtype float64"),
    ("1-d ids", lambda t: t.model.loss(ids(4), ids(4)), ValueError,
     r"x: expected character ids of shape \(T, B\), got \(4,\)"),
    ("id = V", lambda t: t.model.loss(ids(4, 2, low=V, high=V + 1), ids(4, 2)), ValueError,
     rf"x: character id {V} out of range \[0, {V}\)"),
    ("negative id", lambda t: t.model.loss(ids(4, 2), ids(4, 2) - 5), ValueError,
     rf"y: character id -\d out of range \[0, {V}\)"),
    ("zero steps", lambda t: t.model.loss(ids(0, 2), ids(0, 2)), ValueError,
     r"x: expected at least one character id, got shape \(0, 2\)"),
    ("x, y shapes differ", lambda t: t.model.loss(ids(4, 2), ids(5, 2)), ValueError,
     r"y: expected the shape of x \(4, 2\), got \(5, 2\)"),
    ("state of wrong batch", lambda t: t.model.loss(ids(4, 3), ids(4, 3), t.state), ValueError,
     r"state.h: expected shape \(2, 3, 8\), got \(2, 2, 8\)"),
    ("state of wrong dtype", lambda t: t.model.loss(ids(4, 2), ids(4, 2), rnnfast.State(
        t.state.h, t.state.c.astype(np.float64))), TypeError,
     "state.c: expected dtype float32, got float64"),
    ("state with NaN", lambda t: t.model.loss(ids(4, 2), ids(4, 2), rnnfast.State(
        np.full((2, 2, 8), np.nan, np.float32), t.state.c)), ValueError,
     "state.h: expected finite values, got NaN or infinity"),
    ("state as a list", lambda t: t.model.loss(ids(4, 2), ids(4, 2), [1, 2, 3]), TypeError,
     "state: expected a State .*, got list"),
    ("forward: bad ids", lambda t: t.model.forward(ids(3, 2) + V, t.state), ValueError,
     "x: character id .* out of range"),
    ("step: 2-d ids", lambda t: t.model.step(ids(2, 2), t.state), ValueError,
     r"ids: expected character ids of shape \(B,\), got \(2, 2\)"),
    # dropout masks and the train flag
    ("masks of wrong shape", lambda t: t.model.loss(ids(4, 2), ids(4, 2), masks=np.ones(
        (2, 4, 3, 8), np.float32)), ValueError,
     r"masks: expected shape \(2, 4, 2, 8\), got \(2, 4, 3, 8\)"),
    ("masks of wrong dtype", lambda t: t.model.loss_and_grads(ids(4, 2), ids(4, 2), masks=np.ones(
        (2, 4, 2, 8))), TypeError, "masks: expected dtype float32, got float64"),
    ("masks with NaN", lambda t: t.model.loss(ids(4, 2), ids(4, 2), masks=np.full(
        (2, 4, 2, 8), np.nan, np.float32)), ValueError,
     "masks: expected finite values, got NaN or infinity"),
    ("train not a bool", lambda t: t.model.loss(ids(4, 2), ids(4, 2), train="yes"), TypeError,
     "train: expected a bool, got str"),
    ("dropout_masks: T 0", lambda t: t.model.dropout_masks(0, 2), ValueError,
     "T: expected a positive integer, got 0"),
    # backward and the training step: refused before any update
    ("grads: bad ids", lambda t: t.model.loss_and_grads(ids(3, 2) + V, ids(3, 2), t.state),
     ValueError, "x: character id .* out of range"),
    ("train_step: bad targets", lambda t: t.model.train_step(ids(3, 2), ids(3, 2) - V, t.opt,
                                                              t.state),
     ValueError, "y: character id .* out of range"),
    ("train_step: foreign optimizer", lambda t: t.model.train_step(
        ids(3, 1), ids(3, 1), rnnfast.Adam(rnnfast.CharLM(V))), ValueError,
     "optimizer: expected one created for this model"),
    ("train_step: clip 0", lambda t: t.model.train_step(ids(3, 2), ids(3, 2), t.opt, t.state,
                                                         clip=0),
     ValueError, "clip: expected a positive finite number or None, got 0"),
    ("train_step: max_norm nan", lambda t: t.model.train_step(ids(3, 2), ids(3, 2), t.opt,
                                                               t.state, max_norm=NAN),
     ValueError, "max_norm: expected a positive finite number or None, got nan"),
    ("clip_grads: value -1", lambda t: t.model.clip_grads(t.model.zeros_like_params(), value=-1),
     ValueError, "value: expected a positive finite number or None, got -1"),
    # optimizers
    ("grads of wrong dtype", lambda t: t.opt.step(np.zeros(t.model.num_params)), TypeError,
     "grads: expected dtype float32, got float64"),
    ("grads of wrong size", lambda t: t.opt.step(np.zeros(3, np.float32)), ValueError,
     r"grads: expected shape \(\d+,\), got \(3,\)"),
    ("lr set to nan", lambda t: setattr(t.opt, "lr", NAN), ValueError,
     "lr: expected a positive finite number, got nan"),
    ("beta1 set to 1", lambda t: setattr(t.opt, "beta1", 1.0), ValueError,
     r"beta1: expected a finite number in \[0, 1\), got 1.0"),
    ("SGD without velocity given momentum", lambda t: setattr(t.sgd, "momentum", 0.9)
     or t.sgd.step(t.model.zeros_like_params()), ValueError, "momentum: expected 0 .*got 0.9"),
    ("load_state_dict: bad eps", lambda t: t.opt.load_state_dict(
        {**t.opt.state_dict(), "hyperparameters": {"lr": 0.5, "beta1": 0.5, "beta2": 0.5,
                                                    "eps": -1.0}}),
     ValueError, "eps: expected a positive finite number, got -1.0"),
    ("load_state_dict: moment of wrong shape", lambda t: t.opt.load_state_dict(
        {**t.opt.state_dict(), "moments": {"m": np.zeros(3), "v": np.zeros(3)}}),
     ValueError, r"moment 'm': expected shape"),
    # sampling
    ("length -1", lambda t: t.model.sample(-1), ValueError,
     "length: expected a non-negative integer, got -1"),
    ("temperature 0", lambda t: t.model.sample(5, temperature=0), ValueError,
     "temperature: expected a positive finite number, got 0"),
    ("temperature nan", lambda t: t.model.sample(5, temperature=NAN), ValueError,
     "temperature: expected a positive finite number, got nan"),
    ("top_k 0", lambda t: t.model.sample(5, top_k=0), ValueError,
     "top_k: expected a positive integer or None, got 0"),
    ("num_samples 0", lambda t: t.model.sample(5, num_samples=0), ValueError,
     "num_samples: expected a positive integer, got 0"),
    ("unknown prime", lambda t: t.model.sample(5, prime="xyz"), ValueError, "'x'"),
    ("prime of ids out of range", lambda t: list(iter_sample(t.model, 5, [V + 3])), ValueError,
     rf"prime: character id {V + 3} out of range"),
    ("sampler: temperature inf", lambda t: t.model.sampler(ids(2), t.state, temperature=1e999),
     ValueError, "temperature: expected a positive finite number, got inf"),
    ("sampler: first_ids of another batch", lambda t: t.model.sampler(ids(3), t.state),
     ValueError, r"state.h: expected shape \(2, 3, 8\), got \(2, 2, 8\)"),
    ("draw: uniforms of wrong shape", lambda t: t.model.sampler(ids(2), t.state).draw(
        np.zeros((4, 3))), ValueError, r"uniforms: expected shape \(N, 2\), got \(4, 3\)"),
    ("draw: uniforms of wrong dtype", lambda t: t.model.sampler(ids(2), t.state).draw(
        np.zeros((4, 2), np.float32)), TypeError, "uniforms: expected dtype float64, got float32"),
    ("select: no streams", lambda t: t.model.sampler(ids(2), t.state).select([]), ValueError,
     r"streams: expected a sequence of indices in \[0, 2\), got \[\]"),
    ("select: stream out of range", lambda t: t.model.sampler(ids(2), t.state).select([2]),
     ValueError, r"streams: expected a sequence of indices in \[0, 2\), got \[2\]"),
    ("concatenate: none", lambda t: Sampler.concatenate([]), ValueError,
     "samplers: expected at least one Sampler, got none"),
    ("concatenate: other options", lambda t: Sampler.concatenate(
        [t.model.sampler(ids(2), t.state), t.model.sampler(ids(2), t.state, top_k=3)]),
     ValueError, r"samplers\[1\]: expected the model and options of samplers\[0\], got other "
     "options"),
    ("concatenate: another model", lambda t: Sampler.concatenate(
        [t.model.sampler(ids(1)), rnnfast.CharLM(V, hidden_size=8).sampler(ids(1))]),
     ValueError, r"samplers\[1\]: .* got another model"),
    # the step API
    ("cell: wrong width", lambda t: t.cell.step(np.ones((2, 4), np.float32)), ValueError,
     r"x: expected shape \(B, 3\), got \(2, 4\)"),
    ("cell: batch change", lambda t: t.cell.step(np.ones((5, 3), np.float32)), ValueError,
     r"x: expected a batch of 2 like the steps before \(or reset\(\) first\), got 5"),
    ("cell: NaN input", lambda t: t.cell.step(np.full((2, 3), np.nan, np.float32)), ValueError,
     "x: expected finite values, got NaN or infinity"),
]  # fmt: skip


@pytest.mark.parametrize("call, error, message", [t[1:] for t in CALLS], ids=[t[0] for t in CALLS])
def test_bad_input_is_a_clear_error_and_changes_nothing(call, error, message, model):
    trained = Trained(model)
    before = [a.copy() for a in trained.snapshot()]
    with pytest.raises(error, match=message):
        call(trained)
    for a, b in zip(trained.snapshot(), before, strict=True):
        np.testing.assert_array_equal(a, b)


GRU_NO_C = r"state.c: expected None \(a GRU has no cell state\), got ndarray"
# (id, call(model, state), exception, message) on a trained 2-layer GRU model and its state
GRU_CALLS = [
    ("state with c", lambda m, s: m.loss(ids(4, 2), ids(4, 2), rnnfast.State(s.h, s.h.copy())),
     ValueError, GRU_NO_C),
    ("sampler: state with c", lambda m, s: m.sampler(ids(2), rnnfast.State(s.h, s.h.copy())),
     ValueError, GRU_NO_C),
    ("state of wrong batch", lambda m, s: m.loss(ids(4, 3), ids(4, 3), s), ValueError,
     r"state.h: expected shape \(2, 3, 8\), got \(2, 2, 8\)"),
    ("train_step: bad targets", lambda m, s: m.train_step(ids(3, 2), ids(3, 2) - V,
                                                           rnnfast.Adam(m), s),
     ValueError, "y: character id .* out of range"),
    ("step API: wrong width", lambda m, s: rnnfast.GRU(3, 4).step(np.ones((2, 4), np.float32)),
     ValueError, r"x: expected shape \(B, 3\), got \(2, 4\)"),
    ("layer: state with c", lambda m, s: layers.GRU(3, 8, 2).forward(
        np.ones((4, 2, 3), np.float32), rnnfast.State(s.h, s.h.copy())), ValueError,
     "state.c: a GRU has no cell state; expected None"),
]  # fmt: skip


@pytest.mark.parametrize("call, error, message", [t[1:] for t in GRU_CALLS],
                         ids=[t[0] for t in GRU_CALLS])  # fmt: skip
def test_gru_bad_input_is_a_clear_error_and_changes_nothing(call, error, message):
    model = rnnfast.CharLM(rnnfast.Vocab.from_text(TEXT), cell="gru", hidden_size=8,
                           num_layers=2, seed=0)  # fmt: skip
    _, state = model.train_step(ids(5, 2), ids(5, 2), rnnfast.Adam(model, lr=1e-2))
    before = [model.flat_params.copy(), state.h.copy()]
    with pytest.raises(error, match=message):
        call(model, state)
    for a, b in zip([model.flat_params, state.h], before, strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_unchanged_check_sees_every_part():
    """A control for the check above: a call that does change each part is seen."""
    trained = Trained(rnnfast.CharLM(V, hidden_size=8, num_layers=2, seed=0))
    before = [a.copy() for a in trained.snapshot()]
    changes = [
        lambda t: t.model.train_step(ids(3, 2), ids(3, 2), t.opt),  # params, moments, count
        lambda t: t.state.h.__setitem__((0, 0, 0), 9.0),
        lambda t: t.state.c.__setitem__((0, 0, 0), 9.0),
        lambda t: setattr(t.opt, "lr", 0.5),
        lambda t: t.cell.step(np.ones((2, 3), np.float32)),
        lambda t: t.cell.params.flat.__setitem__(0, 9.0),
    ]
    for change in changes:
        change(trained)
        after = trained.snapshot()
        assert any(not np.array_equal(a, b) for a, b in zip(after, before, strict=True))
        before = [a.copy() for a in after]


# (id, call(tmp_path), exception, message): constructors, data and checkpoints
CONSTRUCTORS = [
    ("vocab of size 0", lambda p: rnnfast.CharLM(0), ValueError,
     "vocab: expected a positive integer, got 0"),
    ("vocab of wrong type", lambda p: rnnfast.CharLM("abc"), TypeError,
     "vocab: expected a Vocab or an int, got str"),
    ("hidden_size 0", lambda p: rnnfast.CharLM(5, hidden_size=0), ValueError,
     "hidden_size: expected a positive integer, got 0"),
    ("num_layers -1", lambda p: rnnfast.CharLM(5, num_layers=-1), ValueError,
     "num_layers: expected a positive integer, got -1"),
    ("unknown cell", lambda p: rnnfast.CharLM(5, cell="transformer"), ValueError,
     r"cell: expected one of \('lstm', 'rnn', 'gru'\), got 'transformer'"),
    ("dropout 1", lambda p: rnnfast.CharLM(5, dropout=1.0), ValueError,
     r"dropout: expected a finite number in \[0, 1\), got 1.0"),
    ("dropout -0.1", lambda p: rnnfast.CharLM(5, dropout=-0.1), ValueError,
     r"dropout: expected a finite number in \[0, 1\), got -0.1"),
    ("dropout nan", lambda p: rnnfast.CharLM(5, dropout=NAN), ValueError,
     r"dropout: expected a finite number in \[0, 1\), got nan"),
    ("dropout as a string", lambda p: rnnfast.CharLM(5, dropout="0.5"), ValueError,
     r"dropout: expected a finite number in \[0, 1\), got '0.5'"),
    ("dropout True", lambda p: rnnfast.CharLM(5, dropout=True), ValueError,
     r"dropout: expected a finite number in \[0, 1\), got True"),
    ("float16", lambda p: rnnfast.CharLM(5, dtype=np.float16), ValueError,
     "dtype: expected float32 or float64, got float16"),
    ("backend None", lambda p: rnnfast.CharLM(5, backend=None), ValueError,
     r"backend: expected one of \('c', 'numpy'\), got None"),
    ("cell: output_size 0", lambda p: rnnfast.RNN(3, 4, 0), ValueError,
     "output_size: expected a positive integer or None, got 0"),
    ("lr inf", lambda p: rnnfast.SGD(rnnfast.CharLM(5), lr=float("inf")), ValueError,
     "lr: expected a positive finite number, got inf"),
    ("momentum 1", lambda p: rnnfast.SGD(rnnfast.CharLM(5), momentum=1.0), ValueError,
     r"momentum: expected a finite number in \[0, 1\), got 1.0"),
    ("beta2 -0.1", lambda p: rnnfast.Adam(rnnfast.CharLM(5), beta2=-0.1), ValueError,
     r"beta2: expected a finite number in \[0, 1\), got -0.1"),
    ("empty corpus", lambda p: rnnfast.Vocab.from_text(""), ValueError, "empty"),
    ("one-character corpus batches", lambda p: rnnfast.Batches(np.zeros(1, int), 1, 1),
     ValueError, "shorter than one batch"),
    ("batch_size 0", lambda p: rnnfast.Batches(np.zeros(9, int), 0, 1), ValueError,
     "batch_size: expected a positive integer, got 0"),
    ("val_fraction 1", lambda p: rnnfast.split(np.zeros(9, int), 1.0), ValueError,
     r"val_fraction: expected a finite number in \[0, 1\), got 1.0"),
    ("decode id V", lambda p: rnnfast.Vocab.from_text(TEXT).decode([V]), ValueError,
     rf"ids: character id {V} out of range \[0, {V}\)"),
    ("missing checkpoint", lambda p: checkpoint.load(p / "nope.npz"), checkpoint.CheckpointError,
     "nope"),
    ("text file as checkpoint", lambda p: (p / "t.npz").write_text("hello")
     and checkpoint.load(p / "t.npz"), checkpoint.CheckpointError, "t.npz"),
]  # fmt: skip


@pytest.mark.parametrize(
    "call, error, message", [t[1:] for t in CONSTRUCTORS], ids=[t[0] for t in CONSTRUCTORS]
)
def test_bad_arguments_to_constructors_are_clear_errors(call, error, message, tmp_path):
    with pytest.raises(error, match=message):
        call(tmp_path)


CLI_TABLE = [
    ("train: text shorter than a batch", ["train", "--data", "{tiny}", "--steps", "1"],
     "shorter than one batch"),
    ("train: missing file", ["train", "--data", "{dir}/missing.txt"], "missing.txt"),
    ("train: empty file", ["train", "--data", "{empty}"], "empty"),
    ("train: dropout 1", ["train", "--data", "{tiny}", "--dropout", "1"],
     r"--dropout: expected a number in \[0, 1\), got '1'"),
    ("train: dropout not a number", ["train", "--data", "{tiny}", "--dropout", "half"],
     r"--dropout: expected a number in \[0, 1\), got 'half'"),
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
