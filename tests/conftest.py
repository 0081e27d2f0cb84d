"""Shared fixtures and the one tolerance table of the test suite."""

import os
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import rnnfast
from rnnfast import _kernels

# Kernel-vs-reference comparisons: |actual - expected| <= atol + rtol * |expected|, per dtype.
# This row is the fallback for a comparison that names no quantity below (and for the PyTorch
# interop tests): float32 allows for BLAS summation order and vectorized exp/tanh; float64 for
# round-off only.
TOLERANCES = {
    np.dtype(np.float32): {"rtol": 2e-4, "atol": 2e-5},
    np.dtype(np.float64): {"rtol": 1e-10, "atol": 1e-12},
}

# The kernels' own tanh and sigmoid (csrc/vmath_tmpl.h): max relative error in units of the
# dtype's epsilon, against the exact value (float64 libm for float32; libm, itself within 1 ulp,
# for float64).
VMATH_ULPS = {np.dtype(np.float32): 2.0, np.dtype(np.float64): 3.0}

# float32, per quantity: |actual - expected| <= atol + rtol * |expected| + scaled * max|expected|.
# eps = 2^-23 = 1.2e-7.  "scaled" bounds an error that comes from a sum or a recurrence, which
# scales with the array's magnitude (its terms), not with each element's own: cancellation makes
# an element small while its rounding error stays that of its terms.  Measured: the largest
# error / max|expected| over the whole suite (tests/kernels/) with
# OpenBLAS's SkylakeX, Haswell and Prescott kernels (OPENBLAS_CORETYPE); each bound is 5-10x that.
QUANTITY_TOLERANCES = {
    # the optimizer updates, clipping and scaling: the same IEEE operations in the same order in
    # C and NumPy (measured: bit-identical); 4 eps leaves room for a libm pow() in Adam's bias
    # correction that rounds the other way, relative to the element and to the array.
    "update": {"rtol": 4.8e-7, "atol": 0.0, "scaled": 4.8e-7},
    # mean softmax cross-entropy: each row's log-sum-exp in float32 (a few eps of the row's
    # largest logit), the mean of the N rows summed in double, so the mean's relative error is
    # that of one row.  Measured 1.9e-7 relative; bound 8 eps.
    "loss": {"rtol": 1e-6, "atol": 0.0, "scaled": 0.0},
    # dlogits = (p - onehot(y)) / N, one exp and one division per element: a few eps of the
    # array's largest element 1/N; the rows' sums (expected 0) add V of them: atol 1e-6.
    # Measured 2.9e-7 of the array's scale.
    "dlogits": {"rtol": 0.0, "atol": 1e-6, "scaled": 2e-6},
    # weight and bias gradients: each element a sum over the T*B rows (or the N rows of a linear
    # layer) of products, rounding ~ sqrt(R) eps of the terms, which are of the array's scale
    # here; db and the one-hot scatter-add are summed in double in C, pairwise in NumPy.
    # Measured 8.8e-7 of max|expected| at R <= 60 (dW_h, linear db); bound 1e-5.  atol here
    # and in "sequence" only holds an all-zero array: at tiny scales (a GRU's dh0 after 46 steps
    # of 0.1-scale weights, ~1e-5) the error stays relative (measured 2e-7 of the scale), and an
    # atol of 1e-7 was a 1% bound there (test_properties.py counts such bounds as vacuous).
    "sums": {"rtol": 0.0, "atol": 1e-9, "scaled": 1e-5},
    # states and their gradients through time (hs, cs, tcs, gates, dA, dX, dh0, dc0): each step
    # adds a GEMM's rounding (~ sqrt(H) eps) and the vectorized tanh/sigmoid's 2 ulps, and the
    # recurrence carries every earlier step's error on, amplified by |W_h| (uniform +-0.6 over H
    # up to 130 columns: up to ~4x a step, saturating through tanh) over T <= 12 steps.
    # Measured 6.9e-6 of max|expected| (the RNN's H at T=12, H=33); bound 4e-5 on the array's scale.
    "sequence": {"rtol": 0.0, "atol": 1e-9, "scaled": 4e-5},
}
# The quantity each name passed to assert_close denotes ("W_h.1" and "loss after step 3" as
# "W_h" and "loss").  A name not listed here gets the dtype's row of TOLERANCES.
QUANTITY_OF = {
    **dict.fromkeys(["param", "m", "v", "velocity", "memory", "mean_square", "grad"], "update"),
    **dict.fromkeys(["loss", "losses", "loss only", "loss without dlogits"], "loss"),
    **dict.fromkeys(["dlogits", "rows of dlogits sum to 0"], "dlogits"),
    **dict.fromkeys(["dW_x", "dW_h", "db", "dW", "W_x", "W_h", "b", "W_y", "b_y"], "sums"),
    **dict.fromkeys(["db_hn", "b_hn"], "sums"),  # a GRU's recurrent bias of n
    **dict.fromkeys(["out"], "sums"),  # a linear layer's forward: one GEMM
    **dict.fromkeys("hs cs tcs gates dA dX dh0 dc0 h c dh dc R dR".split(), "sequence"),
    **dict.fromkeys(["final state", "dstate"], "sequence"),
}


def quantity_tolerance(name, dtype):
    """The bound for ``name`` in ``dtype``: {"rtol", "atol", "scaled"} (see the tables above)."""
    base = re.sub(r"( after step \d+|\.\d+| \d+)$", "", name)
    if np.dtype(dtype) == np.float32 and base in QUANTITY_OF:
        return QUANTITY_TOLERANCES[QUANTITY_OF[base]]
    return {**TOLERANCES[np.dtype(dtype)], "scaled": 0.0}


DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["f32", "f64"]

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def subprocess_env() -> dict:
    """Run the same rnnfast the tests import, installed or from a source tree (the child also
    runs in a scratch directory: ``-m`` and ``-c`` put the working directory first on its path)."""
    env = dict(os.environ)
    root = str(Path(rnnfast.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def assert_close(actual, expected, dtype, name=""):
    """The comparison every kernel test uses: the bound of ``name``'s quantity in ``dtype``."""
    tol = quantity_tolerance(name, dtype)
    expected = np.asarray(expected)
    scale = np.max(np.abs(expected), initial=0.0)
    np.testing.assert_allclose(
        actual, expected, rtol=tol["rtol"], atol=tol["atol"] + tol["scaled"] * scale, err_msg=name
    )


def assert_as_accurate(actual, reference32, reference64, name=""):
    """float32 results of a long or chaotic computation (many BPTT steps, saturated weights, a
    training run) where rounding is amplified: the C result must be as close to the float64
    reference as the float32 reference is, within 4x, plus the table's float32 bound."""
    tol = TOLERANCES[np.dtype(np.float32)]
    actual, expected = np.asarray(actual, np.float64), np.asarray(reference64, np.float64)
    reference_error = np.max(np.abs(np.asarray(reference32, np.float64) - expected))
    bound = 4 * reference_error + tol["atol"] + tol["rtol"] * np.abs(expected)
    excess = np.abs(actual - expected) - bound
    assert np.all(excess <= 0), (
        f"{name}: C float32 error {np.max(np.abs(actual - expected)):.3g} vs the float32 "
        f"reference's {reference_error:.3g} (both against float64)"
    )


@pytest.fixture
def rng():
    return np.random.default_rng(20261129)


@pytest.fixture(params=DTYPES, ids=DTYPE_IDS)
def dtype(request):
    return np.dtype(request.param)


class KernelPath:
    """One forced combination of the kernels' machine-dependent paths (csrc/paths.h)."""

    def __init__(self, isa=None, packed=None, chunk_steps=None, chunk_by=None):
        self.isa, self.packed, self.chunk_steps, self.chunk_by = isa, packed, chunk_steps, chunk_by

    def fit_chunk(self, B, G, dtype):
        """With chunk_steps, size the recurrent drivers' chunks to that many steps of a (B, G)
        slab of dtype (a fraction, e.g. 2.5, leaves a last chunk shorter than the others):
        by chunk_bytes with no row floor, or with chunk_by="rows" by the row floor (the
        fraction of rows rounds up to whole steps, above the whole steps of chunk_bytes and
        below twice them, where the floor would give the whole sequence)."""
        if self.chunk_steps is None:
            return
        row_bytes = B * G * np.dtype(dtype).itemsize
        bytes_ = max(1, int(self.chunk_steps * row_bytes))
        if self.chunk_by == "rows":
            rows = max(1, int(self.chunk_steps * B))
            _kernels._set_paths(chunk_bytes=bytes_, chunk_rows=rows)
        else:
            _kernels._set_paths(chunk_bytes=bytes_, chunk_rows=1)

    def __repr__(self):
        parts = [f"{k}={v}" for k, v in vars(self).items() if v is not None]
        return "-".join(parts) or "default"


def _kernel_paths():
    """Every ISA variant this build and CPU have, each with the packed per-step kernel forced on
    (at every B, so B = 1 too) and off; then chunks of one step and of 2.5 steps (the last chunk
    shorter), and chunks set by the row floor, on the machine's own choice of the rest."""
    paths = [
        KernelPath(isa=isa, packed=packed)
        for isa in _kernels._available_isas()
        for packed in (False, True)
    ]
    chunks = [KernelPath(chunk_steps=1), KernelPath(chunk_steps=2.5)]
    return paths + chunks + [KernelPath(chunk_steps=2.5, chunk_by="rows")]


KERNEL_PATHS = _kernel_paths()


_ACTIVE_PATH = [KernelPath()]


def fit_chunk(B, G, dtype):
    """KernelPath.fit_chunk of the path in force (none forced: nothing to do), for tests that run
    under the kernel_path fixture and are also called directly (test_negative_controls.py)."""
    _ACTIVE_PATH[0].fit_chunk(B, G, dtype)


def _forced(path):
    """Set ``path`` for the test, restore what was in force after it."""
    saved = _kernels._paths()
    _kernels._set_paths(isa=path.isa, packed=path.packed)
    _ACTIVE_PATH[0] = path
    try:
        yield path
    finally:
        _ACTIVE_PATH[0] = KernelPath()
        _kernels._set_paths(**saved)


@pytest.fixture(params=KERNEL_PATHS, ids=repr)
def kernel_path(request):
    """Run the test on one forced path of KERNEL_PATHS (the test calls fit_chunk)."""
    yield from _forced(request.param)


@pytest.fixture(params=_kernels._available_isas())
def kernel_isa(request):
    """Run the test on one ISA variant of the elementwise loops."""
    yield from _forced(KernelPath(isa=request.param))


@pytest.fixture(autouse=True, scope="session")
def workers_never_late():
    """Teams never leave late workers (csrc/threads.h): on a loaded or oversubscribed machine a
    verdict would put every kernel on one thread for a second, and the thread tests would test
    one thread by chance.  The tests of the verdict set the wait themselves."""
    before = _kernels._team_late_wait(1e9)
    yield
    _kernels._team_late_wait(before)


@pytest.fixture
def late_workers():
    """Every team's workers late (the wait at 0); yields the function that sets it again, which
    also forgets the last verdict."""
    before = _kernels._team_late_wait(0)
    yield lambda: _kernels._team_late_wait(0)
    _kernels._team_late_wait(before)


@pytest.fixture(scope="session")
def shakespeare():
    path = SHARED_DATA / "tinyshakespeare.txt"
    if not path.exists():
        pytest.skip(f"{path} is absent (the shared corpus is not on this machine)")
    return path.read_text(encoding="utf-8")


# Property tests: a bounded profile for CI, a large one for a nightly-style run
# (HYPOTHESIS_PROFILE=nightly pytest tests/kernels/test_properties.py).
settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
settings.register_profile("nightly", max_examples=500, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "c_plants: bugs planted in a rebuilt copy of the C sources (slow; CI runs them)"
    )


def pytest_collection_modifyitems(config, items):
    """The c_plants tests run only when selected by marker (``pytest -m c_plants``)."""
    if "c_plants" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="a rebuild per plant: run with -m c_plants (CI does)")
    for item in items:
        if "c_plants" in item.keywords:
            item.add_marker(skip)
