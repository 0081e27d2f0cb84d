"""Sampling text from a CharLM: prime, then feed a character, draw the next, feed it back.

The draws take uniform numbers from NumPy's seeded ``Generator``, and the kernels turn them into
characters by the same rule (``reference.draw``), so both backends write the same text for the
same seed.  Text is produced in chunks (one ``Sampler.draw`` each, one kernel call), so a stream
of any length runs in constant memory.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .validation import INDEX_DTYPE, check_finite, check_ids, check_int, check_real, check_top_p

CHUNK = 256


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
    top_p: float | None = None,
) -> Iterator[np.ndarray]:
    """Yield the generated ids in chunks of shape (n, num_samples), ``length`` rows in all.

    ``prime_ids`` (P,) are fed first; without them the first character is drawn uniformly from
    the vocabulary (char-rnn's rule) and counts as the first generated one.
    """
    length = check_int("length", length, minimum=0)
    temperature = check_real("temperature", temperature)
    top_k = check_int("top_k", top_k, optional=True)
    top_p = check_top_p(top_p)
    S = check_int("num_samples", num_samples)
    check_finite("the model's parameters", model.flat_params)
    rng = np.random.default_rng(seed)
    state = model.zero_state(S)
    if prime_ids is not None and len(prime_ids):
        prime_ids = check_ids("prime", prime_ids, model.vocab_size, ("P",))
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
    sampler = model.sampler(
        next_ids, state, temperature=temperature, top_k=top_k, argmax=argmax, top_p=top_p
    )
    while length > 0:
        n = min(CHUNK, length)
        length -= n
        yield sampler.draw(rng.random((n, S)))


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
    top_p: float | None = None,
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
            top_p=top_p,
        )
    )
    ids = np.concatenate(chunks) if chunks else np.empty((0, streams), INDEX_DTYPE)
    prime_text = model.vocab.decode(prime_ids)
    texts = [prime_text + model.vocab.decode(ids[:, s]) for s in range(ids.shape[1])]
    return texts if num_samples is not None else texts[0]
