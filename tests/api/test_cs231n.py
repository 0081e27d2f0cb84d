"""rnnfast.cs231n against the NumPy twin written from the assignment's docstrings
(cs231n_twin.py) and against centered finite differences, as the assignment's notebook checks
a student's rnn_layers.py."""

import cs231n_twin as twin
import numpy as np
import pytest
from conftest import assert_close
from test_gradcheck import numeric_gradient

from rnnfast import cs231n

N, T, D, H, V = 3, 4, 5, 6, 7


def problem(kind, dtype, rng):
    """(forward name, its arguments, upstream gradients) for one function pair."""
    G = 4 * H if kind.startswith("lstm") else H

    def normal(*shape, scale=1.0):
        return (scale * rng.normal(size=shape)).astype(dtype)

    weights = (normal(D, G, scale=0.3), normal(H, G, scale=0.3), normal(G, scale=0.3))
    if kind == "rnn_step":
        return (normal(N, D), normal(N, H), *weights), (normal(N, H),)
    if kind == "rnn":
        return (normal(N, T, D), normal(N, H), *weights), (normal(N, T, H),)
    if kind == "lstm_step":
        return (normal(N, D), normal(N, H), normal(N, H), *weights), (normal(N, H), normal(N, H))
    if kind == "lstm":
        return (normal(N, T, D), normal(N, H), *weights), (normal(N, T, H),)
    if kind == "word_embedding":
        return (rng.integers(0, V, (N, T)), normal(V, D)), (normal(N, T, D),)
    if kind == "temporal_affine":
        return (normal(N, T, D), normal(D, V), normal(V)), (normal(N, T, V),)
    raise ValueError(kind)


KINDS = ["rnn_step", "rnn", "lstm_step", "lstm", "word_embedding", "temporal_affine"]


def run(module, kind, args, upstream):
    """Forward then backward of ``module``'s pair: (forward outputs, backward outputs)."""
    out = getattr(module, f"{kind}_forward")(*args)
    outputs, cache = (out[:-1], out[-1])
    grads = getattr(module, f"{kind}_backward")(*upstream, cache)
    return outputs, grads if isinstance(grads, tuple) else (grads,)


@pytest.mark.parametrize("kind", KINDS)
def test_matches_the_twin_and_modifies_no_argument(kind, dtype, rng):
    args, upstream = problem(kind, dtype, rng)
    before = [a.copy() for a in (*args, *upstream)]
    outputs, grads = run(cs231n, kind, args, upstream)
    for a, b in zip(before, (*args, *upstream), strict=True):
        np.testing.assert_array_equal(a, b)
    t_outputs, t_grads = run(twin, kind, args, upstream)
    assert len(outputs) == len(t_outputs) and len(grads) == len(t_grads)
    for k, (ours, theirs) in enumerate(zip((*outputs, *grads), (*t_outputs, *t_grads),
                                           strict=True)):  # fmt: skip
        assert ours.shape == theirs.shape and ours.dtype == dtype, k
        assert_close(ours, theirs, dtype, f"{kind} result {k}")


@pytest.mark.parametrize("masked", [False, True])
def test_temporal_softmax_loss_matches_the_twin(masked, dtype, rng):
    x = rng.normal(size=(N, T, V)).astype(dtype)
    y = rng.integers(0, V, (N, T))
    mask = rng.random((N, T)) < 0.6 if masked else np.ones((N, T), bool)
    loss, dx = cs231n.temporal_softmax_loss(x, y, mask)
    t_loss, t_dx = twin.temporal_softmax_loss(x, y, mask)
    assert dx.dtype == dtype
    assert_close(loss, t_loss, dtype, "loss")
    assert_close(dx, t_dx, dtype, "dx")
    assert not np.any(dx[~mask])


def test_negative_control_the_rnnfast_gate_order_is_caught(rng):
    """Weights fed in rnnfast's own order i, f, g, o give different outputs: the comparison
    sees a gate-order mix-up."""
    args, _ = problem("lstm", np.float64, rng)
    x, h0, Wx, Wh, b = args
    swapped = [np.concatenate([w[..., : 2 * H], w[..., 3 * H :], w[..., 2 * H : 3 * H]], -1)
               for w in (Wx, Wh, b)]  # fmt: skip
    with pytest.raises(AssertionError):
        assert_close(cs231n.lstm_forward(x, h0, *swapped)[0], twin.lstm_forward(*args)[0],
                     np.float64)  # fmt: skip


# -- centered finite differences, float64, as the notebook -------------------------------------


def numeric_gradient_of(f, x, df):
    """d sum(f() * df) / dx by centered differences, element by element."""
    return numeric_gradient(lambda: np.sum(f() * df), x)


def rel_error(a, b):
    return np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b)))


# the arguments each backward output differentiates, by index into the forward's arguments
GRADIENT_OF = {
    "rnn_step": [0, 1, 2, 3, 4],
    "rnn": [0, 1, 2, 3, 4],
    "lstm_step": [0, 1, 2, 3, 4, 5],
    "lstm": [0, 1, 2, 3, 4],
    "word_embedding": [1],
    "temporal_affine": [0, 1, 2],
}


@pytest.mark.parametrize("kind", KINDS)
def test_centered_finite_differences(kind, rng):
    args, upstream = problem(kind, np.float64, rng)
    args = [a.copy() for a in args]
    _, grads = run(cs231n, kind, args, upstream)
    forward = getattr(cs231n, f"{kind}_forward")
    for grad, index in zip(grads, GRADIENT_OF[kind], strict=True):
        total = np.zeros(())
        for out_index, df in enumerate(upstream):  # lstm_step: next_h and next_c

            def f(out_index=out_index):
                return forward(*args)[out_index]

            total = total + numeric_gradient_of(f, args[index], df)
        assert rel_error(grad, total) < 1e-6, (kind, index)  # the notebook: "around e-7 or less"


def test_finite_differences_negative_control(rng):
    """The check fails for a backward that drops next_c's gradient."""
    args, (dnext_h, dnext_c) = problem("lstm_step", np.float64, rng)
    _, _, cache = cs231n.lstm_step_forward(*args)
    dx = cs231n.lstm_step_backward(dnext_h, np.zeros_like(dnext_c), cache)[0]
    numeric = sum(
        numeric_gradient_of(lambda k=k: cs231n.lstm_step_forward(*args)[k], args[0], df)
        for k, df in enumerate((dnext_h, dnext_c))
    )
    assert rel_error(dx, numeric) > 1e-2


@pytest.mark.parametrize("masked", [False, True])
def test_softmax_loss_finite_differences(masked, rng):
    x = rng.normal(size=(N, T, V))
    y = rng.integers(0, V, (N, T))
    mask = rng.random((N, T)) < 0.6 if masked else np.ones((N, T), bool)
    _, dx = cs231n.temporal_softmax_loss(x, y, mask)
    numeric = numeric_gradient_of(lambda: cs231n.temporal_softmax_loss(x, y, mask)[0], x, 1.0)
    assert rel_error(dx, numeric) < 1e-6


# -- a captioning model trains the same on either --------------------------------------------


def captioning_steps(layers, dtype, steps=5, lr=0.05):
    """CaptioningRNN's loss (features -> h0, embedding, LSTM, temporal affine, masked softmax)
    and a few SGD steps; returns the losses and the final parameters."""
    rng = np.random.default_rng(7)
    F, W, nwords = 8, 5, 9
    features = rng.normal(size=(N, F)).astype(dtype)
    captions = rng.integers(0, nwords, (N, T + 1))
    mask = captions[:, 1:] != 0
    p = {"W_proj": rng.normal(0, 0.2, (F, H)), "b_proj": np.zeros(H),
         "W_embed": rng.normal(0, 0.2, (nwords, W)), "Wx": rng.normal(0, 0.2, (W, 4 * H)),
         "Wh": rng.normal(0, 0.2, (H, 4 * H)), "b": np.zeros(4 * H),
         "W_vocab": rng.normal(0, 0.2, (H, nwords)), "b_vocab": np.zeros(nwords)}  # fmt: skip
    p = {k: v.astype(dtype) for k, v in p.items()}
    losses = []
    for _ in range(steps):
        h0 = features @ p["W_proj"] + p["b_proj"]
        x, c_embed = layers.word_embedding_forward(captions[:, :-1], p["W_embed"])
        h, c_lstm = layers.lstm_forward(x, h0, p["Wx"], p["Wh"], p["b"])
        scores, c_affine = layers.temporal_affine_forward(h, p["W_vocab"], p["b_vocab"])
        loss, dscores = layers.temporal_softmax_loss(scores, captions[:, 1:], mask)
        dh, dW_vocab, db_vocab = layers.temporal_affine_backward(dscores, c_affine)
        dx, dh0, dWx, dWh, db = layers.lstm_backward(dh, c_lstm)
        grads = {"W_embed": layers.word_embedding_backward(dx, c_embed),
                 "W_proj": features.T @ dh0, "b_proj": dh0.sum(0), "Wx": dWx, "Wh": dWh,
                 "b": db, "W_vocab": dW_vocab, "b_vocab": db_vocab}  # fmt: skip
        for k in p:
            p[k] -= lr * grads[k]
        losses.append(float(loss))
    return losses, p


def test_a_captioning_model_trains_identically(dtype):
    losses, params = captioning_steps(cs231n, dtype)
    t_losses, t_params = captioning_steps(twin, dtype)
    assert_close(losses, t_losses, dtype, "losses")
    for k in params:
        assert params[k].dtype == dtype
        assert_close(params[k], t_params[k], dtype, k)


# -- errors ----------------------------------------------------------------------------------


def test_misused_caches_and_bad_arguments_are_clear_errors(rng):
    args, (dh,) = problem("lstm", np.float64, rng)
    _, cache = cs231n.lstm_forward(*args)
    with pytest.raises(ValueError, match="expected the cache of rnn_forward, got the cache of "
                                         "lstm_forward"):  # fmt: skip
        cs231n.rnn_backward(dh, cache)
    with pytest.raises(TypeError, match="expected the cache of rnnfast.cs231n"):
        cs231n.lstm_backward(dh, [cache])
    with pytest.raises(ValueError, match=r"dh: expected shape \(3, 4, 6\)"):
        cs231n.lstm_backward(dh[:, :2], cache)
    x, h0, Wx, Wh, b = args
    with pytest.raises(ValueError, match=r"Wh: expected shape \(H, 4H\) with H=6"):
        cs231n.lstm_forward(x, h0, Wx, Wh[:5], b)
    with pytest.raises(ValueError, match=r"Wx: expected shape \(D, 4H\) with 4H >= 1"):
        cs231n.lstm_forward(x, h0, Wx[:, :-1], Wh, b)
    with pytest.raises(ValueError, match=r"x: expected shape \(N, T, D\)"):
        cs231n.lstm_forward(x[0], h0, Wx, Wh, b)
    with pytest.raises(TypeError, match="expected float32 or float64 arrays"):
        cs231n.rnn_forward(x.astype(np.float16), h0.astype(np.float16), Wx[:, :H].astype(
            np.float16), Wh[:, :H].astype(np.float16), b[:H].astype(np.float16))  # fmt: skip
    with pytest.raises(ValueError, match=r"word ids must lie in \[0, 7\)"):
        cs231n.word_embedding_forward(np.full((2, 3), 7), np.zeros((7, 4)))
    with pytest.raises(ValueError, match="y: ids must lie"):
        cs231n.temporal_softmax_loss(np.zeros((2, 3, 4)), np.full((2, 3), 4), np.ones((2, 3)))


def test_mixed_dtypes_compute_in_the_wider_one(rng):
    args, _ = problem("lstm", np.float64, rng)
    x32 = args[0].astype(np.float32)
    h, _ = cs231n.lstm_forward(x32, *args[1:])
    assert h.dtype == np.float64
    np.testing.assert_allclose(h, twin.lstm_forward(x32, *args[1:])[0], rtol=1e-10, atol=1e-12)
