"""The NumPy reference checked by central finite differences in float64: the analytic gradient
of every parameter element and of the initial state against (L(w + e) - L(w - e)) / 2e."""

import numpy as np
import pytest

from rnnfast import kernels, reference
from rnnfast.core import Params, param_shapes

EPS = 1e-4
# Central differences in float64 err by about EPS^2 |L'''| / 6 (truncation) plus 1e-16 |L| / EPS
# (round-off); at EPS = 1e-4 both stay near 1e-10 absolute (measured: 1.2e-7 relative at worst, on
# gradients down to 1e-5), so a bound of 1e-6 fails on any real mistake.
MAX_RELATIVE_ERROR = 1e-6

CASES = [
    pytest.param("rnn", 1, id="rnn-1layer"),
    pytest.param("rnn", 2, id="rnn-2layers"),
    pytest.param("lstm", 1, id="lstm-1layer"),
    pytest.param("lstm", 2, id="lstm-2layers"),
    pytest.param("gru", 1, id="gru-1layer"),
    pytest.param("gru", 2, id="gru-2layers"),
]


def relative_error(numeric, analytic):
    scale = np.maximum(np.abs(numeric) + np.abs(analytic), 1e-8)
    return np.max(np.abs(numeric - analytic) / scale)


def make_problem(cell, layers, seed=0, V=5, H=3, T=4, B=3, dropout=0.0):
    rng = np.random.default_rng(seed)
    model = reference.CharLM(
        V,
        cell=cell,
        hidden_size=H,
        num_layers=layers,
        dtype=np.float64,
        seed=seed,
        dropout=dropout,
    )
    model.flat_params[...] = rng.normal(0.0, 0.5, model.flat_params.size)
    x = rng.integers(0, V, (T, B))
    y = rng.integers(0, V, (T, B))
    state = model.zero_state(B)
    state.h[...] = rng.normal(0.0, 0.5, state.h.shape)
    if state.c is not None:
        state.c[...] = rng.normal(0.0, 0.5, state.c.shape)
    return model, x, y, state


def numeric_gradient(f, array):
    """Central differences of the scalar f() with respect to every element of ``array``."""
    grad = np.empty_like(array)
    flat, out = array.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        saved = flat[i]
        flat[i] = saved + EPS
        plus = f()
        flat[i] = saved - EPS
        minus = f()
        flat[i] = saved
        out[i] = (plus - minus) / (2 * EPS)
    return grad


@pytest.mark.parametrize("cell, layers", CASES)
def test_parameter_gradients_match_finite_differences(cell, layers):
    model, x, y, state = make_problem(cell, layers)
    _, grads, _ = model.loss_and_grads(x, y, state)
    numeric = Params(
        numeric_gradient(lambda: model.loss(x, y, state)[0], model.flat_params),
        param_shapes(cell, model.vocab_size, model.hidden_size, layers),
    )
    for name in grads:
        err = relative_error(numeric[name], grads[name])
        assert err < MAX_RELATIVE_ERROR, f"{name}: max relative gradient error {err:.2e}"


@pytest.mark.parametrize("cell, layers", CASES)
def test_initial_state_gradients_match_finite_differences(cell, layers):
    model, x, y, state = make_problem(cell, layers, seed=1)
    _, _, _, dstate = model.loss_and_grads(x, y, state, state_grad=True)
    for name in ("h", "c"):
        array = getattr(state, name)
        if array is None:
            continue
        numeric = numeric_gradient(lambda: model.loss(x, y, state)[0], array)
        err = relative_error(numeric, getattr(dstate, name))
        assert err < MAX_RELATIVE_ERROR, f"d{name}0: max relative error {err:.2e}"


@pytest.mark.parametrize("cell, layers", CASES[1::2])
def test_every_named_parameter_gets_a_nonzero_gradient(cell, layers):
    model, x, y, state = make_problem(cell, layers)
    _, grads, _ = model.loss_and_grads(x, y, state)
    for name, g in grads.items():
        assert np.any(g != 0), f"{name} has an all-zero gradient"


def test_negative_control_a_perturbed_weight_fails_the_check():
    """The check can fail: gradients of one model against differences of another whose single
    weight differs by 0.05 must exceed the bound."""
    model, x, y, state = make_problem("lstm", 2)
    _, grads, _ = model.loss_and_grads(x, y, state)
    model.params["W_h.0"][1, 2] += 0.05
    numeric = numeric_gradient(lambda: model.loss(x, y, state)[0], model.flat_params)
    assert relative_error(numeric, grads.flat) > MAX_RELATIVE_ERROR


def test_output_layer_gradient_by_hand():
    """dW_y of a 1-step model written out: (softmax(z) - onehot(y)) outer h, averaged."""
    model, x, y, state = make_problem("rnn", 1, T=1, B=2)
    _, grads, _ = model.loss_and_grads(x, y, state)
    p = model.params
    h = np.tanh(p["W_x.0"][x[0]] + state.h[0] @ p["W_h.0"] + p["b.0"])
    z = h @ p["W_y"] + p["b_y"]
    prob = np.exp(z - z.max(1, keepdims=True))
    prob /= prob.sum(1, keepdims=True)
    prob[np.arange(2), y[0]] -= 1
    np.testing.assert_allclose(grads["W_y"], h.T @ prob / 2, rtol=1e-12)
    np.testing.assert_allclose(grads["b_y"], prob.sum(0) / 2, rtol=1e-12)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_final_state_gradients_start_the_carries(cell):
    """One layer of the reference on float inputs, for the loss
        L = sum(hs * dhs) + sum(h_{T-1} * dh_T) + sum(c_{T-1} * dc_T)   (c: LSTM only):
    backward with the carries dh_T, dc_T gives every gradient of L (X, weights, initial state)
    by central differences, and backward without them does not."""
    rng = np.random.default_rng(3)
    T, B, I, H = 4, 3, 2, 3  # noqa: E741
    G = {"rnn": 1, "lstm": 4, "gru": 3}[cell] * H
    inputs = {
        "X": rng.normal(0.0, 1.0, (T, B, I)),
        "W_x": rng.normal(0.0, 0.5, (I, G)),
        "W_h": rng.normal(0.0, 0.5, (H, G)),
        "b": rng.normal(0.0, 0.5, G),
    }
    if cell == "gru":
        inputs["b_hn"] = rng.normal(0.0, 0.5, H)
    inputs["h0"] = rng.normal(0.0, 0.5, (B, H))
    if cell == "lstm":
        inputs["c0"] = rng.normal(0.0, 0.5, (B, H))
    dhs = rng.normal(0.0, 1.0, (T, B, H))
    final = {"dh_T": rng.normal(0.0, 1.0, (B, H))}
    if cell == "lstm":
        final["dc_T"] = rng.normal(0.0, 1.0, (B, H))
    hs, cs, tcs = (np.empty((T, B, H)) for _ in range(3))
    gates, R = np.empty((T, B, G)), np.empty((T, B, G))

    def forward():
        if cell == "lstm":
            reference.lstm_forward(hs, cs, tcs, gates, *inputs.values())
        elif cell == "gru":
            reference.gru_forward(hs, gates, R, *inputs.values())
        else:
            reference.rnn_forward(hs, *inputs.values())

    def loss():
        forward()
        value = np.sum(hs * dhs) + np.sum(hs[-1] * final["dh_T"])
        return value + (np.sum(cs[-1] * final["dc_T"]) if cell == "lstm" else 0.0)

    def analytic(carries):
        forward()
        g = {name: np.zeros_like(a) for name, a in inputs.items()}
        dA = np.empty((T, B, G))
        x, w_x, w_h, h0 = inputs["X"], inputs["W_x"], inputs["W_h"], inputs["h0"]
        if cell == "lstm":
            reference.lstm_backward(
                g["X"], g["W_x"], g["W_h"], g["b"], g["h0"], g["c0"], dA, dhs, x, hs, cs, tcs,
                gates, w_x, w_h, h0, inputs["c0"], **carries,
            )  # fmt: skip
        elif cell == "gru":
            reference.gru_backward(
                g["X"], g["W_x"], g["W_h"], g["b"], g["b_hn"], g["h0"], dA, np.empty_like(dA),
                dhs, x, hs, gates, R, w_x, w_h, h0, **carries,
            )  # fmt: skip
        else:
            reference.rnn_backward(
                g["X"], g["W_x"], g["W_h"], g["b"], g["h0"], dA, dhs, x, hs, w_x, w_h, h0,
                **carries,
            )  # fmt: skip
        return g

    with_carries, without = analytic(final), analytic({})
    for name, array in inputs.items():
        numeric = numeric_gradient(loss, array)
        err = relative_error(numeric, with_carries[name])
        assert err < MAX_RELATIVE_ERROR, f"d{name}: max relative error {err:.2e}"
        assert relative_error(numeric, without[name]) > 1e-3, f"d{name} without the carries"


def dropout_problem(cell, layers, seed=2):
    """make_problem's model with dropout 0.5 and one fixed draw of its masks (some zero)."""
    model, x, y, state = make_problem(cell, layers, seed=seed, dropout=0.5)
    masks = model.dropout_masks(*x.shape)
    assert 0 < np.count_nonzero(masks) < masks.size
    return model, x, y, state, masks


@pytest.mark.parametrize("cell, layers", CASES)
def test_dropout_gradients_match_finite_differences(cell, layers):
    """With fixed masks the loss is a smooth function of the parameters and the initial state:
    every gradient, through every layer's mask, against central differences."""
    model, x, y, state, masks = dropout_problem(cell, layers)
    _, grads, _, dstate = model.loss_and_grads(x, y, state, state_grad=True, masks=masks)
    loss = lambda: model.loss(x, y, state, masks=masks)[0]  # noqa: E731
    numeric = Params(
        numeric_gradient(loss, model.flat_params),
        param_shapes(cell, model.vocab_size, model.hidden_size, layers),
    )
    for name in grads:
        err = relative_error(numeric[name], grads[name])
        assert err < MAX_RELATIVE_ERROR, f"{name}: max relative gradient error {err:.2e}"
    for name in ("h", "c"):
        if getattr(state, name) is not None:
            err = relative_error(numeric_gradient(loss, getattr(state, name)), dstate[name == "c"])
            assert err < MAX_RELATIVE_ERROR, f"d{name}0: max relative error {err:.2e}"


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_negative_control_a_mask_missing_in_backward_fails_the_check(monkeypatch, cell):
    """The dropout check can fail: a backward that forgets the mask (the gradient from above
    taken as is) must exceed the bound on the weights below the dropped outputs."""
    model, x, y, state, masks = dropout_problem(cell, 2)
    monkeypatch.setattr(kernels, "_from_above", lambda dhs, mask, t: dhs[t])
    _, grads, _ = model.loss_and_grads(x, y, state, masks=masks)
    numeric = numeric_gradient(lambda: model.loss(x, y, state, masks=masks)[0], model.flat_params)
    assert relative_error(numeric, grads.flat) > MAX_RELATIVE_ERROR
