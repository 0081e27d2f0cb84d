"""Optimizers over the model's flat parameter buffer; each update is one kernel call.

Each optimizer keeps its moments in buffers with the parameters' layout and calls the kernels of
its model's backend (``model.kernels``), so ``rnnfast.Adam`` serves the C and the NumPy model
alike.
"""

from __future__ import annotations

import math

import numpy as np

from .core import Params, Update
from .validation import check_array, check_int, check_real


class Hyperparameter:
    """A finite real hyperparameter in (low, high), or [low, high) with ``low_inclusive``,
    checked on every assignment: in the constructor, by ``load_state_dict`` and by a schedule
    that sets ``optimizer.lr``."""

    def __init__(self, low: float = 0.0, high: float = math.inf, low_inclusive: bool = False):
        self.low, self.high, self.low_inclusive = low, high, low_inclusive

    def __set_name__(self, owner, name: str) -> None:
        self.name = name

    def __get__(self, optimizer, owner=None):
        return self if optimizer is None else optimizer.__dict__[self.name]

    def __set__(self, optimizer, value) -> None:
        optimizer.__dict__[self.name] = self.check(value)

    def check(self, value) -> float:
        return check_real(
            self.name, value, low=self.low, high=self.high, low_inclusive=self.low_inclusive
        )


class Optimizer:
    """Base class: ``step(grads)`` applies one update; ``state_dict()`` / ``load_state_dict``
    capture everything needed to continue exactly (moments, step count, hyperparameters)."""

    moments: tuple[str, ...] = ()
    lr = Hyperparameter()

    def __init__(self, model, lr: float):
        self.model = model
        self.lr = lr
        self.step_count = 0
        self._moments = {name: np.zeros_like(model.flat_params) for name in self.moments}

    def _flat_grads(self, grads) -> np.ndarray:
        flat = grads.flat if isinstance(grads, Params) else grads
        params = self.model.flat_params
        return check_array("grads", flat, params.shape, params.dtype, finite=False)

    def step(self, grads) -> None:
        """Update the model's parameters in place from ``grads`` (a ``Params`` or a flat
        array like ``model.flat_params``)."""
        flat = self._flat_grads(grads)
        self._update(self.model.kernels, self.model.flat_params, flat)
        self.step_count += 1

    def _update(self, ops, param, grad):
        """Apply update number ``self.step_count + 1`` (counting from 1)."""
        raise NotImplementedError

    def fused_update(self) -> Update | None:
        """The next update as the fused training step applies it (an ``Update``, built
        positionally: this runs every step), or None where
        ``step`` must run as written: any class but the four built-in ones, which define
        ``_update``'s twin ``_update_args``.  ``count_fused_step`` then counts it as made."""
        return self._update_args() if type(self) in _BUILT_IN else None

    def count_fused_step(self) -> None:
        """Count an update that the fused training step made from ``fused_update()``."""
        self.step_count += 1

    def hyperparameters(self) -> dict:
        return {"lr": self.lr}

    def state_dict(self) -> dict:
        return {
            "name": type(self).__name__,
            "step_count": self.step_count,
            "hyperparameters": self.hyperparameters(),
            "moments": {k: v.copy() for k, v in self._moments.items()},
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue from ``state_dict()``'s output; on an error nothing is changed."""
        if state.get("name") != type(self).__name__:
            raise ValueError(
                f"optimizer state: expected one saved by {type(self).__name__}, "
                f"got one saved by {state.get('name')!r}"
            )
        moments, hyper = state["moments"], state["hyperparameters"]
        for kind, saved, expected in (
            ("moments", moments, self._moments),
            ("hyperparameters", hyper, self.hyperparameters()),
        ):
            if set(saved) != set(expected):
                raise ValueError(
                    f"optimizer state: expected {kind} {sorted(expected)}, got {sorted(saved)}"
                )
        for name, buffer in self._moments.items():
            label = f"optimizer state: moment {name!r}"
            check_array(label, moments[name], buffer.shape, finite=False)
        hyper = {name: getattr(type(self), name).check(value) for name, value in hyper.items()}
        step_count = check_int("step_count", state["step_count"], minimum=0)
        for name, buffer in self._moments.items():
            buffer[...] = moments[name]
        for name, value in hyper.items():
            setattr(self, name, value)
        self.step_count = step_count

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({inner})"


class SGD(Optimizer):
    """SGD with optional momentum: v = momentum v + g;  p -= lr v."""

    momentum = Hyperparameter(0.0, 1.0, low_inclusive=True)

    def __init__(self, model, lr: float = 0.1, momentum: float = 0.0):
        self.momentum = momentum
        self.moments = ("velocity",) if self.momentum else ()
        super().__init__(model, lr)

    def _update(self, ops, param, grad):
        velocity = self._moments.get("velocity")
        if velocity is None and self.momentum:
            raise ValueError(
                f"momentum: expected 0 (this SGD was created without momentum, so it keeps no "
                f"velocity), got {self.momentum}"
            )
        ops.sgd_update(param, grad, velocity, self.lr, self.momentum)

    def _update_args(self):
        velocity = self._moments.get("velocity")
        if self.momentum and velocity is None:
            return None  # step raises the error
        velocity = velocity if self.momentum else None
        return Update("sgd", self.lr, self.momentum, 0.0, 0.0, 0.0, 0.0, 0, velocity, None)

    def hyperparameters(self):
        return {"lr": self.lr, "momentum": self.momentum}


class Adagrad(Optimizer):
    """Adagrad as min-char-rnn writes it: mem += g^2;  p -= lr g / sqrt(mem + eps)."""

    moments = ("memory",)
    eps = Hyperparameter()

    def __init__(self, model, lr: float = 0.1, eps: float = 1e-8):
        self.eps = eps
        super().__init__(model, lr)

    def _update(self, ops, param, grad):
        ops.adagrad_update(param, grad, self._moments["memory"], self.lr, self.eps)

    def _update_args(self):
        memory = self._moments["memory"]
        return Update("adagrad", self.lr, 0.0, 0.0, 0.0, 0.0, self.eps, 0, memory, None)

    def hyperparameters(self):
        return {"lr": self.lr, "eps": self.eps}


class RMSProp(Optimizer):
    """RMSProp as char-rnn uses it:  ms = alpha ms + (1 - alpha) g^2;
    p -= lr g / (sqrt(ms) + eps)."""

    moments = ("mean_square",)
    alpha = Hyperparameter(0.0, 1.0, low_inclusive=True)
    eps = Hyperparameter()

    def __init__(self, model, lr: float = 2e-3, alpha: float = 0.95, eps: float = 1e-8):
        self.alpha = alpha
        self.eps = eps
        super().__init__(model, lr)

    def _update(self, ops, param, grad):
        ops.rmsprop_update(param, grad, self._moments["mean_square"], self.lr, self.alpha, self.eps)

    def _update_args(self):
        mean_square = self._moments["mean_square"]
        return Update("rmsprop", self.lr, 0.0, self.alpha, 0.0, 0.0, self.eps, 0, mean_square,
                      None)  # fmt: skip

    def hyperparameters(self):
        return {"lr": self.lr, "alpha": self.alpha, "eps": self.eps}


class Adam(Optimizer):
    """Adam (PyTorch's form, bias-corrected moments)."""

    moments = ("m", "v")
    beta1 = Hyperparameter(0.0, 1.0, low_inclusive=True)
    beta2 = Hyperparameter(0.0, 1.0, low_inclusive=True)
    eps = Hyperparameter()

    def __init__(
        self, model, lr: float = 2e-3, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8
    ):
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        super().__init__(model, lr)

    def _update(self, ops, param, grad):
        ops.adam_update(
            param,
            grad,
            self._moments["m"],
            self._moments["v"],
            self.lr,
            self.beta1,
            self.beta2,
            self.eps,
            self.step_count + 1,
        )

    def _update_args(self):
        m, v = self._moments["m"], self._moments["v"]
        return Update("adam", self.lr, 0.0, 0.0, self.beta1, self.beta2, self.eps,
                      self.step_count + 1, m, v)  # fmt: skip

    def hyperparameters(self):
        return {"lr": self.lr, "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}


OPTIMIZERS = {"sgd": SGD, "adagrad": Adagrad, "rmsprop": RMSProp, "adam": Adam}
_BUILT_IN = frozenset(OPTIMIZERS.values())  # the classes whose update the C step repeats
