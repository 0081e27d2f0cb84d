"""Weights to and from PyTorch's ``nn.RNN`` (tanh) / ``nn.LSTM`` + ``nn.Linear`` decoder.

PyTorch computes ``x W_ih^T + b_ih + h W_hh^T + b_hh`` with gates in the order i, f, g, o, the
order rnnfast uses, so the mapping is  W_x = weight_ih^T,  W_h = weight_hh^T,
b = bias_ih + bias_hh,  W_y = linear.weight^T,  b_y = linear.bias.  The model's input is a
one-hot character, so the torch module's input_size is the vocabulary size.
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


def torch_config(rnn, linear) -> dict:
    """Check that (rnn, linear) is a model rnnfast can hold; returns CharLM's arguments."""
    torch = _torch()
    nn = torch.nn
    if isinstance(rnn, nn.LSTM):
        cell = "lstm"
        if rnn.proj_size:
            raise ValueError(f"nn.LSTM with proj_size={rnn.proj_size} is not supported")
    elif isinstance(rnn, nn.RNN):
        cell = "rnn"
        if rnn.nonlinearity != "tanh":
            raise ValueError(f"nn.RNN with nonlinearity={rnn.nonlinearity!r} is not supported; "
                             "rnnfast's RNN is tanh")  # fmt: skip
    else:
        raise TypeError(f"rnn: expected nn.RNN (tanh) or nn.LSTM, got {type(rnn).__name__}")
    if rnn.bidirectional:
        raise ValueError("a bidirectional RNN is not supported (a language model reads forward)")
    if not isinstance(linear, nn.Linear):
        raise TypeError(f"linear: expected nn.Linear, got {type(linear).__name__}")
    if linear.in_features != rnn.hidden_size or linear.out_features != rnn.input_size:
        raise ValueError(
            f"linear: expected nn.Linear({rnn.hidden_size}, {rnn.input_size}) to map the hidden "
            f"state to the vocabulary, got nn.Linear({linear.in_features}, "
            f"{linear.out_features})"
        )
    dtype = np.dtype(str(rnn.weight_ih_l0.dtype).replace("torch.", ""))
    if np.dtype(str(linear.weight.dtype).replace("torch.", "")) != dtype:
        raise ValueError("rnn and linear have different dtypes")
    return {"cell": cell, "hidden_size": rnn.hidden_size, "num_layers": rnn.num_layers,
            "dtype": dtype}  # fmt: skip


def load_from_torch(model, rnn, linear) -> None:
    """Copy the torch weights into ``model.params`` (shapes checked by torch_config)."""
    p = model.params

    def array(tensor):
        return tensor.detach().cpu().numpy()

    for layer in range(model.num_layers):
        p[f"W_x.{layer}"][...] = array(getattr(rnn, f"weight_ih_l{layer}")).T
        p[f"W_h.{layer}"][...] = array(getattr(rnn, f"weight_hh_l{layer}")).T
        b = p[f"b.{layer}"]
        b[...] = 0
        for name in ("bias_ih", "bias_hh"):
            bias = getattr(rnn, f"{name}_l{layer}", None)
            if bias is not None:
                b += array(bias)
    p["W_y"][...] = array(linear.weight).T
    p["b_y"][...] = 0 if linear.bias is None else array(linear.bias)


def to_torch(model):
    """A new (nn.RNN or nn.LSTM, nn.Linear) pair with the model's weights; the merged bias
    comes back as bias_ih, with bias_hh zero."""
    torch = _torch()
    dtype = getattr(torch, model.dtype.name)
    cls = torch.nn.LSTM if model.cell == "lstm" else torch.nn.RNN
    V, H, p = model.vocab_size, model.hidden_size, model.params
    rnn = cls(V, H, num_layers=model.num_layers, dtype=dtype)
    linear = torch.nn.Linear(H, V, dtype=dtype)
    with torch.no_grad():
        for layer in range(model.num_layers):
            getattr(rnn, f"weight_ih_l{layer}").copy_(torch.from_numpy(p[f"W_x.{layer}"].T))
            getattr(rnn, f"weight_hh_l{layer}").copy_(torch.from_numpy(p[f"W_h.{layer}"].T))
            getattr(rnn, f"bias_ih_l{layer}").copy_(torch.from_numpy(p[f"b.{layer}"]))
            getattr(rnn, f"bias_hh_l{layer}").zero_()
        linear.weight.copy_(torch.from_numpy(p["W_y"].T))
        linear.bias.copy_(torch.from_numpy(p["b_y"]))
    return rnn, linear
