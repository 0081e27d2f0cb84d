"""Dropout on CharLM: p = 0 changes nothing, the masks' statistics, train against eval, the
two backends on the same masks, checkpoints of the mask generator and the command line.

The kernels' own comparison with masks (every shape, dtype and forced path) is in
tests/kernels/test_recurrent.py, the finite-difference check in test_gradcheck.py and
the bit-exact resume of a training with dropout in test_training.py."""

import math

import numpy as np
import pytest
from conftest import DTYPE_IDS, DTYPES, assert_close

import rnnfast
from rnnfast import checkpoint
from rnnfast.__main__ import main

VOCAB = rnnfast.Vocab("abcdefg")
V, H = len(VOCAB), 10
CELLS = ["rnn", "lstm", "gru"]
BACKENDS = ["c", "numpy"]


def batch(T=6, B=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, V, (T, B)), rng.integers(0, V, (T, B))


def model(cell="lstm", dropout=0.0, backend="c", dtype=np.float32, layers=2, seed=4):
    return rnnfast.CharLM(VOCAB, cell=cell, hidden_size=H, num_layers=layers, dtype=dtype,
                          backend=backend, seed=seed, dropout=dropout)  # fmt: skip


def train(m, steps=3):
    opt = rnnfast.Adam(m, lr=1e-2)
    state, losses = None, []
    for k in range(steps):
        loss, state = m.train_step(*batch(seed=k), opt, state)
        losses.append(loss)
    return losses, state


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", CELLS)
def test_dropout_zero_is_bit_identical_to_no_dropout(cell, backend):
    """dropout=0 takes the path of a model built without the argument: the same weights, losses,
    states and updates, bit for bit, and no draw from the generator."""
    plain, zero = model(cell, backend=backend), model(cell, 0.0, backend)
    untouched = zero.generator.bit_generator.state
    np.testing.assert_array_equal(plain.flat_params, zero.flat_params)
    (a, sa), (b, sb) = train(plain), train(zero)
    assert a == b
    np.testing.assert_array_equal(plain.flat_params, zero.flat_params)
    np.testing.assert_array_equal(sa.h, sb.h)
    x, y = batch()
    assert zero.loss(x, y, train=True)[0] == plain.loss(x, y)[0]
    assert zero.generator.bit_generator.state == untouched


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", CELLS)
def test_masks_of_ones_are_no_dropout_bit_for_bit(cell, backend, dtype):
    """The dropout path with every factor 1 computes exactly what the plain path does (h * 1 and
    dH * 1 are exact): loss, every gradient and both state gradients."""
    m = model(cell, 0.5, backend, dtype)
    x, y = batch()
    ones = np.ones((2, *x.shape, H), dtype)
    plain = m.loss_and_grads(x, y, state_grad=True)
    masked = m.loss_and_grads(x, y, state_grad=True, masks=ones)
    assert plain[0] == masked[0]
    np.testing.assert_array_equal(plain[1].flat, masked[1].flat)
    for a, b in zip([*plain[2], *plain[3]], [*masked[2], *masked[3]], strict=True):
        if a is not None:
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("p", [0.05, 0.25, 0.5, 0.9])
def test_fraction_of_zeros_is_binomial_and_the_rest_scale_by_one_over_keep(p, dtype):
    """Each of the n mask elements is zero with probability p, independently: the count of
    zeros is Binomial(n, p), within 6 standard deviations of n p (a false alarm once in 5e8
    runs; the generator is seeded, so this run is fixed anyway), in every layer and at every
    step; the others are exactly 1 / (1 - p) in the model's dtype, so the mean factor is 1."""
    m = model(dropout=p, dtype=dtype, layers=3, seed=11)
    T, B = 40, 25
    masks = m.dropout_masks(T, B)
    assert masks.shape == (3, T, B, H) and masks.dtype == dtype
    zeros = masks == 0

    def binomial(count, n):
        return abs(count - n * p) <= 6 * math.sqrt(n * p * (1 - p))

    assert binomial(zeros.sum(), zeros.size)
    for part in (*zeros, *zeros.transpose(1, 0, 2, 3)):  # every layer, every step
        assert binomial(part.sum(), part.size), (part.sum(), part.size, p)
    kept = np.unique(masks[~zeros])
    np.testing.assert_array_equal(kept, [np.dtype(dtype).type(1 / (1 - p))])
    assert not np.array_equal(masks, m.dropout_masks(T, B)), "a second draw repeats the first"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", CELLS)
def test_train_against_eval(cell, backend):
    m = model(cell, 0.5, backend)
    plain = model(cell, backend=backend)
    plain.flat_params[...] = m.flat_params
    x, y = batch()
    before = m.generator.bit_generator.state
    # evaluation: no dropout, no draw; the model without dropout computes the same bits
    eval_loss = m.loss(x, y)[0]
    assert eval_loss == plain.loss(x, y)[0] == m.loss(x, y)[0]
    assert m.loss_and_grads(x, y)[0] == eval_loss
    np.testing.assert_array_equal(m.forward(x)[0], plain.forward(x)[0])
    assert m.sample(30, seed=1) == plain.sample(30, seed=1)
    assert m.generator.bit_generator.state == before
    # training: new masks each call, reproduced by the generator's state
    first = m.loss(x, y, train=True)[0]
    second = m.loss(x, y, train=True)[0]
    assert len({first, second, eval_loss}) == 3
    m.generator.bit_generator.state = before
    assert m.loss_and_grads(x, y, train=True)[0] == first
    m.generator.bit_generator.state = before
    assert m.loss(x, y, masks=m.dropout_masks(*x.shape))[0] == first
    # the recurrence reads the undropped h: layer 0's state is the same with masks (its output
    # is dropped on the way up only), layer 1's is not (it reads layer 0's dropped output)
    dropped, kept = m.loss(x, y, train=True)[1].h, m.loss(x, y)[1].h
    np.testing.assert_array_equal(dropped[0], kept[0])
    assert not np.array_equal(dropped[1], kept[1])


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("cell", CELLS)
def test_backends_draw_the_same_masks_and_train_alike(cell, dtype):
    """The masks come from NumPy in both backends: the same seed draws the same masks, and
    three training steps with dropout agree to the dtype's tolerance."""
    c, ref = model(cell, 0.3, "c", dtype), model(cell, 0.3, "numpy", dtype)
    np.testing.assert_array_equal(c.dropout_masks(5, 2), ref.dropout_masks(5, 2))
    (lc, sc), (lr, sr) = train(c), train(ref)
    assert c.generator.bit_generator.state == ref.generator.bit_generator.state
    assert_close(np.array(lc), np.array(lr), dtype, "losses")
    assert_close(sc.h, sr.h, dtype, "final state")
    if dtype == np.float64:
        assert_close(c.flat_params, ref.flat_params, dtype)


def test_the_generator_is_seeded_apart_from_the_weights():
    """The same seed gives the same masks (reproducible runs); the masks' stream is not the
    stream of the initial weights."""
    a, b = model(dropout=0.5, seed=9), model(dropout=0.5, seed=9)
    np.testing.assert_array_equal(a.dropout_masks(4, 2), b.dropout_masks(4, 2))
    weights = np.random.default_rng(9).random(a.flat_params.size)
    draws = model(dropout=0.5, seed=9).generator.random(a.flat_params.size)
    assert not np.array_equal(weights, draws)


def test_checkpoint_keeps_dropout_and_the_generator(tmp_path):
    m = model(dropout=0.25)
    m.dropout_masks(3, 2)  # the generator has moved on from its seed
    checkpoint.save(tmp_path / "ck.npz", m)
    loaded = checkpoint.load(tmp_path / "ck.npz").model
    assert loaded.dropout == 0.25 and "dropout=0.25" in repr(loaded)
    np.testing.assert_array_equal(loaded.dropout_masks(6, 3), m.dropout_masks(6, 3))


def test_checkpoint_without_dropout_keys_loads_without_dropout(tmp_path):
    """A checkpoint written before dropout existed (no dropout, no generator) still loads."""
    m = model()
    checkpoint.save(tmp_path / "ck.npz", m)
    meta, arrays = checkpoint.read(tmp_path / "ck.npz")
    del meta["model"]["dropout"], meta["model"]["generator"]
    loaded = checkpoint.build(tmp_path / "ck.npz", meta, arrays).model
    assert loaded.dropout == 0.0
    np.testing.assert_array_equal(loaded.flat_params, m.flat_params)


def test_checkpoint_with_a_foreign_generator_state_is_a_clear_error(tmp_path):
    m = model(dropout=0.25)
    checkpoint.save(tmp_path / "ck.npz", m)
    meta, arrays = checkpoint.read(tmp_path / "ck.npz")
    meta["model"]["generator"] = np.random.MT19937(0).state
    with pytest.raises(checkpoint.CheckpointError, match="inconsistent"):
        checkpoint.build(tmp_path / "ck.npz", meta, arrays)


def test_cli_trains_with_dropout_and_keeps_it_on_resume(tmp_path, capsys):
    data = tmp_path / "input.txt"
    data.write_text("the quick brown fox jumps over the lazy dog\n" * 40)
    out = tmp_path / "run"
    common = ["--data", str(data), "--out", str(out), "--hidden-size", "16", "--batch-size", "4",
              "--seq-length", "8", "--val-every", "5", "--sample-length", "0"]  # fmt: skip
    assert main(["train", *common, "--dropout", "0.3", "--steps", "5"]) == 0
    ck = checkpoint.load(out)
    assert ck.model.dropout == 0.3 and ck.training["config"]["dropout"] == 0.3
    assert main(["info", str(out)]) == 0
    assert "dropout 0.3" in capsys.readouterr().out
    assert main(["train", *common, "--resume", str(out), "--dropout", "0.5", "--steps", "8"]) == 2
    assert "--dropout 0.5 differs from the checkpoint's 0.3" in capsys.readouterr().err
    assert main(["train", *common, "--resume", str(out), "--steps", "8"]) == 0
    assert checkpoint.load(out).model.dropout == 0.3
