"""The checks of the Python API, one function per kind of check.

Every user-facing check of rnnfast's arguments goes through these, so a message always reads
``"<argument>: expected <what>, got <actual value>"`` (PyTorch's style) and a kind of check has
one owner.  The bridge (``rnnfast._kernels``) only asserts what these already guaranteed.

Scalars that are out of range or not numbers at all are ValueErrors; arrays of the wrong dtype
are TypeErrors; arrays of the wrong shape, and ids or values out of range, are ValueErrors.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

INDEX_DTYPE = np.dtype(np.int64)  # character ids, as every kernel takes them
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

Shape = Sequence[int | str]  # a dimension is a size, or a letter that matches any size


def _shape_text(shape: Shape) -> str:
    inner = ", ".join(str(d) for d in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


def _shape_matches(actual: tuple[int, ...], expected: Shape) -> bool:
    if actual == expected:
        return True
    if len(actual) != len(expected):
        return False
    for a, e in zip(actual, expected, strict=True):
        if a != e and not isinstance(e, str):
            return False
    return True


def check_int(name: str, value, *, minimum: int = 1, optional: bool = False) -> int | None:
    """``value`` as an int of at least ``minimum`` (None passes through when ``optional``)."""
    if optional and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        kind = {0: "a non-negative integer", 1: "a positive integer"}.get(
            minimum, f"an integer >= {minimum}"
        )
        raise ValueError(f"{name}: expected {kind}{' or None' if optional else ''}, got {value!r}")
    return int(value)


def check_real(
    name: str,
    value,
    *,
    low: float = 0.0,
    high: float = math.inf,
    low_inclusive: bool = False,
    high_inclusive: bool = False,
    optional: bool = False,
) -> float | None:
    """``value`` as a finite float in (low, high), with ``low`` and ``high`` themselves when
    ``low_inclusive`` / ``high_inclusive`` (None passes through when ``optional``)."""
    if optional and value is None:
        return None
    number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, bool
    )
    if not (
        number
        and math.isfinite(value)
        and (value >= low if low_inclusive else value > low)
        and (value <= high if high_inclusive else value < high)
    ):
        if (low, high, low_inclusive) == (0.0, math.inf, False):
            kind = "a positive finite number"
        else:
            kind = (
                f"a finite number in {'[' if low_inclusive else '('}{low:g}, "
                f"{high:g}{']' if high_inclusive else ')'}"
            )
        raise ValueError(f"{name}: expected {kind}{' or None' if optional else ''}, got {value!r}")
    return float(value)


def check_top_p(value) -> float | None:
    """A nucleus sampling mass: a finite number in (0, 1], or None (no nucleus)."""
    return check_real("top_p", value, high=1.0, high_inclusive=True, optional=True)


def check_choice(name: str, value, choices: tuple):
    """``value`` itself, when it is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name}: expected one of {choices}, got {value!r}")
    return value


def check_float_dtype(name: str, dtype) -> np.dtype:
    """A dtype the kernels compute in: float32 or float64."""
    dtype = np.dtype(dtype)
    if dtype not in FLOAT_DTYPES:
        raise ValueError(f"{name}: expected float32 or float64, got {dtype}")
    return dtype


def check_finite(name: str, a: np.ndarray) -> None:
    """Every element of ``a`` is finite."""
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: expected finite values, got NaN or infinity")


def check_array(name: str, a, shape: Shape, dtype=None, *, finite: bool = True) -> np.ndarray:
    """``a`` as a C-contiguous array (a copy only when it is not one) of ``shape`` and
    ``dtype`` (any when None), every element finite unless ``finite=False``."""
    a = np.asarray(a)
    if not _shape_matches(a.shape, shape):
        raise ValueError(f"{name}: expected shape {_shape_text(shape)}, got {a.shape}")
    if dtype is not None and a.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {np.dtype(dtype)}, got {a.dtype}")
    if finite:
        check_finite(name, a)
    return np.ascontiguousarray(a)


def check_ids(name: str, ids, vocab_size: int, shape: Shape | None = None) -> np.ndarray:
    """Character ids as an int64 C-contiguous array, each in [0, vocab_size).  With ``shape``
    (e.g. ``("T", "B")``), the ids must have that shape and at least one element."""
    ids = np.asarray(ids)
    if shape is not None:
        if not _shape_matches(ids.shape, shape):
            raise ValueError(
                f"{name}: expected character ids of shape {_shape_text(shape)}, got {ids.shape}"
            )
        if ids.size == 0:
            raise ValueError(f"{name}: expected at least one character id, got shape {ids.shape}")
    if ids.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected integer character ids, got dtype {ids.dtype}")
    ids = np.ascontiguousarray(ids, dtype=INDEX_DTYPE)
    # one pass for both bounds: a negative id read as unsigned is above any vocabulary size
    if ids.size and ids.view(np.uint64).max() >= vocab_size:
        bad = ids[(ids < 0) | (ids >= vocab_size)].ravel()[0]
        raise ValueError(f"{name}: character id {int(bad)} out of range [0, {vocab_size})")
    return ids
