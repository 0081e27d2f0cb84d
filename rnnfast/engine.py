"""The NumPy twins of the fused C kernels: the one-call training step (``TrainStep``, twin of
``_kernels.TrainStep``) and the sampling loop (``sample``, twin of ``_kernels.sample``), each with
its C twin's signature, composed of the elementary kernels through the one stack loop
(``rnnfast.stack``) in the C step's order, so the fused C step is tested against this twin like
every other kernel.  Composed of the C elementary kernels instead (``kernels=``), the step gives
the fused C step's bits.
"""

from __future__ import annotations

import numpy as np

from . import kernels as numpy_kernels
from . import stack
from .core import GATES, UPDATE_KINDS, LayerWeights, Update, layer_weights
from .validation import INDEX_DTYPE, check_array, check_choice, check_ids


class TrainStep:
    """A CharLM's training step at one (T, B), over the model's buffers (see
    ``_kernels.TrainStep``, whose constructor and ``step`` this twin shares): forward over every
    layer, output layer, softmax cross-entropy, backward through time, scaling, clipping and
    the optimizer update.  ``kernels``: the elementary kernels it is composed of (the NumPy
    ones by default)."""

    def __init__(self, cell, params, grads, hs, cs, tcs, gates, R, dhs, dA, dR, logits,
                 dlogits, outs=None, masks=None, *, kernels=None):  # fmt: skip
        check_choice("cell", cell, tuple(GATES))
        if (outs is None) != (masks is None):
            raise ValueError("outs, masks: expected both (dropout) or neither")
        self.ops = numpy_kernels if kernels is None else kernels
        self.cell, self.params, self.grads = cell, params, grads
        self.T, self.B, self.H = hs[0].shape
        self.L, self.V = len(hs), params["b_y"].shape[0]
        self.dtype = params.flat.dtype
        self.bufs = stack.Buffers(cell, hs, cs, tcs, gates, R, outs)
        self.dhs, self.dA, self.dR = dhs, dA, dR if cell == "gru" else None
        self.logits, self.dlogits = logits, dlogits
        self.masks = masks
        self._weights = layer_weights(params, self.L)
        self._dweights = layer_weights(grads, self.L)
        # the initial state's gradient (L, B, H): computed by backward, not returned (scratch)
        self._dh0 = np.empty((self.L, self.B, self.H), self.dtype)
        self._dc0 = np.empty_like(self._dh0) if cell == "lstm" else None

    def _check_call(self, x, y, h, c) -> None:
        """What the C step checks of a call's arrays, with the same errors."""
        for name, ids in (("x", x), ("y", y)):
            check_array(name, ids, (self.T, self.B), INDEX_DTYPE)
            if not ids.flags.c_contiguous:
                raise ValueError(f"{name}: expected a C-contiguous array")
            check_ids(name, ids, self.V)
        shape = (self.L, self.B, self.H)
        for name, a in (("state.h", h), ("state.c", c)):
            if a is None and (name == "state.h" or self.cell == "lstm"):
                raise TypeError(f"{name}: expected an array of shape {shape}, got None")
            if a is not None and self.cell != "lstm" and name == "state.c":
                raise ValueError(f"{name}: expected None for this cell, got an array")
            if a is not None:
                check_array(name, a, shape, self.dtype)
                if not a.flags.c_contiguous:
                    raise ValueError(f"{name}: expected a C-contiguous array")

    def step(self, x, y, h, c, draw_masks, grad_scale, clip, max_norm, update):
        """One step from the state (h, c): returns (loss, h_T, c_T), the final state in new
        arrays.  Arguments as ``_kernels.TrainStep.step``'s: x, y (T, B) int64 ids; h, c
        (L, B, H) (c None but for an LSTM); ``draw_masks`` None or a function filling
        ``masks``; ``grad_scale``; ``clip``, ``max_norm`` None or > 0; ``update`` an ``Update``
        or None (gradients only).  When the loss is not finite no update is made."""
        self._check_call(x, y, h, c)
        if update is not None:
            check_choice("update", update.kind, UPDATE_KINDS)
        if draw_masks is not None:
            if self.masks is None:
                raise ValueError("draw_masks: this TrainStep was built without dropout buffers")
            draw_masks(self.masks)
        ops, bufs = self.ops, self.bufs
        masks = self.masks if draw_masks is not None else None
        self.grads.flat[...] = 0
        stack.forward(ops, bufs, x, self._weights, h, c, masks)
        T, B = x.shape
        top = bufs.outputs[-1].reshape(T * B, -1)
        W_y, b_y = self.params["W_y"], self.params["b_y"]
        ops.linear_forward(self.logits, top, W_y, b_y)
        loss = ops.softmax_xent(self.dlogits, self.logits, y.reshape(-1))
        dtop = self.dhs[-1].reshape(T * B, -1)
        ops.linear_backward(dtop, self.grads["W_y"], self.grads["b_y"], self.dlogits, top, W_y)
        stack.backward(ops, bufs, x, self._weights, self._dweights, self.dhs, None, h, c,
                       self._dh0, self._dc0, self.dA, self.dR)  # fmt: skip
        if grad_scale != 1:
            ops.scale(self.grads.flat, grad_scale)
        stack.clip(ops, self.grads.flat, clip, max_norm)
        if update is not None and np.isfinite(loss):
            apply_update(ops, update, self.params.flat, self.grads.flat)
        final = bufs.final_state()
        return loss, final.h, final.c


def apply_update(ops, update: Update, param, grad) -> None:
    """The optimizer update ``update`` of ``param`` from ``grad`` (the fused step's switch)."""
    u = update
    if u.kind == "sgd":
        ops.sgd_update(param, grad, u.moment1, u.lr, u.momentum)
    elif u.kind == "adagrad":
        ops.adagrad_update(param, grad, u.moment1, u.lr, u.eps)
    elif u.kind == "rmsprop":
        ops.rmsprop_update(param, grad, u.moment1, u.lr, u.alpha, u.eps)
    else:
        ops.adam_update(param, grad, u.moment1, u.moment2, u.lr, u.beta1, u.beta2, u.eps, u.step)


def sample(
    out, uniforms, first_ids, h, c, W_x, W_h, b, W_y, b_y, temperature, top_k, argmax,
    top_p=None, b_hn=None, apart=False,
):  # fmt: skip
    """Generate N characters for S independent streams: feed a character, get the distribution
    of the next one, ``kernels.draw`` it, feed it back.

    out (N, S) ids out: out[t] is drawn after feeding out[t - 1] (first_ids (S,) for t = 0).
    uniforms (N, S): one uniform number in [0, 1) per draw.  h, c (L, S, H): the state,
    advanced in place (c is None for an RNN and a GRU); after the call it has consumed every
    character but the last drawn one, so a following call continues with first_ids = out[-1].
    W_x, W_h, b: lists of the L layers' weights; W_y (H, V), b_y (V,).  temperature, top_k,
    argmax, top_p: ``kernels.draw``'s.  b_hn: for a GRU, the list of the L layers' b_hn (H,);
    None for an RNN or an LSTM.  ``apart``: every stream computed as if it were drawn alone (a
    matrix product sums a row of a taller product in another order), one stream at a time.
    """
    L, S, H = h.shape
    if apart and S > 1:
        for s in range(S):  # views: each call advances its stream's rows of h, c and out
            sample(out[:, s : s + 1], uniforms[:, s : s + 1], first_ids[s : s + 1], h[:, s : s + 1],
                   None if c is None else c[:, s : s + 1], W_x, W_h, b, W_y, b_y, temperature,
                   top_k, argmax, top_p, b_hn)  # fmt: skip
        return
    cell = "gru" if b_hn is not None else "rnn" if c is None else "lstm"
    weights = [
        LayerWeights(W_x[k], W_h[k], b[k], None if b_hn is None else b_hn[k]) for k in range(L)
    ]
    ops = numpy_kernels
    bufs = stack.Buffers.allocate(cell, 1, S, H, L, h.dtype)  # one step of every layer
    ids = first_ids.copy()
    logits = np.empty((S, W_y.shape[1]), h.dtype)
    for t in range(out.shape[0]):
        stack.forward(ops, bufs, ids[None, :], weights, h, c)
        for k in range(L):  # the state after this step, in place
            h[k] = bufs.hs[k][0]
            if c is not None:
                c[k] = bufs.cs[k][0]
        ops.linear_forward(logits, h[L - 1], W_y, b_y)
        ops.draw(ids, logits, uniforms[t], temperature, top_k, argmax, top_p)
        out[t] = ids
