"""Optimizers over the model's flat parameter buffer; each update is one kernel call.

Each optimizer keeps its moments in buffers with the parameters' layout and uses the kernels of
its model's backend, so ``rnnfast.Adam`` serves the C and the NumPy model alike.
"""

from __future__ import annotations

import math

import numpy as np

from .model import Params


def _check_hyper(
    name: str, value, low: float = 0.0, high: float = math.inf, low_inclusive: bool = False
) -> float:
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool)
    ok = ok and math.isfinite(value) and (value >= low if low_inclusive else value > low)
    ok = ok and value < high
    if not ok:
        bound = f"{'[' if low_inclusive else '('}{low}, {high})"
        raise ValueError(f"{name}: expected a number in {bound}, got {value!r}")
    return float(value)


class Optimizer:
    """Base class: ``step(grads)`` applies one update; ``state_dict()`` / ``load_state_dict``
    capture everything needed to continue exactly (moments, step count, hyperparameters)."""

    moments: tuple[str, ...] = ()

    def __init__(self, model, lr: float):
        self.model = model
        self.lr = _check_hyper("lr", lr)
        self.step_count = 0
        self._moments = {name: np.zeros_like(model.flat_params) for name in self.moments}

    def _flat_grads(self, grads) -> np.ndarray:
        flat = grads.flat if isinstance(grads, Params) else grads
        if not isinstance(flat, np.ndarray):
            raise TypeError("grads: expected the Params returned by loss_and_grads or a flat array")
        expected = self.model.flat_params
        if flat.shape != expected.shape or flat.dtype != expected.dtype:
            raise ValueError(
                f"grads: expected {expected.size} {expected.dtype} values, "
                f"got shape {flat.shape} of {flat.dtype}"
            )
        return flat

    def step(self, grads) -> None:
        """Update the model's parameters in place from ``grads``."""
        self.step_count += 1
        self._update(self.model._ops, self.model.flat_params, self._flat_grads(grads))

    def _update(self, ops, param, grad):
        raise NotImplementedError

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
        if state.get("name") != type(self).__name__:
            raise ValueError(
                f"optimizer state: saved by {state.get('name')!r}, "
                f"loading into {type(self).__name__}"
            )
        moments = state["moments"]
        if set(moments) != set(self._moments):
            raise ValueError(
                f"optimizer state: expected moments {sorted(self._moments)}, got {sorted(moments)}"
            )
        for name, buffer in self._moments.items():
            saved = np.asarray(moments[name])
            if saved.shape != buffer.shape:
                raise ValueError(
                    f"optimizer state: moment {name!r} has shape {saved.shape}, "
                    f"expected {buffer.shape}"
                )
            buffer[...] = saved
        for name, value in state["hyperparameters"].items():
            setattr(self, name, value)
        self.step_count = int(state["step_count"])

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({inner})"


class SGD(Optimizer):
    """SGD with optional momentum: v = momentum v + g;  p -= lr v."""

    def __init__(self, model, lr: float = 0.1, momentum: float = 0.0):
        self.momentum = _check_hyper("momentum", momentum, 0.0, 1.0, low_inclusive=True)
        self.moments = ("velocity",) if self.momentum else ()
        super().__init__(model, lr)

    def _update(self, ops, param, grad):
        ops.sgd_update(param, grad, self._moments.get("velocity"), self.lr, self.momentum)

    def hyperparameters(self):
        return {"lr": self.lr, "momentum": self.momentum}


class Adagrad(Optimizer):
    """Adagrad as min-char-rnn writes it: mem += g^2;  p -= lr g / sqrt(mem + eps)."""

    moments = ("memory",)

    def __init__(self, model, lr: float = 0.1, eps: float = 1e-8):
        self.eps = _check_hyper("eps", eps)
        super().__init__(model, lr)

    def _update(self, ops, param, grad):
        ops.adagrad_update(param, grad, self._moments["memory"], self.lr, self.eps)

    def hyperparameters(self):
        return {"lr": self.lr, "eps": self.eps}


class RMSProp(Optimizer):
    """RMSProp as char-rnn uses it:  ms = alpha ms + (1 - alpha) g^2;
    p -= lr g / (sqrt(ms) + eps)."""

    moments = ("mean_square",)

    def __init__(self, model, lr: float = 2e-3, alpha: float = 0.95, eps: float = 1e-8):
        self.alpha = _check_hyper("alpha", alpha, 0.0, 1.0, low_inclusive=True)
        self.eps = _check_hyper("eps", eps)
        super().__init__(model, lr)

    def _update(self, ops, param, grad):
        ops.rmsprop_update(param, grad, self._moments["mean_square"], self.lr, self.alpha, self.eps)

    def hyperparameters(self):
        return {"lr": self.lr, "alpha": self.alpha, "eps": self.eps}


class Adam(Optimizer):
    """Adam (PyTorch's form, bias-corrected moments)."""

    moments = ("m", "v")

    def __init__(
        self, model, lr: float = 2e-3, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8
    ):
        self.beta1 = _check_hyper("beta1", beta1, 0.0, 1.0, low_inclusive=True)
        self.beta2 = _check_hyper("beta2", beta2, 0.0, 1.0, low_inclusive=True)
        self.eps = _check_hyper("eps", eps)
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
            self.step_count,
        )

    def hyperparameters(self):
        return {"lr": self.lr, "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}


OPTIMIZERS = {"sgd": SGD, "adagrad": Adagrad, "rmsprop": RMSProp, "adam": Adam}
