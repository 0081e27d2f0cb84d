"""The kernels' machine-dependent paths (csrc/paths.h): forcing them, and the promise that the
ISA variants of the elementwise loops give the same bits.

The comparisons with the reference run through every path in test_recurrent.py,
test_sample.py and test_backends.py (conftest.KERNEL_PATHS); here the variants are
compared with one another, bit for bit, where the design promises it: the same operations in the
same order at every vector width, no FMA contraction, the packed kernel's fma one rounding.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import KernelPath, _forced, subprocess_env
from test_recurrent import (
    assert_all_close,
    backward_grads,
    copy_dict,
    make_layer,
    run_backward,
    run_forward,
)
from test_sample import call, make_sampler

import rnnfast.reference as ref
from rnnfast import _kernels as K

ISAS = K._available_isas()


def on_each_isa(fn, **path):
    """{isa: fn()} with each available ISA variant forced (and ``path``'s other settings)."""
    results = {}
    for isa in ISAS:
        gen = _forced(KernelPath(isa=isa, **path))
        next(gen)
        try:
            results[isa] = fn()
        finally:
            next(gen, None)
    return results


def assert_same_bits(results):
    first, *others = results
    for isa in others:
        for name in results[first]:
            a, b = results[first][name], results[isa][name]
            if a is None:
                assert b is None, name
            else:
                np.testing.assert_array_equal(b, a, err_msg=f"{name}: {isa} vs {first}")


def test_paths_round_trip_and_defaults():
    before = K._paths()
    if not {"RNNFAST_ISA", "RNNFAST_PACKED"} & set(os.environ):  # the machine's own choice
        assert before["isa"] == ISAS[0] and before["packed"] == "auto"
    try:
        K._set_paths(isa="baseline", packed=True, chunk_bytes=3, chunk_rows=5)
        expected = {"isa": "baseline", "packed": True, "chunk_bytes": 3, "chunk_rows": 5}
        assert K._paths() == expected
        K._set_paths(packed=False)  # None leaves the others alone
        assert K._paths() == {**expected, "packed": False}
    finally:
        K._set_paths(**before)
    assert K._paths() == before


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(isa="neon"), "isa: expected one of"),
        (dict(packed="yes"), "packed: expected True, False or 'auto'"),
        (dict(chunk_bytes=0), "chunk_bytes: expected an integer >= 1, got 0"),
        (dict(chunk_bytes=2.5), "chunk_bytes: expected an integer"),
        (dict(chunk_bytes=64, chunk_rows=0), "chunk_rows: expected an integer >= 1, got 0"),
        (dict(chunk_rows=True), "chunk_rows: expected an integer"),
    ],
)
def test_bad_paths_raise_and_change_nothing(kwargs, match):
    before = K._paths()
    with pytest.raises(ValueError, match=match):
        K._set_paths(**kwargs)
    assert K._paths() == before


def test_an_isa_the_machine_lacks_raises():
    missing = [isa for isa in ("avx512", "avx2") if isa not in ISAS]
    if not missing:
        pytest.skip(f"this build and CPU run every variant: {ISAS}")
    with pytest.raises(ValueError, match=f"isa: '{missing[0]}' is not available here"):
        K._set_paths(isa=missing[0])


@pytest.mark.parametrize(
    "env, expected",
    [
        ({"RNNFAST_ISA": "baseline", "RNNFAST_PACKED": "1"}, ("baseline", True)),
        ({"RNNFAST_ISA": "avx512", "RNNFAST_PACKED": "0"}, (ISAS[0], False)),
    ],
)
def test_environment_sets_the_paths_at_import(env, expected):
    code = "from rnnfast import _kernels as K; p = K._paths(); print(p['isa'], p['packed'])"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**subprocess_env(), **env},
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
    ).stdout.split()
    assert out == [expected[0], str(expected[1])]


def test_a_bad_environment_value_fails_the_import():
    run = subprocess.run(
        [sys.executable, "-c", "import rnnfast._kernels"],
        env={**subprocess_env(), "RNNFAST_PACKED": "maybe"},
        capture_output=True,
        text=True,
        cwd="/",
    )
    assert run.returncode != 0
    assert "RNNFAST_PACKED: expected 0 or 1, got 'maybe'" in run.stderr


@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("inputs", ["ids", "float"])
@pytest.mark.parametrize("cell", ["rnn", "lstm"])
@pytest.mark.parametrize("shape", [(5, 7, 9, 37), (3, 1, 5, 70), (4, 13, 6, 20)])
def test_isa_variants_give_identical_recurrent_bits(dtype, cell, inputs, packed, shape):
    def run():
        rng = np.random.default_rng(7)
        layer = make_layer(rng, cell, shape, dtype, inputs)
        fwd = run_forward(K, cell, layer)
        grads = backward_grads(rng, cell, layer)
        dhs = rng.uniform(-1, 1, fwd["hs"].shape).astype(dtype)
        run_backward(K, cell, layer, fwd, dhs, grads)
        return {**fwd, **grads}

    assert_same_bits(on_each_isa(run, packed=packed))


# The packed kernel's structure (csrc/pgemm_tmpl.h): K beyond 192 in chunks of 96 steps, rows
# in groups of 96 and blocks of 6, the last two blocks sharing the rows left.  (T, B, I, H):
# K = H, 3H or 4H > 192 crosses chunks (K = H = 193: the last one a single step); B = 97
# crosses a group (and leaves it a block of 1 row), B = 7 ends in blocks of 4 and 3, B = 10 in
# 5 and 5, B = 2 is one block of 2.
PACKED_SHAPES = [(2, 97, 5, 30), (3, 7, 3, 100), (2, 10, 4, 25), (2, 2, 3, 193)]


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("shape", PACKED_SHAPES, ids=lambda s: "T{}-B{}-I{}-H{}".format(*s))
def test_packed_kernel_across_chunks_groups_and_blocks(dtype, cell, shape):
    """Forward and backward with the packed kernel forced: the reference's values on every ISA
    variant, and the same bits on all of them."""
    rng = np.random.default_rng(5)
    layer = make_layer(rng, cell, shape, dtype, "float")
    dhs = rng.uniform(-1, 1, (*shape[:2], shape[3])).astype(dtype)
    grads = backward_grads(rng, cell, layer)
    expected_fwd = run_forward(ref, cell, layer)
    expected = copy_dict(grads)
    run_backward(ref, cell, layer, expected_fwd, dhs, expected)

    def run():
        fwd = run_forward(K, cell, layer)
        assert_all_close(fwd, expected_fwd, dtype)
        got = copy_dict(grads)
        run_backward(K, cell, layer, expected_fwd, dhs, got)
        assert_all_close(got, expected, dtype)
        return {**fwd, **got}

    assert_same_bits(on_each_isa(run, packed=True))


@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_isa_variants_give_identical_samples(dtype, cell, packed):
    args = make_sampler(np.random.default_rng(3), cell, 11, 37, 2, 5, 40, dtype)

    def run():
        a = call(K, args, 0.9, 4, False)
        return {name: a[name] for name in ("out", "h", "c")}

    assert_same_bits(on_each_isa(run, packed=packed))


def test_isa_variants_give_identical_elementwise_bits(dtype):
    rng = np.random.default_rng(11)
    x = rng.uniform(-30, 30, 1003).astype(dtype)
    logits = rng.normal(0, 4, (7, 53)).astype(dtype)
    targets = rng.integers(0, 53, 7)
    grad = rng.normal(0, 1, 1001).astype(dtype)

    def run():
        out = {"exp": K._exp_approx(x), "tanh": np.empty_like(x), "sigmoid": np.empty_like(x)}
        K.vec_tanh(out["tanh"], x)
        K.vec_sigmoid(out["sigmoid"], x)
        out["dlogits"] = np.empty_like(logits)
        out["loss"] = np.array(K.softmax_xent(out["dlogits"], logits, targets))
        p, m, v = (np.full_like(grad, 0.5) for _ in range(3))
        K.adam_update(p, grad, m, v, 1e-2, 0.9, 0.999, 1e-8, 3)
        out["adam"] = p
        p, mem = np.full_like(grad, 0.5), np.full_like(grad, 0.1)
        K.adagrad_update(p, grad, mem, 0.1, 1e-8)
        out["adagrad"] = p
        out["norm"] = np.array(K.global_norm(grad))
        return out

    assert_same_bits(on_each_isa(run))
