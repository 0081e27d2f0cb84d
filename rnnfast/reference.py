"""The NumPy reference: every C kernel's twin, in readable NumPy.

Each function here has the same name and signature as its C twin in ``rnnfast._kernels``, so the
model picks one set or the other (``backend="numpy"`` or ``"c"``) and the tests compare them.
This module never imports the C extension; it is itself checked by finite differences.

Conventions (DESIGN.md): ``T`` time steps, ``B`` batch, ``V`` vocabulary, ``I`` a layer's input
size, ``H`` hidden size, ``G`` gates x H.  Arrays are time-major and row-major, weights act on row
vectors (``x W``).  Arguments come outputs first, then inputs.  Forward functions assign their
outputs; backward functions accumulate (``+=``) into parameter gradients and assign the
gradients of their inputs (``dX``, ``dh0``, ``dc0``).

A layer's input ``X`` is either character ids ``(T, B)`` (layer 0: ``x_t W_x`` is the row gather
``W_x[ids]``, there is no one-hot matrix) or activations ``(T, B, I)`` from the layer below.

The classes of the public API with this backend (``rnnfast.reference.CharLM`` and the rest) are
reached through this module too; see ``__getattr__`` at the bottom.
"""

from __future__ import annotations

import numpy as np


def _project_input(X, W_x, b):
    """A = X W_x + b for every step at once: (T, B, G); a row gather for character ids."""
    if np.issubdtype(X.dtype, np.integer):
        return W_x[X] + b
    return X @ W_x + b


def _accumulate_input_grads(dX, dW_x, db, dA, X, W_x):
    """Gradients of A = X W_x + b:  dW_x += X^T dA,  db += sum dA,  dX = dA W_x^T."""
    G = dA.shape[-1]
    dA2 = dA.reshape(-1, G)
    db += dA2.sum(axis=0)
    if np.issubdtype(X.dtype, np.integer):
        np.add.at(dW_x, X.reshape(-1), dA2)  # the one-hot product is a scatter-add of rows
    else:
        dW_x += X.reshape(-1, X.shape[-1]).T @ dA2
    if dX is not None:
        dX[...] = dA @ W_x.T


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


# ---------------------------------------------------------------------------------------------
# Vanilla RNN layer


def rnn_forward(H, X, W_x, W_h, b, h0):
    """Vanilla RNN over a sequence:  h_t = tanh(x_t W_x + h_{t-1} W_h + b).

    H (T, B, H) out: every h_t.  X (T, B) ids or (T, B, I);  W_x (I, H);  W_h (H, H);  b (H,);
    h0 (B, H).
    """
    A = _project_input(X, W_x, b)
    h = h0
    for t in range(X.shape[0]):
        h = np.tanh(A[t] + h @ W_h)
        H[t] = h


def rnn_backward(dX, dW_x, dW_h, db, dh0, dA, dH, X, H, W_x, W_h, h0):
    """Backward through time of ``rnn_forward``.

    Going from t = T-1 down to 0, with dh the gradient reaching h_t (from above, dH[t], plus the
    carry from step t+1):
        dA_t = dh * (1 - h_t^2)          (tanh' from the cached output)
        carry to h_{t-1}:  dA_t W_h^T
    then, over all steps at once, dW_h += H_prev^T dA, dW_x += X^T dA, db += sum dA, and
    dX = dA W_x^T (None for layer 0), dh0 = the final carry.
    dA (T, B, H) is scratch; dH (T, B, H) is read only.
    """
    carry = np.zeros_like(h0)
    for t in reversed(range(X.shape[0])):
        dA[t] = (dH[t] + carry) * (1.0 - H[t] * H[t])
        carry = dA[t] @ W_h.T
    dh0[...] = carry
    H_prev = np.concatenate([h0[None], H[:-1]])
    dW_h += H_prev.reshape(-1, H.shape[-1]).T @ dA.reshape(-1, dA.shape[-1])
    _accumulate_input_grads(dX, dW_x, db, dA, X, W_x)


# ---------------------------------------------------------------------------------------------
# LSTM layer


def lstm_forward(H, C, tanhC, gates, X, W_x, W_h, b, h0, c0):
    """LSTM over a sequence, gates in PyTorch's order i, f, g, o:

        a_t = x_t W_x + h_{t-1} W_h + b                      (B, 4H)
        i, f, o = sigmoid(a_i, a_f, a_o);   g = tanh(a_g)
        c_t = f * c_{t-1} + i * g
        h_t = o * tanh(c_t)

    Outputs: H, C, tanhC (T, B, H) hold h_t, c_t, tanh(c_t); gates (T, B, 4H) holds the
    activated i, f, g, o.  X (T, B) ids or (T, B, I);  W_x (I, 4H);  W_h (H, 4H);  b (4H,);
    h0, c0 (B, H).
    """
    n = h0.shape[-1]
    A = _project_input(X, W_x, b)
    h, c = h0, c0
    for t in range(X.shape[0]):
        a = A[t] + h @ W_h
        i = _sigmoid(a[:, :n])
        f = _sigmoid(a[:, n : 2 * n])
        g = np.tanh(a[:, 2 * n : 3 * n])
        o = _sigmoid(a[:, 3 * n :])
        c = f * c + i * g
        tc = np.tanh(c)
        h = o * tc
        gates[t] = np.concatenate([i, f, g, o], axis=1)
        H[t], C[t], tanhC[t] = h, c, tc


def lstm_backward(dX, dW_x, dW_h, db, dh0, dc0, dA, dH, X, H, C, tanhC, gates, W_x, W_h, h0, c0):
    """Backward through time of ``lstm_forward``.

    From t = T-1 down to 0, with dh = dH[t] + carry_h and dc = carry_c:
        dc += dh * o * (1 - tanh(c_t)^2)
        da_i = dc * g * i (1 - i)         da_f = dc * c_{t-1} * f (1 - f)
        da_g = dc * i * (1 - g^2)         da_o = dh * tanh(c_t) * o (1 - o)
        carry_h = dA_t W_h^T,   carry_c = dc * f
    then dW_h += H_prev^T dA, dW_x += X^T dA, db += sum dA, dX = dA W_x^T (None for layer 0),
    dh0, dc0 = the final carries.  dA (T, B, 4H) is scratch; dH (T, B, H) is read only.
    """
    n = h0.shape[-1]
    carry_h = np.zeros_like(h0)
    carry_c = np.zeros_like(c0)
    for t in reversed(range(X.shape[0])):
        i, f, g, o = (gates[t, :, k * n : (k + 1) * n] for k in range(4))
        c_prev = C[t - 1] if t > 0 else c0
        dh = dH[t] + carry_h
        dc = carry_c + dh * o * (1.0 - tanhC[t] * tanhC[t])
        dA[t] = np.concatenate(
            [
                dc * g * i * (1.0 - i),
                dc * c_prev * f * (1.0 - f),
                dc * i * (1.0 - g * g),
                dh * tanhC[t] * o * (1.0 - o),
            ],
            axis=1,
        )
        carry_h = dA[t] @ W_h.T
        carry_c = dc * f
    dh0[...] = carry_h
    dc0[...] = carry_c
    H_prev = np.concatenate([h0[None], H[:-1]])
    dW_h += H_prev.reshape(-1, n).T @ dA.reshape(-1, 4 * n)
    _accumulate_input_grads(dX, dW_x, db, dA, X, W_x)


# ---------------------------------------------------------------------------------------------
# Output layer and loss


def linear_forward(out, X, W, b):
    """out = X W + b.   out (N, O);  X (N, I);  W (I, O);  b (O,)."""
    out[...] = X @ W + b


def linear_backward(dX, dW, db, dout, X, W):
    """Backward of ``linear_forward``:  dW += X^T dout,  db += sum dout,  dX = dout W^T.

    dX may be None when the input's gradient is not needed.
    """
    dW += X.T @ dout
    db += dout.sum(axis=0)
    if dX is not None:
        dX[...] = dout @ W.T


def softmax_xent(dlogits, logits, targets):
    """Mean softmax cross-entropy in nats, and its gradient.

    p = softmax(z) = exp(z - max z) / sum exp(z - max z)       per row of logits (N, V)
    loss = mean_n -log p_n[targets_n]
    dlogits = (p - onehot(targets)) / N       (assigned; skipped when dlogits is None)
    """
    N = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    s = e.sum(axis=1, keepdims=True)
    rows = np.arange(N)
    loss = float(np.mean(np.log(s[:, 0]).astype(np.float64) - shifted[rows, targets]))
    if dlogits is not None:
        dlogits[...] = e / (s * N)
        dlogits[rows, targets] -= logits.dtype.type(1.0 / N)
    return loss


# ---------------------------------------------------------------------------------------------
# Optimizer updates and clipping on the flat parameter buffer (one pass each)


def sgd_update(param, grad, velocity, lr, momentum):
    """SGD with optional momentum (PyTorch's form): v = momentum v + g;  p -= lr v.

    With momentum 0 the velocity is not used (and may be None): p -= lr g.
    """
    if momentum == 0:
        param -= lr * grad
    else:
        velocity *= momentum
        velocity += grad
        param -= lr * velocity


def adagrad_update(param, grad, memory, lr, eps):
    """Adagrad as min-char-rnn writes it: mem += g^2;  p -= lr g / sqrt(mem + eps)."""
    memory += grad * grad
    param -= lr * grad / np.sqrt(memory + eps)


def rmsprop_update(param, grad, mean_square, lr, alpha, eps):
    """RMSProp as char-rnn (torch optim.rmsprop) writes it:
    ms = alpha ms + (1 - alpha) g^2;   p -= lr g / (sqrt(ms) + eps)."""
    mean_square *= alpha
    mean_square += (1 - alpha) * grad * grad
    param -= lr * grad / (np.sqrt(mean_square) + eps)


def adam_update(param, grad, m, v, lr, beta1, beta2, eps, step):
    """Adam (PyTorch's form), ``step`` counting from 1:
    m = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) g^2;
    p -= lr * (m / (1 - b1^step)) / (sqrt(v / (1 - b2^step)) + eps)."""
    m *= beta1
    m += (1 - beta1) * grad
    v *= beta2
    v += (1 - beta2) * grad * grad
    m_hat = m / (1 - beta1**step)
    v_hat = v / (1 - beta2**step)
    param -= lr * m_hat / (np.sqrt(v_hat) + eps)


def clip_by_value(grad, limit):
    """Clamp every gradient element to [-limit, limit], in place (min-char-rnn, char-rnn)."""
    np.clip(grad, -limit, limit, out=grad)


def global_norm(grad):
    """sqrt(sum g^2) over the whole flat gradient, accumulated in float64."""
    return float(np.sqrt(np.sum(np.square(grad, dtype=np.float64))))


def scale(grad, factor):
    """grad *= factor, in place (clipping by global norm scales by max_norm / norm)."""
    grad *= grad.dtype.type(factor)


# ---------------------------------------------------------------------------------------------
# Sampling


def draw(out, logits, uniforms, temperature, top_k, argmax):
    """Draw one character id per row of ``logits`` (B, V) into ``out`` (B,).

        w_v = exp((z_v - max z) / temperature), in float64; with top_k, w_v = 0 for every z_v
        below the k-th largest logit (ties at the k-th value are all kept)
        out = the first v with  w_0 + ... + w_v > u * sum(w),   u from ``uniforms`` (B,)
    ``argmax`` picks the first largest logit instead and ignores the uniforms.
    """
    if argmax:
        out[...] = np.argmax(logits, axis=1)
        return
    z = logits.astype(np.float64)
    w = np.exp((z - z.max(axis=1, keepdims=True)) / temperature)
    if top_k is not None and top_k < z.shape[1]:
        kth = -np.partition(-z, top_k - 1, axis=1)[:, top_k - 1 : top_k]
        w[z < kth] = 0.0
    cdf = np.cumsum(w, axis=1)
    for row in range(z.shape[0]):
        pick = np.searchsorted(cdf[row], uniforms[row] * cdf[row, -1], side="right")
        out[row] = min(pick, z.shape[1] - 1)


def sample(out, uniforms, first_ids, h, c, W_x, W_h, b, W_y, b_y, temperature, top_k, argmax):
    """Generate N characters for S independent streams: feed a character, get the distribution
    of the next one, ``draw`` it, feed it back.

    out (N, S) ids out: out[t] is drawn after feeding out[t - 1] (first_ids (S,) for t = 0).
    uniforms (N, S): one uniform number in [0, 1) per draw.  h, c (L, S, H): the state,
    advanced in place (c is None for an RNN); after the call it has consumed every character
    but the last drawn one, so a following call continues with first_ids = out[-1].
    W_x, W_h, b: lists of the L layers' weights; W_y (H, V), b_y (V,).
    """
    L, S, n = h.shape[0], h.shape[1], h.shape[2]
    ids = first_ids.copy()
    H1 = np.empty((1, S, n), h.dtype)
    logits = np.empty((S, W_y.shape[1]), h.dtype)
    for t in range(out.shape[0]):
        layer_input = ids[None, :]
        for layer in range(L):
            if c is None:
                rnn_forward(H1, layer_input, W_x[layer], W_h[layer], b[layer], h[layer])
            else:
                C1, tanhC1 = np.empty_like(H1), np.empty_like(H1)
                gates = np.empty((1, S, 4 * n), h.dtype)
                lstm_forward(
                    H1,
                    C1,
                    tanhC1,
                    gates,
                    layer_input,
                    W_x[layer],
                    W_h[layer],
                    b[layer],
                    h[layer],
                    c[layer],
                )
                c[layer] = C1[0]
            h[layer] = H1[0]
            layer_input = h[layer][None]
        linear_forward(logits, h[L - 1], W_y, b_y)
        draw(ids, logits, uniforms[t], temperature, top_k, argmax)
        out[t] = ids


# ---------------------------------------------------------------------------------------------
# The public classes with this backend, created on first use (they live in model.py / optim.py
# and would import this module back).

_PUBLIC = {
    "CharLM": "model",
    "RNN": "model",
    "LSTM": "model",
    "Stack": "model",
    "State": "model",
    "SGD": "optim",
    "Adagrad": "optim",
    "RMSProp": "optim",
    "Adam": "optim",
    "Vocab": "data",
}


def __getattr__(name):
    if name not in _PUBLIC:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    public = getattr(importlib.import_module(f"rnnfast.{_PUBLIC[name]}"), name)
    if hasattr(public, "default_backend"):
        public = type(name, (public,), {"default_backend": "numpy", "__module__": __name__})
    globals()[name] = public
    return public
