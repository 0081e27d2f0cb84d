"""The NumPy reference: rnnfast's API over plain NumPy, the model the C backend is checked against
and a drop-in for a NumPy model.

Every C kernel's twin, with its name and signature (``rnnfast.kernels``, and the fused step and
sampler of ``rnnfast.engine``), and the public classes with ``backend="numpy"`` as their default:
``CharLM``, ``RNN``, ``LSTM``, ``GRU`` (the optimizers, ``State``, ``Stack`` and ``Vocab`` take no
backend and are rnnfast's own).  Nothing here needs the C extension.
"""

from __future__ import annotations

import numpy as np

from . import model as _model
from .core import State as State
from .data import Vocab as Vocab
from .engine import TrainStep as TrainStep
from .engine import sample as sample
from .kernels import (  # noqa: F401  (the kernels are this module's API)
    adagrad_update,
    adam_update,
    clip_by_value,
    draw,
    global_norm,
    gru_backward,
    gru_forward,
    linear_backward,
    linear_forward,
    lstm_backward,
    lstm_forward,
    rmsprop_update,
    rnn_backward,
    rnn_forward,
    scale,
    sgd_update,
    softmax_xent,
)
from .model import Stack as Stack
from .optim import SGD as SGD
from .optim import Adagrad as Adagrad
from .optim import Adam as Adam
from .optim import RMSProp as RMSProp


class CharLM(_model.CharLM):
    """``rnnfast.CharLM`` over the NumPy kernels (``backend="numpy"``)."""

    def __init__(
        self,
        vocab: Vocab | int,
        cell: str = "lstm",
        hidden_size: int = 128,
        num_layers: int = 2,
        dtype=np.float32,
        backend: str = "numpy",
        seed: int | None = None,
        dropout: float = 0.0,
    ):
        super().__init__(vocab, cell, hidden_size, num_layers, dtype, backend, seed, dropout)


class _NumpyCell:
    """The constructor of ``RNN``, ``LSTM`` and ``GRU`` below: rnnfast's, with
    ``backend="numpy"``."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int | None = None,
        *,
        dtype=np.float32,
        backend: str = "numpy",
        seed: int | None = None,
    ):
        super().__init__(
            input_size, hidden_size, output_size, dtype=dtype, backend=backend, seed=seed
        )


class RNN(_NumpyCell, _model.RNN):
    """``rnnfast.RNN`` over the NumPy kernels (``backend="numpy"``)."""


class LSTM(_NumpyCell, _model.LSTM):
    """``rnnfast.LSTM`` over the NumPy kernels (``backend="numpy"``)."""


class GRU(_NumpyCell, _model.GRU):
    """``rnnfast.GRU`` over the NumPy kernels (``backend="numpy"``)."""
