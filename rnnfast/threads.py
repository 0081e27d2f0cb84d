"""How many threads the C kernels use.

The kernels split their work over one pool of worker threads, OpenMP's (the runtime that
scikit-learn's compiled loops use).  Three ways set its size, all the same setting:

    rnnfast.set_num_threads(2)                    # this module
    threadpoolctl.threadpool_limits(2)            # also reaches NumPy's and SciPy's BLAS
    OMP_NUM_THREADS=2 python ...                  # before the process starts

``python -m rnnfast train --threads N`` uses threadpoolctl.  Like OpenMP's own
``omp_set_num_threads``, the setting belongs to the Python thread that makes it: kernels called
from another thread use ``OMP_NUM_THREADS`` (or every core) until that thread sets its own.
Results are the same bits at any thread count.  While a kernel runs, the BLAS it calls (SciPy's
OpenBLAS) is held at one thread, since the pool does the splitting.  PyTorch's wheels bundle a
libgomp of the same name: whichever loads first serves both, so ``torch.set_num_threads`` also
sets rnnfast's pool.
"""

from __future__ import annotations

import numbers
import os
from contextlib import contextmanager

__all__ = ["get_num_threads", "set_num_threads"]

# libgomp's idle threads spin 300,000 times (about 0.1-1 ms) before they sleep.  On a machine
# whose cores are busy with other work, a spinning thread takes the core the thread it waits for
# needs; 20,000 spins still cover a team's fork and join on a quiet core (measured with
# lab/under_load.py: docs/threads.md).
SPIN_COUNT = "20000"


@contextmanager
def _spin_briefly():
    """While the extension loads libgomp: GOMP_SPINCOUNT=SPIN_COUNT unless the user set
    OMP_WAIT_POLICY or GOMP_SPINCOUNT, taken out again after (libgomp read it at load; child
    processes do not inherit it).  No effect where libgomp was loaded before (by PyTorch)."""
    set_here = not {"OMP_WAIT_POLICY", "GOMP_SPINCOUNT"} & os.environ.keys()
    if set_here:
        os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT
    try:
        yield
    finally:
        if set_here:
            os.environ.pop("GOMP_SPINCOUNT", None)


def set_num_threads(n: int) -> None:
    """Use ``n`` threads in the kernels called from this Python thread.

    Parameters
    ----------
    n : int
        At least 1.  A build without OpenMP runs on one thread whatever ``n`` is.
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"n: expected an integer number of threads, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"n: expected at least 1 thread, got {n}")
    from .backends import extension

    extension()._set_num_threads(min(int(n), 2**31 - 1))


def get_num_threads() -> int:
    """The threads the kernels called from this Python thread use (1 without OpenMP)."""
    from .backends import extension

    return extension()._get_num_threads()
