"""The NumPy twins of the C kernels, in readable NumPy: one function per kernel of
``rnnfast._kernels``, with its name and signature.  Imports NumPy only; checked by finite
differences (tests/kernels).

Conventions (DESIGN.md): ``T`` time steps, ``B`` batch, ``V`` vocabulary, ``I`` a layer's input
size, ``H`` hidden size, ``G`` gates x H; these capitals name sizes only.  Arrays are time-major
and row-major, weights act on row vectors (``x W``).  Arguments come outputs first, then inputs.
Forward functions assign their outputs; backward functions accumulate (``+=``) into parameter
gradients and assign the gradients of their inputs (``dX``, ``dh0``, ``dc0``).

A layer's input ``X`` is either character ids ``(T, B)`` (layer 0: ``x_t W_x`` is the row gather
``W_x[ids]``, there is no one-hot matrix) or activations ``(T, B, I)`` from the layer below.
A sequence of per-step states is a plural, the same name from here through the bridge to the C:
``hs`` (T, B, H) holds every h_t, ``cs`` every c_t, ``tcs`` every tanh(c_t), ``dhs`` the
gradient reaching every h_t from above.

The composite kernels (the fused training step and the sampling loop) are composed from these in
``rnnfast.engine``.
"""

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


def _from_above(dhs, mask, t):
    """The gradient reaching h_t from above: dhs[t], or dhs[t] * mask[t] through dropout."""
    return dhs[t] if mask is None else dhs[t] * mask[t]


# ---------------------------------------------------------------------------------------------
# Vanilla RNN layer


def _check_dropout(out, mask):
    if (out is None) != (mask is None):
        raise ValueError("out, mask: expected both (dropout) or neither, got one")


def rnn_forward(hs, X, W_x, W_h, b, h0, *, out=None, mask=None):
    """Vanilla RNN over a sequence:  h_t = tanh(x_t W_x + h_{t-1} W_h + b).

    hs (T, B, H) out: every h_t.  X (T, B) ids or (T, B, I);  W_x (I, H);  W_h (H, H);  b (H,);
    h0 (B, H).  Dropout: with ``mask`` (T, B, H) given, also ``out`` (T, B, H) = hs * mask, the
    layer's output to the layer above (inverted dropout: mask holds 0 or 1 / (1 - p)); the
    recurrence itself reads the undropped h_t.
    """
    _check_dropout(out, mask)
    A = _project_input(X, W_x, b)
    h = h0
    for t in range(X.shape[0]):
        h = np.tanh(A[t] + h @ W_h)
        hs[t] = h
    if mask is not None:
        out[...] = hs * mask


def rnn_backward(dX, dW_x, dW_h, db, dh0, dA, dhs, X, hs, W_x, W_h, h0, *, mask=None, dh_T=None):
    """Backward through time of ``rnn_forward``.

    Going from t = T-1 down to 0, with dh the gradient reaching h_t (from above, dhs[t], plus
    the carry from step t+1, which starts as dh_T, the final state's gradient, or zero; with
    ``mask``, dhs is the gradient of out = hs * mask, so the part from above is
    dhs[t] * mask[t], while dh_T reaches hs[T-1] itself and skips the mask):
        dA_t = dh * (1 - h_t^2)          (tanh' from the cached output)
        carry to h_{t-1}:  dA_t W_h^T
    then, over all steps at once, dW_h += hs_prev^T dA, dW_x += X^T dA, db += sum dA, and
    dX = dA W_x^T (None for layer 0), dh0 = the final carry.
    dA (T, B, H) is scratch; dhs (T, B, H) is read only; dh_T (B, H) or None is the gradient of
    the final state hs[T-1] from beyond the sequence (read only).
    """
    H = h0.shape[-1]
    carry = np.zeros_like(h0) if dh_T is None else dh_T
    for t in reversed(range(X.shape[0])):
        dA[t] = (_from_above(dhs, mask, t) + carry) * (1.0 - hs[t] * hs[t])
        carry = dA[t] @ W_h.T
    dh0[...] = carry
    hs_prev = np.concatenate([h0[None], hs[:-1]])  # h_{t-1} for every t
    dW_h += hs_prev.reshape(-1, H).T @ dA.reshape(-1, H)
    _accumulate_input_grads(dX, dW_x, db, dA, X, W_x)


# ---------------------------------------------------------------------------------------------
# LSTM layer


def lstm_forward(hs, cs, tcs, gates, X, W_x, W_h, b, h0, c0, *, out=None, mask=None):
    """LSTM over a sequence, gates in PyTorch's order i, f, g, o:

        a_t = x_t W_x + h_{t-1} W_h + b                      (B, 4H)
        i, f, o = sigmoid(a_i, a_f, a_o);   g = tanh(a_g)
        c_t = f * c_{t-1} + i * g
        h_t = o * tanh(c_t)

    Outputs: hs, cs, tcs (T, B, H) hold h_t, c_t, tanh(c_t); gates (T, B, 4H) holds the
    activated i, f, g, o.  X (T, B) ids or (T, B, I);  W_x (I, 4H);  W_h (H, 4H);  b (4H,);
    h0, c0 (B, H).  Dropout (``out``, ``mask``): as in ``rnn_forward``.
    """
    _check_dropout(out, mask)
    H = h0.shape[-1]
    A = _project_input(X, W_x, b)
    h, c = h0, c0
    for t in range(X.shape[0]):
        a = A[t] + h @ W_h
        i = _sigmoid(a[:, :H])
        f = _sigmoid(a[:, H : 2 * H])
        g = np.tanh(a[:, 2 * H : 3 * H])
        o = _sigmoid(a[:, 3 * H :])
        c = f * c + i * g
        tc = np.tanh(c)
        h = o * tc
        gates[t] = np.concatenate([i, f, g, o], axis=1)
        hs[t], cs[t], tcs[t] = h, c, tc
    if mask is not None:
        out[...] = hs * mask


def lstm_backward(
    dX, dW_x, dW_h, db, dh0, dc0, dA, dhs, X, hs, cs, tcs, gates, W_x, W_h, h0, c0,
    *, mask=None, dh_T=None, dc_T=None,
):  # fmt: skip
    """Backward through time of ``lstm_forward``.

    From t = T-1 down to 0, with dh = dhs[t] + carry_h (dhs[t] * mask[t] + carry_h with
    ``mask``, as in ``rnn_backward``) and dc = carry_c (the carries start as dh_T, dc_T, the
    final state's gradient, or zero):
        dc += dh * o * (1 - tanh(c_t)^2)
        da_i = dc * g * i (1 - i)         da_f = dc * c_{t-1} * f (1 - f)
        da_g = dc * i * (1 - g^2)         da_o = dh * tanh(c_t) * o (1 - o)
        carry_h = dA_t W_h^T,   carry_c = dc * f
    then dW_h += hs_prev^T dA, dW_x += X^T dA, db += sum dA, dX = dA W_x^T (None for layer 0),
    dh0, dc0 = the final carries.  dA (T, B, 4H) is scratch; dhs (T, B, H) is read only; dh_T,
    dc_T (B, H) or None are the gradients of the final state hs[T-1], cs[T-1] (read only).
    """
    H = h0.shape[-1]
    carry_h = np.zeros_like(h0) if dh_T is None else dh_T
    carry_c = np.zeros_like(c0) if dc_T is None else dc_T
    for t in reversed(range(X.shape[0])):
        i, f, g, o = (gates[t, :, k * H : (k + 1) * H] for k in range(4))
        c_prev = cs[t - 1] if t > 0 else c0
        dh = _from_above(dhs, mask, t) + carry_h
        dc = carry_c + dh * o * (1.0 - tcs[t] * tcs[t])
        dA[t] = np.concatenate(
            [
                dc * g * i * (1.0 - i),
                dc * c_prev * f * (1.0 - f),
                dc * i * (1.0 - g * g),
                dh * tcs[t] * o * (1.0 - o),
            ],
            axis=1,
        )
        carry_h = dA[t] @ W_h.T
        carry_c = dc * f
    dh0[...] = carry_h
    dc0[...] = carry_c
    hs_prev = np.concatenate([h0[None], hs[:-1]])  # h_{t-1} for every t
    dW_h += hs_prev.reshape(-1, H).T @ dA.reshape(-1, 4 * H)
    _accumulate_input_grads(dX, dW_x, db, dA, X, W_x)


# ---------------------------------------------------------------------------------------------
# GRU layer


def gru_forward(hs, gates, R, X, W_x, W_h, b, b_hn, h0, *, out=None, mask=None):
    """GRU over a sequence, PyTorch's formulation with gates in its order r, z, n:

        a_t = x_t W_x + b                                    (B, 3H) the input side
        R_t = h_{t-1} W_h + (0, 0, b_hn)                     (B, 3H) the recurrent side
        r = sigmoid(a_r + R_r);   z = sigmoid(a_z + R_z)
        n = tanh(a_n + r * R_n)
        h_t = (1 - z) * n + z * h_{t-1}

    b holds b_ir + b_hr, b_iz + b_hz and b_in; b_hn (H,) stays apart, inside r * R_n.
    Outputs: hs (T, B, H) every h_t; gates (T, B, 3H) the activated r, z, n; R (T, B, 3H)
    every R_t.  X (T, B) ids or (T, B, I);  W_x (I, 3H);  W_h (H, 3H);  b (3H,);  h0 (B, H).
    Dropout (``out``, ``mask``): as in ``rnn_forward``.
    """
    _check_dropout(out, mask)
    H = h0.shape[-1]
    A = _project_input(X, W_x, b)
    h = h0
    for t in range(X.shape[0]):
        a, rec = A[t], h @ W_h
        rec[:, 2 * H :] += b_hn
        r = _sigmoid(a[:, :H] + rec[:, :H])
        z = _sigmoid(a[:, H : 2 * H] + rec[:, H : 2 * H])
        n = np.tanh(a[:, 2 * H :] + r * rec[:, 2 * H :])
        h = (1.0 - z) * n + z * h
        gates[t] = np.concatenate([r, z, n], axis=1)
        hs[t], R[t] = h, rec
    if mask is not None:
        out[...] = hs * mask


def gru_backward(
    dX, dW_x, dW_h, db, db_hn, dh0, dA, dR, dhs, X, hs, gates, R, W_x, W_h, h0,
    *, mask=None, dh_T=None,
):  # fmt: skip
    """Backward through time of ``gru_forward``.

    From t = T-1 down to 0, with dh = dhs[t] + carry the gradient reaching h_t (dhs[t] * mask[t]
    + carry with ``mask``, as in ``rnn_backward``; the carry starts as dh_T, the final state's
    gradient, or zero):
        da_n = dh * (1 - z) * (1 - n^2)                 (input side of n)
        da_r = da_n * R_n * r (1 - r)                   da_z = dh * (h_{t-1} - n) * z (1 - z)
        dA_t = (da_r, da_z, da_n)                       d loss / d a_t
        dR_t = (da_r, da_z, da_n * r)                   d loss / d R_t
        carry to h_{t-1}:  dh * z + dR_t W_h^T
    then dW_h += hs_prev^T dR, db_hn += sum dR_n, dW_x += X^T dA, db += sum dA,
    dX = dA W_x^T (None for layer 0), dh0 = the final carry.
    dA, dR (T, B, 3H) are scratch; dhs (T, B, H) is read only; dh_T (B, H) or None is the
    gradient of the final state hs[T-1] from beyond the sequence (read only).
    """
    H = h0.shape[-1]
    carry = np.zeros_like(h0) if dh_T is None else dh_T
    for t in reversed(range(X.shape[0])):
        r, z, n = (gates[t, :, k * H : (k + 1) * H] for k in range(3))
        h_prev = hs[t - 1] if t > 0 else h0
        dh = _from_above(dhs, mask, t) + carry
        da_n = dh * (1.0 - z) * (1.0 - n * n)
        da_r = da_n * R[t, :, 2 * H :] * r * (1.0 - r)
        da_z = dh * (h_prev - n) * z * (1.0 - z)
        dA[t] = np.concatenate([da_r, da_z, da_n], axis=1)
        dR[t] = np.concatenate([da_r, da_z, da_n * r], axis=1)
        carry = dh * z + dR[t] @ W_h.T
    dh0[...] = carry
    hs_prev = np.concatenate([h0[None], hs[:-1]])  # h_{t-1} for every t
    dR2 = dR.reshape(-1, 3 * H)
    dW_h += hs_prev.reshape(-1, H).T @ dR2
    db_hn += dR2[:, 2 * H :].sum(axis=0)
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


def draw(out, logits, uniforms, temperature, top_k, argmax, top_p=None):
    """Draw one character id per row of ``logits`` (B, V) into ``out`` (B,).

        w_v = exp((z_v - max z) / temperature), in float64; with top_k, w_v = 0 for every z_v
        below the k-th largest logit (ties at the k-th value are all kept)
        with top_p < 1 (nucleus sampling), of the weights in descending order, ties by id,
        x_0 >= x_1 >= ..., x_j is kept while x_0 + ... + x_{j-1} < top_p * sum(w) (so the
        first always is), and every other weight is zeroed
        out = the first v with  w_0 + ... + w_v > u * sum(w),   u from ``uniforms`` (B,)
    Every sum is sequential (np.cumsum): sum(w) and the cdf in id order, the nucleus's mass in
    the descending order.  ``top_p`` None or 1: no nucleus.  ``argmax`` picks the first largest
    logit instead and ignores the uniforms.
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
    if top_p is not None and top_p < 1:
        order = np.argsort(-w, axis=1, kind="stable")  # descending, ties by id
        x = np.take_along_axis(w, order, axis=1)
        before = np.zeros_like(x)  # the mass of the likelier weights, x_0 + ... + x_{j-1}
        before[:, 1:] = np.cumsum(x, axis=1)[:, :-1]
        kept = before < top_p * cdf[:, -1:]
        np.put_along_axis(w, order, np.where(kept, x, 0.0), axis=1)
        cdf = np.cumsum(w, axis=1)
    for row in range(z.shape[0]):
        pick = np.searchsorted(cdf[row], uniforms[row] * cdf[row, -1], side="right")
        out[row] = min(pick, z.shape[1] - 1)
