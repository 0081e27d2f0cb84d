"""L stacked layers of a cell, forward and backward through time: the one loop over layers that
``CharLM``, ``rnnfast.layers``, the step-API cells and the NumPy engine run, over the kernels of
either backend (``ops``: a namespace with the signatures of ``rnnfast.kernels``).

Layer k + 1 reads layer k's output: its h, or with dropout on layer k, h * mask (the recurrence
itself always reads the undropped h).  Backward goes top down; the gradient reaching layer k's
output, ``dhs[k]``, is the input gradient ``dX`` of layer k + 1's backward.
"""

from __future__ import annotations

import math

import numpy as np

from .core import GATES, LayerWeights, Params, State
from .validation import check_real


class Buffers:
    """The activations of L layers over (T, B) that the forward kernels fill and backward reads:
    per layer ``hs`` (T, B, H) every h_t; an LSTM's ``cs`` and ``tcs`` (T, B, H), c_t and
    tanh(c_t); an LSTM's or GRU's ``gates`` (T, B, G), the activated gates; a GRU's ``R``
    (T, B, G), the recurrent products.  Lists a cell does not have are empty.  With dropout,
    ``outs`` (K, T, B, H): the dropped outputs h * mask of the first K layers.

    ``forward`` records in ``outputs`` what each layer handed up (hs[k] or outs[k]) and in
    ``masks`` the masks it applied (None: none), for ``backward``.
    """

    def __init__(self, cell, hs, cs=None, tcs=None, gates=None, R=None, outs=None):
        self.cell, self.hs = cell, list(hs)
        self.cs, self.tcs = list(cs or []), list(tcs or [])
        self.gates, self.R = list(gates or []), list(R or [])
        self.outs = outs
        self.outputs, self.masks = self.hs, None

    @classmethod
    def allocate(cls, cell: str, T: int, B: int, H: int, L: int, dtype, dropped: int = 0):
        """New buffers for L layers of ``cell``; ``dropped`` > 0 adds ``outs`` for that many."""
        G = GATES[cell] * H

        def per_layer(width, wanted=True):
            return [np.empty((T, B, width), dtype) for _ in range(L)] if wanted else None

        lstm = cell == "lstm"
        return cls(
            cell, per_layer(H), per_layer(H, lstm), per_layer(H, lstm),
            per_layer(G, cell != "rnn"), per_layer(G, cell == "gru"),
            np.empty((dropped, T, B, H), dtype) if dropped else None,
        )  # fmt: skip

    @property
    def shape(self) -> tuple[int, int]:
        """(T, B)."""
        return self.hs[0].shape[0], self.hs[0].shape[1]

    def final_state(self) -> State:
        """The state after the last step, (L, B, H) each (new arrays)."""
        c = np.stack([cs[-1] for cs in self.cs]) if self.cell == "lstm" else None
        return State(np.stack([hs[-1] for hs in self.hs]), c)


def forward(ops, bufs: Buffers, X, weights: list[LayerWeights], h0, c0, masks=None) -> None:
    """Run the layers over X (T, B) ids or (T, B, I) from h0, c0 (L, B, H) (c0 None but for an
    LSTM) into ``bufs``.  ``masks`` (K, T, B, H), K <= L, or None: dropout on the outputs of
    the first K layers, written to ``bufs.outs``."""
    cell, K = bufs.cell, 0 if masks is None else len(masks)
    layer_input, outputs = X, []
    for k, w in enumerate(weights):
        drop = {"out": bufs.outs[k], "mask": masks[k]} if k < K else {}
        if cell == "lstm":
            ops.lstm_forward(bufs.hs[k], bufs.cs[k], bufs.tcs[k], bufs.gates[k], layer_input,
                             w.W_x, w.W_h, w.b, h0[k], c0[k], **drop)  # fmt: skip
        elif cell == "gru":
            ops.gru_forward(bufs.hs[k], bufs.gates[k], bufs.R[k], layer_input, w.W_x, w.W_h, w.b,
                            w.b_hn, h0[k], **drop)  # fmt: skip
        else:
            ops.rnn_forward(bufs.hs[k], layer_input, w.W_x, w.W_h, w.b, h0[k], **drop)
        layer_input = bufs.outs[k] if k < K else bufs.hs[k]
        outputs.append(layer_input)
    bufs.outputs, bufs.masks = outputs, masks


def backward(
    ops, bufs: Buffers, X, weights: list[LayerWeights], dweights: list[LayerWeights], dhs, dX,
    h0, c0, dh0, dc0, dA, dR=None, dh_T=None, dc_T=None,
) -> None:  # fmt: skip
    """Backward of the ``forward`` that filled ``bufs``: accumulate into ``dweights``; assign
    dX (like X, or None: not wanted) and dh0, dc0 (L, B, H) (dc0 None but for an LSTM).

    dhs: L arrays (T, B, H); dhs[L - 1] is the gradient of the top layer's output (read only),
    the others are assigned on the way down (dhs[k] the gradient of layer k's output).  With
    dropout on layer k that is the gradient of h * mask, which the kernel multiplies by the
    mask.  dh_T, dc_T (L, B, H) or None (zero): the gradient of the final state, each layer's
    start of its carries (it reaches h_{T-1} itself, past the mask).  dA, and a GRU's dR,
    (T, B, G): scratch.
    """
    cell, masks = bufs.cell, bufs.masks
    K = 0 if masks is None else len(masks)
    for k in reversed(range(len(weights))):
        layer_input = bufs.outputs[k - 1] if k else X
        layer_dX = dhs[k - 1] if k else dX
        w, dw = weights[k], dweights[k]
        optional = {"mask": masks[k]} if k < K else {}
        if dh_T is not None:
            optional["dh_T"] = dh_T[k]
        if cell == "lstm":
            if dc_T is not None:
                optional["dc_T"] = dc_T[k]
            ops.lstm_backward(
                layer_dX, dw.W_x, dw.W_h, dw.b, dh0[k], dc0[k], dA, dhs[k], layer_input,
                bufs.hs[k], bufs.cs[k], bufs.tcs[k], bufs.gates[k], w.W_x, w.W_h, h0[k], c0[k],
                **optional,
            )  # fmt: skip
        elif cell == "gru":
            ops.gru_backward(
                layer_dX, dw.W_x, dw.W_h, dw.b, dw.b_hn, dh0[k], dA, dR, dhs[k], layer_input,
                bufs.hs[k], bufs.gates[k], bufs.R[k], w.W_x, w.W_h, h0[k], **optional,
            )  # fmt: skip
        else:
            ops.rnn_backward(
                layer_dX, dw.W_x, dw.W_h, dw.b, dh0[k], dA, dhs[k], layer_input, bufs.hs[k],
                w.W_x, w.W_h, h0[k], **optional,
            )  # fmt: skip


class Cache:
    """What backward needs from a forward on new buffers (``run_forward``): the input X, the
    initial state h0, c0, the ``Buffers`` and the object whose forward made it (``owner``)."""

    __slots__ = ("owner", "X", "h0", "c0", "bufs")

    def __init__(self, owner, X, h0, c0, bufs: Buffers):
        self.owner, self.X, self.h0, self.c0, self.bufs = owner, X, h0, c0, bufs

    @property
    def shape(self) -> tuple[int, int]:
        """(T, B) of the forward."""
        return self.bufs.shape

    def __repr__(self) -> str:
        T, B = self.shape
        return (f"<rnnfast layer cache: {self.bufs.cell}, {len(self.bufs.hs)} layers, T={T}, "
                f"B={B}>")  # fmt: skip


def run_forward(ops, cell, X, weights: list[LayerWeights], h0, c0, masks=None, owner=None):
    """``forward`` over X (T, B, I) from h0, c0 (L, B, H) into new buffers; returns its Cache
    (the top layer's h of every step is ``cache.bufs.hs[-1]``)."""
    T, B = X.shape[0], X.shape[1]
    dropped = 0 if masks is None else len(masks)
    bufs = Buffers.allocate(cell, T, B, h0.shape[-1], len(weights), X.dtype, dropped)
    forward(ops, bufs, X, weights, h0, c0, masks)
    return Cache(owner, X, h0, c0, bufs)


def run_backward(ops, cache: Cache, weights, dweights, dH_top, dh_T=None, dc_T=None,
                 input_grad: bool = True):  # fmt: skip
    """``backward`` of ``run_forward``'s cache with new gradient buffers: accumulates into
    ``dweights``; returns (dX or None without ``input_grad``, dh0, dc0), dH_top (T, B, H) the
    gradient of the top layer's output."""
    bufs, X = cache.bufs, cache.X
    T, B = cache.shape
    L, H = len(weights), cache.h0.shape[-1]
    dtype = X.dtype
    G = GATES[bufs.cell] * H
    dhs = [np.empty((T, B, H), dtype) for _ in range(L - 1)] + [dH_top]
    dX = np.empty(X.shape, dtype) if input_grad else None
    dh0 = np.empty((L, B, H), dtype)
    dc0 = np.empty_like(dh0) if bufs.cell == "lstm" else None
    dA = np.empty((T, B, G), dtype)
    dR = np.empty_like(dA) if bufs.cell == "gru" else None
    backward(ops, bufs, X, weights, dweights, dhs, dX, cache.h0, cache.c0, dh0, dc0, dA, dR,
             dh_T, dc_T)  # fmt: skip
    return dX, dh0, dc0


class StackedLayers:
    """What every model class over a stack shares: parameters in one flat buffer
    (``flat_params``, ``params``, ``_shapes``), the backend's ``kernels``, ``cell``,
    ``num_layers``, ``hidden_size``, ``dtype``, ``dropout`` and its mask ``generator``."""

    @property
    def num_params(self) -> int:
        return self.flat_params.size

    def zeros_like_params(self) -> Params:
        """A zeroed buffer with the parameters' layout (gradients, optimizer moments)."""
        return Params(np.zeros_like(self.flat_params), self._shapes)

    def zero_state(self, batch_size: int) -> State:
        """The all-zero initial state for ``batch_size`` streams."""
        shape = (self.num_layers, batch_size, self.hidden_size)
        c = np.zeros(shape, self.dtype) if self.cell == "lstm" else None
        return State(np.zeros(shape, self.dtype), c)

    def _init_params(self, shapes, seed) -> None:
        """``flat_params`` uniform in [-1/sqrt(H), 1/sqrt(H)] (PyTorch's initialization) from
        ``seed``, and, independently of them, the dropout ``generator``."""
        self._shapes = shapes
        self.params = Params.empty(shapes, self.dtype)
        self.flat_params = self.params.flat
        bound = 1.0 / math.sqrt(self.hidden_size)
        seeds = np.random.SeedSequence(seed)  # default_rng(seeds) is default_rng(seed)
        self.flat_params[...] = np.random.default_rng(seeds).uniform(
            -bound, bound, self.flat_params.size
        )
        self.generator = np.random.default_rng(seeds.spawn(1)[0])

    def _draw_masks(self, masks: np.ndarray) -> None:
        # uniforms u in [0, 1) of the model's dtype; keep = u >= p, in place (1.0 or 0.0)
        self.generator.random(dtype=masks.dtype, out=masks)
        np.greater_equal(masks, masks.dtype.type(self.dropout), out=masks)
        masks *= masks.dtype.type(1.0 / (1.0 - self.dropout))

    def clip_grads(
        self, grads: Params, *, value: float | None = None, max_norm: float | None = None
    ) -> float:
        """Clip in place: each element to [-value, value], and/or the whole gradient to a global
        norm of at most ``max_norm`` (PyTorch's rule).  Returns the norm before norm clipping
        (NaN when not computed)."""
        value = check_real("value", value, optional=True)
        max_norm = check_real("max_norm", max_norm, optional=True)
        return clip(self.kernels, grads.flat, value, max_norm)


def clip(ops, grad, value: float | None, max_norm: float | None) -> float:
    """Clip the flat ``grad`` in place by value, then by global norm (the fused step's order);
    returns the norm before norm clipping (NaN when not computed)."""
    norm = math.nan
    if value is not None:
        ops.clip_by_value(grad, value)
    if max_norm is not None:
        norm = ops.global_norm(grad)
        if norm > max_norm:
            ops.scale(grad, max_norm / (norm + 1e-6))
    return norm
