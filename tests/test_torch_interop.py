"""PyTorch parity: the same weights give the same loss, state and every gradient as autograd."""

import numpy as np
import pytest
from conftest import TOLERANCES

import rnnfast
from rnnfast.model import BACKENDS

torch = pytest.importorskip("torch", reason="PyTorch interop tests need torch (rnnfast[torch])")
nn = torch.nn

SHAPES = [  # cell, V, H, layers, T, B
    ("rnn", 7, 5, 1, 6, 3),
    ("rnn", 2, 9, 3, 1, 1),
    ("lstm", 7, 5, 1, 6, 3),
    ("lstm", 11, 13, 2, 9, 4),
    ("lstm", 3, 4, 3, 5, 2),
]
# autograd and rnnfast order their sums differently: float64 agrees to ~1e-13, float32 to the
# kernel table's float32 row
TORCH_TOLERANCES = {np.dtype(np.float64): {"rtol": 1e-9, "atol": 1e-12},
                    np.dtype(np.float32): TOLERANCES[np.dtype(np.float32)]}  # fmt: skip


def torch_pair(cell, V, H, layers, dtype, seed=0):
    torch.manual_seed(seed)
    tdtype = getattr(torch, np.dtype(dtype).name)
    cls = nn.LSTM if cell == "lstm" else nn.RNN
    return cls(V, H, num_layers=layers, dtype=tdtype), nn.Linear(H, V, dtype=tdtype)


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
        g_ih = getattr(rnn, f"weight_ih_l{layer}").grad.numpy()
        g_hh = getattr(rnn, f"weight_hh_l{layer}").grad.numpy()
        g_b = getattr(rnn, f"bias_ih_l{layer}").grad.numpy()
        np.testing.assert_allclose(grads[f"W_x.{layer}"], g_ih.T, **tol)
        np.testing.assert_allclose(grads[f"W_h.{layer}"], g_hh.T, **tol)
        np.testing.assert_allclose(grads[f"b.{layer}"], g_b, **tol)
        np.testing.assert_allclose(getattr(rnn, f"bias_hh_l{layer}").grad.numpy(), g_b, **tol)
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


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_round_trip_gives_the_same_outputs(cell):
    model = rnnfast.reference.CharLM(9, cell=cell, hidden_size=6, num_layers=2,
                                     dtype=np.float64, seed=0)  # fmt: skip
    rnn, linear = model.to_torch()
    assert rnn.bias_hh_l1.abs().sum().item() == 0  # the two biases come back merged
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
    (lambda: (nn.GRU(5, 4), nn.Linear(4, 5)), TypeError, "nn.RNN .tanh. or nn.LSTM"),
    (lambda: (nn.RNN(5, 4, nonlinearity="relu"), nn.Linear(4, 5)), ValueError, "relu"),
    (lambda: (nn.LSTM(5, 4, bidirectional=True), nn.Linear(8, 5)), ValueError, "bidirectional"),
    (lambda: (nn.LSTM(5, 4, proj_size=2), nn.Linear(2, 5)), ValueError, "proj_size"),
    (lambda: (nn.LSTM(5, 4), nn.Linear(4, 6)), ValueError, r"nn.Linear\(4, 5\)"),
    (lambda: (nn.LSTM(5, 4), nn.Conv1d(4, 5, 1)), TypeError, "nn.Linear"),
])  # fmt: skip
def test_unsupported_modules_are_clear_errors(make, error, message):
    with pytest.raises(error, match=message):
        rnnfast.CharLM.from_torch(*make())
