"""MinCharRNN against min-char-rnn's own algorithm, written out here in its column-vector form."""

import numpy as np
import pytest

from rnnfast.backends import BACKENDS
from rnnfast.minchar import MinCharRNN


def script_loss(inputs, targets, hprev, Wxh, Whh, Why, bh, by):
    """min-char-rnn's lossFun: dense one-hot columns, per-step products, summed loss, clip 5."""
    V = Wxh.shape[1]
    xs, hs, ps = {}, {-1: np.copy(hprev)}, {}
    loss = 0.0
    for t, ix in enumerate(inputs):
        xs[t] = np.zeros((V, 1))
        xs[t][ix] = 1
        hs[t] = np.tanh(Wxh @ xs[t] + Whh @ hs[t - 1] + bh)
        ys = Why @ hs[t] + by
        ps[t] = np.exp(ys) / np.sum(np.exp(ys))
        loss += -np.log(ps[t][targets[t], 0])
    dWxh, dWhh, dWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
    dbh, dby, dhnext = np.zeros_like(bh), np.zeros_like(by), np.zeros_like(hprev)
    for t in reversed(range(len(inputs))):
        dy = np.copy(ps[t])
        dy[targets[t]] -= 1
        dWhy += dy @ hs[t].T
        dby += dy
        dh = Why.T @ dy + dhnext
        dhraw = (1 - hs[t] * hs[t]) * dh
        dbh += dhraw
        dWxh += dhraw @ xs[t].T
        dWhh += dhraw @ hs[t - 1].T
        dhnext = Whh.T @ dhraw
    for d in (dWxh, dWhh, dWhy, dbh, dby):
        np.clip(d, -5, 5, out=d)
    return loss, dWxh, dWhh, dWhy, dbh, dby, hs[len(inputs) - 1]


def script_sample(h, seed_ix, n, Wxh, Whh, Why, bh, by):
    V = Wxh.shape[1]
    x = np.zeros((V, 1))
    x[seed_ix] = 1
    ixes = []
    for _ in range(n):
        h = np.tanh(Wxh @ x + Whh @ h + bh)
        y = Why @ h + by
        p = np.exp(y) / np.sum(np.exp(y))
        ix = np.random.choice(range(V), p=p.ravel())  # noqa: NPY002 (the script does)
        x = np.zeros((V, 1))
        x[ix] = 1
        ixes.append(ix)
    return ixes


def script_arrays(V=11, H=10, seed=0, scale=0.3):
    rng = np.random.default_rng(seed)
    return [scale * rng.standard_normal(s) for s in ((H, V), (H, H), (V, H), (H, 1), (V, 1))]


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


def test_lossfun_matches_the_script(backend):
    arrays = script_arrays()
    rng = np.random.default_rng(1)
    inputs, targets = rng.integers(0, 11, 25).tolist(), rng.integers(0, 11, 25).tolist()
    hprev = 0.1 * rng.standard_normal((10, 1))
    expected = script_loss(inputs, targets, hprev, *arrays)
    actual = MinCharRNN(*arrays, backend=backend).lossFun(inputs, targets, hprev)
    assert len(actual) == 7
    assert actual[0] == pytest.approx(expected[0], rel=1e-12)
    for a, e in zip(actual[1:], expected[1:], strict=True):
        assert a.shape == e.shape
        np.testing.assert_allclose(a, e, rtol=1e-9, atol=1e-12)


def test_gradients_are_clipped_like_the_script(backend):
    """Large weights make some raw gradients exceed 5: those come back as exactly +-5, and
    every gradient is the script's (clipped) one."""
    arrays = script_arrays(scale=3.0)
    inputs, targets = [1, 2, 3, 4] * 6, [2, 3, 4, 5] * 6
    expected = script_loss(inputs, targets, np.zeros((10, 1)), *arrays)[1:6]
    grads = MinCharRNN(*arrays, backend=backend).lossFun(inputs, targets, np.zeros((10, 1)))[1:6]
    clipped = sum(int(np.sum(np.abs(g) == 5.0)) for g in grads)
    assert clipped > 0
    assert clipped == sum(int(np.sum(np.abs(e) == 5.0)) for e in expected)
    for g, e in zip(grads, expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-9, atol=1e-12)


def test_in_place_updates_of_the_scripts_arrays_are_seen(backend):
    arrays = script_arrays()
    m = MinCharRNN(*arrays, backend=backend)
    before = m.lossFun([1, 2], [2, 3], np.zeros((10, 1)))[0]
    arrays[2][0] += 0.5  # the script's Adagrad updates its arrays in place
    after = m.lossFun([1, 2], [2, 3], np.zeros((10, 1)))[0]
    assert after != before
    assert after == pytest.approx(script_loss([1, 2], [2, 3], np.zeros((10, 1)), *arrays)[0])


def test_negative_control_other_weights_give_other_gradients(backend):
    arrays = script_arrays()
    expected = script_loss([1, 2, 3], [2, 3, 4], np.zeros((10, 1)), *arrays)
    arrays[1][0, 0] += 0.01
    actual = MinCharRNN(*arrays, backend=backend).lossFun([1, 2, 3], [2, 3, 4], np.zeros((10, 1)))
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(actual[2], expected[2], rtol=1e-9, atol=1e-12)


def test_sample_draws_like_np_random_choice(backend):
    arrays = script_arrays()
    h = 0.1 * np.ones((10, 1))
    np.random.seed(42)  # noqa: NPY002 (the global generator is the contract)
    expected = script_sample(h, 3, 200, *arrays)
    np.random.seed(42)  # noqa: NPY002 (the global generator is the contract)
    actual = MinCharRNN(*arrays, backend=backend).sample(h, 3, 200)
    assert actual == expected
    assert np.all(h == 0.1)  # the caller's state is not touched


def test_bad_arrays_are_named():
    arrays = script_arrays()
    with pytest.raises(ValueError, match=r"Whh: expected shape \(10, 10\)"):
        MinCharRNN(arrays[0], arrays[1][:5], *arrays[2:])
    with pytest.raises(TypeError, match="by: expected dtype float64, got float32"):
        MinCharRNN(*arrays[:4], arrays[4].astype(np.float32))
    with pytest.raises(ValueError, match="hprev"):
        MinCharRNN(*arrays).lossFun([1], [2], np.zeros((3, 1)))
    with pytest.raises(ValueError, match=r"seed_ix: character id 11 out of range \[0, 11\)"):
        MinCharRNN(*arrays).sample(np.zeros((10, 1)), 11, 5)
    with pytest.raises(ValueError, match=r"inputs: character id 11 out of range \[0, 11\)"):
        MinCharRNN(*arrays).lossFun([1, 11], [2, 3], np.zeros((10, 1)))
    with pytest.raises(ValueError, match="targets: expected 2 ids like inputs, got 3"):
        MinCharRNN(*arrays).lossFun([1, 2], [2, 3, 4], np.zeros((10, 1)))
    with pytest.raises(ValueError, match="n: expected a non-negative integer, got -1"):
        MinCharRNN(*arrays).sample(np.zeros((10, 1)), 1, -1)


def test_the_example_script_trains_and_prints_min_char_rnns_lines(tmp_path):
    """The script prints "iter N, loss: X" every 100 iterations, X = smoothed summed loss
    s_n = 0.999 s_{n-1} + 0.001 loss_n, and a 200-character sample before each.  From s_100 and
    s_200 the weighted mean of loss_101..200 is (s_200 - 0.999^100 s_100) / (1 - 0.999^100);
    it must be below half of what a model of character frequencies alone scores over 25
    characters (25 x the unigram entropy: 67 nats; measured: 20)."""
    import subprocess
    import sys
    from collections import Counter
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "examples" / "min_char_rnn.py"
    corpus = tmp_path / "input.txt"
    text = "hello world, the example corpus. " * 200
    corpus.write_text(text)
    run = subprocess.run([sys.executable, str(script), str(corpus), "--iterations", "201"],
                         capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    lines = run.stdout.splitlines()
    iters = [line for line in lines if line.startswith("iter ")]
    assert [line.split(",")[0] for line in iters] == ["iter 0", "iter 100", "iter 200"]
    s0, s100, s200 = (float(line.split(":")[1]) for line in iters)
    samples = [line for line in lines if line.startswith(" ")]  # f"----\n {txt} \n----"
    assert len(samples) == 3
    assert all(len(s) == 202 and set(s[1:-1]) <= set(text) for s in samples)
    counts = np.array(list(Counter(text).values()), float)
    unigram = -np.sum(counts / counts.sum() * np.log(counts / counts.sum()))
    assert s0 == pytest.approx(25 * np.log(len(counts)), abs=0.5)  # untrained: near uniform
    recent = (s200 - 0.999**100 * s100) / (1 - 0.999**100)
    assert recent < 0.5 * 25 * unigram


def test_lossfun_is_one_call_with_the_bits_of_the_kernel_by_kernel_path():
    """The C drop-in's lossFun runs as one C call (the training step without its update); it
    returns exactly what the kernel-by-kernel route gives: loss_and_grads, times T, clipped."""
    from rnnfast.core import State

    arrays = script_arrays(scale=3.0)  # large enough that some gradients are clipped
    rng = np.random.default_rng(2)
    inputs, targets = rng.integers(0, 11, 25).tolist(), rng.integers(0, 11, 25).tolist()
    hprev = 0.1 * rng.standard_normal((10, 1))
    m = MinCharRNN(*arrays)
    actual = m.lossFun(inputs, targets, hprev)
    assert m._model._workspace.train_step is not None, "the one-call path was not taken"
    x, y = (np.array(ids).reshape(-1, 1) for ids in (inputs, targets))
    loss, grads, state = m._model.loss_and_grads(x, y, State(hprev.reshape(1, 1, 10)))
    grads.flat *= 25
    np.clip(grads.flat, -5.0, 5.0, out=grads.flat)
    expected = [loss * 25] + [grads[name].T for name in ("W_x.0", "W_h.0", "W_y")]
    expected += [grads["b.0"].reshape(-1, 1), grads["b_y"].reshape(-1, 1), state.h.reshape(-1, 1)]
    assert sum(int(np.sum(np.abs(g) == 5.0)) for g in expected[1:6]) > 0
    for a, e in zip(actual, expected, strict=True):
        np.testing.assert_array_equal(a, e)
