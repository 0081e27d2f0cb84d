"""PyTorch parity: the same weights give the same loss, state and every gradient as autograd,
for CharLM and for the dense-input layers of rnnfast.layers, with nn.RNN, nn.LSTM and nn.GRU."""

import numpy as np
import pytest
from conftest import TOLERANCES

import rnnfast
from rnnfast import layers
from rnnfast.backends import BACKENDS

torch = pytest.importorskip("torch", reason="PyTorch interop tests need torch (rnnfast[torch])")
nn = torch.nn

SHAPES = [  # cell, V, H, layers, T, B
    ("rnn", 7, 5, 1, 6, 3),
    ("rnn", 2, 9, 3, 1, 1),
    ("lstm", 7, 5, 1, 6, 3),
    ("lstm", 11, 13, 2, 9, 4),
    ("lstm", 3, 4, 3, 5, 2),
    ("gru", 7, 5, 1, 6, 3),
    ("gru", 2, 9, 3, 1, 1),
    ("gru", 11, 13, 2, 9, 4),
]
TORCH_CLASSES = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
LAYER_CLASSES = {"rnn": layers.RNN, "lstm": layers.LSTM, "gru": layers.GRU}
# autograd and rnnfast order their sums differently: float64 agrees to ~1e-13, float32 to the
# kernel table's float32 row
TORCH_TOLERANCES = {np.dtype(np.float64): {"rtol": 1e-9, "atol": 1e-12},
                    np.dtype(np.float32): TOLERANCES[np.dtype(np.float32)]}  # fmt: skip


def torch_pair(cell, V, H, layers, dtype, seed=0):
    torch.manual_seed(seed)
    tdtype = getattr(torch, np.dtype(dtype).name)
    rnn = TORCH_CLASSES[cell](V, H, num_layers=layers, dtype=tdtype)
    return rnn, nn.Linear(H, V, dtype=tdtype)


def recurrent_grads(grads, layer):
    """The gradients of a layer's torch parameters weight_ih, weight_hh, bias_ih, bias_hh from
    rnnfast's (a GRU's bias_hh: b_hr and b_hz act as b does, b_hn as b_hn)."""
    b = b_hh = grads[f"b.{layer}"]
    if f"b_hn.{layer}" in grads:
        b_hh = np.concatenate([b[: 2 * b.size // 3], grads[f"b_hn.{layer}"]])
    return {"weight_ih": grads[f"W_x.{layer}"].T, "weight_hh": grads[f"W_h.{layer}"].T,
            "bias_ih": b, "bias_hh": b_hh}  # fmt: skip


def torch_loss_and_grads(rnn, linear, x, y, state):
    V = rnn.input_size
    onehot = torch.nn.functional.one_hot(torch.from_numpy(x), V).to(rnn.weight_ih_l0.dtype)
    h0 = torch.from_numpy(state.h.copy()).requires_grad_()
    if isinstance(rnn, nn.LSTM):
        c0 = torch.from_numpy(state.c.copy()).requires_grad_()
        out, (hT, cT) = rnn(onehot, (h0, c0))
    else:
        c0 = None
        out, hT = rnn(onehot, h0)
    logits = linear(out).reshape(-1, V)
    loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(y.reshape(-1)))
    for p in list(rnn.parameters()) + list(linear.parameters()):
        p.grad = None
    loss.backward()
    return loss.item(), h0.grad.numpy(), None if c0 is None else c0.grad.numpy(), hT


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell, V, H, layers, T, B", SHAPES)
def test_same_loss_state_and_gradients_as_autograd(cell, V, H, layers, T, B, dtype, backend):
    rnn, linear = torch_pair(cell, V, H, layers, dtype)
    model = rnnfast.CharLM.from_torch(rnn, linear, backend=backend)
    assert (model.cell, model.num_layers, model.dtype) == (cell, layers, dtype)
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, V, (2, T, B))
    state = model.zero_state(B)
    state.h[...] = rng.normal(0, 0.5, state.h.shape)
    if state.c is not None:
        state.c[...] = rng.normal(0, 0.5, state.c.shape)
    loss, grads, final, dstate = model.loss_and_grads(x, y, state, state_grad=True)
    t_loss, t_dh0, t_dc0, t_hT = torch_loss_and_grads(rnn, linear, x, y, state)
    tol = TORCH_TOLERANCES[dtype]
    assert loss == pytest.approx(t_loss, rel=tol["rtol"] * 10, abs=tol["atol"])
    np.testing.assert_allclose(final.h, t_hT.detach().numpy(), **tol)
    np.testing.assert_allclose(dstate.h, t_dh0, **tol)
    if cell == "lstm":
        np.testing.assert_allclose(dstate.c, t_dc0, **tol)
    for layer in range(layers):
        for name, ours in recurrent_grads(grads, layer).items():
            theirs = getattr(rnn, f"{name}_l{layer}").grad.numpy()
            np.testing.assert_allclose(ours, theirs, err_msg=f"{name}_l{layer}", **tol)
    np.testing.assert_allclose(grads["W_y"], linear.weight.grad.numpy().T, **tol)
    np.testing.assert_allclose(grads["b_y"], linear.bias.grad.numpy(), **tol)


def test_negative_control_another_torch_model_differs():
    rnn, linear = torch_pair("lstm", 7, 5, 1, np.float64)
    model = rnnfast.CharLM.from_torch(rnn, linear)
    x = np.random.default_rng(0).integers(0, 7, (4, 2))
    loss, grads, _ = model.loss_and_grads(x, x)
    other_rnn, _ = torch_pair("lstm", 7, 5, 1, np.float64, seed=1)
    t_loss, *_ = torch_loss_and_grads(other_rnn, linear, x, x, model.zero_state(2))
    assert loss != pytest.approx(t_loss, rel=1e-6)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_round_trip_gives_the_same_outputs(cell):
    model = rnnfast.reference.CharLM(9, cell=cell, hidden_size=6, num_layers=2,
                                     dtype=np.float64, seed=0)  # fmt: skip
    rnn, linear = model.to_torch()
    # the two biases come back merged (a GRU's b_hn apart, in bias_hh's n block)
    merged = rnn.bias_hh_l1[:12] if cell == "gru" else rnn.bias_hh_l1
    assert merged.abs().sum().item() == 0
    back = rnnfast.reference.CharLM.from_torch(rnn, linear)
    np.testing.assert_array_equal(back.flat_params, model.flat_params)
    x = np.random.default_rng(0).integers(0, 9, (5, 3))
    t_loss, *_ = torch_loss_and_grads(rnn, linear, x, x, model.zero_state(3))
    assert model.loss(x, x)[0] == pytest.approx(t_loss, rel=1e-12)


def test_vocab_is_kept_and_checked():
    rnn, linear = torch_pair("rnn", 3, 4, 1, np.float32)
    vocab = rnnfast.Vocab(["c", "a", "b"])
    assert rnnfast.CharLM.from_torch(rnn, linear, vocab=vocab).vocab == vocab
    with pytest.raises(ValueError, match="input_size is 3"):
        rnnfast.CharLM.from_torch(rnn, linear, vocab=rnnfast.Vocab("ab"))


@pytest.mark.parametrize("make, error, message", [
    (lambda: (nn.Linear(5, 4), nn.Linear(4, 5)), TypeError, "nn.RNN .tanh., nn.LSTM or nn.GRU"),
    (lambda: (nn.GRU(5, 4, bidirectional=True), nn.Linear(8, 5)), ValueError, "bidirectional"),
    (lambda: (nn.RNN(5, 4, nonlinearity="relu"), nn.Linear(4, 5)), ValueError, "relu"),
    (lambda: (nn.LSTM(5, 4, bidirectional=True), nn.Linear(8, 5)), ValueError, "bidirectional"),
    (lambda: (nn.LSTM(5, 4, proj_size=2), nn.Linear(2, 5)), ValueError, "proj_size"),
    (lambda: (nn.LSTM(5, 4), nn.Linear(4, 6)), ValueError, r"nn.Linear\(4, 5\)"),
    (lambda: (nn.LSTM(5, 4), nn.Conv1d(4, 5, 1)), TypeError, "nn.Linear"),
])  # fmt: skip
def test_unsupported_modules_are_clear_errors(make, error, message):
    with pytest.raises(error, match=message):
        rnnfast.CharLM.from_torch(*make())


# -- rnnfast.layers against nn.RNN / nn.LSTM on dense inputs --------------------------------

LAYER_SHAPES = [  # cell, I, H, layers, T, B
    ("rnn", 4, 5, 1, 6, 3),
    ("rnn", 3, 7, 3, 1, 1),
    ("lstm", 4, 5, 1, 6, 3),
    ("lstm", 6, 3, 2, 5, 1),
    ("lstm", 2, 9, 3, 4, 2),
    ("gru", 4, 5, 1, 6, 3),
    ("gru", 3, 7, 3, 1, 1),
    ("gru", 6, 3, 2, 5, 2),
]


def torch_layer_grads(module, x, h0, c0, dout, dh_T, dc_T):
    """Autograd of  sum(out * dout) + sum(h_T * dh_T) + sum(c_T * dc_T): the vector-Jacobian
    products backward computes.  Returns out, h_T, c_T, dx, dh0, dc0 as arrays."""
    xt = torch.from_numpy(x.copy()).requires_grad_()
    h0t = torch.from_numpy(h0.copy()).requires_grad_()
    if isinstance(module, nn.LSTM):
        c0t = torch.from_numpy(c0.copy()).requires_grad_()
        out, (hT, cT) = module(xt, (h0t, c0t))
    else:
        c0t, cT = None, None
        out, hT = module(xt, h0t)
    total = (out * torch.from_numpy(dout)).sum()
    if dh_T is not None:
        total = total + (hT * torch.from_numpy(dh_T)).sum()
    if dc_T is not None:
        total = total + (cT * torch.from_numpy(dc_T)).sum()
    module.zero_grad()
    total.backward()

    def array(t):
        return None if t is None else t.detach().numpy()

    dc0 = None if c0t is None else c0t.grad.numpy()
    return array(out), array(hT), array(cT), xt.grad.numpy(), h0t.grad.numpy(), dc0


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batch_first", [False, True], ids=["time_major", "batch_first"])
@pytest.mark.parametrize("given_state", [False, True], ids=["zero_state", "given_state"])
@pytest.mark.parametrize("with_dstate", [False, True], ids=["no_dstate", "dstate"])
@pytest.mark.parametrize("cell, I, H, num_layers, T, B", LAYER_SHAPES)
def test_layer_matches_autograd(cell, I, H, num_layers, T, B, with_dstate, given_state,  # noqa: E741
                                batch_first, backend):  # fmt: skip
    torch.manual_seed(3)
    module = TORCH_CLASSES[cell](I, H, num_layers=num_layers, batch_first=batch_first,
                                 dtype=torch.float64)  # fmt: skip
    layer = LAYER_CLASSES[cell].from_torch(module, backend=backend)
    assert (layer.batch_first, layer.num_layers, layer.dtype) == (batch_first, num_layers,
                                                                  np.float64)  # fmt: skip
    rng = np.random.default_rng(4)
    x = rng.normal(size=(B, T, I) if batch_first else (T, B, I))
    state_shape = (num_layers, B, H)
    h0, c0 = rng.normal(0, 0.5, (2, *state_shape)) if given_state else np.zeros((2, *state_shape))
    out_shape = (B, T, H) if batch_first else (T, B, H)
    dout = rng.normal(size=out_shape)
    dh_T, dc_T = rng.normal(size=(2, *state_shape)) if with_dstate else (None, None)
    if cell != "lstm":
        c0 = dc_T = None
    state = layers.State(h0, c0) if given_state else None
    dstate = layers.State(dh_T, dc_T) if with_dstate else None

    out, final, cache = layer.forward(x, state)
    dx, dstate0, grads = layer.backward(dout, cache, dstate)
    t_out, t_hT, t_cT, t_dx, t_dh0, t_dc0 = torch_layer_grads(
        module, x, h0, np.zeros(state_shape) if c0 is None else c0, dout, dh_T, dc_T
    )
    tol = {"rtol": 1e-9, "atol": 1e-12}
    np.testing.assert_allclose(out, t_out, **tol)
    np.testing.assert_allclose(final.h, t_hT, **tol)
    np.testing.assert_allclose(dx, t_dx, **tol)
    np.testing.assert_allclose(dstate0.h, t_dh0, **tol)
    if cell == "lstm":
        np.testing.assert_allclose(final.c, t_cT, **tol)
        np.testing.assert_allclose(dstate0.c, t_dc0, **tol)
    for k in range(num_layers):
        for name, ours in recurrent_grads(grads, k).items():
            theirs = getattr(module, f"{name}_l{k}").grad.numpy()
            np.testing.assert_allclose(ours, theirs, err_msg=f"{name}_l{k}", **tol)


def test_layer_negative_control_a_dropped_final_state_gradient_is_caught():
    torch.manual_seed(0)
    module = nn.LSTM(3, 4, dtype=torch.float64)
    layer = layers.LSTM.from_torch(module)
    rng = np.random.default_rng(0)
    x, dout = rng.normal(size=(5, 2, 3)), rng.normal(size=(5, 2, 4))
    dc_T = rng.normal(size=(1, 2, 4))
    _, _, cache = layer.forward(x)
    dx, *_ = layer.backward(dout, cache)  # without the dc_T autograd sees
    t_dx = torch_layer_grads(module, x, *np.zeros((2, 1, 2, 4)), dout, None, dc_T)[3]
    assert not np.allclose(dx, t_dx, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("cls", [layers.RNN, layers.LSTM, layers.GRU])
@pytest.mark.parametrize("batch_first", [False, True])
def test_layer_round_trip_through_torch(cls, batch_first):
    layer = cls(3, 5, num_layers=2, dtype=np.float64, batch_first=batch_first, seed=1)
    module = layer.to_torch()
    merged = module.bias_hh_l1[:10] if cls is layers.GRU else module.bias_hh_l1
    assert module.batch_first == batch_first and merged.abs().sum().item() == 0
    back = cls.from_torch(module)
    np.testing.assert_array_equal(back.flat_params, layer.flat_params)
    x = np.random.default_rng(0).normal(size=(2, 4, 3))
    t_out = module(torch.from_numpy(x))[0].detach().numpy()
    np.testing.assert_allclose(layer.forward(x)[0], t_out, rtol=1e-12, atol=1e-14)


def test_layer_from_torch_keeps_float32_and_dropout():
    """Dropout between the layers comes across both ways; in evaluation (the module's eval(),
    the layer's default forward) neither applies it."""
    module = nn.LSTM(3, 4, num_layers=2, dropout=0.5)
    layer = layers.LSTM.from_torch(module)
    assert layer.dtype == np.float32 and layer.input_size == 3 and layer.dropout == 0.5
    assert layer.to_torch().dropout == 0.5
    x = np.random.default_rng(0).normal(size=(5, 2, 3)).astype(np.float32)
    expected = module.eval()(torch.from_numpy(x))[0].detach().numpy()
    np.testing.assert_allclose(layer.forward(x)[0], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls, module, error, message", [
    (layers.LSTM, lambda: nn.RNN(3, 4), TypeError, "expected nn.LSTM, got RNN"),
    (layers.RNN, lambda: nn.LSTM(3, 4), TypeError, "expected nn.RNN, got LSTM"),
    (layers.RNN, lambda: nn.GRU(3, 4), TypeError, "expected nn.RNN, got GRU"),
    (layers.GRU, lambda: nn.LSTM(3, 4), TypeError, "expected nn.GRU, got LSTM"),
    (layers.LSTM, lambda: nn.Linear(3, 4), TypeError, "nn.RNN .tanh., nn.LSTM or nn.GRU"),
    (layers.RNN, lambda: nn.RNN(3, 4, nonlinearity="relu"), ValueError, "relu"),
    (layers.LSTM, lambda: nn.LSTM(3, 4, bidirectional=True), ValueError, "bidirectional"),
    (layers.LSTM, lambda: nn.LSTM(3, 4, proj_size=2), ValueError, "proj_size"),
])  # fmt: skip
def test_layer_from_unsupported_modules_is_a_clear_error(cls, module, error, message):
    with pytest.raises(error, match=message):
        cls.from_torch(module())
