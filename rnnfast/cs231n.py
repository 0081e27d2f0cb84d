"""A drop-in for CS231n's ``rnn_layers.py`` (the captioning assignment), on rnnfast's C kernels.

    from rnnfast.cs231n import lstm_forward, lstm_backward   # instead of the student's own

Every function has the assignment's name, arguments, shapes and return values: batch first
``(N, T, D)`` sequences, weights ``Wx (D, G)``, ``Wh (H, G)``, ``b (G,)``, an LSTM's gates in
the assignment's order i, f, o, g (rnnfast's kernels use i, f, g, o: the o and g blocks are
swapped on the way in and on the way out), ``lstm_forward`` from a zero cell state, and
``temporal_softmax_loss`` summed over time and averaged over the batch.  float32 and float64
(arguments of mixed dtypes compute in ``np.result_type`` of them); no argument is modified;
caches are opaque.  The whole-sequence functions run the fused kernels over all T steps in one
call; the step functions are the same kernels with T = 1.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from . import stack
from .backends import kernels
from .core import LayerWeights
from .validation import FLOAT_DTYPES


@cache
def _ops():
    """The C kernels, resolved at the first call (``import rnnfast`` works unbuilt)."""
    return kernels("c")


class _Cache:
    """What a backward needs; opaque to the caller."""

    __slots__ = ("kind", "dtype", "values")

    def __init__(self, kind: str, dtype, *values):
        self.kind, self.dtype, self.values = kind, dtype, values

    def __repr__(self) -> str:
        return f"<rnnfast.cs231n {self.kind} cache>"


def _unpack(cache, kind: str):
    if not isinstance(cache, _Cache):
        raise TypeError(f"cache: expected the cache of rnnfast.cs231n's {kind}, got "
                        f"{type(cache).__name__}")  # fmt: skip
    if cache.kind != kind:
        raise ValueError(f"cache: expected the cache of {kind}, got the cache of {cache.kind}")
    return cache.values


def _floats(**arrays) -> list[np.ndarray]:
    """The arrays in their common float dtype (float32 or float64), C-contiguous; an argument
    already so is used as it is (never written to)."""
    arrays = {name: np.asarray(a) for name, a in arrays.items()}
    dtype = np.result_type(*arrays.values())
    if dtype not in FLOAT_DTYPES:
        given = ", ".join(f"{name} {a.dtype}" for name, a in arrays.items())
        raise TypeError(f"expected float32 or float64 arrays, got {given}")
    return [np.ascontiguousarray(a, dtype) for a in arrays.values()]


def _dims(**named) -> dict[str, int]:
    """Check each (array, "N T D") against the dimension letters (a "4H" is four times H, a
    letter seen before must match); returns the letters' sizes."""
    sizes: dict[str, int] = {}
    for name, (a, spec) in named.items():
        letters = spec.split()
        if a.ndim != len(letters):
            raise ValueError(f"{name}: expected shape ({', '.join(letters)}), got {a.shape}")
        for letter, n in zip(letters, a.shape, strict=True):
            factor, key = (4, letter[1:]) if letter.startswith("4") else (1, letter)
            if n < 1 or n % factor:
                raise ValueError(f"{name}: expected shape ({', '.join(letters)}) with "
                                 f"{letter} >= 1, got {a.shape}")  # fmt: skip
            size = n // factor
            if sizes.setdefault(key, size) != size:
                raise ValueError(f"{name}: expected shape ({', '.join(letters)}) with "
                                 f"{key}={sizes[key]} as in the arguments before it, "
                                 f"got {a.shape}")  # fmt: skip
    return sizes


def _swap_o_g(W: np.ndarray) -> np.ndarray:
    """Gate blocks (..., 4H) from CS231n's i, f, o, g to rnnfast's i, f, g, o (and back)."""
    H = W.shape[-1] // 4
    return np.concatenate([W[..., : 2 * H], W[..., 3 * H :], W[..., 2 * H : 3 * H]], axis=-1)


def _swap_time_batch(a: np.ndarray) -> np.ndarray:
    """(N, T, .) <-> (T, N, .), as a C-contiguous copy: the kernels are time-major."""
    return np.ascontiguousarray(a.transpose(1, 0, 2))


# -- the recurrent layers, on the fused kernels -----------------------------------------------


def _forward(cell, kind, X, h0, c0, Wx, Wh, b):
    """Run one layer over X (T, N, D), weights in CS231n's layout; returns its _Cache."""
    weights = LayerWeights(Wx, Wh, b)
    if cell == "lstm":
        weights = LayerWeights(*(_swap_o_g(w) for w in weights[:3]))
    run = stack.run_forward(_ops(), cell, X, [weights], h0[None], None if c0 is None else c0[None])
    return _Cache(kind, X.dtype, run, weights)


def _backward(cache, kind, dH, dc_T=None):
    """Gradients (dX (T, N, D), dh0, dc0, dWx, dWh, db) of the layer in ``cache``, weights'
    gradients in CS231n's layout."""
    run, weights = _unpack(cache, kind)
    dweights = LayerWeights(*(np.zeros_like(w) for w in weights[:3]))
    dX, dh0, dc0 = stack.run_backward(_ops(), run, [weights], [dweights], dH, None, dc_T)
    if run.bufs.cell == "lstm":
        dweights = LayerWeights(*(_swap_o_g(w) for w in dweights[:3]))
    return dX, dh0[0], None if dc0 is None else dc0[0], *dweights[:3]


def _upstream(name, a, cache, shape):
    """An upstream gradient in the forward's dtype, with the forward's shape."""
    a = np.asarray(a)
    if a.shape != shape:
        raise ValueError(f"{name}: expected shape {shape} (the forward's), got {a.shape}")
    if a.dtype.kind not in "fiu":
        raise TypeError(f"{name}: expected a float array, got {a.dtype}")
    return np.ascontiguousarray(a, cache.dtype)


def _forward_shape(cache, kind: str) -> tuple[int, int, int]:
    """(T, N, H) of the forward ``kind`` that made ``cache``."""
    run = _unpack(cache, kind)[0]
    return (*run.shape, run.h0.shape[-1])


def rnn_step_forward(x, prev_h, Wx, Wh, b):
    """One step of a vanilla RNN, next_h = tanh(x Wx + prev_h Wh + b).

    x (N, D), prev_h (N, H), Wx (D, H), Wh (H, H), b (H,).  Returns (next_h (N, H), cache).
    """
    x, prev_h, Wx, Wh, b = _floats(x=x, prev_h=prev_h, Wx=Wx, Wh=Wh, b=b)
    _dims(x=(x, "N D"), prev_h=(prev_h, "N H"), Wx=(Wx, "D H"), Wh=(Wh, "H H"), b=(b, "H"))
    cache = _forward("rnn", "rnn_step_forward", x[None], prev_h, None, Wx, Wh, b)
    return cache.values[0].bufs.hs[0][0].copy(), cache


def rnn_step_backward(dnext_h, cache):
    """Backward of ``rnn_step_forward``: returns (dx, dprev_h, dWx, dWh, db)."""
    T, N, H = _forward_shape(cache, "rnn_step_forward")
    dH = _upstream("dnext_h", dnext_h, cache, (N, H))[None]
    dX, dh0, _, dWx, dWh, db = _backward(cache, "rnn_step_forward", dH)
    return dX[0], dh0, dWx, dWh, db


def rnn_forward(x, h0, Wx, Wh, b):
    """A vanilla RNN over whole sequences: x (N, T, D), h0 (N, H), Wx (D, H), Wh (H, H),
    b (H,).  Returns (h (N, T, H), cache)."""
    x, h0, Wx, Wh, b = _floats(x=x, h0=h0, Wx=Wx, Wh=Wh, b=b)
    _dims(x=(x, "N T D"), h0=(h0, "N H"), Wx=(Wx, "D H"), Wh=(Wh, "H H"), b=(b, "H"))
    cache = _forward("rnn", "rnn_forward", _swap_time_batch(x), h0, None, Wx, Wh, b)
    return _swap_time_batch(cache.values[0].bufs.hs[0]), cache


def rnn_backward(dh, cache):
    """Backward of ``rnn_forward``: dh (N, T, H); returns (dx, dh0, dWx, dWh, db)."""
    T, N, H = _forward_shape(cache, "rnn_forward")
    dH = _swap_time_batch(_upstream("dh", dh, cache, (N, T, H)))
    dX, dh0, _, dWx, dWh, db = _backward(cache, "rnn_forward", dH)
    return _swap_time_batch(dX), dh0, dWx, dWh, db


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    """One LSTM step, gates i, f, o, g:  a = x Wx + prev_h Wh + b;  i, f, o = sigmoid;
    g = tanh;  next_c = f prev_c + i g;  next_h = o tanh(next_c).

    x (N, D), prev_h, prev_c (N, H), Wx (D, 4H), Wh (H, 4H), b (4H,).
    Returns (next_h, next_c, cache).
    """
    x, prev_h, prev_c, Wx, Wh, b = _floats(x=x, prev_h=prev_h, prev_c=prev_c, Wx=Wx, Wh=Wh, b=b)
    _dims(x=(x, "N D"), prev_h=(prev_h, "N H"), prev_c=(prev_c, "N H"), Wx=(Wx, "D 4H"),
          Wh=(Wh, "H 4H"), b=(b, "4H"))  # fmt: skip
    cache = _forward("lstm", "lstm_step_forward", x[None], prev_h, prev_c, Wx, Wh, b)
    final = cache.values[0].bufs.final_state()
    return final.h[0], final.c[0], cache


def lstm_step_backward(dnext_h, dnext_c, cache):
    """Backward of ``lstm_step_forward``: returns (dx, dprev_h, dprev_c, dWx, dWh, db)."""
    T, N, H = _forward_shape(cache, "lstm_step_forward")
    dH = _upstream("dnext_h", dnext_h, cache, (N, H))[None]
    dc = _upstream("dnext_c", dnext_c, cache, (N, H))[None]
    dX, dprev_h, dprev_c, dWx, dWh, db = _backward(cache, "lstm_step_forward", dH, dc)
    return dX[0], dprev_h, dprev_c, dWx, dWh, db


def lstm_forward(x, h0, Wx, Wh, b):
    """An LSTM over whole sequences from a zero cell state: x (N, T, D), h0 (N, H),
    Wx (D, 4H), Wh (H, 4H), b (4H,), gates i, f, o, g.  Returns (h (N, T, H), cache)."""
    x, h0, Wx, Wh, b = _floats(x=x, h0=h0, Wx=Wx, Wh=Wh, b=b)
    _dims(x=(x, "N T D"), h0=(h0, "N H"), Wx=(Wx, "D 4H"), Wh=(Wh, "H 4H"), b=(b, "4H"))
    X = _swap_time_batch(x)
    cache = _forward("lstm", "lstm_forward", X, h0, np.zeros_like(h0), Wx, Wh, b)
    return _swap_time_batch(cache.values[0].bufs.hs[0]), cache


def lstm_backward(dh, cache):
    """Backward of ``lstm_forward``: dh (N, T, H); returns (dx, dh0, dWx, dWh, db)."""
    T, N, H = _forward_shape(cache, "lstm_forward")
    dH = _swap_time_batch(_upstream("dh", dh, cache, (N, T, H)))
    dX, dh0, _, dWx, dWh, db = _backward(cache, "lstm_forward", dH)
    return _swap_time_batch(dX), dh0, dWx, dWh, db


# -- embedding, temporal affine, loss ---------------------------------------------------------


def word_embedding_forward(x, W):
    """Rows of W (V, D) for the word ids x (N, T): returns (out (N, T, D), cache)."""
    x = np.asarray(x)
    (W,) = _floats(W=W)
    if x.ndim != 2 or not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"x: expected integer word ids of shape (N, T), got {x.dtype} "
                         f"{x.shape}")  # fmt: skip
    _dims(W=(W, "V D"))
    if x.size and (x.min() < 0 or x.max() >= W.shape[0]):
        raise ValueError(f"x: word ids must lie in [0, {W.shape[0]}), got {x.min()}..{x.max()}")
    return W[x], _Cache("word_embedding_forward", W.dtype, x.copy(), W.shape)


def word_embedding_backward(dout, cache):
    """Backward of ``word_embedding_forward``: dout (N, T, D); returns dW (V, D), each word's
    rows of dout summed."""
    x, shape = _unpack(cache, "word_embedding_forward")
    dout = _upstream("dout", dout, cache, (*x.shape, shape[1]))
    dW = np.zeros(shape, cache.dtype)
    np.add.at(dW, x.reshape(-1), dout.reshape(-1, shape[1]))
    return dW


def temporal_affine_forward(x, w, b):
    """out = x w + b at every step: x (N, T, D), w (D, M), b (M,); returns (out, cache)."""
    x, w, b = _floats(x=x, w=w, b=b)
    sizes = _dims(x=(x, "N T D"), w=(w, "D M"), b=(b, "M"))
    N, T = sizes["N"], sizes["T"]
    X = x.reshape(N * T, sizes["D"])
    out = np.empty((N * T, sizes["M"]), x.dtype)
    _ops().linear_forward(out, X, w, b)
    return out.reshape(N, T, -1), _Cache("temporal_affine_forward", x.dtype, X, w, (N, T))


def temporal_affine_backward(dout, cache):
    """Backward of ``temporal_affine_forward``: dout (N, T, M); returns (dx, dw, db)."""
    X, w, (N, T) = _unpack(cache, "temporal_affine_forward")
    dout = _upstream("dout", dout, cache, (N, T, w.shape[1])).reshape(N * T, -1)
    dX, dw, db = np.empty_like(X), np.zeros_like(w), np.zeros(w.shape[1], w.dtype)
    _ops().linear_backward(dX, dw, db, dout, X, w)
    return dX.reshape(N, T, -1), dw, db


def temporal_softmax_loss(x, y, mask, verbose=False):
    """Softmax cross-entropy of scores x (N, T, V) for the ids y (N, T), counted where mask
    (N, T) is true: summed over time, averaged over the N sequences.  Returns (loss, dx)."""
    x = np.asarray(x)
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"x: expected float32 or float64 scores, got {x.dtype}")
    sizes = _dims(x=(x, "N T V"))
    y, mask = np.asarray(y), np.asarray(mask)
    if y.shape != x.shape[:2] or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y: expected integer ids of shape {x.shape[:2]}, got {y.dtype} "
                         f"{y.shape}")  # fmt: skip
    if y.min() < 0 or y.max() >= sizes["V"]:
        raise ValueError(f"y: ids must lie in [0, {sizes['V']}), got {y.min()}..{y.max()}")
    if mask.shape != x.shape[:2]:
        raise ValueError(f"mask: expected shape {x.shape[:2]}, got {mask.shape}")
    N, V = x.shape[0], sizes["V"]
    z = x.reshape(-1, V)
    rows, ids = np.arange(z.shape[0]), y.reshape(-1)
    weight = mask.reshape(-1).astype(x.dtype) / N  # each counted step's share of the loss
    shifted = z - z.max(axis=1, keepdims=True)
    log_sum = np.log(np.exp(shifted).sum(axis=1))
    loss = -np.sum(weight * (shifted[rows, ids] - log_sum))
    # d loss / d z = (softmax(z) - onehot(y)) * weight
    dx = np.exp(shifted - log_sum[:, None])
    dx[rows, ids] -= 1
    dx *= weight[:, None]
    if verbose:
        print("dx_flat: ", dx.shape)
    return loss, dx.reshape(x.shape)
