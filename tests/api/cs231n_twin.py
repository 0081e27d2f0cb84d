"""CS231n's rnn_layers.py written plainly from the assignment's docstrings, one step at a time as
the assignment asks: the twin rnnfast.cs231n is tested against, and the NumPy loops that
lab/layers.py times it against.  Gates i, f, o, g; batch first (N, T, D)."""

import numpy as np


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def rnn_step_forward(x, prev_h, Wx, Wh, b):
    next_h = np.tanh(x @ Wx + prev_h @ Wh + b)
    return next_h, (x, prev_h, Wx, Wh, next_h)


def rnn_step_backward(dnext_h, cache):
    x, prev_h, Wx, Wh, next_h = cache
    da = dnext_h * (1 - next_h * next_h)  # tanh' from its output
    return da @ Wx.T, da @ Wh.T, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def rnn_forward(x, h0, Wx, Wh, b):
    N, T, _ = x.shape
    h = np.empty((N, T, h0.shape[1]), np.result_type(x, h0, Wx, Wh, b))
    steps, prev = [], h0
    for t in range(T):
        prev, step = rnn_step_forward(x[:, t], prev, Wx, Wh, b)
        h[:, t] = prev
        steps.append(step)
    return h, steps


def rnn_backward(dh, cache):
    N, T, _ = dh.shape
    dx = np.empty((N, T, cache[0][0].shape[1]), dh.dtype)
    dWx, dWh = np.zeros_like(cache[0][2]), np.zeros_like(cache[0][3])
    db = np.zeros(dWh.shape[1], dh.dtype)
    carry = np.zeros_like(dh[:, 0])
    for t in reversed(range(T)):
        dx[:, t], carry, dWx_t, dWh_t, db_t = rnn_step_backward(dh[:, t] + carry, cache[t])
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    return dx, carry, dWx, dWh, db


def word_embedding_forward(x, W):
    return W[x], (x, W)


def word_embedding_backward(dout, cache):
    x, W = cache
    dW = np.zeros_like(W)
    np.add.at(dW, x, dout)
    return dW


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    H = prev_h.shape[1]
    a = x @ Wx + prev_h @ Wh + b
    i, f, o = sigmoid(a[:, :H]), sigmoid(a[:, H : 2 * H]), sigmoid(a[:, 2 * H : 3 * H])
    g = np.tanh(a[:, 3 * H :])
    next_c = f * prev_c + i * g
    tanh_c = np.tanh(next_c)
    next_h = o * tanh_c
    return next_h, next_c, (x, prev_h, prev_c, Wx, Wh, i, f, o, g, tanh_c)


def lstm_step_backward(dnext_h, dnext_c, cache):
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, tanh_c = cache
    dc = dnext_c + dnext_h * o * (1 - tanh_c * tanh_c)
    da = np.concatenate(
        [dc * g * i * (1 - i), dc * prev_c * f * (1 - f), dnext_h * tanh_c * o * (1 - o),
         dc * i * (1 - g * g)],
        axis=1,
    )  # fmt: skip
    return da @ Wx.T, da @ Wh.T, dc * f, x.T @ da, prev_h.T @ da, da.sum(axis=0)


def lstm_forward(x, h0, Wx, Wh, b):
    N, T, _ = x.shape
    h = np.empty((N, T, h0.shape[1]), np.result_type(x, h0, Wx, Wh, b))
    steps, prev_h, prev_c = [], h0, np.zeros_like(h0)
    for t in range(T):
        prev_h, prev_c, step = lstm_step_forward(x[:, t], prev_h, prev_c, Wx, Wh, b)
        h[:, t] = prev_h
        steps.append(step)
    return h, steps


def lstm_backward(dh, cache):
    N, T, _ = dh.shape
    dx = np.empty((N, T, cache[0][0].shape[1]), dh.dtype)
    dWx, dWh = np.zeros_like(cache[0][3]), np.zeros_like(cache[0][4])
    db = np.zeros(dWh.shape[1], dh.dtype)
    carry_h, carry_c = np.zeros_like(dh[:, 0]), np.zeros_like(dh[:, 0])
    for t in reversed(range(T)):
        dx[:, t], carry_h, carry_c, dWx_t, dWh_t, db_t = lstm_step_backward(
            dh[:, t] + carry_h, carry_c, cache[t]
        )
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    return dx, carry_h, dWx, dWh, db


def temporal_affine_forward(x, w, b):
    N, T, D = x.shape
    out = (x.reshape(N * T, D) @ w + b).reshape(N, T, -1)
    return out, (x, w)


def temporal_affine_backward(dout, cache):
    x, w = cache
    N, T, D = x.shape
    d2 = dout.reshape(N * T, -1)
    return (d2 @ w.T).reshape(N, T, D), x.reshape(N * T, D).T @ d2, d2.sum(axis=0)


def temporal_softmax_loss(x, y, mask, verbose=False):
    N, T, V = x.shape
    z, ids, m = x.reshape(N * T, V), y.reshape(N * T), mask.reshape(N * T)
    probs = np.exp(z - z.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    rows = np.arange(N * T)
    loss = -np.sum(m * np.log(probs[rows, ids])) / N
    dz = probs.copy()
    dz[rows, ids] -= 1
    dz *= m[:, None] / N
    return loss, dz.reshape(N, T, V)
