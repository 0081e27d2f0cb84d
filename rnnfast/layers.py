"""Recurrent layers over dense float inputs, for any NumPy model: CharLM's fused kernels without
its embedding and output layer.

    lstm = layers.LSTM(input_size=32, hidden_size=64, num_layers=2)
    out, state, cache = lstm.forward(x)                 # x (T, B, I) -> out (T, B, H)
    dx, dstate0, grads = lstm.backward(dout, cache)     # dout like out; grads like lstm.params
    rnnfast.Adam(lstm, lr=1e-3).step(grads)

The parameters are CharLM's recurrent ones, same names and layout in one flat buffer
(``W_x.{l}`` (I, G), ``W_h.{l}`` (H, G), ``b.{l}`` (G), LSTM gates i, f, g, o, GRU gates r, z, n
and its ``b_hn.{l}`` (H)), so rnnfast's
optimizers and ``clip_grads`` take a layer as they take a CharLM.

The cache holds references to ``x`` and the initial state, and backward reads the parameters as
they are then: change neither between a forward and its backward.
"""

from __future__ import annotations

import numpy as np

from . import stack
from .backends import kernels
from .core import CELL_NAMES, Params, State, layer_shapes, layer_weights
from .validation import check_float_dtype, check_int, check_real

# -- the public layers ------------------------------------------------------------------------


class _Layer(stack.StackedLayers):
    """Stacked recurrent layers over dense inputs; see ``RNN``, ``LSTM`` and ``GRU``."""

    cell = ""
    torch_class = ""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        dtype=np.float32,
        backend: str = "c",
        batch_first: bool = False,
        seed: int | None = None,
        dropout: float = 0.0,
    ):
        self.input_size = check_int("input_size", input_size)
        self.hidden_size = check_int("hidden_size", hidden_size)
        self.num_layers = check_int("num_layers", num_layers)
        self.dtype = check_float_dtype("dtype", dtype)
        self.dropout = check_real("dropout", dropout, high=1.0, low_inclusive=True)
        if not isinstance(batch_first, (bool, np.bool_)):
            raise TypeError(f"batch_first: expected a bool, got {batch_first!r}")
        self.backend, self.batch_first = backend, bool(batch_first)
        self.kernels = kernels(backend)
        # CharLM's recurrent parameters: its layout without the output layer W_y, b_y
        self._init_params(
            layer_shapes(self.cell, self.input_size, self.hidden_size, self.num_layers), seed
        )

    def __repr__(self) -> str:
        extra = f", num_layers={self.num_layers}" if self.num_layers != 1 else ""
        extra += ", batch_first=True" if self.batch_first else ""
        extra += f", dropout={self.dropout:g}" if self.dropout else ""
        return (
            f"layers.{type(self).__name__}({self.input_size}, {self.hidden_size}{extra}, "
            f"dtype={self.dtype.name}, backend={self.backend!r})"
        )

    # -- checking inputs -----------------------------------------------------------------

    def _layout(self, width: str) -> str:
        return f"(B, T, {width})" if self.batch_first else f"(T, B, {width})"

    def _check_sequence(self, name: str, a, width: int, letter: str, TB=None) -> np.ndarray:
        """a in the layer's layout with last dimension ``width`` (and (T, B) = TB when given),
        as a C-contiguous time-major array: the caller's own when it already is one."""
        a = np.asarray(a)
        expected = self._layout(f"{letter}={width}")
        if a.ndim != 3:
            raise ValueError(f"{name}: expected shape {expected}, got {a.shape}")
        seq = a.transpose(1, 0, 2) if self.batch_first else a
        if seq.shape[2] != width or seq.shape[0] < 1 or seq.shape[1] < 1:
            raise ValueError(f"{name}: expected shape {expected} with T, B >= 1, got {a.shape}")
        if TB is not None and seq.shape[:2] != TB:
            want = (TB[1], TB[0], width) if self.batch_first else (*TB, width)
            raise ValueError(f"{name}: expected shape {want} (the forward's), got {a.shape}")
        if a.dtype != self.dtype:
            raise TypeError(f"{name}: expected dtype {self.dtype}, got {a.dtype}")
        if not np.isfinite(a).all():
            raise ValueError(f"{name}: contains NaN or infinity")
        return np.ascontiguousarray(seq)

    def _same_layout(self, grads) -> bool:
        return (
            isinstance(grads, Params)
            and grads.flat.dtype == self.dtype
            and [(k, v.shape) for k, v in grads.items()] == self._shapes
        )

    def _check_state(self, name: str, state, batch_size: int, partial: bool):
        """(h, c) of (L, B, H) arrays; with ``partial`` either may be None (zero)."""
        if not isinstance(state, tuple) or len(state) != 2:
            raise TypeError(f"{name}: expected a State (h, c), c None for an RNN or a GRU, got "
                            f"{type(state).__name__}")  # fmt: skip
        shape = (self.num_layers, batch_size, self.hidden_size)
        checked = []
        for part, a in zip("hc", state, strict=True):
            if a is None and (partial or self.cell != "lstm" and part == "c"):
                checked.append(None)
                continue
            if self.cell != "lstm" and part == "c":
                raise ValueError(
                    f"{name}.c: {CELL_NAMES[self.cell]} has no cell state; expected None"
                )
            if a is None:
                raise TypeError(f"{name}.{part}: expected an array of shape {shape}, got None")
            a = np.asarray(a)
            if a.shape != shape:
                raise ValueError(f"{name}.{part}: expected shape {shape}, got {a.shape}")
            if a.dtype != self.dtype:
                raise TypeError(f"{name}.{part}: expected dtype {self.dtype}, got {a.dtype}")
            if not np.isfinite(a).all():
                raise ValueError(f"{name}.{part}: contains NaN or infinity")
            checked.append(np.ascontiguousarray(a))
        return checked

    # -- forward and backward ------------------------------------------------------------

    def forward(self, x, state: State | None = None, *, train: bool = False):
        """Run the layers over x: (T, B, I), or (B, T, I) with ``batch_first``.

        Returns ``(out, state, cache)``: out (T, B, H) [(B, T, H)] the top layer's h at every
        step, a read-only view of the cache; state the final State (h, c) (L, B, H); cache for
        ``backward``.  ``state`` is the initial State (zeros when None).  With ``train=True``
        and ``dropout`` > 0, inverted dropout between the layers (PyTorch's rule: each layer
        but the top reads the output below it with elements zeroed with probability
        ``dropout`` and the rest scaled by 1 / (1 - dropout)), masks from ``generator``.
        """
        if not isinstance(train, (bool, np.bool_)):
            raise TypeError(f"train: expected a bool, got {type(train).__name__}")
        X = self._check_sequence("x", x, self.input_size, "I")
        T, B = X.shape[:2]
        if state is None:
            h0, c0 = self.zero_state(B)
        else:
            h0, c0 = self._check_state("state", state, B, partial=False)
        masks = None
        if train and self.dropout and self.num_layers > 1:
            masks = np.empty((self.num_layers - 1, T, B, self.hidden_size), self.dtype)
            self._draw_masks(masks)
        weights = layer_weights(self.params, self.num_layers)
        cache = stack.run_forward(self.kernels, self.cell, X, weights, h0, c0, masks, self)
        out = cache.bufs.hs[-1].view()
        out.flags.writeable = False
        final = cache.bufs.final_state()
        return (out.transpose(1, 0, 2) if self.batch_first else out), final, cache

    def backward(
        self, dout, cache, dstate: State | None = None, *, grads: Params | None = None,
        input_grad: bool = True,
    ):  # fmt: skip
        """Backward through the forward that returned ``cache``.

        dout: the gradient of ``out`` (its shape); dstate: the gradient of the final state,
        a State whose h or c may be None (zero), or None.  Returns ``(dx, dstate0, grads)``:
        dx like x (None when ``input_grad`` is False), dstate0 the State gradient of the
        initial state, grads a Params like ``.params``: new, or ``grads`` with this call's
        gradients added (weights shared by several calls).
        """
        if not isinstance(cache, stack.Cache):
            raise TypeError(f"cache: expected the cache returned by forward, got "
                            f"{type(cache).__name__}")  # fmt: skip
        if cache.owner is not self:
            raise ValueError("cache: it comes from another layer's forward")
        T, B = cache.shape
        dH = self._check_sequence("dout", dout, self.hidden_size, "H", TB=(T, B))
        dh_T = dc_T = None
        if dstate is not None:
            dh_T, dc_T = self._check_state("dstate", dstate, B, partial=True)
        if grads is None:
            grads = self.zeros_like_params()
        elif not self._same_layout(grads):
            raise ValueError("grads: expected a Params like this layer's zeros_like_params()")
        L = self.num_layers
        dX, dh0, dc0 = stack.run_backward(
            self.kernels, cache, layer_weights(self.params, L), layer_weights(grads, L), dH,
            dh_T, dc_T, input_grad,
        )  # fmt: skip
        if dX is not None and self.batch_first:
            dX = dX.transpose(1, 0, 2)
        return dX, State(dh0, dc0), grads

    # -- PyTorch -------------------------------------------------------------------------

    @classmethod
    def from_torch(cls, module, *, backend: str = "c"):
        """A layer with the weights of a PyTorch ``nn.RNN`` (tanh) / ``nn.LSTM`` / ``nn.GRU``:
        its sizes, num_layers, dtype, batch_first and dropout (applied by
        ``forward(train=True)``)."""
        from .torch_interop import load_recurrent, recurrent_config

        config = recurrent_config(module, cls.torch_class)
        layer = cls(**config, backend=backend, dropout=module.dropout)
        load_recurrent(layer.params, module)
        return layer

    def to_torch(self):
        """A new ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` with these weights (the merged bias comes
        back as bias_ih, with bias_hh zero but for a GRU's b_hn), this layer's batch_first and
        dropout."""
        from .torch_interop import recurrent_to_torch

        module = recurrent_to_torch(self.cell, self.params, self.input_size, self.hidden_size,
                                    self.num_layers, self.dtype, self.batch_first)  # fmt: skip
        module.dropout = self.dropout  # read at each call (set here: no 1-layer warning)
        return module


class RNN(_Layer):
    """Stacked vanilla RNN layers, h_t = tanh(x_t W_x + h_{t-1} W_h + b), over dense inputs.

    Parameters
    ----------
    input_size, hidden_size : int
    num_layers : int
    dtype : float32 (default) or float64
    backend : {"c", "numpy"}
    batch_first : bool
        x and out are (B, T, .) instead of (T, B, .); states stay (L, B, H), as in PyTorch.
    seed : int or None
        Seeds the initial weights, uniform in [-1/sqrt(H), 1/sqrt(H)], and, apart from them,
        ``generator``, which draws the dropout masks.
    dropout : float in [0, 1)
        PyTorch's ``dropout``: between stacked layers (not after the top one), in
        ``forward(train=True)`` only.  0 (the default): none.
    """

    cell = "rnn"
    torch_class = "RNN"


class LSTM(_Layer):
    """Stacked LSTM layers over dense inputs, gates i, f, g, o (``reference.lstm_forward``);
    the parameters as ``RNN``'s."""

    cell = "lstm"
    torch_class = "LSTM"


class GRU(_Layer):
    """Stacked GRU layers over dense inputs, gates r, z, n (``reference.gru_forward``); the
    parameters as ``RNN``'s plus each layer's ``b_hn.{l}`` (H,)."""

    cell = "gru"
    torch_class = "GRU"


__all__ = ["GRU", "LSTM", "RNN"]
