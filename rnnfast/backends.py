"""The one place a backend name becomes kernels: ``"c"`` the C extension ``rnnfast._kernels``,
``"numpy"`` its NumPy twins (``rnnfast.kernels`` and, for the fused step and the sampler,
``rnnfast.engine``).  Both sets have the same names and signatures (``KERNEL_NAMES``).

The extension is imported with this module, whichever backend is used: it loads SciPy's OpenBLAS,
and threadpoolctl limits only reach libraries already loaded, so a ``threadpool_limits`` entered
after ``import rnnfast`` must find that OpenBLAS there.  Without the extension (a source tree
that was not built) the NumPy backend still works; asking for ``"c"`` says how to build it.
"""

from __future__ import annotations

from types import SimpleNamespace

from . import engine
from . import kernels as numpy_kernels
from .validation import check_choice

try:
    from . import _kernels
except ImportError as err:  # a source checkout on sys.path ahead of the installed package
    _kernels = None
    _missing = ImportError(
        f"rnnfast's compiled extension is missing from {__file__.rsplit('/', 1)[0]}: this is "
        "a source tree that was not built. Run from another directory (or use the `rnnfast` "
        "command instead of `python -m rnnfast` in the checkout), or build it in place with "
        "`pip install -e .` or `python setup.py build_ext --inplace`."
    )
    _missing.__cause__ = err

BACKENDS = ("c", "numpy")

# The kernels the Python API calls, each with one signature in both backends.
ELEMENTARY = (
    "rnn_forward", "rnn_backward", "lstm_forward", "lstm_backward", "gru_forward", "gru_backward",
    "linear_forward", "linear_backward", "softmax_xent",
    "sgd_update", "adagrad_update", "rmsprop_update", "adam_update",
    "clip_by_value", "global_norm", "scale",
)  # fmt: skip
FUSED = ("sample", "TrainStep")
KERNEL_NAMES = ELEMENTARY + FUSED


def extension():
    """The C extension module, or the ImportError that says how to build it."""
    if _kernels is None:
        raise _missing
    return _kernels


def kernels(backend: str) -> SimpleNamespace:
    """The kernel set of a backend: a namespace of functions with the NumPy twins' signatures."""
    check_choice("backend", backend, BACKENDS)
    if backend == "c":
        module = extension()
        return SimpleNamespace(**{name: getattr(module, name) for name in KERNEL_NAMES})
    ops = {name: getattr(numpy_kernels, name) for name in ELEMENTARY}
    return SimpleNamespace(**ops, **{name: getattr(engine, name) for name in FUSED})
