"""Streams drawn ``apart``: each stream of a multi-stream sampler draws the ids and reaches the
state, bit for bit, of the same stream drawn alone (what a server needs for a seeded request to
return ``model.sample``'s text), on both backends, with and without the packed kernel."""

import numpy as np
import pytest

import rnnfast
from rnnfast import _kernels

V, L, S, N = 13, 2, 9, 40  # 9 streams: a block of 8 and a block of one on BLAS's path


def streams(model, rng, apart):
    """Each stream's (ids, h, c) drawn together (S streams) and, for comparison, alone."""
    first = rng.integers(0, V, S)
    state = model.zero_state(S)
    state.h[...] = rng.uniform(-0.5, 0.5, state.h.shape)
    uniforms = rng.random((N, S))
    together = model.sampler(first, state, temperature=0.9, apart=apart)
    ids = together.draw(uniforms)
    alone = []
    for s in range(S):
        one = model.sampler(first[s : s + 1], rnnfast.State(*(
            None if a is None else a[:, s : s + 1] for a in state)), temperature=0.9)  # fmt: skip
        alone.append((one.draw(uniforms[:, s : s + 1])[:, 0], one._state))
    return ids, together._state, alone


def differing(ids, state, alone):
    """The streams whose ids or state differ in any bit from the stream drawn alone."""
    wrong = []
    for s, (lone_ids, lone_state) in enumerate(alone):
        parts = [(ids[:, s], lone_ids), (state.h[:, s], lone_state.h[:, 0])]
        if state.c is not None:
            parts.append((state.c[:, s], lone_state.c[:, 0]))
        if not all(np.array_equal(a, b) for a, b in parts):
            wrong.append(s)
    return wrong


@pytest.mark.parametrize("packed", ["auto", True, False], ids=["auto", "packed", "blas"])
@pytest.mark.parametrize("backend", ["c", "numpy"])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("H", [16, 128])
def test_streams_drawn_apart_are_the_streams_drawn_alone(H, cell, backend, packed, dtype):
    if backend == "numpy" and packed != "auto":
        pytest.skip("the packed kernel is the C backend's")
    previous = _kernels._paths()["packed"]
    _kernels._set_paths(packed=packed)
    try:
        model = rnnfast.CharLM(V, cell=cell, hidden_size=H, num_layers=L, dtype=dtype,
                               backend=backend, seed=1)  # fmt: skip
        result = streams(model, np.random.default_rng(H), apart=True)
    finally:
        _kernels._set_paths(packed=previous)
    assert differing(*result) == []


def test_the_comparison_sees_one_ulp():
    """Negative control: one stream's state one ulp off is reported."""
    model = rnnfast.CharLM(V, hidden_size=16, num_layers=L, seed=1)
    ids, state, alone = streams(model, np.random.default_rng(0), apart=True)
    state.h[0, 4, 3] = np.nextafter(state.h[0, 4, 3], np.float32(2))
    assert differing(ids, state, alone) == [4]


def test_apart_must_be_a_bool():
    model = rnnfast.CharLM(V, hidden_size=8, num_layers=1, seed=1)
    with pytest.raises(TypeError, match="apart: expected a bool, got str"):
        model.sampler([1, 2], apart="yes")
