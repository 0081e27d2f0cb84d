"""Sampling text from a CharLM: prime, then feed a character, draw the next, feed it back.

The draws take uniform numbers from NumPy's seeded ``Generator``, and the kernels turn them into
characters by the same rule (``reference.draw``), so both backends write the same text for the
same seed.  Text is produced in chunks (one ``Sampler.draw`` each, one kernel call), so a stream
of any length runs in constant memory.

Beam search (``beam_search``) keeps the likeliest continuations instead of drawing one: plain
Python over the model's batched ``step``, so it runs on either backend.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .core import State
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
    prime_ids = _encode_prime(model, prime, skip_unknown, "iter_sample")
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


def _encode_prime(model, prime, skip_unknown: bool, for_ids: str) -> np.ndarray:
    """The ids of ``prime``, for a model with a vocabulary (``for_ids``: the function that
    takes ids instead)."""
    if model.vocab is None:
        raise ValueError(
            "this model was built from a vocabulary size, not a Vocab: it has no "
            f"characters to write; use rnnfast.sampling.{for_ids} for ids"
        )
    if not isinstance(prime, str):
        raise TypeError(f"prime: expected str, got {type(prime).__name__}")
    return model.vocab.encode(prime, skip_unknown=skip_unknown)


def beam_search_ids(model, length: int, prime_ids=None, width: int = 4):
    """The ``width`` likeliest continuations of ``length`` ids after ``prime_ids`` (P,), by
    beam search: (ids (n, length), logprobs (n,)), best first, n = min(width, V^length).

    A continuation's logprob is the sum, in float64 and in time order, of the natural-log
    probabilities of its ids, each from the log-softmax (in float64) of the model's logits
    after the prime and the ids before it.  Without a prime the first id is uniform over the
    vocabulary (char-rnn's rule, as in ``iter_sample``), log(1 / V) each: the search starts
    from all V of them.  Every step feeds the beams to ``model.step`` as one batch, scores
    every beam's every next id and keeps the ``width`` best: highest logprob first, equal
    logprobs in lexicographic order of their ids (deterministic).  With width >= V^length the
    search is exhaustive.
    """
    length = check_int("length", length, minimum=0)
    width = check_int("width", width)
    check_finite("the model's parameters", model.flat_params)
    V = model.vocab_size
    state = None  # zeros
    if prime_ids is not None and len(prime_ids):
        prime_ids = check_ids("prime", prime_ids, V, ("P",))
        if len(prime_ids) > 1:
            _, state = model.forward(prime_ids[:-1, None])
        beams, scores, next_ids = np.empty((1, 0), INDEX_DTYPE), np.zeros(1), prime_ids[-1:]
    else:
        if length == 0:
            return np.empty((1, 0), INDEX_DTYPE), np.zeros(1)
        beams, scores = np.arange(V, dtype=INDEX_DTYPE)[:, None], np.full(V, -np.log(V))
        next_ids, length = beams[:, 0], length - 1
    # the beams, best first (by score, then lexicographically), and each one's lexicographic rank
    rank = np.arange(len(beams))
    for _ in range(length):
        logits, state = model.step(next_ids, state)
        z = logits.astype(np.float64)
        z -= z.max(axis=1, keepdims=True)
        z -= np.log(np.exp(z).sum(axis=1, keepdims=True))
        candidates = (scores[:, None] + z).ravel()  # beam b's id v at b * V + v
        order = np.lexsort((np.tile(np.arange(V), len(beams)), np.repeat(rank, V), -candidates))
        rows, ids = np.divmod(order[:width], V)
        beams = np.concatenate([beams[rows], ids[:, None]], axis=1)
        scores = candidates[order[:width]]
        parents = rank[rows]  # a beam + id sorts by the beam's rank, then by the id
        rank = np.empty(len(rows), np.intp)
        rank[np.lexsort((ids, parents))] = np.arange(len(rows))
        state = State(state.h[:, rows], None if state.c is None else state.c[:, rows])
        next_ids = ids
    return beams[:width], scores[:width]


def beam_search(
    model, length: int, prime: str = "", width: int = 4, *, skip_unknown: bool = False
) -> list[tuple[str, float]]:
    """``beam_search_ids`` in text: [(prime + continuation, logprob), ...], best first."""
    prime_ids = _encode_prime(model, prime, skip_unknown, "beam_search_ids")
    ids, logprobs = beam_search_ids(model, length, prime_ids, width)
    prime_text = model.vocab.decode(prime_ids)
    return [
        (prime_text + model.vocab.decode(row), float(lp))
        for row, lp in zip(ids, logprobs, strict=True)
    ]
