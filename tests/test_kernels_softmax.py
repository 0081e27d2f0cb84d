"""The C softmax cross-entropy against its NumPy twin: many shapes, both dtypes, bad input."""

import numpy as np
import pytest
from conftest import assert_close

from rnnfast import _kernels, reference

SHAPES = [(1, 1), (1, 2), (3, 2), (7, 65), (50, 65), (2500, 65), (4, 1000)]


@pytest.mark.parametrize("N, V", SHAPES, ids=[f"N{n}-V{v}" for n, v in SHAPES])
@pytest.mark.parametrize("scale", [1.0, 30.0], ids=["logits~1", "logits~30"])
def test_matches_reference(N, V, scale, dtype, rng):
    logits = (scale * rng.standard_normal((N, V))).astype(dtype)
    targets = rng.integers(0, V, N)
    d_c, d_ref = np.empty_like(logits), np.empty_like(logits)
    loss_c = _kernels.softmax_xent(d_c, logits, targets)
    loss_ref = reference.softmax_xent(d_ref, logits, targets)
    assert_close(loss_c, loss_ref, dtype, "loss")
    assert_close(d_c, d_ref, dtype, "dlogits")
    assert_close(_kernels.softmax_xent(None, logits, targets), loss_c, dtype, "loss only")


def test_negative_control_a_changed_logit_fails(dtype, rng):
    logits = rng.standard_normal((20, 65)).astype(dtype)
    targets = rng.integers(0, 65, 20)
    d_c, d_ref = np.empty_like(logits), np.empty_like(logits)
    _kernels.softmax_xent(d_c, logits, targets)
    logits[3, 4] += 0.5
    reference.softmax_xent(d_ref, logits, targets)
    with pytest.raises(AssertionError):
        assert_close(d_c, d_ref, dtype)


def test_extreme_logits_stay_finite(dtype):
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]], dtype)
    d = np.empty_like(logits)
    loss = _kernels.softmax_xent(d, logits, np.array([1, 2]))
    assert np.isfinite(loss) and np.all(np.isfinite(d))
    assert loss == pytest.approx((2e4 + np.log(3)) / 2, rel=1e-6)


def test_gradient_rows_sum_to_zero(dtype, rng):
    logits = rng.standard_normal((9, 13)).astype(dtype)
    d = np.empty_like(logits)
    _kernels.softmax_xent(d, logits, rng.integers(0, 13, 9))
    assert_close(d.sum(axis=1), np.zeros(9), dtype)


def bad_calls(rng):
    z = rng.standard_normal((4, 5))
    y = np.array([0, 1, 2, 4])
    return [
        ("dtype", (np.empty((4, 5), np.float32), z, y), TypeError, "dlogits: expected dtype"),
        ("int logits", (None, z.astype(np.int64), y), TypeError, "logits: expected dtype"),
        ("shape", (np.empty((4, 4)), z, y), ValueError, r"dlogits: expected shape \(4, 5\)"),
        ("targets shape", (None, z, y[:3]), ValueError, r"targets: expected shape \(4,\)"),
        ("targets dtype", (None, z, y.astype(np.int32)), TypeError, "targets: expected dtype"),
        ("id too big", (None, z, np.array([0, 1, 2, 5])), ValueError, r"id 5 out of range"),
        ("id negative", (None, z, np.array([0, -1, 2, 3])), ValueError, r"id -1 out of range"),
        ("strided", (None, np.asfortranarray(z), y), ValueError, "C-contiguous"),
        ("read-only", (np.zeros((4, 5)).view(), z, y), None, None),
        ("aliased", (z, z, y), ValueError, "overlaps"),
        ("not an array", (None, z.tolist(), y), TypeError, "numpy.ndarray"),
        ("no rows", (None, z[:0], y[:0]), ValueError, "zero rows"),
    ]


@pytest.mark.parametrize("case", range(12))
def test_bad_input_raises_before_any_c_runs(case, rng):
    name, args, error, message = bad_calls(rng)[case]
    if name == "read-only":
        out = args[0]
        out.flags.writeable = False
        with pytest.raises(ValueError, match="read-only"):
            _kernels.softmax_xent(out, *args[1:])
        return
    with pytest.raises(error, match=message):
        _kernels.softmax_xent(*args)
