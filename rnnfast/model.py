"""The character-level language model and the seed's stateful cells, over either backend.

The model code below is written once; ``backend`` picks the kernels it calls: ``"c"`` (the
default) the C kernels of ``rnnfast._kernels``, ``"numpy"`` their twins in ``rnnfast.reference``.
Optimizers and samplers reach those kernels through the model's public ``kernels`` attribute.

The extension is imported with this module, whichever backend is used: it loads SciPy's OpenBLAS,
and threadpoolctl limits only reach libraries already loaded, so a ``threadpool_limits`` entered
after ``import rnnfast`` must find that OpenBLAS there (imported lazily, it started with every core
while the limit held the others, and two busy BLAS pools fought over two cores).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from types import SimpleNamespace
from typing import NamedTuple

import numpy as np

from .data import Vocab
from .validation import (
    INDEX_DTYPE,
    check_array,
    check_choice,
    check_float_dtype,
    check_ids,
    check_int,
    check_real,
)

try:
    from . import _kernels
except ImportError as err:  # a source checkout on sys.path ahead of the installed package
    raise ImportError(
        f"rnnfast's compiled extension is missing from {__file__.rsplit('/', 1)[0]}: this is "
        "a source tree that was not built. Run from another directory (or use the `rnnfast` "
        "command instead of `python -m rnnfast` in the checkout), or build it in place with "
        "`pip install -e .` or `python setup.py build_ext --inplace`."
    ) from err

CELLS = ("lstm", "rnn", "gru")
BACKENDS = ("c", "numpy")
GATES = {"lstm": 4, "rnn": 1, "gru": 3}
CELL_NAMES = {"lstm": "an LSTM", "rnn": "an RNN", "gru": "a GRU"}  # for messages

# The kernels the Python API calls; each exists with one signature in rnnfast.reference and
# in rnnfast._kernels.
KERNEL_NAMES = (
    "rnn_forward", "rnn_backward", "lstm_forward", "lstm_backward", "gru_forward", "gru_backward",
    "linear_forward", "linear_backward", "softmax_xent",
    "sgd_update", "adagrad_update", "rmsprop_update", "adam_update",
    "clip_by_value", "global_norm", "scale", "sample",
)  # fmt: skip


def kernels(backend: str) -> SimpleNamespace:
    """The kernel set of a backend: a namespace of functions with the reference's signatures."""
    check_choice("backend", backend, BACKENDS)
    if backend == "numpy":
        from . import reference  # not at the top: reference's classes subclass this module's

        module = reference
    else:
        module = _kernels
    return SimpleNamespace(**{name: getattr(module, name) for name in KERNEL_NAMES})


class State(NamedTuple):
    """Recurrent state: h (and c for an LSTM; None for an RNN or a GRU), each (L, B, H)."""

    h: np.ndarray
    c: np.ndarray | None = None


def param_shapes(cell: str, V: int, H: int, L: int) -> list[tuple[str, tuple[int, ...]]]:
    """Names and shapes of the parameters, in their order in the flat buffer (a GRU layer's
    recurrent bias of n, ``b_hn.{l}`` (H,), follows its ``b.{l}``)."""
    G = GATES[cell] * H
    shapes = []
    for layer in range(L):
        I = V if layer == 0 else H  # noqa: E741
        shapes += [(f"W_x.{layer}", (I, G)), (f"W_h.{layer}", (H, G)), (f"b.{layer}", (G,))]
        if cell == "gru":
            shapes.append((f"b_hn.{layer}", (H,)))
    return shapes + [("W_y", (H, V)), ("b_y", (V,))]


class Params(Mapping):
    """Named views into one flat buffer ``.flat``: parameters, gradients and optimizer moments
    share this layout, so an update or a clip is one pass over one array."""

    def __init__(self, flat: np.ndarray, shapes: list[tuple[str, tuple[int, ...]]]):
        self.flat = flat
        self._views = {}
        offset = 0
        for name, shape in shapes:
            size = math.prod(shape)
            self._views[name] = flat[offset : offset + size].reshape(shape)
            offset += size
        if offset != flat.size:
            raise ValueError(f"flat buffer: expected {offset} elements, got {flat.size}")

    def __getitem__(self, name: str) -> np.ndarray:
        return self._views[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._views)

    def __len__(self) -> int:
        return len(self._views)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}: {v.shape}" for k, v in self._views.items())
        return f"Params({inner}; {self.flat.dtype})"


class _Workspace:
    """Buffers for one (T, B): the activations backward needs and the gradient scratch, sized
    once and reused by every call with the same shape."""

    def __init__(self, cell, T, B, V, H, L, dtype):
        G = GATES[cell] * H
        self.shape = (T, B)
        self.dtype = np.dtype(dtype)
        # per layer: h_t, c_t, tanh(c_t) of every step (T, B, H); activated gates (T, B, G)
        self.hs = [np.empty((T, B, H), dtype) for _ in range(L)]
        self.cs = self.tcs = self.gates = self.R = self.dR = None  # where the cell has none
        if cell == "lstm":
            self.cs = [np.empty((T, B, H), dtype) for _ in range(L)]
            self.tcs = [np.empty((T, B, H), dtype) for _ in range(L)]
        if cell != "rnn":
            self.gates = [np.empty((T, B, G), dtype) for _ in range(L)]
        if cell == "gru":  # the recurrent products R_t (T, B, 3H), and their gradient
            self.R = [np.empty((T, B, G), dtype) for _ in range(L)]
            self.dR = np.empty((T, B, G), dtype)
        self.logits = np.empty((T * B, V), dtype)
        self.dlogits = np.empty((T * B, V), dtype)
        self.dhs = [np.empty((T, B, H), dtype) for _ in range(L)]
        self.dA = np.empty((T, B, G), dtype)
        # with dropout: every layer's dropped output out = h * mask (L, T, B, H), and the masks
        self.outs = self.masks = None
        self._dropout_shape = (L, T, B, H)
        # set by each forward: the layers' outputs as the layer above reads them (hs, or outs
        # with dropout) and the masks applied (None: no dropout)
        self.outputs, self.used_masks = self.hs, None
        self.train_step = None  # the one-call training step over these buffers, when built

    def dropout_buffers(self) -> tuple[np.ndarray, np.ndarray]:
        """(outs, masks), each (L, T, B, H), allocated at the first call."""
        if self.outs is None:
            self.outs = np.empty(self._dropout_shape, self.dtype)
            self.masks = np.empty_like(self.outs)
        return self.outs, self.masks


class _StackedLayers:
    """What CharLM and rnnfast.layers share: stacked recurrent layers with their parameters in
    one flat buffer (``flat_params``, ``_shapes``), their ``kernels``, ``cell``, ``num_layers``,
    ``hidden_size``, ``dtype``, ``dropout`` and dropout ``generator``."""

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
        return self._clip(grads, value, max_norm)

    def _clip(self, grads: Params, value: float | None, max_norm: float | None) -> float:
        norm = math.nan
        if value is not None:
            self.kernels.clip_by_value(grads.flat, value)
        if max_norm is not None:
            norm = self.kernels.global_norm(grads.flat)
            if norm > max_norm:
                self.kernels.scale(grads.flat, max_norm / (norm + 1e-6))
        return norm


class CharLM(_StackedLayers):
    """A character-level language model: an embedding by row gather, ``num_layers`` stacked
    RNN, LSTM or GRU layers, a linear output layer and a softmax over the vocabulary.

    Parameters
    ----------
    vocab : Vocab or int
        The vocabulary, or just its size V (then sampling needs ids, not text).
    cell : {"lstm", "rnn", "gru"}
    hidden_size : int
    num_layers : int
    dtype : numpy dtype, float32 (default) or float64
    backend : {"c", "numpy"}
        The kernels: C (``rnnfast._kernels``, the default) or NumPy (``rnnfast.reference``,
        whose ``CharLM`` is this class with ``backend="numpy"`` as its default).
    seed : int or None
        Seeds the initial weights: uniform in [-1/sqrt(H), 1/sqrt(H)], as PyTorch does; and,
        independently of them, ``generator``.
    dropout : float in [0, 1)
        Inverted dropout on the output of every layer, the top one included (what the layer
        above and the output layer read; the recurrence reads the undropped h): in training
        each output element is zeroed with probability ``dropout`` and the others scaled by
        1 / (1 - dropout).  Applied by ``train_step``, and by ``loss`` and ``loss_and_grads``
        with ``train=True``; never in evaluation or sampling.  0 (the default): none.

    Attributes
    ----------
    kernels : namespace
        The backend's kernels (``rnnfast.model.kernels(backend)``), which the optimizers and
        samplers of this model call.
    generator : numpy.random.Generator
        Draws the dropout masks (``dropout_masks``); a checkpoint saves its state, so a
        resumed training draws the masks the uninterrupted one would have drawn.
    """

    def __init__(
        self,
        vocab: Vocab | int,
        cell: str = "lstm",
        hidden_size: int = 128,
        num_layers: int = 2,
        dtype=np.float32,
        backend: str = "c",
        seed: int | None = None,
        dropout: float = 0.0,
    ):
        if isinstance(vocab, Vocab):
            self.vocab, V = vocab, len(vocab)
        elif isinstance(vocab, (int, np.integer)) and not isinstance(vocab, bool):
            self.vocab, V = None, check_int("vocab", vocab)
        else:
            raise TypeError(f"vocab: expected a Vocab or an int, got {type(vocab).__name__}")
        self.cell = check_choice("cell", cell, CELLS)
        self.hidden_size = check_int("hidden_size", hidden_size)
        self.num_layers = check_int("num_layers", num_layers)
        self.dtype = check_float_dtype("dtype", dtype)
        self.dropout = check_real("dropout", dropout, high=1.0, low_inclusive=True)
        self.kernels = kernels(backend)
        self.backend, self.vocab_size = backend, V
        self._shapes = param_shapes(cell, V, self.hidden_size, self.num_layers)
        self.flat_params = np.empty(sum(math.prod(s) for _, s in self._shapes), self.dtype)
        self.params = Params(self.flat_params, self._shapes)
        layers = range(self.num_layers)  # the sampling kernel's lists of every layer's W_x, W_h, b
        self._layer_weights = [
            [self.params[f"{w}.{k}"] for k in layers] for w in ("W_x", "W_h", "b")
        ]
        self._b_hn = [self.params[f"b_hn.{k}"] for k in layers] if cell == "gru" else None
        bound = 1.0 / math.sqrt(self.hidden_size)
        seeds = np.random.SeedSequence(seed)  # default_rng(seeds) is default_rng(seed)
        self.flat_params[...] = np.random.default_rng(seeds).uniform(
            -bound, bound, self.flat_params.size
        )
        self.generator = np.random.default_rng(seeds.spawn(1)[0])
        self._grads = self.zeros_like_params()
        self._workspace = None

    def __repr__(self) -> str:
        return (
            f"CharLM(vocab_size={self.vocab_size}, cell={self.cell!r}, "
            f"hidden_size={self.hidden_size}, num_layers={self.num_layers}, "
            f"dtype={self.dtype.name}, backend={self.backend!r}"
            + (f", dropout={self.dropout:g})" if self.dropout else ")")
        )

    @classmethod
    def from_torch(cls, rnn, linear, vocab: Vocab | None = None, *, backend: str | None = None):
        """A model holding the weights of a PyTorch ``nn.RNN`` (tanh), ``nn.LSTM`` or ``nn.GRU``
        (any num_layers, one-hot input of the vocabulary's size) and its ``nn.Linear`` decoder.
        ``backend`` None keeps the class's default (``"numpy"`` for ``reference.CharLM``)."""
        from .torch_interop import load_from_torch, torch_config

        config = torch_config(rnn, linear)
        if vocab is not None and len(vocab) != rnn.input_size:
            raise ValueError(
                f"vocab: {len(vocab)} characters, but the rnn's input_size is {rnn.input_size}"
            )
        if backend is not None:
            config["backend"] = backend
        model = cls(rnn.input_size if vocab is None else vocab, **config)
        load_from_torch(model, rnn, linear)
        return model

    def to_torch(self):
        """A new ``(nn.RNN, nn.LSTM or nn.GRU, nn.Linear)`` pair with this model's weights."""
        from .torch_interop import to_torch

        return to_torch(self)

    # -- checking inputs -------------------------------------------------------------------

    def check_state(self, state: State | None, batch_size: int) -> State:
        """``state`` for ``batch_size`` streams as C-contiguous arrays (zeros when None), or an
        error naming the part of it that is wrong."""
        if state is None:
            return self.zero_state(batch_size)
        if not isinstance(state, tuple) or len(state) != 2:
            raise TypeError(
                "state: expected a State (h, c) as returned by zero_state or loss, "
                f"got {type(state).__name__}"
            )
        shape = (self.num_layers, batch_size, self.hidden_size)
        h = check_array("state.h", state[0], shape, self.dtype)
        if self.cell != "lstm":
            if state[1] is not None:
                got = type(state[1]).__name__
                raise ValueError(
                    f"state.c: expected None ({CELL_NAMES[self.cell]} has no cell state), got {got}"
                )
            return State(h)
        return State(h, check_array("state.c", state[1], shape, self.dtype))

    def _workspace_for(self, T: int, B: int) -> _Workspace:
        if self._workspace is None or self._workspace.shape != (T, B):
            self._workspace = _Workspace(
                self.cell, T, B, self.vocab_size, self.hidden_size, self.num_layers, self.dtype
            )
        return self._workspace

    # -- forward and backward --------------------------------------------------------------

    def dropout_masks(self, T: int, B: int) -> np.ndarray:
        """New dropout masks (L, T, B, H) for a (T, B) batch, drawn from ``generator``: each
        element 0 with probability ``dropout``, else 1 / (1 - dropout) (in the model's
        dtype).  ``loss``, ``loss_and_grads`` and ``train_step`` draw theirs the same way."""
        T, B = check_int("T", T), check_int("B", B)
        masks = np.empty((self.num_layers, T, B, self.hidden_size), self.dtype)
        self._draw_masks(masks)
        return masks

    def _masks_for(self, ws: _Workspace, train: bool, masks) -> np.ndarray | None:
        """The masks of this call: ``masks`` checked, new ones when training with dropout, or
        None (no dropout)."""
        if not isinstance(train, (bool, np.bool_)):
            raise TypeError(f"train: expected a bool, got {type(train).__name__}")
        if masks is not None:
            shape = (self.num_layers, *ws.shape, self.hidden_size)
            return check_array("masks", masks, shape, self.dtype)
        if not (train and self.dropout):
            return None
        _, masks = ws.dropout_buffers()
        self._draw_masks(masks)
        return masks

    def _forward(self, x: np.ndarray, state: State, masks: np.ndarray | None) -> _Workspace:
        """Run every layer and the output layer over x (T, B), with dropout when ``masks``
        (L, T, B, H) is given; logits land in the workspace, and ``ws.outputs`` are the
        layers' outputs as the layer above reads them."""
        T, B = x.shape
        ws = self._workspace_for(T, B)
        p, ops = self.params, self.kernels
        ws.outputs, ws.used_masks = ws.hs, masks
        if masks is not None:
            ws.outputs, _ = ws.dropout_buffers()
        layer_input = x
        for layer in range(self.num_layers):
            weights = p[f"W_x.{layer}"], p[f"W_h.{layer}"], p[f"b.{layer}"]
            drop = {} if masks is None else {"out": ws.outputs[layer], "mask": masks[layer]}
            if self.cell == "lstm":
                ops.lstm_forward(
                    ws.hs[layer], ws.cs[layer], ws.tcs[layer], ws.gates[layer],
                    layer_input, *weights, state.h[layer], state.c[layer], **drop,
                )  # fmt: skip
            elif self.cell == "gru":
                ops.gru_forward(
                    ws.hs[layer], ws.gates[layer], ws.R[layer], layer_input, *weights,
                    p[f"b_hn.{layer}"], state.h[layer], **drop,
                )  # fmt: skip
            else:
                ops.rnn_forward(ws.hs[layer], layer_input, *weights, state.h[layer], **drop)
            layer_input = ws.outputs[layer]
        ops.linear_forward(ws.logits, ws.outputs[-1].reshape(T * B, -1), p["W_y"], p["b_y"])
        return ws

    def _final_state(self, ws: _Workspace) -> State:
        h = np.stack([hs[-1] for hs in ws.hs])
        c = np.stack([cs[-1] for cs in ws.cs]) if self.cell == "lstm" else None
        return State(h, c)

    def _backward(self, grads: Params, x: np.ndarray, state: State, ws: _Workspace) -> State:
        """Accumulate into ``grads`` the gradient of the loss whose dlogits is in ``ws``;
        returns the gradient of the initial state."""
        T, B = x.shape
        p, ops = self.params, self.kernels
        dstate = self.zero_state(B)
        top = ws.outputs[-1].reshape(T * B, -1)
        ops.linear_backward(
            ws.dhs[-1].reshape(T * B, -1), grads["W_y"], grads["b_y"], ws.dlogits, top, p["W_y"]
        )
        masks = ws.used_masks
        for layer in reversed(range(self.num_layers)):
            dX = ws.dhs[layer - 1] if layer > 0 else None
            layer_input = ws.outputs[layer - 1] if layer > 0 else x
            dweights = grads[f"W_x.{layer}"], grads[f"W_h.{layer}"], grads[f"b.{layer}"]
            drop = {} if masks is None else {"mask": masks[layer]}  # ws.dhs: d loss / d out
            if self.cell == "lstm":
                ops.lstm_backward(
                    dX, *dweights, dstate.h[layer], dstate.c[layer], ws.dA, ws.dhs[layer],
                    layer_input, ws.hs[layer], ws.cs[layer], ws.tcs[layer], ws.gates[layer],
                    p[f"W_x.{layer}"], p[f"W_h.{layer}"], state.h[layer], state.c[layer], **drop,
                )  # fmt: skip
            elif self.cell == "gru":
                ops.gru_backward(
                    dX, *dweights, grads[f"b_hn.{layer}"], dstate.h[layer], ws.dA, ws.dR,
                    ws.dhs[layer], layer_input, ws.hs[layer], ws.gates[layer], ws.R[layer],
                    p[f"W_x.{layer}"], p[f"W_h.{layer}"], state.h[layer], **drop,
                )  # fmt: skip
            else:
                ops.rnn_backward(
                    dX, *dweights, dstate.h[layer], ws.dA, ws.dhs[layer], layer_input,
                    ws.hs[layer], p[f"W_x.{layer}"], p[f"W_h.{layer}"], state.h[layer], **drop,
                )  # fmt: skip
        return dstate

    def _inputs(self, x, y, state):
        x = check_ids("x", x, self.vocab_size, ("T", "B"))
        y = check_ids("y", y, self.vocab_size, ("T", "B"))
        if x.shape != y.shape:
            raise ValueError(f"y: expected the shape of x {x.shape}, got {y.shape}")
        return x, y.reshape(-1), self.check_state(state, x.shape[1])

    def loss(
        self, x, y, state: State | None = None, *, train: bool = False, masks=None
    ) -> tuple[float, State]:
        """Mean cross-entropy (nats per character) of predicting y from x, both (T, B) ids,
        starting from ``state`` (zeros when None); returns the loss and the final state.

        Dropout: none unless ``train=True`` (new masks from ``generator``, when ``dropout``
        > 0) or ``masks`` (L, T, B, H) are given (applied as they are, e.g. from
        ``dropout_masks``).
        """
        x, y, state = self._inputs(x, y, state)
        masks = self._masks_for(self._workspace_for(*x.shape), train, masks)
        ws = self._forward(x, state, masks)
        loss = self.kernels.softmax_xent(None, ws.logits, y)
        return loss, self._final_state(ws)

    def _loss_and_grads_into(self, grads: Params, x, y, state, train, masks):
        x, y, state = self._inputs(x, y, state)
        masks = self._masks_for(self._workspace_for(*x.shape), train, masks)
        ws = self._forward(x, state, masks)
        loss = self.kernels.softmax_xent(ws.dlogits, ws.logits, y)
        grads.flat[...] = 0
        dstate = self._backward(grads, x, state, ws)
        return loss, self._final_state(ws), dstate

    def loss_and_grads(
        self,
        x,
        y,
        state: State | None = None,
        *,
        state_grad: bool = False,
        train: bool = False,
        masks=None,
    ):
        """Loss, gradients of every parameter (a ``Params`` like ``.params``) and final state.

        With ``state_grad=True`` also returns the gradient of the loss with respect to the
        initial state, as a State: ``(loss, grads, state, dstate)``.  Dropout (``train``,
        ``masks``): as in ``loss``.
        """
        grads = self.zeros_like_params()
        loss, final, dstate = self._loss_and_grads_into(grads, x, y, state, train, masks)
        return (loss, grads, final, dstate) if state_grad else (loss, grads, final)

    def train_step(
        self,
        x,
        y,
        optimizer,
        state: State | None = None,
        clip: float | None = 5.0,
        max_norm: float | None = None,
    ) -> tuple[float, State]:
        """One step of truncated BPTT: forward over x (T, B), softmax cross-entropy, backward,
        gradient clipping (by value ``clip``, and by global norm ``max_norm``), optimizer
        update, with dropout (``dropout`` > 0: new masks from ``generator``).  A non-finite loss
        raises FloatingPointError and leaves the model unchanged.

        With the C backend and one of the four built-in optimizers the whole step is one C call
        (``_kernels.TrainStep``, which releases the GIL once), computing the same bits as the
        kernel-by-kernel path that ``loss_and_grads``, ``clip_grads`` and ``optimizer.step``
        compose; other optimizers, the NumPy backend and inputs that need converting take that
        path."""
        if optimizer.model is not self:
            raise ValueError("optimizer: expected one created for this model, got one of another")
        clip = check_real("clip", clip, optional=True)
        max_norm = check_real("max_norm", max_norm, optional=True)
        fused_update = getattr(optimizer, "_fused_update", None)  # rnnfast.optim's optimizers
        update = None if fused_update is None else fused_update()
        result = None if update is None else self._one_call(x, y, state, clip, max_norm, update)
        if result is None:
            return self._train_step_by_kernels(x, y, optimizer, state, clip, max_norm)
        loss, final = result
        if not math.isfinite(loss):
            raise FloatingPointError(f"training loss is {loss}: the model was not updated")
        optimizer.step_count += 1
        return loss, final

    def _train_step_by_kernels(self, x, y, optimizer, state, clip, max_norm):
        """``train_step`` one kernel call at a time (``clip``, ``max_norm`` checked)."""
        loss, final, _ = self._loss_and_grads_into(self._grads, x, y, state, True, None)
        if not math.isfinite(loss):
            raise FloatingPointError(f"training loss is {loss}: the model was not updated")
        self._clip(self._grads, clip, max_norm)
        optimizer.step(self._grads)
        return loss, final

    def _one_call(self, x, y, state, clip, max_norm, update, grad_scale: float = 1.0):
        """Forward, loss, backward into ``_grads`` (times ``grad_scale``), clipping and
        ``update`` (an optimizer's ``_fused_update()``, or None: gradients only) as one C call
        with dropout as ``train_step`` draws it.  Returns (loss, final state), no update made
        when the loss is not finite; or None, having changed nothing, when the call cannot
        take these inputs as they are (the NumPy backend; ids or a state that the checks of
        ``_inputs`` must convert or reject)."""
        if self.backend != "c" or not isinstance(x, np.ndarray) or x.ndim != 2 or not x.size:
            return None
        if state is None:
            state = self.zero_state(x.shape[1])
        elif not isinstance(state, tuple) or len(state) != 2:
            return None
        draw = self._draw_masks if self.dropout else None
        result = self._train_step_for(*x.shape).step(
            x, y, state[0], state[1], draw, grad_scale, clip, max_norm, update
        )
        if result is None:
            return None
        loss, h, c = result
        return loss, State(h, c)

    def _train_step_for(self, T: int, B: int):
        """The one-call step over the workspace of (T, B), built at its first use."""
        ws = self._workspace_for(T, B)
        if ws.train_step is None or (self.dropout and ws.train_step.masks is None):
            outs, masks = ws.dropout_buffers() if self.dropout else (None, None)
            ws.train_step = _kernels.TrainStep(
                self.cell, self.params, self._grads, ws.hs, ws.cs, ws.tcs, ws.gates, ws.R,
                ws.dhs, ws.dA, ws.dR, ws.logits, ws.dlogits, outs, masks,
            )  # fmt: skip
        return ws.train_step

    def forward(self, x, state: State | None = None) -> tuple[np.ndarray, State]:
        """Feed x (T, B) character ids from ``state``; returns the logits (T, B, V) of every
        next character and the final state."""
        x = check_ids("x", x, self.vocab_size, ("T", "B"))
        state = self.check_state(state, x.shape[1])
        ws = self._forward(x, state, None)
        return ws.logits.reshape(*x.shape, -1).copy(), self._final_state(ws)

    def step(self, ids, state: State | None = None) -> tuple[np.ndarray, State]:
        """Feed one character per stream, ids (B,); returns the logits (B, V) of the next
        character and the new state."""
        ids = check_ids("ids", ids, self.vocab_size, ("B",))
        logits, state = self.forward(ids[None, :], state)
        return logits[0], state

    def sampler(
        self,
        first_ids,
        state: State | None = None,
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
        argmax: bool = False,
    ) -> Sampler:
        """A ``Sampler`` of S streams that start by feeding ``first_ids`` (S,) from ``state``
        (zeros when None; not modified), drawing by ``reference.draw``'s rule: the softmax of
        logits / temperature, optionally over only the ``top_k`` likeliest, or the likeliest
        with ``argmax``."""
        first_ids = check_ids("first_ids", first_ids, self.vocab_size, ("S",))
        state = self.check_state(state, first_ids.shape[0])
        return Sampler(
            self,
            first_ids,
            State(state.h.copy(), None if state.c is None else state.c.copy()),
            check_real("temperature", temperature),
            check_int("top_k", top_k, optional=True),
            bool(argmax),
        )

    def sample(
        self,
        length: int,
        prime: str = "",
        temperature: float = 1.0,
        top_k: int | None = None,
        argmax: bool = False,
        seed: int | None = None,
        num_samples: int | None = None,
        skip_unknown: bool = False,
    ):
        """Generate ``length`` characters after ``prime``; returns prime + generated text (a
        list of ``num_samples`` such strings when it is given).  See ``rnnfast.sampling``."""
        from .sampling import sample_text

        return sample_text(
            self,
            length,
            prime=prime,
            temperature=temperature,
            top_k=top_k,
            argmax=argmax,
            seed=seed,
            num_samples=num_samples,
            skip_unknown=skip_unknown,
        )


class Sampler:
    """Streams of text drawn from a model a chunk at a time, one kernel call per chunk
    (``CharLM.sampler`` makes one, checking its arguments once).

    ``draw(uniforms)`` feeds each stream's last character, draws the next from ``uniforms[t]``
    (N, S) of [0, 1), feeds it back, N times, and returns the drawn ids (N, S); the next call
    continues where this one stopped.  The model's weights are read at every call.
    """

    def __init__(self, model: CharLM, first_ids, state: State, temperature, top_k, argmax):
        self._model, self._next_ids, self._state = model, first_ids, state
        self._options = temperature, top_k, argmax

    def draw(self, uniforms) -> np.ndarray:
        """The ids (N, S) drawn with ``uniforms`` (N, S), continuing every stream."""
        S = self._next_ids.shape[0]
        uniforms = check_array("uniforms", uniforms, ("N", S), np.float64, finite=False)
        out = np.empty(uniforms.shape, INDEX_DTYPE)
        if len(out):
            model = self._model
            model.kernels.sample(
                out, uniforms, self._next_ids, *self._state, *model._layer_weights,
                model.params["W_y"], model.params["b_y"], *self._options, b_hn=model._b_hn,
            )  # fmt: skip
            self._next_ids = out[-1].copy()
        return out


class _Cell:
    """The seed's stateful object: ``y = cell.step(x)`` keeps the hidden state between calls.

    x is one input vector (I,) or a batch (B, I); y is the output (O,) or (B, O), or h itself
    when there is no output layer (``output_size=None``).  ``reset()`` forgets the state.
    """

    cell = ""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int | None = None,
        *,
        dtype=np.float32,
        backend: str = "c",
        seed: int | None = None,
    ):
        input_size = self.input_size = check_int("input_size", input_size)
        hidden_size = self.hidden_size = check_int("hidden_size", hidden_size)
        output_size = self.output_size = check_int("output_size", output_size, optional=True)
        self.dtype = check_float_dtype("dtype", dtype)
        self.kernels = kernels(backend)
        self.backend = backend
        G = GATES[self.cell] * hidden_size
        shapes = [("W_x", (input_size, G)), ("W_h", (hidden_size, G)), ("b", (G,))]
        if self.cell == "gru":
            shapes.append(("b_hn", (hidden_size,)))
        if output_size is not None:
            shapes += [("W_y", (hidden_size, output_size)), ("b_y", (output_size,))]
        flat = np.empty(sum(math.prod(s) for _, s in shapes), self.dtype)
        bound = 1.0 / math.sqrt(hidden_size)
        flat[...] = np.random.default_rng(seed).uniform(-bound, bound, flat.size)
        self.params = Params(flat, shapes)
        self.reset()

    def reset(self) -> None:
        """Forget the hidden state; the next step starts from zeros."""
        self.h = None
        self.c = None

    def step(self, x) -> np.ndarray:
        """Advance the state by one step of input x (I,) or (B, I); returns y (or h)."""
        vector = np.ndim(x) == 1
        shape = (self.input_size,) if vector else ("B", self.input_size)
        x = check_array("x", x, shape, self.dtype)
        X = x.reshape(1, -1, self.input_size)
        B = X.shape[1]
        if self.h is None:
            self.h = np.zeros((B, self.hidden_size), self.dtype)
            self.c = np.zeros((B, self.hidden_size), self.dtype)
        elif self.h.shape[0] != B:
            raise ValueError(
                f"x: expected a batch of {self.h.shape[0]} like the steps before "
                f"(or reset() first), got {B}"
            )
        hs = np.empty((1, B, self.hidden_size), self.dtype)
        p = self.params
        if self.cell == "lstm":
            cs, tcs = np.empty_like(hs), np.empty_like(hs)
            gates = np.empty((1, B, 4 * self.hidden_size), self.dtype)
            self.kernels.lstm_forward(
                hs, cs, tcs, gates, X, p["W_x"], p["W_h"], p["b"], self.h, self.c
            )
            self.c = cs[0]
        elif self.cell == "gru":
            gates, R = (np.empty((1, B, 3 * self.hidden_size), self.dtype) for _ in range(2))
            self.kernels.gru_forward(hs, gates, R, X, p["W_x"], p["W_h"], p["b"], p["b_hn"], self.h)
        else:
            self.kernels.rnn_forward(hs, X, p["W_x"], p["W_h"], p["b"], self.h)
        self.h = hs[0]
        if self.output_size is None:
            y = self.h.copy()
        else:
            y = np.empty((B, self.output_size), self.dtype)
            self.kernels.linear_forward(y, self.h, p["W_y"], p["b_y"])
        return y[0] if vector else y


class RNN(_Cell):
    """Vanilla RNN cell, stateful:  h = tanh(x W_x + h W_h + b);  y = h W_y + b_y."""

    cell = "rnn"


class LSTM(_Cell):
    """LSTM cell, stateful (gates i, f, g, o; see ``reference.lstm_forward``); y = h W_y + b_y."""

    cell = "lstm"


class GRU(_Cell):
    """GRU cell, stateful (gates r, z, n, PyTorch's; see ``reference.gru_forward``), with the
    parameters W_x (I, 3H), W_h (H, 3H), b (3H,), b_hn (H,); y = h W_y + b_y."""

    cell = "gru"


class Stack:
    """Cells in series: layer k + 1 reads layer k's output, ``y = stack.step(x)``."""

    def __init__(self, *cells: _Cell):
        if not cells:
            raise ValueError("Stack: expected at least one cell")
        for below, above in zip(cells, cells[1:], strict=False):
            width = below.output_size or below.hidden_size
            if above.input_size != width:
                raise ValueError(
                    f"Stack: a cell with input_size {above.input_size} cannot read "
                    f"the {width}-wide output of the cell below it"
                )
        self.cells = cells

    def step(self, x) -> np.ndarray:
        for cell in self.cells:
            x = cell.step(x)
        return x

    def reset(self) -> None:
        for cell in self.cells:
            cell.reset()
