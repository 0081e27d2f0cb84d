"""Nucleus (top-p) sampling: the rule of ``reference.draw`` against a loop that spells it out,
and the C draw (``_kernels.sample``) against the reference, id for id.

The C draw is reached through the sampling loop of a model built to hand it chosen logits
exactly: an RNN with H = V whose W_x[0] is 100 I and W_h zero, so after feeding id v the state is
tanh(100 e_v) = e_v in both backends, and with b_y zero the logits are row v of W_y, the "table".
Each step's logits are then the table's row of the id drawn before, in float32 and float64 alike.
"""

import numpy as np
import pytest
from test_negative_controls import planted
from test_sample import make_sampler

import rnnfast.kernels as numpy_kernels
import rnnfast.reference as ref
from rnnfast import _kernels as K

TEMPERATURES = (0.6, 1.0, 1.9)
TOP_KS = (None, 1, 2, 5)
TOP_PS = (None, 0.05, 0.3, 0.5, 0.8, 0.95, 1.0)


def spelled_out_draw(w, u, top_p):
    """The draw of one row of weights w (V,) (after temperature and top_k) in plain Python."""
    V = len(w)
    w = [float(x) for x in w]
    total = 0.0
    for x in w:
        total += x
    if top_p is not None and top_p < 1:
        kept, mass = set(), 0.0
        for v in sorted(range(V), key=lambda v: (-w[v], v)):  # likeliest first, ties by id
            if not mass < top_p * total:
                break
            kept.add(v)
            mass += w[v]
        w = [x if v in kept else 0.0 for v, x in enumerate(w)]
        total = 0.0
        for x in w:
            total += x
    cdf = 0.0
    for v, x in enumerate(w):
        cdf += x
        if cdf > u * total:
            return v
    return V - 1


def logit_rows(rng, kind, rows, V):
    """Random logits: "normal" at a random scale per row, or "ties": a few integer values."""
    if kind == "ties":
        return rng.integers(-2, 3, (rows, V)).astype(np.float64)
    return rng.normal(size=(rows, V)) * rng.uniform(0.1, 4.0, (rows, 1))


@pytest.mark.parametrize("V", [1, 2, 3, 65])
@pytest.mark.parametrize("kind", ["normal", "ties"])
def test_reference_draw_is_the_rule_spelled_out(V, kind):
    rng = np.random.default_rng(V)
    z = logit_rows(rng, kind, 40, V)
    uniforms = rng.random(40)
    for temperature in TEMPERATURES:
        for top_k in TOP_KS:
            for top_p in TOP_PS:
                out = np.empty(40, np.int64)
                ref.draw(out, z, uniforms, temperature, top_k, False, top_p)
                w = np.exp((z - z.max(axis=1, keepdims=True)) / temperature)
                if top_k is not None and top_k < V:
                    w[z < np.sort(z, axis=1)[:, ::-1][:, top_k - 1 : top_k]] = 0.0
                expected = [spelled_out_draw(w[r], uniforms[r], top_p) for r in range(40)]
                np.testing.assert_array_equal(out, expected, str((temperature, top_k, top_p)))


def test_top_p_keeps_the_smallest_nucleus_ties_by_id():
    """Equal weights: top_p = 1/2 of V = 8 keeps ids 0-3 (the mass before id 4 is 4/8, not
    below); a hair above 1/2 keeps id 4 too; one strong character alone at top_p small."""
    grid = (np.arange(4000) + 0.5) / 4000
    out = np.empty(len(grid), np.int64)
    flat = np.zeros((len(grid), 8))
    ref.draw(out, flat, grid, 1.0, None, False, 0.5)
    assert set(out) == {0, 1, 2, 3}
    ref.draw(out, flat, grid, 1.0, None, False, 0.5 + 1e-12)
    assert set(out) == {0, 1, 2, 3, 4}
    peaked = np.tile([0.0, 0.0, 5.0, 0.0], (len(grid), 1))
    ref.draw(out, peaked, grid, 1.0, None, False, 0.1)
    assert set(out) == {2}
    ref.draw(out, peaked, grid, 1.0, None, False, 1.0)
    assert set(out) == {0, 1, 2, 3}


def table_sampler(table, first_ids, N, dtype, rng):
    """``sample``'s arguments for a model whose logits after id v are exactly table[v]."""
    V = table.shape[0]
    args = make_sampler(rng, "rnn", V, V, 1, len(first_ids), N, dtype)
    args.update(
        first_ids=np.asarray(first_ids, np.int64),
        h=np.zeros((1, len(first_ids), V), dtype),
        W_x=[(100 * np.eye(V)).astype(dtype)],
        W_h=[np.zeros((V, V), dtype)],
        b=[np.zeros(V, dtype)],
        W_y=table.astype(dtype),
        b_y=np.zeros(V, dtype),
    )
    return args


def arrays(args):
    """Fresh copies of ``sample``'s array arguments, in its order (the options follow)."""
    names = ("out", "uniforms", "first_ids", "h", "c", "W_x", "W_h", "b", "W_y", "b_y")
    return [args[k].copy() if isinstance(args[k], np.ndarray) else args[k] for k in names]


def run(ops, args, temperature, top_k, top_p):
    a = arrays(args)
    ops.sample(*a, temperature, top_k, False, top_p)
    return a[0]


def mismatches(V, kind, dtype):
    """The (temperature, top_k, top_p) settings where the C ids differ from the reference's, of
    every combination (top_k 1 leaves top_p nothing to do), on 32 streams of 20 draws over a
    table of V logit rows."""
    rng = np.random.default_rng(1000 + V)
    args = table_sampler(logit_rows(rng, kind, V, V), np.arange(32) % V, 20, dtype, rng)
    differ = []
    for temperature in TEMPERATURES[::2]:
        for top_k in TOP_KS[::2]:
            for top_p in TOP_PS:
                options = (temperature, top_k, top_p)
                if not np.array_equal(run(K, args, *options), run(ref, args, *options)):
                    differ.append(options)
    return differ


@pytest.mark.parametrize("V", [1, 2, 3, 65])
@pytest.mark.parametrize("kind", ["normal", "ties"])
def test_c_top_p_ids_identical_to_reference(dtype, V, kind):
    assert mismatches(V, kind, dtype) == []


@pytest.mark.usefixtures("kernel_isa")
def test_c_top_p_ids_identical_to_reference_on_every_isa(dtype):
    """The draw is compiled once per ISA variant."""
    assert mismatches(65, "normal", dtype) == mismatches(65, "ties", dtype) == []


def test_the_table_hands_the_draw_its_logits_exactly(dtype):
    """The construction the comparisons rely on: after id v the state is e_v in C too."""
    rng = np.random.default_rng(5)
    table = logit_rows(rng, "normal", 7, 7)
    a = arrays(table_sampler(table, [3, 5], 1, dtype, rng))
    K.sample(*a, 1.0, None, False)
    np.testing.assert_array_equal(a[3][0], np.eye(7)[[3, 5]])  # h


@pytest.mark.parametrize(
    "new",
    [
        pytest.param(
            "kept = np.insert(before < top_p * cdf[:, -1:], 0, True, axis=1)[:, :-1]",
            id="one rank more",
        ),
        pytest.param("kept = (before < top_p * cdf[:, -1:]) & (before > 0)", id="one rank fewer"),
        pytest.param("kept = before + x < top_p * cdf[:, -1:]", id="the weight's own mass too"),
    ],
)
def test_top_p_negative_control(monkeypatch, new):
    """A reference whose nucleus is off by one rank fails the comparison with the C draw."""
    old = "kept = before < top_p * cdf[:, -1:]"
    monkeypatch.setattr(numpy_kernels, "draw", planted("draw", old, new))
    assert mismatches(65, "normal", np.dtype(np.float64))
    assert mismatches(65, "ties", np.dtype(np.float64))


def test_top_p_one_or_none_is_no_nucleus(rng, dtype):
    """top_p None (the argument left out), None and 1 give today's ids in both backends."""
    args = make_sampler(rng, "lstm", 29, 13, 2, 5, 40, dtype)
    for ops in (K, ref):
        a = arrays(args)
        ops.sample(*a, 0.9, 4, False)
        for top_p in (None, 1.0, 1):
            b = arrays(args)
            ops.sample(*b, 0.9, 4, False, top_p=top_p)
            np.testing.assert_array_equal(b[0], a[0])
        assert len(np.unique(a[0])) > 1


@pytest.mark.parametrize("top_p", [0.0, -0.1, 1.5, float("nan"), float("inf"), True, "0.5"])
def test_bad_top_p_raises_before_c(rng, top_p):
    a = arrays(make_sampler(rng, "lstm", 11, 7, 2, 3, 20, np.dtype(np.float64)))
    a[0][...] = -7
    with pytest.raises(ValueError, match=r"top_p: expected a finite number in \(0, 1\] or None"):
        K.sample(*a, 1.0, None, False, top_p=top_p)
    assert np.all(a[0] == -7)
