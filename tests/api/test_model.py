"""The public model API over the reference: training, state, sampling, the step API, errors."""

import inspect
import math
from collections import Counter

import numpy as np
import pytest
from conftest import assert_close

import rnnfast
from rnnfast import reference, sampling
from rnnfast.backends import BACKENDS

TEXT = "the quick brown fox jumps over the lazy dog. " * 40


@pytest.fixture
def vocab():
    return rnnfast.Vocab.from_text(TEXT)


def small_model(vocab, cell="lstm", **kwargs):
    kwargs = {"hidden_size": 16, "num_layers": 1, "seed": 0, **kwargs}
    return reference.CharLM(vocab, cell=cell, **kwargs)


def bigram_entropy(text: str) -> float:
    """Nats per character of the best prediction from the previous character alone:
    sum over pairs (a, b) of -P(a, b) log P(b | a)."""
    pairs = Counter(zip(text, text[1:], strict=False))
    firsts = Counter(text[:-1])
    n = len(text) - 1
    return sum(count / n * -math.log(count / firsts[a]) for (a, _), count in pairs.items())


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_training_learns_more_than_the_previous_character(vocab, backend, cell):
    """TEXT repeats a 45-character sentence, so a model with memory can predict it almost
    exactly; after 4 epochs the last epoch's mean loss must be below half of what the best
    predictor from the previous character alone scores (0.64 nats; measured: 0.07 RNN, 0.15
    LSTM, 0.10 GRU).  The first loss is that of an untrained, near-uniform model: ln V."""
    model = small_model(vocab, cell, backend=backend)
    batches = rnnfast.Batches(vocab.encode(TEXT), batch_size=4, seq_length=16)
    opt = rnnfast.Adam(model, lr=2e-2)
    losses = []
    for _ in range(4):
        state = None
        for x, y in batches:
            loss, state = model.train_step(x, y, opt, state)
            losses.append(loss)
    assert losses[0] == pytest.approx(np.log(len(vocab)), rel=0.02)
    assert np.mean(losses[-len(batches) :]) < 0.5 * bigram_entropy(TEXT)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_params_are_views_into_one_flat_buffer(vocab, cell):
    """Every parameter is a view of its own consecutive slice of flat_params, in the order and
    with the shapes of DESIGN.md (I = V for layer 0, H above; G = 4H, or 3H for a GRU, whose
    b_hn.{l} (H) follows b.{l})."""
    model = small_model(vocab, cell, num_layers=2)
    V, H = len(vocab), 16
    G = 64 if cell == "lstm" else 48
    shapes = {"W_x.0": (V, G), "W_h.0": (H, G), "b.0": (G,), "b_hn.0": (H,), "W_x.1": (H, G),
              "W_h.1": (H, G), "b.1": (G,), "b_hn.1": (H,), "W_y": (H, V), "b_y": (V,)}  # fmt: skip
    if cell == "lstm":
        del shapes["b_hn.0"], shapes["b_hn.1"]
    assert list(model.params) == list(shapes)
    offset = 0
    for name, shape in shapes.items():
        view = model.params[name]
        assert view.shape == shape, name
        size = view.size
        view[...] = np.arange(size).reshape(shape)
        np.testing.assert_array_equal(model.flat_params[offset : offset + size], np.arange(size))
        offset += size
    assert offset == model.num_params == model.flat_params.size


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


@pytest.mark.parametrize("top_p", [0.3, 0.6, 0.9])
def test_top_p_only_draws_from_the_nucleus(vocab, top_p):
    """The drawn characters lie in the fewest likeliest whose probability reaches top_p."""
    model = small_model(vocab)
    model.params["W_y"][...] *= 4  # a distribution far from flat
    logits, _ = model.step(vocab.encode("t"))
    p = np.exp(logits[0] - logits[0].max())
    p /= p.sum()
    order = np.argsort(-p, kind="stable")
    size = np.searchsorted(np.cumsum(p[order]), top_p) + 1  # the first prefix reaching top_p
    text = model.sample(1, prime="t", top_p=top_p, seed=0, num_samples=200)
    drawn = {vocab.encode(s[-1])[0] for s in text}
    assert drawn <= set(order[:size]) and len(drawn) > 1
    nucleus_and_top_k = model.sample(1, prime="t", top_k=2, top_p=top_p, seed=0, num_samples=200)
    assert {vocab.encode(s[-1])[0] for s in nucleus_and_top_k} <= set(order[: min(size, 2)])


def test_top_p_none_or_one_is_the_plain_draw(vocab):
    model = small_model(vocab)
    plain = model.sample(60, prime="the ", temperature=0.9, seed=4)
    assert model.sample(60, prime="the ", temperature=0.9, seed=4, top_p=None) == plain
    assert model.sample(60, prime="the ", temperature=0.9, seed=4, top_p=1.0) == plain
    assert model.sample(60, prime="the ", temperature=0.9, seed=4, top_p=0.5) != plain


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_top_p_is_named(vocab, backend):
    model = small_model(vocab, backend=backend)
    message = r"top_p: expected a finite number in \(0, 1\] or None, got "
    for bad in (0, -0.5, 1.01, float("nan"), True, "0.9"):
        with pytest.raises(ValueError, match=message):
            model.sample(5, prime="t", top_p=bad)
        with pytest.raises(ValueError, match=message):
            model.sampler([1], top_p=bad)
        with pytest.raises(ValueError, match=message):
            next(sampling.iter_sample(model, 5, top_p=bad))


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
        ({"cell": "GRU"}, ValueError, "cell"),
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
    """The forward pass runs (and produces the infinite loss); then neither the parameters
    nor the optimizer's moments and step count change."""
    model = small_model(vocab)
    opt = rnnfast.Adam(model)
    x = np.zeros((4, 2), np.int64)
    model.train_step(x, x, opt)
    model.params["W_y"][0, 0] = np.inf
    before = model.flat_params.copy()
    moments = {k: v.copy() for k, v in opt.state_dict()["moments"].items()}
    with pytest.raises(FloatingPointError, match="training loss is nan: the model was not"), \
            np.errstate(invalid="ignore"):  # fmt: skip
        model.train_step(x, x, opt)
    np.testing.assert_array_equal(model.flat_params, before)
    assert opt.step_count == 1
    for name, moment in opt.state_dict()["moments"].items():
        np.testing.assert_array_equal(moment, moments[name])


def test_optimizer_of_another_model_is_rejected(vocab):
    with pytest.raises(ValueError, match="optimizer: expected one created for this model"):
        x = np.zeros((2, 1), np.int64)
        small_model(vocab).train_step(x, x, rnnfast.Adam(small_model(vocab)))


# -- the seed's step API (rnnfast.RNN / LSTM / Stack) on both backends -------------------------

CELLS = {"rnn": (rnnfast.RNN, reference.RNN), "lstm": (rnnfast.LSTM, reference.LSTM),
         "gru": (rnnfast.GRU, reference.GRU)}  # fmt: skip


def make_cell(cell, backend, *args, **kwargs):
    """The step-API cell of a backend: rnnfast's class with backend="c", or reference's."""
    c_class, numpy_class = CELLS[cell]
    return c_class(*args, backend="c", **kwargs) if backend == "c" else numpy_class(*args, **kwargs)


def cell_equations(cell, p, xs):
    """The outputs and final (h, c) of a step-API cell fed xs (N, B, I), written out here in
    float64 from the DESIGN.md equations: y = h W_y + b_y, or h itself without W_y."""
    p = {k: v.astype(np.float64) for k, v in p.items()}
    H = p["W_h"].shape[0]
    h = c = np.zeros((xs.shape[1], H))
    ys = []
    for x in xs.astype(np.float64):
        a = x @ p["W_x"] + h @ p["W_h"] + p["b"]
        if cell == "rnn":
            h = np.tanh(a)
        elif cell == "gru":  # PyTorch's: n = tanh(x W_in + b_in + r * (h W_hn + b_hn))
            r, z = (1 / (1 + np.exp(-a[:, k * H : (k + 1) * H])) for k in (0, 1))
            n = np.tanh(x @ p["W_x"][:, 2 * H :] + p["b"][2 * H :]
                        + r * (h @ p["W_h"][:, 2 * H :] + p["b_hn"]))  # fmt: skip
            h = (1 - z) * n + z * h
        else:
            i, f, o = (1 / (1 + np.exp(-a[:, k * H : (k + 1) * H])) for k in (0, 1, 3))
            c = f * c + i * np.tanh(a[:, 2 * H : 3 * H])
            h = o * np.tanh(c)
        ys.append(h @ p["W_y"] + p["b_y"] if "W_y" in p else h)
    return np.array(ys), h, c


@pytest.mark.parametrize("output_size", [None, 5], ids=["no-output-layer", "output-layer"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_step_api_follows_the_equations_step_by_step(backend, cell, output_size, dtype, rng):
    """Six steps of a batch of 3 carry the state from step to step (every output checked
    against the equations), for float32 and float64 with the kernel tolerance table."""
    step_cell = make_cell(cell, backend, 4, 7, output_size, dtype=dtype, seed=1)
    xs = rng.normal(size=(6, 3, 4)).astype(dtype)
    expected, h, c = cell_equations(cell, step_cell.params, xs)
    for t, x in enumerate(xs):
        y = step_cell.step(x)
        assert y.dtype == dtype and y.shape == (3, output_size or 7)
        assert_close(y, expected[t], dtype, f"y at step {t}")
    assert_close(step_cell.h, h, dtype, "final h")
    if cell == "lstm":
        assert_close(step_cell.c, c, dtype, "final c")
    if output_size is None:
        np.testing.assert_array_equal(y, step_cell.h)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_step_api_c_matches_numpy_step_by_step(cell, dtype, rng):
    """The same seed gives both backends the same weights; their outputs agree at every step
    of a 1-d input (returned 1-d) and of a batch, within the kernel tolerance table."""
    c_cell = make_cell(cell, "c", 6, 9, 4, dtype=dtype, seed=2)
    numpy_cell = make_cell(cell, "numpy", 6, 9, 4, dtype=dtype, seed=2)
    np.testing.assert_array_equal(c_cell.params.flat, numpy_cell.params.flat)
    for x in rng.normal(size=(8, 6)).astype(dtype):
        y_c, y_numpy = c_cell.step(x), numpy_cell.step(x)
        assert y_c.shape == (4,)
        assert_close(y_c, y_numpy, dtype, "y")
        assert_close(c_cell.h, numpy_cell.h, dtype, "h")
    c_cell.reset(), numpy_cell.reset()
    for x in rng.normal(size=(5, 2, 6)).astype(dtype):
        assert_close(c_cell.step(x), numpy_cell.step(x), dtype, "batched y")


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_reset_starts_again_from_zeros_and_allows_a_new_batch(backend, cell, rng):
    step_cell = make_cell(cell, backend, 3, 8, 2, dtype=np.float64, seed=0)
    xs = rng.normal(size=(3, 4, 3))
    first = [step_cell.step(x) for x in xs]
    with pytest.raises(ValueError, match="expected a batch of 4"):
        step_cell.step(xs[0, :2])
    step_cell.reset()
    assert step_cell.h is None
    again = [step_cell.step(x) for x in xs]
    np.testing.assert_array_equal(again, first)  # the same computation, from zeros again
    step_cell.reset()
    fresh = make_cell(cell, backend, 3, 8, 2, dtype=np.float64, seed=0)
    for x in xs[:, :2]:
        np.testing.assert_array_equal(step_cell.step(x), fresh.step(x))


@pytest.mark.parametrize("backend", BACKENDS)
def test_stack_feeds_layer_outputs_upward(backend, dtype, rng):
    lstm = make_cell("lstm", backend, 3, 5, dtype=dtype, seed=0)
    rnn = make_cell("rnn", backend, 5, 4, 2, dtype=dtype, seed=1)
    stack = rnnfast.Stack(lstm, rnn)
    xs = rng.normal(size=(4, 2, 3)).astype(dtype)
    hs, _, _ = cell_equations("lstm", lstm.params, xs)
    expected, _, _ = cell_equations("rnn", rnn.params, hs.astype(dtype))
    for x, y in zip(xs, expected, strict=True):
        assert_close(stack.step(x), y, dtype, "stack output")
    stack.reset()
    assert lstm.h is None and rnn.h is None
    with pytest.raises(ValueError, match="input_size 4 cannot read the 2-wide output"):
        rnnfast.Stack(rnn, make_cell("rnn", backend, 4, 4))


@pytest.mark.parametrize("backend", BACKENDS)
def test_step_api_bad_input(backend):
    rnn = make_cell("rnn", backend, 3, 4)
    with pytest.raises(ValueError, match=r"x: expected shape \(3,\), got \(4,\)"):
        rnn.step(np.ones(4, np.float32))
    with pytest.raises(TypeError, match="x: expected dtype float32, got float64"):
        rnn.step(np.ones(3))
    with pytest.raises(ValueError, match="x: expected finite values, got NaN"):
        rnn.step(np.full(3, np.nan, np.float32))
    assert rnn.h is None  # nothing above reached the state
    rnn.step(np.ones((2, 3), np.float32))
    h = rnn.h.copy()
    with pytest.raises(ValueError, match=r"expected a batch of 2 .*reset\(\).*got 5"):
        rnn.step(np.ones((5, 3), np.float32))
    np.testing.assert_array_equal(rnn.h, h)


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


@pytest.mark.parametrize(
    "public, numpy_class",
    [(rnnfast.CharLM, reference.CharLM), (rnnfast.RNN, reference.RNN),
     (rnnfast.LSTM, reference.LSTM), (rnnfast.GRU, reference.GRU)],
    ids=["CharLM", "RNN", "LSTM", "GRU"],
)  # fmt: skip
def test_reference_classes_are_the_public_ones_with_the_numpy_backend(public, numpy_class):
    """reference's classes subclass rnnfast's with the same arguments and defaults, but for
    backend="numpy"; both accept either backend."""
    assert issubclass(numpy_class, public)
    ours = inspect.signature(numpy_class).parameters
    theirs = inspect.signature(public).parameters
    assert list(ours) == list(theirs)
    for name, parameter in theirs.items():
        expected = "numpy" if name == "backend" else parameter.default
        assert (ours[name].kind, ours[name].default) == (parameter.kind, expected), name
    args = (5,) if public is rnnfast.CharLM else (3, 4)
    assert numpy_class(*args).backend == "numpy" and public(*args).backend == "c"
    assert numpy_class(*args, backend="c").kernels.rnn_forward is public(*args).kernels.rnn_forward


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_sampler_is_the_same_on_both_backends_and_continues_in_chunks(vocab, cell, rng):
    """Drawing 12 steps at once gives the ids of drawing 5 then 7 (the second chunk carries on
    from the first's state and last id); both backends draw the same ids in float64; the state
    the sampler started from is not modified."""
    kwargs = {"hidden_size": 12, "num_layers": 2, "dtype": np.float64, "seed": 4}
    models = [rnnfast.CharLM(vocab, cell, backend=b, **kwargs) for b in BACKENDS]
    first = rng.integers(0, len(vocab), 3)
    uniforms = rng.random((12, 3))
    _, state = models[0].forward(rng.integers(0, len(vocab), (4, 3)))
    before = [None if a is None else a.copy() for a in state]
    drawn = []
    for model in models:
        ids = model.sampler(first, state, temperature=0.7).draw(uniforms)
        chunked = model.sampler(first, state, temperature=0.7)
        np.testing.assert_array_equal(
            np.concatenate([chunked.draw(uniforms[:5]), chunked.draw(uniforms[5:])]), ids
        )
        assert ids.shape == (12, 3) and len(set(ids.ravel())) > 1
        drawn.append(ids)
    np.testing.assert_array_equal(drawn[0], drawn[1])
    for a, b in zip(state, before, strict=True):
        assert (a is None and b is None) or np.array_equal(a, b)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_sampler_streams_taken_apart_and_put_together_continue(vocab, cell, backend, rng):
    """Streams 2, 0 of one sampler and 3, 1 of it, selected and concatenated after 5 steps
    into a sampler of the same S, draw what the original draws in the next 7 steps, stream for
    stream; neither select nor concatenate changes the samplers they read."""
    model = rnnfast.CharLM(vocab, cell, hidden_size=12, num_layers=2, seed=4, backend=backend)
    uniforms = rng.random((12, 4))
    whole = model.sampler(rng.integers(0, len(vocab), 4), temperature=0.8)
    whole.draw(uniforms[:5])
    parts = [whole.select([2, 0]), whole.select(np.array([3, 1]))]
    joined = rnnfast.model.Sampler.concatenate(parts)
    order = [2, 0, 3, 1]
    assert (parts[0].num_streams, joined.num_streams) == (2, 4)
    again = joined.draw(uniforms[5:, order])
    np.testing.assert_array_equal(again, whole.draw(uniforms[5:])[:, order])
    np.testing.assert_array_equal(parts[1].draw(uniforms[5:, [3, 1]]), again[:, 2:])
