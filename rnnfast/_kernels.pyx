# cython: boundscheck=False, wraparound=False, cdivision=True
"""Bridge from Python to the C kernels of csrc/.

Every function here has a twin of the same name and signature in ``rnnfast.reference``.  Each
checks its arrays (type, dtype, C-contiguity, shape, writeable and non-aliased outputs, index
range) and raises an exception naming the argument before any C runs; then it releases the GIL
and calls C, which may assume valid input.
"""

cimport numpy as cnp
from cpython.pycapsule cimport PyCapsule_GetName, PyCapsule_GetPointer
from libc.stdint cimport int64_t

import numpy as np
from scipy.linalg import cython_blas

cnp.import_array()


cdef void *_blas_function(str name) except NULL:
    capsule = cython_blas.__pyx_capi__[name]
    return PyCapsule_GetPointer(capsule, PyCapsule_GetName(capsule))


rf_blas_init(<rf_sgemm_fn>_blas_function("sgemm"), <rf_dgemm_fn>_blas_function("dgemm"),
             <rf_sgemv_fn>_blas_function("sgemv"), <rf_dgemv_fn>_blas_function("dgemv"))

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_INDEX_DTYPE = np.dtype(np.int64)


cdef _check_array(str name, object a, object dtype, tuple shape):
    """Raise unless ``a`` is a C-contiguous ndarray of ``dtype`` and ``shape``."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray, got {type(a).__name__}")
    if a.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {dtype}, got {a.dtype}")
    if a.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {a.shape}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name}: expected a C-contiguous array, got strides {a.strides}")


cdef _check_output(str name, object out, object dtype, tuple shape, tuple inputs):
    """Like _check_array, and ``out`` must be writeable and share no memory with ``inputs``."""
    _check_array(name, out, dtype, shape)
    if not out.flags.writeable:
        raise ValueError(f"{name}: output array is read-only")
    for other in inputs:
        if np.may_share_memory(out, other):
            raise ValueError(f"{name}: output array overlaps an input array")


cdef _float_dtype(str name, object a):
    """The dtype of a float32/float64 ndarray, or a TypeError naming ``name``."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray, got {type(a).__name__}")
    if a.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"{name}: expected dtype float32 or float64, got {a.dtype}")
    return a.dtype


cdef _check_ids(str name, object ids, tuple shape, Py_ssize_t V):
    """Character ids: int64, C-contiguous, ``shape``, every value in [0, V)."""
    _check_array(name, ids, _INDEX_DTYPE, shape)
    if ids.size and (ids.min() < 0 or ids.max() >= V):
        bad = ids[(ids < 0) | (ids >= V)]
        raise ValueError(f"{name}: character id {int(bad[0])} out of range [0, {V})")


cdef inline void *_data(object a):
    return cnp.PyArray_DATA(<cnp.ndarray>a)


def softmax_xent(dlogits, logits, targets):
    """Mean softmax cross-entropy of ``logits`` (N, V) against ``targets`` (N,); see reference."""
    dtype = _float_dtype("logits", logits)
    if logits.ndim != 2:
        raise ValueError(f"logits: expected shape (N, V), got {logits.shape}")
    cdef int N = logits.shape[0], V = logits.shape[1]
    if V == 0:
        raise ValueError("logits: the vocabulary dimension V must be at least 1")
    _check_array("logits", logits, dtype, (N, V))
    _check_ids("targets", targets, (N,), V)
    if dlogits is not None:
        _check_output("dlogits", dlogits, dtype, (N, V), (logits, targets))
    if N == 0:
        raise ValueError("logits: the mean loss of zero rows (N = 0) is undefined")
    cdef void *dz = NULL if dlogits is None else _data(dlogits)
    cdef void *z = _data(logits)
    cdef const int64_t *y = <const int64_t *>_data(targets)
    cdef double loss
    if dtype == np.float32:
        with nogil:
            loss = rf_softmax_xent_f32(<float *>dz, <const float *>z, y, N, V)
    else:
        with nogil:
            loss = rf_softmax_xent_f64(<double *>dz, <const double *>z, y, N, V)
    return loss


# The optimizer, clipping and output-layer kernels.
include "_update.pxi"
include "_recurrent.pxi"
