"""pytest-benchmark suites: ``pytest benchmarks/`` runs the default configs; ``--large`` adds
mid and large; ``--threads N`` limits every BLAS pool (threadpoolctl) for the session.
Each benchmark records the BLAS pools in its ``extra_info``."""

import pytest
from bench_configs import LARGE, blas_info


def pytest_addoption(parser):
    parser.addoption("--large", action="store_true", help="also run the mid and large configs")
    parser.addoption("--threads", type=int, default=None, help="BLAS threads (threadpoolctl)")


def pytest_configure(config):
    config.addinivalue_line("markers", "large: a mid/large config, run only with --large")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--large"):
        return
    skip = pytest.mark.skip(reason="mid/large config: run with --large")
    for item in items:
        if "large" in item.keywords:
            item.add_marker(skip)


def config_params(names):
    """pytest params for config names, marking mid/large."""
    return [pytest.param(n, id=n, marks=[pytest.mark.large] if n in LARGE else []) for n in names]


@pytest.fixture(scope="session", autouse=True)
def _threads(request):
    threads = request.config.getoption("--threads")
    if threads is None:
        yield
        return
    # threadpool_limits limits only the libraries already loaded: load both OpenBLAS copies
    # (NumPy's, and SciPy's that the C kernels call) first.
    import rnnfast._kernels  # noqa: F401
    import scipy.linalg.blas  # noqa: F401
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads):
        yield


@pytest.fixture
def record_blas(benchmark, request):
    """Call after the timed function ran (so the BLAS libraries are loaded)."""

    def record(**extra):
        benchmark.extra_info.update(extra)
        benchmark.extra_info["threads_option"] = request.config.getoption("--threads")
        benchmark.extra_info["blas"] = blas_info()

    return record
