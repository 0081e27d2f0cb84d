"""The benchmark recipe in JAX: char-level RNN/LSTM over an embedding (row gather, the same as a
one-hot product), softmax cross-entropy, BPTT, gradients clipped by value, Adam (PyTorch's
form) -- the whole training step one ``jax.jit``-compiled call over ``lax.scan``, and each
sampled chunk one compiled call (``lax.scan`` over the generated characters, drawing with
``jax.random.categorical``).

Parameters use rnnfast's names and layout (``W_x.{l}`` (I, G), ``W_h.{l}`` (H, G), ``b.{l}``
(G), ``W_y`` (H, V), ``b_y`` (V); gates i, f, g, o), so a CharLM's ``params`` load as they are.
JAX is an optional benchmark dependency (``pip install jax``); this module imports it, so import
it only where JAX is wanted.  For float64 call ``jax.config.update("jax_enable_x64", True)``
before building the arrays.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax import lax

ADAM = {"lr": 2e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}


def cell_step(cell: str, a, W_h, state):
    """One time step of one layer: a (B, G) is x_t W_x + b; state is (h,) or (h, c), each
    (B, H).  Returns the new state."""
    a = a + state[0] @ W_h
    if cell == "rnn":
        return (jnp.tanh(a),)
    i, f, g, o = jnp.split(a, 4, axis=-1)
    c = jax.nn.sigmoid(f) * state[1] + jax.nn.sigmoid(i) * jnp.tanh(g)
    return (jax.nn.sigmoid(o) * jnp.tanh(c), c)


def loss_fn(params, x, y, state, *, cell: str, layers: int):
    """Mean cross-entropy of predicting y from x, both (T, B) ids, from ``state`` ((h,) or
    (h, c), each (L, B, H)); returns (loss, final state)."""
    finals = []
    layer_out = None
    for layer in range(layers):
        W_x, W_h, b = params[f"W_x.{layer}"], params[f"W_h.{layer}"], params[f"b.{layer}"]
        A = W_x[x] + b if layer == 0 else layer_out @ W_x + b  # (T, B, G)

        def step(carry, a, W_h=W_h):
            carry = cell_step(cell, a, W_h, carry)
            return carry, carry[0]

        final, layer_out = lax.scan(step, tuple(s[layer] for s in state), A)
        finals.append(final)
    logits = layer_out @ params["W_y"] + params["b_y"]  # (T, B, V)
    logp = jax.nn.log_softmax(logits, axis=-1)
    loss = -jnp.mean(jnp.take_along_axis(logp, y[..., None], axis=-1))
    return loss, tuple(jnp.stack(parts) for parts in zip(*finals, strict=True))


def loss_and_grads(params, x, y, state, *, cell: str, layers: int):
    """(loss, final state), gradients: one compiled call."""
    fn = partial(loss_fn, cell=cell, layers=layers)
    return jax.jit(jax.value_and_grad(fn, has_aux=True))(params, x, y, state)


def _train_step(params, m, v, step, x, y, state, *, cell, layers, clip):
    (loss, final), grads = jax.value_and_grad(
        partial(loss_fn, cell=cell, layers=layers), has_aux=True
    )(params, x, y, state)
    grads = jax.tree.map(lambda g: jnp.clip(g, -clip, clip), grads)
    step = step + 1
    beta1, beta2 = ADAM["beta1"], ADAM["beta2"]
    m = jax.tree.map(lambda m, g: beta1 * m + (1 - beta1) * g, m, grads)
    v = jax.tree.map(lambda v, g: beta2 * v + (1 - beta2) * g * g, v, grads)
    # PyTorch's Adam: p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
    step_size = ADAM["lr"] / (1 - beta1**step)
    root_correction = jnp.sqrt(1 - beta2**step)

    def update(p, m, v):
        return p - step_size * m / (jnp.sqrt(v) / root_correction + ADAM["eps"])

    params = jax.tree.map(update, params, m, v)
    return params, m, v, step, loss, final


def _sample_chunk(params, seed, *, cell, layers, length):
    H = params["W_h.0"].shape[0]
    dtype = params["W_h.0"].dtype
    zero = jnp.zeros((layers, 1, H), dtype)
    state0 = (zero,) if cell == "rnn" else (zero, zero)

    def step(carry, key):
        state, ix = carry
        layer_in = None
        new = []
        for layer in range(layers):
            W_x, b = params[f"W_x.{layer}"], params[f"b.{layer}"]
            a = W_x[ix][None, :] + b if layer == 0 else layer_in @ W_x + b  # (1, G)
            s = cell_step(cell, a, params[f"W_h.{layer}"], tuple(p[layer] for p in state))
            new.append(s)
            layer_in = s[0]
        logits = (layer_in @ params["W_y"] + params["b_y"])[0]  # (V,), temperature 1
        ix = jax.random.categorical(key, logits).astype(jnp.int32)
        return (tuple(jnp.stack(parts) for parts in zip(*new, strict=True)), ix), ix

    keys = jax.random.split(jax.random.key(seed), length)
    _, ids = lax.scan(step, (state0, jnp.zeros((), jnp.int32)), keys)
    return ids


class JaxModel:
    """Training and sampling state of the recipe: ``train_step(x, y)`` carries the recurrent
    state between steps like the other benchmark implementations; ``sample(seed)`` draws
    ``sample_length`` ids from the zero state, starting from id 0."""

    def __init__(self, params: dict, cell: str, layers: int, B: int, sample_length: int,
                 clip: float = 5.0):  # fmt: skip
        self.params = {k: jnp.asarray(v) for k, v in params.items()}
        self.m = jax.tree.map(jnp.zeros_like, self.params)
        self.v = jax.tree.map(jnp.zeros_like, self.params)
        self.step = jnp.zeros((), self.params["W_y"].dtype)
        H = self.params["W_h.0"].shape[0]
        zero = jnp.zeros((layers, B, H), self.params["W_y"].dtype)
        self.state = (zero,) if cell == "rnn" else (zero, zero)
        statics = {"cell": cell, "layers": layers}
        self._train = jax.jit(
            partial(_train_step, clip=clip, **statics), donate_argnums=(0, 1, 2, 3)
        )
        self._sample = jax.jit(partial(_sample_chunk, length=sample_length, **statics))

    def train_step(self, x, y):
        """One step on x, y (T, B) ids (device arrays); returns the loss, not waited for."""
        self.params, self.m, self.v, self.step, loss, self.state = self._train(
            self.params, self.m, self.v, self.step, x, y, self.state
        )
        return loss

    def sample(self, seed: int):
        return self._sample(self.params, seed)

    def block(self):
        jax.block_until_ready((self.params, self.state))
