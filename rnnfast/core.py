"""What every module shares: the cells and their gate counts, the recurrent State, the flat
parameter buffer with its named views, the parameter shapes, and the optimizer update as the
fused training step takes it.  Imports NumPy only (and ``validation``, which imports NumPy only).

Dimension letters (DESIGN.md): ``T`` steps, ``B`` batch, ``V`` vocabulary, ``I`` a layer's input
size, ``H`` hidden size, ``L`` layers, ``G`` = gates x H.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import NamedTuple

import numpy as np

CELLS = ("lstm", "rnn", "gru")
# The gate blocks of a cell's W_x, W_h and b, in order: LSTM i, f, g, o; GRU r, z, n (PyTorch's)
GATE_NAMES = {"lstm": ("i", "f", "g", "o"), "rnn": ("h",), "gru": ("r", "z", "n")}
GATES = {cell: len(names) for cell, names in GATE_NAMES.items()}
CELL_NAMES = {"lstm": "an LSTM", "rnn": "an RNN", "gru": "a GRU"}  # for messages


class State(NamedTuple):
    """Recurrent state: h (and c for an LSTM; None for an RNN or a GRU), each (L, B, H)."""

    h: np.ndarray
    c: np.ndarray | None = None


def layer_shapes(cell: str, input_size: int, H: int, L: int) -> list[tuple[str, tuple[int, ...]]]:
    """Names and shapes of L stacked layers' parameters over an input of size I, in their order
    in the flat buffer: ``W_x.{l}`` (I, G) (H wide above layer 0), ``W_h.{l}`` (H, G),
    ``b.{l}`` (G,), and a GRU layer's recurrent bias of n, ``b_hn.{l}`` (H,), after its b."""
    G = GATES[cell] * H
    shapes = []
    for layer in range(L):
        width = input_size if layer == 0 else H
        shapes += [(f"W_x.{layer}", (width, G)), (f"W_h.{layer}", (H, G)), (f"b.{layer}", (G,))]
        if cell == "gru":
            shapes.append((f"b_hn.{layer}", (H,)))
    return shapes


def param_shapes(cell: str, V: int, H: int, L: int) -> list[tuple[str, tuple[int, ...]]]:
    """A CharLM's parameters: its layers over the V-wide one-hot input, then the output layer
    ``W_y`` (H, V), ``b_y`` (V,)."""
    return layer_shapes(cell, V, H, L) + [("W_y", (H, V)), ("b_y", (V,))]


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

    @classmethod
    def empty(cls, shapes: list[tuple[str, tuple[int, ...]]], dtype) -> Params:
        """A new, uninitialized buffer with the layout ``shapes``."""
        return cls(np.empty(sum(math.prod(s) for _, s in shapes), dtype), shapes)

    def __getitem__(self, name: str) -> np.ndarray:
        return self._views[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._views)

    def __len__(self) -> int:
        return len(self._views)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}: {v.shape}" for k, v in self._views.items())
        return f"Params({inner}; {self.flat.dtype})"


class LayerWeights(NamedTuple):
    """One recurrent layer's parameters (or their gradients): W_x (I, G), W_h (H, G), b (G,),
    and a GRU's b_hn (H,) (None for the other cells)."""

    W_x: np.ndarray
    W_h: np.ndarray
    b: np.ndarray
    b_hn: np.ndarray | None = None


def layer_weights(params: Params, num_layers: int) -> list[LayerWeights]:
    """Every layer's views of ``params`` (or of gradients in its layout)."""
    return [
        LayerWeights(params[f"W_x.{k}"], params[f"W_h.{k}"], params[f"b.{k}"],
                     params.get(f"b_hn.{k}"))
        for k in range(num_layers)
    ]  # fmt: skip


UPDATE_KINDS = ("sgd", "adagrad", "rmsprop", "adam")


class Update(NamedTuple):
    """One optimizer update as the fused training step applies it (C: ``struct rf_update`` and
    the call's moments): its kind (``UPDATE_KINDS``), the hyperparameters (those the kind does
    not use are 0), Adam's update count ``step`` (from 1), and the moments, flat buffers like
    the parameters: SGD's velocity (None without momentum), Adagrad's memory, RMSProp's
    mean_square, Adam's m and v (``moment2``: Adam only)."""

    kind: str
    lr: float
    momentum: float = 0.0
    alpha: float = 0.0
    beta1: float = 0.0
    beta2: float = 0.0
    eps: float = 0.0
    step: int = 0
    moment1: np.ndarray | None = None
    moment2: np.ndarray | None = None
