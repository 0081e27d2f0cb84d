"""The C softmax cross-entropy against its NumPy twin (many shapes, both dtypes, extreme logits,
bad input), and the accuracy of the vectorized exp it uses (FN(rf_exp) in csrc/vmath_tmpl.h)
against libm on dense grids."""

import math

import numpy as np
import pytest
from conftest import assert_close

from rnnfast import reference as ref

k = pytest.importorskip("rnnfast._kernels")

# (N, V): one row, one or two classes, odd sizes, the configs' V = 65, a V over the C code's
# 256-element scratch chunk (the no-gradient path) and one not a multiple of the 16 lanes.
SHAPES = [
    (1, 1),
    (1, 2),
    (3, 2),
    (1, 65),
    (7, 65),
    (50, 65),
    (2500, 65),
    (13, 17),
    (5, 300),
    (3, 1000),
    (4, 1000),
    (2, 4099),
]
SHAPE_IDS = ["x".join(map(str, s)) for s in SHAPES]


def _logits(rng, N, V, dtype, scale=3.0):
    return (rng.standard_normal((N, V)) * scale).astype(dtype), rng.integers(0, V, N)


def _both(z, y, with_grad=True):
    """(loss, dlogits) from the C kernel and from the reference."""
    out = []
    for fn in (k.softmax_xent, ref.softmax_xent):
        dz = np.full(z.shape, np.nan, z.dtype) if with_grad else None
        out.append((fn(dz, z, y), dz))
    return out


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("scale", [1.0, 3.0, 30.0], ids=["logits~1", "logits~3", "logits~30"])
def test_softmax_xent_matches_reference(rng, dtype, shape, scale):
    z, y = _logits(rng, *shape, dtype, scale)
    (c_loss, c_dz), (r_loss, r_dz) = _both(z, y)
    assert_close(c_loss, r_loss, dtype, "loss")
    assert_close(c_dz, r_dz, dtype, "dlogits")
    c_only = k.softmax_xent(None, z, y)
    assert_close(c_only, r_loss, dtype, "loss without dlogits")


def test_softmax_xent_negative_control(rng, dtype):
    z, y = _logits(rng, 7, 65, dtype)
    z2 = z.copy()
    z2[3, y[3]] += 0.5
    c_dz, r_dz = np.empty_like(z), np.empty_like(z)
    c_loss = k.softmax_xent(c_dz, z2, y)
    r_loss = ref.softmax_xent(r_dz, z, y)
    with pytest.raises(AssertionError):
        assert_close(c_loss, r_loss, dtype, "loss")
    with pytest.raises(AssertionError):
        assert_close(c_dz, r_dz, dtype, "dlogits")


@pytest.mark.parametrize(
    "shape",
    [(1, 1), (1, 2), (4, 2), (1, 65), (9, 65), (3, 300)],
    ids=["1x1", "1x2", "4x2", "1x65", "9x65", "3x300"],
)
@pytest.mark.parametrize("magnitude", [1e4, 1e2, 88.0, 1e-4])
def test_softmax_xent_extreme_logits(rng, dtype, shape, magnitude):
    """Logits of +-1e4 (exp would overflow unshifted) stay finite and match; the target is
    sometimes the largest logit (loss ~ 0) and sometimes far below it (loss ~ 2e4)."""
    N, V = shape
    z = (rng.choice([-1.0, 1.0], size=(N, V)) * magnitude).astype(dtype)
    y = rng.integers(0, V, N)
    (c_loss, c_dz), (r_loss, r_dz) = _both(z, y)
    assert np.isfinite(c_loss) and np.all(np.isfinite(c_dz))
    assert_close(c_loss, r_loss, dtype, "loss")
    assert_close(c_dz, r_dz, dtype, "dlogits")
    assert_close(c_dz.sum(axis=1), np.zeros(N), dtype, "rows of dlogits sum to 0")


def test_softmax_xent_nan_logit_gives_nan_loss(dtype):
    z = np.zeros((2, 5), dtype)
    z[1, 3] = np.nan
    assert math.isnan(k.softmax_xent(None, z, np.array([0, 1])))
    assert math.isnan(ref.softmax_xent(None, z, np.array([0, 1])))


def test_softmax_xent_extreme_logits_have_the_exact_loss(dtype):
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4]], dtype)
    d = np.empty_like(logits)
    loss = k.softmax_xent(d, logits, np.array([1, 2]))
    assert np.isfinite(loss) and np.all(np.isfinite(d))
    assert loss == pytest.approx((2e4 + np.log(3)) / 2, rel=1e-6)


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
            k.softmax_xent(out, *args[1:])
        return
    with pytest.raises(error, match=message):
        k.softmax_xent(*args)


# -- the vectorized exp -----------------------------------------------------------------------

# Max relative error against libm's double exp where the result is normal (csrc/vmath_tmpl.h
# documents the measured values: 8.7e-8 float, 2.22e-16 double).
EXP_BOUND = {np.dtype(np.float32): 1.0e-7, np.dtype(np.float64): 3.0e-16}
EXP_DOMAIN = {np.dtype(np.float32): (-87.3, 88.7), np.dtype(np.float64): (-708.0, 709.7)}
SUBNORMAL_SPACING = {np.dtype(np.float32): 2.0**-149, np.dtype(np.float64): 2.0**-1074}
_libm_exp = np.frompyfunc(math.exp, 1, 1)


def _exact_exp(x):
    return _libm_exp(x.astype(np.float64)).astype(np.float64)


def _max_rel_error(x):
    e = k._exp_approx(x).astype(np.float64)
    exact = _exact_exp(x)
    return np.max(np.abs(e - exact) / exact)


def test_exp_error_bound_dense_grid(dtype):
    lo, hi = EXP_DOMAIN[dtype]
    grid = np.linspace(lo, hi, 1_000_001).astype(dtype)
    assert _max_rel_error(grid) <= EXP_BOUND[dtype]


def test_exp_error_bound_near_zero(dtype):
    """The softmax's inputs z - max z sit mostly in [-20, 0]: every float32 step near 0."""
    grid = np.linspace(-20.0, 1.0, 1_000_001).astype(dtype)
    grid = np.concatenate([grid, np.nextafter(dtype.type(0), dtype.type(-1)) * np.arange(1000)])
    assert _max_rel_error(grid) <= EXP_BOUND[dtype]


def test_exp_negative_control(dtype):
    """The grid test can fail: a libm exp of a slightly shifted input exceeds the bound."""
    lo, hi = EXP_DOMAIN[dtype]
    grid = np.linspace(lo, hi, 10_001).astype(dtype)
    e = k._exp_approx(grid * dtype.type(1 + 1e-6)).astype(np.float64)
    exact = _exact_exp(grid)
    with pytest.raises(AssertionError):
        assert np.max(np.abs(e - exact) / exact) <= EXP_BOUND[dtype]


def test_exp_subnormal_and_special_values(dtype):
    lo = {np.dtype(np.float32): -104.0, np.dtype(np.float64): -746.0}[dtype]
    grid = np.linspace(lo, EXP_DOMAIN[dtype][0], 100_001).astype(dtype)
    err = np.abs(k._exp_approx(grid).astype(np.float64) - _exact_exp(grid))
    assert np.max(err) <= SUBNORMAL_SPACING[dtype]
    specials = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e4, -1e4, 1000.0, -1000.0], dtype)
    with np.errstate(over="ignore"):
        expected = np.exp(specials.astype(np.float64)).astype(dtype)
    np.testing.assert_array_equal(k._exp_approx(specials), expected)
