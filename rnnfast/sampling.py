"""Sampling text from a CharLM: prime, then feed a character, draw the next, feed it back.

The draws take uniform numbers from NumPy's seeded ``Generator``, and the kernels turn them into
characters by the same rule (``reference.draw``), so both backends write the same text for the
same seed.  Text is produced in chunks, so a stream of any length runs in constant memory.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from .data import INDEX_DTYPE

CHUNK = 256


def _check_options(length, temperature, top_k, vocab_size):
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 0:
        raise ValueError(f"length: expected a non-negative integer, got {length!r}")
    if not (
        isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0
    ):
        raise ValueError(f"temperature: expected a positive finite number, got {temperature!r}")
    if top_k is not None and (
        isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1
    ):
        raise ValueError(f"top_k: expected a positive integer or None, got {top_k!r}")
    return None if top_k is None or top_k >= vocab_size else int(top_k)


def iter_sample(
    model,
    length: int,
    prime_ids=None,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    argmax: bool = False,
    seed: int | None = None,
    num_samples: int = 1,
) -> Iterator[np.ndarray]:
    """Yield the generated ids in chunks of shape (n, num_samples), ``length`` rows in all.

    ``prime_ids`` (P,) are fed first; without them the first character is drawn uniformly from
    the vocabulary (char-rnn's rule) and counts as the first generated one.
    """
    top_k = _check_options(length, temperature, top_k, model.vocab_size)
    if (
        isinstance(num_samples, bool)
        or not isinstance(num_samples, (int, np.integer))
        or num_samples < 1
    ):
        raise ValueError(f"num_samples: expected a positive integer, got {num_samples!r}")
    if not np.all(np.isfinite(model.flat_params)):
        raise ValueError("the model's parameters contain NaN or infinity; cannot sample")
    S = int(num_samples)
    rng = np.random.default_rng(seed)
    state = model.zero_state(S)
    if prime_ids is not None and len(prime_ids):
        prime_ids = model._check_ids("prime", prime_ids, 1)
        if len(prime_ids) > 1:
            context = np.repeat(prime_ids[:-1, None], S, axis=1)
            _, state = model.forward(context, state)
        next_ids = np.full(S, prime_ids[-1], INDEX_DTYPE)
    else:
        if length == 0:
            return
        next_ids = np.floor(rng.random(S) * model.vocab_size).astype(INDEX_DTYPE)
        yield next_ids[None, :].copy()
        length -= 1
    p = model.params
    weights = [
        [p[f"{w}.{layer}"] for layer in range(model.num_layers)] for w in ("W_x", "W_h", "b")
    ]
    h = np.ascontiguousarray(state.h)
    c = None if state.c is None else np.ascontiguousarray(state.c)
    while length > 0:
        n = min(CHUNK, length)
        out = np.empty((n, S), INDEX_DTYPE)
        uniforms = rng.random((n, S))
        model._ops.sample(
            out,
            uniforms,
            next_ids,
            h,
            c,
            *weights,
            p["W_y"],
            p["b_y"],
            float(temperature),
            top_k,
            bool(argmax),
        )
        next_ids = out[-1].copy()
        length -= n
        yield out


def sample_text(
    model,
    length: int,
    prime: str = "",
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    argmax: bool = False,
    seed: int | None = None,
    num_samples: int | None = None,
    skip_unknown: bool = False,
):
    """prime + ``length`` generated characters (a list of ``num_samples`` strings if given)."""
    if model.vocab is None:
        raise ValueError(
            "this model was built from a vocabulary size, not a Vocab: it has no "
            "characters to write; use rnnfast.sampling.iter_sample for ids"
        )
    if not isinstance(prime, str):
        raise TypeError(f"prime: expected str, got {type(prime).__name__}")
    prime_ids = model.vocab.encode(prime, skip_unknown=skip_unknown)
    streams = 1 if num_samples is None else num_samples
    chunks = list(
        iter_sample(
            model,
            length,
            prime_ids,
            temperature=temperature,
            top_k=top_k,
            argmax=argmax,
            seed=seed,
            num_samples=streams,
        )
    )
    ids = np.concatenate(chunks) if chunks else np.empty((0, streams), INDEX_DTYPE)
    prime_text = model.vocab.decode(prime_ids)
    texts = [prime_text + model.vocab.decode(ids[:, s]) for s in range(ids.shape[1])]
    return texts if num_samples is not None else texts[0]
