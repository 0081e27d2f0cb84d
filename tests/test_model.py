"""The public model API over the reference: training, state, sampling, the step API, errors."""

import numpy as np
import pytest

import rnnfast
from rnnfast import reference

TEXT = "the quick brown fox jumps over the lazy dog. " * 40


@pytest.fixture
def vocab():
    return rnnfast.Vocab.from_text(TEXT)


def small_model(vocab, cell="lstm", **kwargs):
    kwargs = {"hidden_size": 16, "num_layers": 1, "seed": 0, **kwargs}
    return reference.CharLM(vocab, cell=cell, **kwargs)


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_loss_falls_on_a_small_text(vocab, cell):
    model = small_model(vocab, cell)
    batches = rnnfast.Batches(vocab.encode(TEXT), batch_size=4, seq_length=16)
    opt = rnnfast.Adam(model, lr=1e-2)
    first, state, losses = None, None, []
    for _ in range(4):
        state = None
        for x, y in batches:
            loss, state = model.train_step(x, y, opt, state)
            losses.append(loss)
    first = losses[0]
    assert first == pytest.approx(np.log(len(vocab)), rel=0.1)  # an untrained model is uniform
    assert np.mean(losses[-10:]) < 0.6 * first


def test_params_are_views_into_one_flat_buffer(vocab):
    model = small_model(vocab, num_layers=2)
    names = [n for n, _ in rnnfast.model.param_shapes("lstm", len(vocab), 16, 2)]
    assert list(model.params) == names
    model.params["W_h.1"][0, 0] = 123.0
    assert 123.0 in model.flat_params
    assert model.params["W_x.0"].shape == (len(vocab), 64)
    assert model.params["W_y"].shape == (16, len(vocab))


def test_state_is_carried_between_windows(vocab):
    model = small_model(vocab, dtype=np.float64)
    ids = vocab.encode(TEXT[:41])[:, None]
    whole, _ = model.loss(ids[:-1], ids[1:])
    first, state = model.loss(ids[:20], ids[1:21])
    second, _ = model.loss(ids[20:-1], ids[21:], state)
    assert (20 * first + 20 * second) / 40 == pytest.approx(whole, rel=1e-12)


def test_step_matches_a_sequence_forward(vocab):
    model = small_model(vocab, dtype=np.float64)
    ids = vocab.encode("hello")
    state = model.zero_state(1)
    for i in ids[:-1]:
        logits, state = model.step([i], state)
    _, seq_state = model.loss(ids[:-1, None], ids[1:, None])
    np.testing.assert_allclose(state.h, seq_state.h, rtol=1e-12)
    np.testing.assert_allclose(state.c, seq_state.c, rtol=1e-12)
    assert logits.shape == (1, len(vocab))


def test_float32_gradients_agree_with_float64(vocab):
    """The same weights in both dtypes: float32's gradients are float64's to float32 accuracy."""
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, len(vocab), (2, 12, 3))
    m64 = small_model(vocab, num_layers=2, dtype=np.float64)
    m32 = small_model(vocab, num_layers=2, dtype=np.float32)
    m32.flat_params[...] = m64.flat_params
    loss64, g64, _ = m64.loss_and_grads(x, y)
    loss32, g32, _ = m32.loss_and_grads(x, y)
    assert loss32 == pytest.approx(loss64, rel=1e-5)
    np.testing.assert_allclose(g32.flat, g64.flat, rtol=1e-3, atol=1e-6)


def test_sampling_is_reproducible_for_a_seed(vocab):
    model = small_model(vocab)
    a = model.sample(50, prime="the ", seed=3, temperature=0.8)
    b = model.sample(50, prime="the ", seed=3, temperature=0.8)
    c = model.sample(50, prime="the ", seed=4, temperature=0.8)
    assert a == b != c
    assert a.startswith("the ") and len(a) == 54


def test_sampling_options(vocab):
    model = small_model(vocab)
    assert len(model.sample(30, seed=0)) == 30
    assert model.sample(0, prime="the") == "the"
    greedy = model.sample(20, prime="t", argmax=True)
    assert greedy == model.sample(20, prime="t", argmax=True, seed=99)
    top1 = model.sample(20, prime="t", top_k=1, seed=5)
    assert top1 == greedy
    streams = model.sample(10, prime="a", seed=1, num_samples=3)
    assert len(streams) == 3 and all(len(s) == 11 for s in streams)


def test_top_k_only_draws_from_the_k_most_likely(vocab):
    model = small_model(vocab)
    logits, _ = model.step(vocab.encode("t"))
    allowed = set(np.argsort(logits[0])[-3:])
    text = model.sample(1, prime="t", top_k=3, seed=0, num_samples=64)
    drawn = {vocab.encode(s[-1])[0] for s in text}
    assert drawn <= allowed and len(drawn) > 1


def test_draw_follows_the_distribution():
    """Inverse-CDF draws: 200000 uniforms give frequencies within 4 sigma of softmax(z / T)."""
    n = 200_000
    z = np.array([0.0, 1.0, 2.0, -1.0])
    for temperature in (1.0, 0.5):
        p = np.exp(z / temperature) / np.exp(z / temperature).sum()
        out = np.empty(n, np.int64)
        uniforms = np.random.default_rng(1).random(n)
        reference.draw(out, np.tile(z, (n, 1)), uniforms, temperature, None, False)
        sigma = np.sqrt(p * (1 - p) / n)
        assert np.all(np.abs(np.bincount(out, minlength=4) / n - p) < 4 * sigma)


def test_unknown_prime_character_is_named(vocab):
    model = small_model(vocab)
    with pytest.raises(ValueError, match="'Z'"):
        model.sample(5, prime="Zebra")
    with pytest.warns(UserWarning, match="'Z'"):
        assert model.sample(0, prime="Zebra", skip_unknown=True) == "ebra"


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"cell": "gru"}, ValueError, "cell"),
        ({"hidden_size": 0}, ValueError, "hidden_size"),
        ({"num_layers": 1.5}, ValueError, "num_layers"),
        ({"dtype": np.float16}, ValueError, "dtype"),
        ({"backend": "cuda"}, ValueError, "backend"),
    ],
)
def test_bad_model_config(vocab, kwargs, error, message):
    with pytest.raises(error, match=message):
        small_model(vocab, **kwargs)


def test_bad_inputs_to_loss(vocab):
    model = small_model(vocab)
    V = len(vocab)
    x = np.zeros((5, 2), np.int64)
    cases = [
        ((x, np.zeros((5, 3), np.int64)), ValueError, "y: expected the shape of x"),
        ((x.astype(np.float32), x), TypeError, "x: expected integer"),
        ((x[0], x[0]), ValueError, r"x: expected character ids of shape \(T, B\)"),
        ((x + V, x), ValueError, f"x: character id {V} out of range"),
        ((x, x - 1), ValueError, "y: character id -1 out of range"),
        ((x[:0], x[:0]), ValueError, "at least one"),
    ]
    for args, error, message in cases:
        with pytest.raises(error, match=message):
            model.loss(*args)


def test_bad_state(vocab):
    model = small_model(vocab)
    x = np.zeros((5, 2), np.int64)
    good = model.zero_state(2)
    with pytest.raises(ValueError, match=r"state.h: expected shape \(1, 2, 16\)"):
        model.loss(x, x, model.zero_state(3))
    with pytest.raises(TypeError, match="state.c: expected dtype float32"):
        model.loss(x, x, rnnfast.State(good.h, good.c.astype(np.float64)))
    bad = model.zero_state(2)
    bad.h[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.loss(x, x, bad)


def test_non_finite_loss_stops_training_and_leaves_the_model_unchanged(vocab):
    model = small_model(vocab)
    opt = rnnfast.SGD(model)
    model.params["W_y"][0, 0] = np.inf
    before = model.flat_params.copy()
    x = np.zeros((4, 2), np.int64)
    with pytest.raises(FloatingPointError, match="not updated"), np.errstate(invalid="ignore"):
        model.train_step(x, x, opt)
    np.testing.assert_array_equal(model.flat_params, before)


def test_optimizer_of_another_model_is_rejected(vocab):
    with pytest.raises(ValueError, match="optimizer: expected one created for this model"):
        x = np.zeros((2, 1), np.int64)
        small_model(vocab).train_step(x, x, rnnfast.Adam(small_model(vocab)))


@pytest.mark.parametrize("cls", [reference.RNN, reference.LSTM])
def test_step_api_keeps_state_between_calls(cls):
    rnn = cls(3, 8, 2, seed=0)
    x = np.ones(3, np.float32)
    y1, y2 = rnn.step(x), rnn.step(x)
    assert y1.shape == (2,) and not np.allclose(y1, y2)
    rnn.reset()
    np.testing.assert_array_equal(rnn.step(x), y1)
    batch = cls(3, 8, seed=0).step(np.ones((4, 3), np.float32))
    assert batch.shape == (4, 8)


def test_rnn_step_is_the_equation():
    rnn = reference.RNN(3, 4, dtype=np.float64, seed=1)
    x = np.array([0.5, -1.0, 2.0])
    p = rnn.params
    h1 = np.tanh(x @ p["W_x"] + p["b"])
    np.testing.assert_allclose(rnn.step(x), h1, rtol=1e-12)
    np.testing.assert_allclose(
        rnn.step(x), np.tanh(x @ p["W_x"] + h1 @ p["W_h"] + p["b"]), rtol=1e-12
    )


def test_stack_feeds_layer_outputs_upward():
    r1, r2 = reference.LSTM(3, 5, seed=0), reference.RNN(5, 4, 2, seed=1)
    stack = rnnfast.Stack(r1, r2)
    x = np.ones((2, 3), np.float32)
    y = stack.step(x)
    r1.reset(), r2.reset()
    np.testing.assert_array_equal(y, r2.step(r1.step(x)))
    with pytest.raises(ValueError, match="input_size"):
        rnnfast.Stack(r1, reference.RNN(4, 4))


def test_step_api_bad_input():
    rnn = reference.RNN(3, 4)
    with pytest.raises(ValueError, match=r"x: expected shape \(3,\)"):
        rnn.step(np.ones(4, np.float32))
    with pytest.raises(TypeError, match="dtype float32"):
        rnn.step(np.ones(3))
    with pytest.raises(ValueError, match="NaN"):
        rnn.step(np.full(3, np.nan, np.float32))
    rnn.step(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match="reset"):
        rnn.step(np.ones((5, 3), np.float32))


def test_forward_returns_every_steps_logits(vocab):
    model = small_model(vocab, dtype=np.float64)
    x = vocab.encode("hello world")[:, None]
    logits, state = model.forward(x)
    assert logits.shape == (len(x), 1, len(vocab))
    step_state = None
    for t, i in enumerate(x[:, 0]):
        step_logits, step_state = model.step([i], step_state)
        np.testing.assert_allclose(step_logits, logits[t], rtol=1e-12)
    np.testing.assert_allclose(step_state.h, state.h, rtol=1e-12)
    loss, _ = model.loss(x[:-1], x[1:])
    z = logits[:-1, 0]
    log_p = (
        z
        - z.max(1, keepdims=True)
        - np.log(np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True))
    )
    assert loss == pytest.approx(-np.mean(log_p[np.arange(len(x) - 1), x[1:, 0]]), rel=1e-12)
