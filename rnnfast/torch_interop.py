"""Weights to and from PyTorch's ``nn.RNN`` (tanh) / ``nn.LSTM`` / ``nn.GRU`` + ``nn.Linear``
decoder.

PyTorch computes ``x W_ih^T + b_ih + h W_hh^T + b_hh`` with gates in the order i, f, g, o, the
order rnnfast uses, so the mapping is  W_x = weight_ih^T,  W_h = weight_hh^T,
b = bias_ih + bias_hh,  W_y = linear.weight^T,  b_y = linear.bias.  A GRU (gates r, z, n in both)
keeps the recurrent bias of n apart, inside r * (h W_hn + b_hn): b = bias_ih + (b_hr, b_hz, 0)
and b_hn = bias_hh's n block.  The model's input is a
one-hot character, so the torch module's input_size is the vocabulary size; a layer of
``rnnfast.layers`` reads dense inputs of any input_size.
torch is an optional dependency (``pip install "rnnfast[torch]"``), imported only here.
"""

from __future__ import annotations

import numpy as np


def _torch():
    try:
        import torch
    except ImportError:
        raise ImportError(
            'PyTorch interop needs torch: pip install "rnnfast[torch]" (the CPU build, '
            "torch==2.13.0)"
        ) from None
    return torch


def _cell(rnn) -> str:
    """The cell ("lstm", "rnn" or "gru") of a module rnnfast can hold, else a clear error."""
    nn = _torch().nn
    if isinstance(rnn, nn.LSTM):
        if rnn.proj_size:
            raise ValueError(f"nn.LSTM with proj_size={rnn.proj_size} is not supported")
        cell = "lstm"
    elif isinstance(rnn, nn.RNN):
        if rnn.nonlinearity != "tanh":
            raise ValueError(f"nn.RNN with nonlinearity={rnn.nonlinearity!r} is not supported; "
                             "rnnfast's RNN is tanh")  # fmt: skip
        cell = "rnn"
    elif isinstance(rnn, nn.GRU):
        cell = "gru"
    else:
        raise TypeError(f"rnn: expected nn.RNN (tanh), nn.LSTM or nn.GRU, got {type(rnn).__name__}")
    if rnn.bidirectional:
        raise ValueError("a bidirectional RNN is not supported (rnnfast's layers read forward)")
    return cell


def _dtype(tensor) -> np.dtype:
    return np.dtype(str(tensor.dtype).replace("torch.", ""))


def recurrent_config(module, torch_class: str) -> dict:
    """Check that ``module`` is an ``nn.{torch_class}`` an rnnfast layer can hold; returns the
    layer's arguments."""
    cell = _cell(module)
    if cell != torch_class.lower():
        raise TypeError(f"module: expected nn.{torch_class}, got {type(module).__name__}")
    return {"input_size": module.input_size, "hidden_size": module.hidden_size,
            "num_layers": module.num_layers, "dtype": _dtype(module.weight_ih_l0),
            "batch_first": bool(module.batch_first)}  # fmt: skip


def torch_config(rnn, linear) -> dict:
    """Check that (rnn, linear) is a model rnnfast can hold; returns CharLM's arguments."""
    nn = _torch().nn
    cell = _cell(rnn)
    if not isinstance(linear, nn.Linear):
        raise TypeError(f"linear: expected nn.Linear, got {type(linear).__name__}")
    if linear.in_features != rnn.hidden_size or linear.out_features != rnn.input_size:
        raise ValueError(
            f"linear: expected nn.Linear({rnn.hidden_size}, {rnn.input_size}) to map the hidden "
            f"state to the vocabulary, got nn.Linear({linear.in_features}, "
            f"{linear.out_features})"
        )
    dtype = _dtype(rnn.weight_ih_l0)
    if _dtype(linear.weight) != dtype:
        raise ValueError("rnn and linear have different dtypes")
    return {"cell": cell, "hidden_size": rnn.hidden_size, "num_layers": rnn.num_layers,
            "dtype": dtype}  # fmt: skip


def load_recurrent(params, rnn) -> None:
    """Copy the recurrent weights of ``rnn`` into ``params`` (W_x.l, W_h.l, b.l, and b_hn.l
    for a GRU)."""

    def array(tensor):
        return tensor.detach().cpu().numpy()

    gru = "b_hn.0" in params
    for layer in range(rnn.num_layers):
        params[f"W_x.{layer}"][...] = array(getattr(rnn, f"weight_ih_l{layer}")).T
        params[f"W_h.{layer}"][...] = array(getattr(rnn, f"weight_hh_l{layer}")).T
        b = params[f"b.{layer}"]
        b[...] = 0
        if gru:
            params[f"b_hn.{layer}"][...] = 0
        for name in ("bias_ih", "bias_hh"):
            bias = getattr(rnn, f"{name}_l{layer}", None)
            if bias is None:
                continue
            bias = array(bias)
            if gru and name == "bias_hh":  # b_hr, b_hz join b; b_hn stays inside r * (...)
                H = bias.shape[0] // 3
                b[: 2 * H] += bias[: 2 * H]
                params[f"b_hn.{layer}"][...] = bias[2 * H :]
            else:
                b += bias


def load_from_torch(model, rnn, linear) -> None:
    """Copy the torch weights into ``model.params`` (shapes checked by torch_config)."""
    p = model.params
    load_recurrent(p, rnn)
    p["W_y"][...] = linear.weight.detach().cpu().numpy().T
    p["b_y"][...] = 0 if linear.bias is None else linear.bias.detach().cpu().numpy()


def recurrent_to_torch(cell, params, input_size, hidden_size, num_layers, dtype,
                       batch_first=False):  # fmt: skip
    """A new nn.RNN / nn.LSTM / nn.GRU holding ``params``; the merged bias comes back as
    bias_ih, with bias_hh zero (for a GRU: but for its n block, b_hn)."""
    torch = _torch()
    cls = {"lstm": torch.nn.LSTM, "rnn": torch.nn.RNN, "gru": torch.nn.GRU}[cell]
    rnn = cls(input_size, hidden_size, num_layers=num_layers, batch_first=batch_first,
              dtype=getattr(torch, np.dtype(dtype).name))  # fmt: skip
    with torch.no_grad():
        for layer in range(num_layers):
            getattr(rnn, f"weight_ih_l{layer}").copy_(torch.from_numpy(params[f"W_x.{layer}"].T))
            getattr(rnn, f"weight_hh_l{layer}").copy_(torch.from_numpy(params[f"W_h.{layer}"].T))
            getattr(rnn, f"bias_ih_l{layer}").copy_(torch.from_numpy(params[f"b.{layer}"]))
            bias_hh = getattr(rnn, f"bias_hh_l{layer}")
            bias_hh.zero_()
            if cell == "gru":
                bias_hh[2 * hidden_size :].copy_(torch.from_numpy(params[f"b_hn.{layer}"]))
    return rnn


def to_torch(model):
    """A new (nn.RNN, nn.LSTM or nn.GRU, nn.Linear) pair with the model's weights; the merged
    bias comes back as bias_ih, with bias_hh zero (a GRU's b_hn excepted)."""
    torch = _torch()
    V, H, p = model.vocab_size, model.hidden_size, model.params
    rnn = recurrent_to_torch(model.cell, p, V, H, model.num_layers, model.dtype)
    linear = torch.nn.Linear(H, V, dtype=getattr(torch, model.dtype.name))
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(p["W_y"].T))
        linear.bias.copy_(torch.from_numpy(p["b_y"]))
    return rnn, linear
