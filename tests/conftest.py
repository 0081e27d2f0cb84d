"""Shared fixtures and the one tolerance table of the test suite."""

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import rnnfast
from rnnfast import _kernels

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


@pytest.fixture
def rng():
    return np.random.default_rng(20261129)


@pytest.fixture(params=DTYPES, ids=DTYPE_IDS)
def dtype(request):
    return np.dtype(request.param)


class KernelPath:
    """One forced combination of the kernels' machine-dependent paths (csrc/paths.h)."""

    def __init__(self, isa=None, packed=None, chunk_steps=None):
        self.isa, self.packed, self.chunk_steps = isa, packed, chunk_steps

    def fit_chunk(self, B, G, dtype):
        """With chunk_steps, size the recurrent drivers' chunks to that many steps of a (B, G)
        slab of dtype (a fraction, e.g. 2.5, leaves a last chunk shorter than the others)."""
        if self.chunk_steps is not None:
            row_bytes = B * G * np.dtype(dtype).itemsize
            _kernels._set_paths(chunk_bytes=max(1, int(self.chunk_steps * row_bytes)))

    def __repr__(self):
        parts = [f"{k}={v}" for k, v in vars(self).items() if v is not None]
        return "-".join(parts) or "default"


def _kernel_paths():
    """Every ISA variant this build and CPU have, each with the packed per-step kernel forced on
    (at every B, so B = 1 too) and off; then chunks of one step and of 2.5 steps (the last chunk
    shorter) on the machine's own choice of the rest."""
    paths = [
        KernelPath(isa=isa, packed=packed)
        for isa in _kernels._available_isas()
        for packed in (False, True)
    ]
    return paths + [KernelPath(chunk_steps=1), KernelPath(chunk_steps=2.5)]


KERNEL_PATHS = _kernel_paths()


_ACTIVE_PATH = [KernelPath()]


def fit_chunk(B, G, dtype):
    """KernelPath.fit_chunk of the path in force (none forced: nothing to do), for tests that run
    under the kernel_path fixture and are also called directly (tests/test_negative_controls.py)."""
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
