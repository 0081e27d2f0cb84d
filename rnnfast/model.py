"""The character-level language model and the seed's stateful cells, over either backend.

The model code below is written once; ``backend`` picks the kernels it calls: ``"c"`` (the
default) the C kernels of ``rnnfast._kernels``, ``"numpy"`` their twins in ``rnnfast.reference``.

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

from . import reference
from .data import INDEX_DTYPE, Vocab

try:
    from . import _kernels
except ImportError as err:  # a source checkout on sys.path ahead of the installed package
    raise ImportError(
        f"rnnfast's compiled extension is missing from {__file__.rsplit('/', 1)[0]}: this is "
        "a source tree that was not built. Run from another directory (or use the `rnnfast` "
        "command instead of `python -m rnnfast` in the checkout), or build it in place with "
        "`pip install -e .` or `python setup.py build_ext --inplace`."
    ) from err

CELLS = ("lstm", "rnn")
BACKENDS = ("c", "numpy")
DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
GATES = {"lstm": 4, "rnn": 1}

# The kernels the Python API calls; each exists with one signature in rnnfast.reference and
# in rnnfast._kernels.
KERNEL_NAMES = (
    "rnn_forward", "rnn_backward", "lstm_forward", "lstm_backward",
    "linear_forward", "linear_backward", "softmax_xent",
    "sgd_update", "adagrad_update", "rmsprop_update", "adam_update",
    "clip_by_value", "global_norm", "scale", "sample",
)  # fmt: skip


def kernels(backend: str) -> SimpleNamespace:
    """The kernel set of a backend: a namespace of functions with the reference's signatures."""
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    module = reference if backend == "numpy" else _kernels
    return SimpleNamespace(**{name: getattr(module, name) for name in KERNEL_NAMES})


class State(NamedTuple):
    """Recurrent state: h (and c for an LSTM, else None), each (L, B, H)."""

    h: np.ndarray
    c: np.ndarray | None = None


def param_shapes(cell: str, V: int, H: int, L: int) -> list[tuple[str, tuple[int, ...]]]:
    """Names and shapes of the parameters, in their order in the flat buffer."""
    G = GATES[cell] * H
    shapes = []
    for layer in range(L):
        I = V if layer == 0 else H  # noqa: E741
        shapes += [(f"W_x.{layer}", (I, G)), (f"W_h.{layer}", (H, G)), (f"b.{layer}", (G,))]
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
        self.H = [np.empty((T, B, H), dtype) for _ in range(L)]
        if cell == "lstm":
            self.C = [np.empty((T, B, H), dtype) for _ in range(L)]
            self.tanhC = [np.empty((T, B, H), dtype) for _ in range(L)]
            self.gates = [np.empty((T, B, G), dtype) for _ in range(L)]
        self.logits = np.empty((T * B, V), dtype)
        self.dlogits = np.empty((T * B, V), dtype)
        self.dH = [np.empty((T, B, H), dtype) for _ in range(L)]
        self.dA = np.empty((T, B, G), dtype)


class CharLM:
    """A character-level language model: an embedding by row gather, ``num_layers`` stacked
    RNN or LSTM layers, a linear output layer and a softmax over the vocabulary.

    Parameters
    ----------
    vocab : Vocab or int
        The vocabulary, or just its size V (then sampling needs ids, not text).
    cell : {"lstm", "rnn"}
    hidden_size : int
    num_layers : int
    dtype : numpy dtype, float32 (default) or float64
    backend : {"c", "numpy"}, default ``CharLM.default_backend``
    seed : int or None
        Seeds the initial weights: uniform in [-1/sqrt(H), 1/sqrt(H)], as PyTorch does.
    """

    default_backend = "c"

    def __init__(
        self,
        vocab: Vocab | int,
        cell: str = "lstm",
        hidden_size: int = 128,
        num_layers: int = 2,
        dtype=np.float32,
        backend: str | None = None,
        seed: int | None = None,
    ):
        if isinstance(vocab, Vocab):
            self.vocab, V = vocab, len(vocab)
        elif isinstance(vocab, (int, np.integer)) and not isinstance(vocab, bool):
            self.vocab, V = None, int(vocab)
        else:
            raise TypeError(f"vocab: expected a Vocab or an int, got {type(vocab).__name__}")
        if V < 1:
            raise ValueError(f"vocab: the vocabulary size must be at least 1, got {V}")
        if cell not in CELLS:
            raise ValueError(f"cell: expected one of {CELLS}, got {cell!r}")
        for name, value in (("hidden_size", hidden_size), ("num_layers", num_layers)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name}: expected a positive integer, got {value!r}")
        dtype = np.dtype(dtype)
        if dtype not in DTYPES:
            raise ValueError(f"dtype: expected float32 or float64, got {dtype}")
        self.backend = self.default_backend if backend is None else backend
        self._ops = kernels(self.backend)
        self.cell, self.vocab_size = cell, V
        self.hidden_size, self.num_layers, self.dtype = int(hidden_size), int(num_layers), dtype
        self._shapes = param_shapes(cell, V, self.hidden_size, self.num_layers)
        self.flat_params = np.empty(sum(math.prod(s) for _, s in self._shapes), dtype)
        self.params = Params(self.flat_params, self._shapes)
        bound = 1.0 / math.sqrt(self.hidden_size)
        self.flat_params[...] = np.random.default_rng(seed).uniform(
            -bound, bound, self.flat_params.size
        )
        self._grads = self.zeros_like_params()
        self._workspace = None

    def __repr__(self) -> str:
        return (
            f"CharLM(vocab_size={self.vocab_size}, cell={self.cell!r}, "
            f"hidden_size={self.hidden_size}, num_layers={self.num_layers}, "
            f"dtype={self.dtype.name}, backend={self.backend!r})"
        )

    @classmethod
    def from_torch(cls, rnn, linear, vocab: Vocab | None = None, *, backend: str | None = None):
        """A model holding the weights of a PyTorch ``nn.RNN`` (tanh) or ``nn.LSTM`` (any
        num_layers, one-hot input of the vocabulary's size) and its ``nn.Linear`` decoder."""
        from .torch_interop import load_from_torch, torch_config

        config = torch_config(rnn, linear)
        if vocab is not None and len(vocab) != rnn.input_size:
            raise ValueError(
                f"vocab: {len(vocab)} characters, but the rnn's input_size is {rnn.input_size}"
            )
        model = cls(rnn.input_size if vocab is None else vocab, backend=backend, **config)
        load_from_torch(model, rnn, linear)
        return model

    def to_torch(self):
        """A new ``(nn.RNN or nn.LSTM, nn.Linear)`` pair with this model's weights."""
        from .torch_interop import to_torch

        return to_torch(self)

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

    # -- checking inputs -------------------------------------------------------------------

    def _check_ids(self, name: str, ids, ndim: int) -> np.ndarray:
        ids = np.asarray(ids)
        if ids.ndim != ndim:
            expected = "(T, B)" if ndim == 2 else "(B,)"
            raise ValueError(f"{name}: expected character ids of shape {expected}, got {ids.shape}")
        if ids.size == 0:
            raise ValueError(f"{name}: expected at least one character id, got shape {ids.shape}")
        if not np.issubdtype(ids.dtype, np.integer):
            raise TypeError(f"{name}: expected integer character ids, got dtype {ids.dtype}")
        if ids.min() < 0 or ids.max() >= self.vocab_size:
            bad = ids[(ids < 0) | (ids >= self.vocab_size)].ravel()[0]
            raise ValueError(f"{name}: character id {int(bad)} out of range [0, {self.vocab_size})")
        return np.ascontiguousarray(ids, dtype=INDEX_DTYPE)

    def _check_state(self, state, batch_size: int) -> State:
        if state is None:
            return self.zero_state(batch_size)
        if not isinstance(state, tuple) or len(state) != 2:
            raise TypeError("state: expected a State (h, c) as returned by zero_state or loss")
        shape = (self.num_layers, batch_size, self.hidden_size)
        parts = {"h": state[0], "c": state[1]}
        if self.cell == "rnn" and parts["c"] is not None:
            raise ValueError("state.c: an RNN has no cell state; expected None")
        checked = {}
        for name, a in parts.items():
            if name == "c" and self.cell == "rnn":
                checked[name] = None
                continue
            a = np.asarray(a)
            if a.shape != shape:
                raise ValueError(f"state.{name}: expected shape {shape}, got {a.shape}")
            if a.dtype != self.dtype:
                raise TypeError(f"state.{name}: expected dtype {self.dtype}, got {a.dtype}")
            if not np.all(np.isfinite(a)):
                raise ValueError(f"state.{name}: contains NaN or infinity")
            checked[name] = np.ascontiguousarray(a)
        return State(checked["h"], checked["c"])

    def _workspace_for(self, T: int, B: int) -> _Workspace:
        if self._workspace is None or self._workspace.shape != (T, B):
            self._workspace = _Workspace(
                self.cell, T, B, self.vocab_size, self.hidden_size, self.num_layers, self.dtype
            )
        return self._workspace

    # -- forward and backward --------------------------------------------------------------

    def _forward(self, x: np.ndarray, state: State) -> _Workspace:
        """Run every layer and the output layer over x (T, B); logits land in the workspace."""
        T, B = x.shape
        ws = self._workspace_for(T, B)
        p, ops = self.params, self._ops
        layer_input = x
        for layer in range(self.num_layers):
            weights = p[f"W_x.{layer}"], p[f"W_h.{layer}"], p[f"b.{layer}"]
            if self.cell == "lstm":
                ops.lstm_forward(
                    ws.H[layer], ws.C[layer], ws.tanhC[layer], ws.gates[layer],
                    layer_input, *weights, state.h[layer], state.c[layer],
                )  # fmt: skip
            else:
                ops.rnn_forward(ws.H[layer], layer_input, *weights, state.h[layer])
            layer_input = ws.H[layer]
        ops.linear_forward(ws.logits, ws.H[-1].reshape(T * B, -1), p["W_y"], p["b_y"])
        return ws

    def _final_state(self, ws: _Workspace) -> State:
        h = np.stack([H[-1] for H in ws.H])
        c = np.stack([C[-1] for C in ws.C]) if self.cell == "lstm" else None
        return State(h, c)

    def _backward(self, grads: Params, x: np.ndarray, state: State, ws: _Workspace) -> State:
        """Accumulate into ``grads`` the gradient of the loss whose dlogits is in ``ws``;
        returns the gradient of the initial state."""
        T, B = x.shape
        p, ops = self.params, self._ops
        dstate = self.zero_state(B)
        H_top = ws.H[-1].reshape(T * B, -1)
        ops.linear_backward(
            ws.dH[-1].reshape(T * B, -1), grads["W_y"], grads["b_y"], ws.dlogits, H_top, p["W_y"]
        )
        for layer in reversed(range(self.num_layers)):
            dX = ws.dH[layer - 1] if layer > 0 else None
            layer_input = ws.H[layer - 1] if layer > 0 else x
            dweights = grads[f"W_x.{layer}"], grads[f"W_h.{layer}"], grads[f"b.{layer}"]
            if self.cell == "lstm":
                ops.lstm_backward(
                    dX, *dweights, dstate.h[layer], dstate.c[layer], ws.dA, ws.dH[layer],
                    layer_input, ws.H[layer], ws.C[layer], ws.tanhC[layer], ws.gates[layer],
                    p[f"W_x.{layer}"], p[f"W_h.{layer}"], state.h[layer], state.c[layer],
                )  # fmt: skip
            else:
                ops.rnn_backward(
                    dX, *dweights, dstate.h[layer], ws.dA, ws.dH[layer], layer_input,
                    ws.H[layer], p[f"W_x.{layer}"], p[f"W_h.{layer}"], state.h[layer],
                )  # fmt: skip
        return dstate

    def _inputs(self, x, y, state):
        x = self._check_ids("x", x, 2)
        y = self._check_ids("y", y, 2)
        if x.shape != y.shape:
            raise ValueError(f"y: expected the shape of x {x.shape}, got {y.shape}")
        return x, y.reshape(-1), self._check_state(state, x.shape[1])

    def loss(self, x, y, state: State | None = None) -> tuple[float, State]:
        """Mean cross-entropy (nats per character) of predicting y from x, both (T, B) ids,
        starting from ``state`` (zeros when None); returns the loss and the final state."""
        x, y, state = self._inputs(x, y, state)
        ws = self._forward(x, state)
        loss = self._ops.softmax_xent(None, ws.logits, y)
        return loss, self._final_state(ws)

    def _loss_and_grads_into(self, grads: Params, x, y, state):
        x, y, state = self._inputs(x, y, state)
        ws = self._forward(x, state)
        loss = self._ops.softmax_xent(ws.dlogits, ws.logits, y)
        grads.flat[...] = 0
        dstate = self._backward(grads, x, state, ws)
        return loss, self._final_state(ws), dstate

    def loss_and_grads(self, x, y, state: State | None = None, *, state_grad: bool = False):
        """Loss, gradients of every parameter (a ``Params`` like ``.params``) and final state.

        With ``state_grad=True`` also returns the gradient of the loss with respect to the
        initial state, as a State: ``(loss, grads, state, dstate)``.
        """
        grads = self.zeros_like_params()
        loss, final, dstate = self._loss_and_grads_into(grads, x, y, state)
        return (loss, grads, final, dstate) if state_grad else (loss, grads, final)

    def clip_grads(
        self, grads: Params, *, value: float | None = None, max_norm: float | None = None
    ) -> float:
        """Clip in place: each element to [-value, value], and/or the whole gradient to a global
        norm of at most ``max_norm`` (PyTorch's rule).  Returns the norm before norm clipping
        (NaN when not computed)."""
        norm = math.nan
        if value is not None:
            if not value > 0:
                raise ValueError(f"clip value: expected a positive number, got {value!r}")
            self._ops.clip_by_value(grads.flat, value)
        if max_norm is not None:
            if not max_norm > 0:
                raise ValueError(f"max_norm: expected a positive number, got {max_norm!r}")
            norm = self._ops.global_norm(grads.flat)
            if norm > max_norm:
                self._ops.scale(grads.flat, max_norm / (norm + 1e-6))
        return norm

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
        update.  A non-finite loss raises FloatingPointError and leaves the model unchanged."""
        if optimizer.model is not self:
            raise ValueError("optimizer: it was created for a different model")
        loss, final, _ = self._loss_and_grads_into(self._grads, x, y, state)
        if not math.isfinite(loss):
            raise FloatingPointError(f"training loss is {loss}: the model was not updated")
        self.clip_grads(self._grads, value=clip, max_norm=max_norm)
        optimizer.step(self._grads)
        return loss, final

    def forward(self, x, state: State | None = None) -> tuple[np.ndarray, State]:
        """Feed x (T, B) character ids from ``state``; returns the logits (T, B, V) of every
        next character and the final state."""
        x = self._check_ids("x", x, 2)
        state = self._check_state(state, x.shape[1])
        ws = self._forward(x, state)
        return ws.logits.reshape(*x.shape, -1).copy(), self._final_state(ws)

    def step(self, ids, state: State | None = None) -> tuple[np.ndarray, State]:
        """Feed one character per stream, ids (B,); returns the logits (B, V) of the next
        character and the new state."""
        ids = self._check_ids("ids", ids, 1)
        logits, state = self.forward(ids[None, :], state)
        return logits[0], state

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


class _Cell:
    """The seed's stateful object: ``y = cell.step(x)`` keeps the hidden state between calls.

    x is one input vector (I,) or a batch (B, I); y is the output (O,) or (B, O), or h itself
    when there is no output layer (``output_size=None``).  ``reset()`` forgets the state.
    """

    cell = ""
    default_backend = "c"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int | None = None,
        *,
        dtype=np.float32,
        backend: str | None = None,
        seed: int | None = None,
    ):
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name}: expected a positive integer, got {value!r}")
        if output_size is not None and (
            not isinstance(output_size, (int, np.integer)) or output_size < 1
        ):
            raise ValueError(
                f"output_size: expected a positive integer or None, got {output_size!r}"
            )
        self.dtype = np.dtype(dtype)
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype: expected float32 or float64, got {self.dtype}")
        self.backend = self.default_backend if backend is None else backend
        self._ops = kernels(self.backend)
        self.input_size, self.hidden_size, self.output_size = input_size, hidden_size, output_size
        G = GATES[self.cell] * hidden_size
        shapes = [("W_x", (input_size, G)), ("W_h", (hidden_size, G)), ("b", (G,))]
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
        x = np.asarray(x)
        if x.ndim not in (1, 2) or x.shape[-1] != self.input_size:
            raise ValueError(
                f"x: expected shape ({self.input_size},) or (B, {self.input_size}), got {x.shape}"
            )
        if x.dtype != self.dtype:
            raise TypeError(f"x: expected dtype {self.dtype}, got {x.dtype}")
        if not np.all(np.isfinite(x)):
            raise ValueError("x: contains NaN or infinity")
        X = np.ascontiguousarray(x.reshape(1, -1, self.input_size))
        B = X.shape[1]
        if self.h is None:
            self.h = np.zeros((B, self.hidden_size), self.dtype)
            self.c = np.zeros((B, self.hidden_size), self.dtype)
        elif self.h.shape[0] != B:
            raise ValueError(
                f"x: batch of {B} after steps with a batch of {self.h.shape[0]}; "
                "call reset() to change the batch size"
            )
        H = np.empty((1, B, self.hidden_size), self.dtype)
        p = self.params
        if self.cell == "lstm":
            C, tanhC = np.empty_like(H), np.empty_like(H)
            gates = np.empty((1, B, 4 * self.hidden_size), self.dtype)
            self._ops.lstm_forward(
                H, C, tanhC, gates, X, p["W_x"], p["W_h"], p["b"], self.h, self.c
            )
            self.c = C[0]
        else:
            self._ops.rnn_forward(H, X, p["W_x"], p["W_h"], p["b"], self.h)
        self.h = H[0]
        if self.output_size is None:
            y = self.h.copy()
        else:
            y = np.empty((B, self.output_size), self.dtype)
            self._ops.linear_forward(y, self.h, p["W_y"], p["b_y"])
        return y[0] if x.ndim == 1 else y


class RNN(_Cell):
    """Vanilla RNN cell, stateful:  h = tanh(x W_x + h W_h + b);  y = h W_y + b_y."""

    cell = "rnn"


class LSTM(_Cell):
    """LSTM cell, stateful (gates i, f, g, o; see ``reference.lstm_forward``); y = h W_y + b_y."""

    cell = "lstm"


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
