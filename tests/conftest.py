"""Shared fixtures and the one tolerance table of the test suite."""

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import rnnfast

# Kernel-vs-reference comparisons: |actual - expected| <= atol + rtol * |expected|, per dtype.
# float32 allows for BLAS summation order and vectorized exp/tanh; float64 for round-off only.
TOLERANCES = {
    np.dtype(np.float32): {"rtol": 2e-4, "atol": 2e-5},
    np.dtype(np.float64): {"rtol": 1e-10, "atol": 1e-12},
}
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
    """The comparison every kernel test uses: the dtype's row of TOLERANCES."""
    tol = TOLERANCES[np.dtype(dtype)]
    np.testing.assert_allclose(actual, expected, err_msg=name, **tol)


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


def skip_c_gru(cell, backend):
    """Until the C GRU kernels are in: the C backend runs no GRU."""
    if cell == "gru" and backend == "c":
        pytest.skip("the C GRU kernels are not in yet")


@pytest.fixture
def rng():
    return np.random.default_rng(20261129)


@pytest.fixture(params=DTYPES, ids=DTYPE_IDS)
def dtype(request):
    return np.dtype(request.param)


@pytest.fixture(scope="session")
def shakespeare():
    path = SHARED_DATA / "tinyshakespeare.txt"
    if not path.exists():
        pytest.skip(f"{path} is absent (the shared corpus is not on this machine)")
    return path.read_text(encoding="utf-8")


# Property tests: a bounded profile for CI, a large one for a nightly-style run
# (HYPOTHESIS_PROFILE=nightly pytest tests/test_properties.py).
settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
settings.register_profile("nightly", max_examples=500, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
