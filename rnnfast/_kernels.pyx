# cython: boundscheck=False, wraparound=False, cdivision=True
"""Bridge from Python to the C kernels of csrc/ (declared in _kernels.pxd).

Every public function here has a twin of the same name and signature in ``rnnfast.reference``.
Each checks its arrays (type, dtype, C-contiguity, shape, writeable outputs that share no memory
with any other argument, index range) and raises an exception naming the argument, the expected
and the actual value before any C runs; then one body, fused over ``floating``, releases the GIL
and calls C, which may assume valid input.

The bodies take data pointers, not typed memoryviews: acquiring a memoryview costs about 0.55 us
per array (measured here), some 35 arrays per training step, which at min-char-rnn size is a
tenth of the step.  The pointer type of each body comes from its ``floating`` specialization,
chosen once per call from the dtype the checks established.
"""

cimport numpy as cnp
from cpython.mem cimport PyMem_Calloc, PyMem_Free
from cpython.pycapsule cimport PyCapsule_GetName, PyCapsule_GetPointer
from cython cimport floating
from libc.limits cimport INT_MAX
from libc.math cimport INFINITY, isfinite
from libc.stdint cimport int64_t, uintptr_t
from libc.string cimport memset
from posix.time cimport CLOCK_MONOTONIC, CLOCK_THREAD_CPUTIME_ID, clock_gettime, timespec
from posix.types cimport clockid_t

import math
import os

import numpy as np
from scipy.linalg import cython_blas

from rnnfast.core import GATES as _GATES

cnp.import_array()


cdef void *_blas_function(str name) except NULL:
    capsule = cython_blas.__pyx_capi__[name]
    return PyCapsule_GetPointer(capsule, PyCapsule_GetName(capsule))


rf_blas_init(<rf_sgemm_fn>_blas_function("sgemm"), <rf_dgemm_fn>_blas_function("dgemm"),
             <rf_sgemv_fn>_blas_function("sgemv"), <rf_dgemv_fn>_blas_function("dgemv"))


def _blas_thread_controls():
    """The addresses of the thread-count getter and setter of the BLAS behind
    scipy.linalg.cython_blas (OpenBLAS's names, SciPy's prefixed ones first), found among that
    module's libraries; (0, 0) for a BLAS without them (the kernels then leave its threads
    alone)."""
    import ctypes
    try:
        lib = ctypes.CDLL(cython_blas.__file__, mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
    except (OSError, AttributeError):  # not loaded as a shared library, or no RTLD_NOLOAD
        return 0, 0
    for prefix in ("scipy_openblas", "openblas"):
        for suffix in ("", "64_"):
            try:
                get = getattr(lib, f"{prefix}_get_num_threads{suffix}")
                set_ = getattr(lib, f"{prefix}_set_num_threads{suffix}")
            except AttributeError:
                continue
            return (ctypes.cast(get, ctypes.c_void_p).value,
                    ctypes.cast(set_, ctypes.c_void_p).value)
    return 0, 0


_get_blas_threads, _set_blas_threads = _blas_thread_controls()
rf_blas_threads_init(<rf_blas_get_threads_fn><size_t>_get_blas_threads,
                     <rf_blas_set_threads_fn><size_t>_set_blas_threads)


# ---- the library's threads (csrc/threads.h) ---------------------------------------------------

def _get_num_threads():
    """The threads the kernels use when called from this thread (OpenMP's nthreads-var)."""
    return rf_threads_max()


def _set_num_threads(int n):
    """Set them (n >= 1, checked by the caller) for kernels called from this thread."""
    rf_threads_set(n)


def _team_min_flops(flops=None):
    """Test hook: the work (flops) below which a kernel call runs on one thread; set it when
    ``flops`` is given (0: every call forks a team), return the value before.  Not thread-safe
    against running kernels."""
    cdef double before = rf_threads_min_flops()
    if flops is not None:
        rf_threads_set_min_flops(_hyper("flops", flops, 0.0, INFINITY, True))
    return before


def _team_late_wait(seconds=None):
    """Test hook: the seconds a team may wait for late workers before it leaves them (the
    one-stream sampler; csrc/threads.h); set it when ``seconds`` is given (0: every verdict finds
    them late), which also forgets a team found late, return the value before.  Not thread-safe
    against running kernels."""
    cdef double before = rf_threads_late_wait()
    if seconds is not None:
        rf_threads_set_late_wait(_hyper("seconds", seconds, 0.0, INFINITY, True))
    return before


def _team_size():
    """Test hook: the threads the next kernel call forks (1 for a second after late workers)."""
    return rf_threads_team()


def _openmp():
    """Whether this build has OpenMP (without it the kernels run on one thread)."""
    return bool(rf_threads_openmp())


def _blas_thread_control():
    """Whether the kernels hold their BLAS at one thread while they run (csrc/blas.h)."""
    return _set_blas_threads != 0


_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)
_INDEX_DTYPE = np.dtype(np.int64)
_A_CELL = {"rnn": "an rnn", "lstm": "an lstm", "gru": "a gru"}


# ---- the code paths: machine-chosen by default, forceable (csrc/paths.h) ---------------------

_ISAS = {"baseline": RF_ISA_BASELINE, "avx2": RF_ISA_AVX2, "avx512": RF_ISA_AVX512}
_PACKED = {"auto": RF_PACKED_AUTO, False: RF_PACKED_OFF, True: RF_PACKED_ON}


def _available_isas():
    """The instruction-set variants this build has and this CPU runs, best first."""
    return tuple(name for name in ("avx512", "avx2", "baseline") if rf_isa_available(_ISAS[name]))


def _paths():
    """The paths in force: {"isa": name, "packed": "auto" | True | False, "chunk_bytes": int,
    "chunk_rows": int}."""
    cdef rf_paths p = rf_paths_get()
    isa = next(name for name, value in _ISAS.items() if value == p.isa)
    packed = next(key for key, value in _PACKED.items() if value == p.packed)
    return {"isa": isa, "packed": packed, "chunk_bytes": p.chunk_bytes,
            "chunk_rows": p.chunk_rows}


def _set_paths(isa=None, packed=None, chunk_bytes=None, chunk_rows=None):
    """Force the kernels' paths (tests; None leaves a setting as it is).  isa: "avx512", "avx2"
    or "baseline" (the elementwise loops' variant; ValueError if this build or CPU lacks it);
    packed: True (the packed per-step kernel at every B), False (BLAS), "auto" (packed on AVX-512
    for B >= 2); chunk_bytes, chunk_rows: the recurrent drivers' chunks hold about chunk_bytes
    of activations but at least chunk_rows rows and one step (both >= 1; chunk_rows=1 leaves
    chunk_bytes alone in charge).  Not thread-safe against running kernels."""
    cdef rf_paths p = rf_paths_get()
    if isa is not None:
        if isa not in _ISAS:
            raise ValueError(f"isa: expected one of {tuple(_ISAS)}, got {isa!r}")
        if not rf_isa_available(_ISAS[isa]):
            raise ValueError(f"isa: {isa!r} is not available here (this build and CPU run "
                             f"{_available_isas()})")
        p.isa = _ISAS[isa]
    if packed is not None:
        if isinstance(packed, str) and packed != "auto" or packed not in _PACKED:
            raise ValueError(f"packed: expected True, False or 'auto', got {packed!r}")
        p.packed = _PACKED[packed]
    if chunk_bytes is not None:
        p.chunk_bytes = _positive_int("chunk_bytes", chunk_bytes)
    if chunk_rows is not None:
        p.chunk_rows = _positive_int("chunk_rows", chunk_rows)
    if rf_paths_set(&p) != 0:
        raise ValueError(f"paths: rejected by the C library: {_paths()} unchanged")


def _positive_int(str name, object value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")
    return value


def _paths_from_environment(environ):
    """RNNFAST_ISA caps the variant (the best available at or below it); RNNFAST_PACKED=0|1
    forces the per-step products through BLAS or the packed kernel."""
    isa = environ.get("RNNFAST_ISA")
    if isa is not None:
        order = ("baseline", "avx2", "avx512")
        if isa not in order:
            raise ValueError(f"RNNFAST_ISA: expected one of {order}, got {isa!r}")
        available = _available_isas()
        _set_paths(isa=next(n for n in reversed(order[:order.index(isa) + 1]) if n in available))
    packed = environ.get("RNNFAST_PACKED")
    if packed is not None:
        if packed not in ("0", "1"):
            raise ValueError(f"RNNFAST_PACKED: expected 0 or 1, got {packed!r}")
        _set_paths(packed=packed == "1")


rf_paths_get()  # the machine's choice is made here, at import, before threads run kernels
_paths_from_environment(os.environ)


# ---- the checks: one function per invariant -------------------------------------------------

cdef _check_ndarray(str name, object a):
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray, got {type(a).__name__}")


cdef _float_dtype(str name, object a):
    """The dtype of a float32/float64 ndarray, or a TypeError naming ``name``."""
    _check_ndarray(name, a)
    if a.dtype != _F32 and a.dtype != _F64:
        raise TypeError(f"{name}: expected dtype float32 or float64, got {a.dtype}")
    return a.dtype


cdef _check_array(str name, object a, object dtype, tuple shape):
    """Raise unless ``a`` is a C-contiguous ndarray of ``dtype`` and ``shape``."""
    _check_ndarray(name, a)
    if a.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {dtype}, got {a.dtype}")
    if a.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {a.shape}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name}: expected a C-contiguous array, got strides {a.strides}")


cdef _check_output(str name, object a, object dtype, tuple shape):
    """_check_array, and ``a`` must be writeable."""
    _check_array(name, a, dtype, shape)
    if not a.flags.writeable:
        raise ValueError(f"{name}: output array is read-only, expected a writeable array")


cdef _check_ndim(str name, object a, int ndim, str expected):
    """Raise unless ``a`` is an ndarray with ``ndim`` dimensions (``expected`` names them)."""
    _check_ndarray(name, a)
    if a.ndim != ndim:
        raise ValueError(f"{name}: expected shape {expected}, got {a.shape}")


cdef _check_ids(str name, object ids, tuple shape, Py_ssize_t V):
    """Character ids: int64, C-contiguous, ``shape``, every value in [0, V)."""
    _check_array(name, ids, _INDEX_DTYPE, shape)
    if ids.size and (ids.min() < 0 or ids.max() >= V):
        bad = ids[(ids < 0) | (ids >= V)]
        raise ValueError(f"{name}: character id {int(bad[0])} out of range [0, {V})")


cdef _check_int_size(str name, tuple shape):
    """C indexes rows with int: every matrix the kernels see must stay below 2^31 per dim."""
    for n in shape:
        if n > INT_MAX:
            raise ValueError(f"{name}: dimension {n} of shape {shape} exceeds 2^31 - 1")


cdef inline bint _overlap(object a, object b):
    """Whether two C-contiguous arrays share bytes: their address ranges intersect."""
    cdef char *pa = <char *>cnp.PyArray_DATA(<cnp.ndarray>a)
    cdef char *pb = <char *>cnp.PyArray_DATA(<cnp.ndarray>b)
    cdef Py_ssize_t na = cnp.PyArray_NBYTES(<cnp.ndarray>a)
    cdef Py_ssize_t nb = cnp.PyArray_NBYTES(<cnp.ndarray>b)
    return na > 0 and nb > 0 and pa < pb + nb and pb < pa + na


cdef _check_no_overlap(tuple names, tuple arrays, Py_ssize_t n_outputs):
    """The one aliasing check.  ``arrays`` (checked C-contiguous ndarrays, or None) start with
    ``n_outputs`` outputs; each output may share no byte with an input nor with an output before
    it.  (Address ranges, not np.may_share_memory: at min-char-rnn size an optimizer update
    takes about a microsecond, and contiguous arrays overlap exactly when their ranges do.)"""
    cdef Py_ssize_t i, j, count = len(arrays)
    for i in range(n_outputs):
        a = arrays[i]
        if a is None:
            continue
        for j in range(n_outputs, count):
            if arrays[j] is not None and _overlap(a, arrays[j]):
                raise ValueError(f"{names[i]}: output array overlaps {names[j]}, expected "
                                 f"no memory shared with another argument")
        for j in range(i):
            if arrays[j] is not None and _overlap(a, arrays[j]):
                raise ValueError(f"{names[i]}: output array overlaps {names[j]}, expected "
                                 f"no memory shared with another argument")


cdef double _hyper(str name, object value, double low, double high, bint low_inclusive) except? -1:
    """A finite real hyperparameter in (low, high) or [low, high), as a C double."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__}")
    cdef double x = float(value)
    cdef bint ok = isfinite(x) and (x >= low if low_inclusive else x > low) and x < high
    if not ok:
        bound = f"{'[' if low_inclusive else '('}{low:g}, {high:g})"
        raise ValueError(f"{name}: expected a finite number in {bound}, got {value!r}")
    return x


cdef inline void *_data(object a):
    """The data pointer of a checked ndarray; NULL for None."""
    return NULL if a is None else cnp.PyArray_DATA(<cnp.ndarray>a)


# ---- loss ------------------------------------------------------------------------------------

cdef double _softmax_xent(floating kind, object dlogits, object logits, object targets, int N, int
                          V):
    cdef floating *dz = <floating *>_data(dlogits)
    cdef const floating *z = <const floating *>_data(logits)
    cdef const int64_t *y = <const int64_t *>_data(targets)
    cdef double loss
    with nogil:
        loss = rf_softmax_xent(dz, z, y, N, V)
    return loss


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
        _check_output("dlogits", dlogits, dtype, (N, V))
        _check_no_overlap(("dlogits", "logits", "targets"), (dlogits, logits, targets), 1)
    if N == 0:
        raise ValueError("logits: the mean loss of zero rows (N = 0) is undefined")
    if dtype == _F32:
        return _softmax_xent(<float>0, dlogits, logits, targets, N, V)
    return _softmax_xent(<double>0, dlogits, logits, targets, N, V)


# ---- optimizer updates, clipping, norms: flat buffers -----------------------------------------

cdef _flat_buffers(tuple names, tuple arrays, Py_ssize_t n_outputs):
    """Check the flat buffers of an update: every array a C-contiguous ndarray with the dtype
    and shape of the first; the first ``n_outputs`` writeable and sharing no memory with any
    other.  Returns the dtype."""
    dtype = _float_dtype(names[0], arrays[0])
    shape = arrays[0].shape
    cdef Py_ssize_t i
    for i in range(len(arrays)):
        if i < n_outputs:
            _check_output(names[i], arrays[i], dtype, shape)
        else:
            _check_array(names[i], arrays[i], dtype, shape)
    _check_no_overlap(names, arrays, n_outputs)
    return dtype


cdef _sgd_update(floating kind, object param, object grad, object velocity, double lr, double
                 momentum):
    cdef floating *p = <floating *>_data(param)
    cdef const floating *g = <const floating *>_data(grad)
    cdef floating *vel = <floating *>_data(velocity)
    cdef int64_t n = param.size
    with nogil:
        rf_sgd_update(p, g, vel, lr, momentum, n)


def sgd_update(param, grad, velocity, lr, momentum):
    """SGD with optional momentum on flat buffers, in place; see ``reference.sgd_update``."""
    cdef double lr_ = _hyper("lr", lr, 0.0, INFINITY, False)
    cdef double mu = _hyper("momentum", momentum, 0.0, 1.0, True)
    if mu != 0 and velocity is None:
        raise ValueError("velocity: expected an array when momentum != 0, got None")
    if mu == 0:
        velocity = None
        dtype = _flat_buffers(("param", "grad"), (param, grad), 1)
    else:
        dtype = _flat_buffers(("param", "velocity", "grad"), (param, velocity, grad), 2)
    if dtype == _F32:
        _sgd_update(<float>0, param, grad, velocity, lr_, mu)
    else:
        _sgd_update(<double>0, param, grad, velocity, lr_, mu)


cdef _adagrad_update(floating kind, object param, object grad, object memory, double lr, double
                     eps):
    cdef floating *p = <floating *>_data(param)
    cdef const floating *g = <const floating *>_data(grad)
    cdef floating *mem = <floating *>_data(memory)
    cdef int64_t n = param.size
    with nogil:
        rf_adagrad_update(p, g, mem, lr, eps, n)


def adagrad_update(param, grad, memory, lr, eps):
    """Adagrad on flat buffers, in place; see ``reference.adagrad_update``."""
    cdef double lr_ = _hyper("lr", lr, 0.0, INFINITY, False)
    cdef double eps_ = _hyper("eps", eps, 0.0, INFINITY, False)
    dtype = _flat_buffers(("param", "memory", "grad"), (param, memory, grad), 2)
    if dtype == _F32:
        _adagrad_update(<float>0, param, grad, memory, lr_, eps_)
    else:
        _adagrad_update(<double>0, param, grad, memory, lr_, eps_)


cdef _rmsprop_update(floating kind, object param, object grad, object mean_square, double lr, double
                     alpha, double eps):
    cdef floating *p = <floating *>_data(param)
    cdef const floating *g = <const floating *>_data(grad)
    cdef floating *ms = <floating *>_data(mean_square)
    cdef int64_t n = param.size
    with nogil:
        rf_rmsprop_update(p, g, ms, lr, alpha, eps, n)


def rmsprop_update(param, grad, mean_square, lr, alpha, eps):
    """RMSProp on flat buffers, in place; see ``reference.rmsprop_update``."""
    cdef double lr_ = _hyper("lr", lr, 0.0, INFINITY, False)
    cdef double alpha_ = _hyper("alpha", alpha, 0.0, 1.0, True)
    cdef double eps_ = _hyper("eps", eps, 0.0, INFINITY, False)
    dtype = _flat_buffers(("param", "mean_square", "grad"), (param, mean_square, grad), 2)
    if dtype == _F32:
        _rmsprop_update(<float>0, param, grad, mean_square, lr_, alpha_, eps_)
    else:
        _rmsprop_update(<double>0, param, grad, mean_square, lr_, alpha_, eps_)


cdef _adam_update(floating kind, object param, object grad, object m, object v, double lr, double
                  beta1, double beta2, double eps, int64_t step):
    cdef floating *p = <floating *>_data(param)
    cdef const floating *g = <const floating *>_data(grad)
    cdef floating *m_ = <floating *>_data(m)
    cdef floating *v_ = <floating *>_data(v)
    cdef int64_t n = param.size
    with nogil:
        rf_adam_update(p, g, m_, v_, lr, beta1, beta2, eps, step, n)


def adam_update(param, grad, m, v, lr, beta1, beta2, eps, step):
    """Adam on flat buffers, in place, ``step`` counting from 1; see ``reference.adam_update``."""
    cdef double lr_ = _hyper("lr", lr, 0.0, INFINITY, False)
    cdef double b1 = _hyper("beta1", beta1, 0.0, 1.0, True)
    cdef double b2 = _hyper("beta2", beta2, 0.0, 1.0, True)
    cdef double eps_ = _hyper("eps", eps, 0.0, INFINITY, False)
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 1:
        raise ValueError(f"step: expected an integer >= 1 (the update count), got {step!r}")
    cdef int64_t t = step
    dtype = _flat_buffers(("param", "m", "v", "grad"), (param, m, v, grad), 3)
    if dtype == _F32:
        _adam_update(<float>0, param, grad, m, v, lr_, b1, b2, eps_, t)
    else:
        _adam_update(<double>0, param, grad, m, v, lr_, b1, b2, eps_, t)


cdef _clip_by_value(floating kind, object grad, double limit):
    cdef floating *g = <floating *>_data(grad)
    cdef int64_t n = grad.size
    with nogil:
        rf_clip_by_value(g, limit, n)


def clip_by_value(grad, limit):
    """Clamp every element of ``grad`` to [-limit, limit] in place; see the reference."""
    cdef double lim = _hyper("limit", limit, 0.0, INFINITY, False)
    if _flat_buffers(("grad",), (grad,), 1) == _F32:
        _clip_by_value(<float>0, grad, lim)
    else:
        _clip_by_value(<double>0, grad, lim)


cdef double _global_norm(floating kind, object grad):
    cdef const floating *g = <const floating *>_data(grad)
    cdef int64_t n = grad.size
    cdef double norm
    with nogil:
        norm = rf_global_norm(g, n)
    return norm


def global_norm(grad):
    """sqrt(sum grad^2), accumulated in float64; see ``reference.global_norm``."""
    if _flat_buffers(("grad",), (grad,), 0) == _F32:
        return _global_norm(<float>0, grad)
    return _global_norm(<double>0, grad)


cdef _scale(floating kind, object grad, double factor):
    cdef floating *g = <floating *>_data(grad)
    cdef int64_t n = grad.size
    with nogil:
        rf_scale(g, factor, n)


def scale(grad, factor):
    """grad *= factor in place; see ``reference.scale``."""
    cdef double f = _hyper("factor", factor, -INFINITY, INFINITY, False)
    if _flat_buffers(("grad",), (grad,), 1) == _F32:
        _scale(<float>0, grad, f)
    else:
        _scale(<double>0, grad, f)


# ---- the output layer ------------------------------------------------------------------------

cdef tuple _matrix_shape(str name, object a, str expected):
    """The (rows, cols) of a 2-D array, each small enough for a BLAS int."""
    if a.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array of shape {expected}, got shape {a.shape}")
    _check_int_size(name, a.shape)
    return a.shape


cdef tuple _check_linear(object X, object W):
    """dtype, N, I, O of a dense layer's X (N, I) and W (I, O)."""
    dtype = _float_dtype("X", X)
    N, n_in = _matrix_shape("X", X, "(N, I)")
    _float_dtype("W", W)
    _, n_out = _matrix_shape("W", W, "(I, O)")
    _check_array("X", X, dtype, (N, n_in))
    _check_array("W", W, dtype, (n_in, n_out))
    return dtype, N, n_in, n_out


cdef _linear_forward(floating kind, object out, object X, object W, object b, int N, int n_in, int
                     n_out):
    cdef floating *o = <floating *>_data(out)
    cdef const floating *x = <const floating *>_data(X)
    cdef const floating *w = <const floating *>_data(W)
    cdef const floating *b_ = <const floating *>_data(b)
    with nogil:
        rf_linear_forward(o, x, w, b_, N, n_in, n_out)


def linear_forward(out, X, W, b):
    """out = X W + b.  out (N, O);  X (N, I);  W (I, O);  b (O,).  See the reference."""
    cdef int N, n_in, n_out
    dtype, N, n_in, n_out = _check_linear(X, W)
    _check_array("b", b, dtype, (n_out,))
    _check_output("out", out, dtype, (N, n_out))
    _check_no_overlap(("out", "X", "W", "b"), (out, X, W, b), 1)
    if dtype == _F32:
        _linear_forward(<float>0, out, X, W, b, N, n_in, n_out)
    else:
        _linear_forward(<double>0, out, X, W, b, N, n_in, n_out)


cdef _linear_backward(floating kind, object dX, object dW, object db, object dout, object X, object
                      W, int N, int n_in, int n_out):
    cdef floating *dx = <floating *>_data(dX)
    cdef floating *dw = <floating *>_data(dW)
    cdef floating *db_ = <floating *>_data(db)
    cdef const floating *dz = <const floating *>_data(dout)
    cdef const floating *x = <const floating *>_data(X)
    cdef const floating *w = <const floating *>_data(W)
    with nogil:
        rf_linear_backward(dx, dw, db_, dz, x, w, N, n_in, n_out)


def linear_backward(dX, dW, db, dout, X, W):
    """dW += X^T dout;  db += sum dout;  dX = dout W^T (dX may be None).  See the reference."""
    cdef int N, n_in, n_out
    dtype, N, n_in, n_out = _check_linear(X, W)
    _check_array("dout", dout, dtype, (N, n_out))
    _check_output("dW", dW, dtype, (n_in, n_out))
    _check_output("db", db, dtype, (n_out,))
    if dX is not None:
        _check_output("dX", dX, dtype, (N, n_in))
    _check_no_overlap(("dW", "db", "dX", "dout", "X", "W"), (dW, db, dX, dout, X, W), 3)
    if dtype == _F32:
        _linear_backward(<float>0, dX, dW, db, dout, X, W, N, n_in, n_out)
    else:
        _linear_backward(<double>0, dX, dW, db, dout, X, W, N, n_in, n_out)


# ---- the recurrent layers --------------------------------------------------------------------

cdef tuple _check_layer(str cell, object X, object W_x, object W_h, object b, object h0,
                        object c0):
    """Check a layer's inputs (b, c0: None when the kernel takes none); returns
    (dtype, T, B, I, H, ids), ids True when X holds character ids."""
    cdef int gates = _GATES[cell]
    dtype = _float_dtype("W_h", W_h)
    g_name = f"{gates}H" if gates > 1 else "H"
    if W_h.ndim != 2 or W_h.shape[0] < 1 or W_h.shape[1] != gates * W_h.shape[0]:
        raise ValueError(f"W_h: expected shape (H, {g_name}) with H >= 1 for {_A_CELL[cell]} "
                         f"layer, got {W_h.shape}")
    H = W_h.shape[0]
    G = gates * H
    _check_array("W_h", W_h, dtype, (H, G))
    _check_ndim("h0", h0, 2, f"(B, {H})")
    B = h0.shape[0]
    if B < 1:
        raise ValueError(f"h0: expected at least one row (B >= 1), got shape {h0.shape}")
    _check_array("h0", h0, dtype, (B, H))
    if c0 is not None:
        _check_array("c0", c0, dtype, (B, H))
    _check_ndarray("X", X)
    ids = X.dtype.kind in "iu"
    if ids:
        if X.ndim != 2:
            raise ValueError(f"X: expected character ids of shape (T, {B}), got {X.shape}")
        _check_ndim("W_x", W_x, 2, f"(V, {G})")
        I = W_x.shape[0]
        if I < 1:
            raise ValueError(f"W_x: expected at least one row (V >= 1), got shape {W_x.shape}")
        _check_array("W_x", W_x, dtype, (I, G))
        T = X.shape[0]
        _check_ids("X", X, (T, B), I)
    else:
        if X.ndim != 3:
            raise ValueError(f"X: expected ids (T, {B}) or activations (T, {B}, I), "
                             f"got shape {X.shape}")
        T, I = X.shape[0], X.shape[2]
        if I < 1:
            raise ValueError(f"X: expected an input size I >= 1, got shape {X.shape}")
        _check_array("X", X, dtype, (T, B, I))
        _check_array("W_x", W_x, dtype, (I, G))
    if T < 1:
        raise ValueError(f"X: expected at least one time step (T >= 1), got shape {X.shape}")
    if b is not None:
        _check_array("b", b, dtype, (G,))
    _check_int_size("X", (T * B, I, G))
    return dtype, T, B, I, H, ids


cdef _check_final_state_grad(str name, object a, object dtype, int B, int H):
    """The optional gradient of the final state (None: zero)."""
    if a is not None:
        _check_array(name, a, dtype, (B, H))


cdef _check_no_input_gradient(object dX, bint ids):
    if dX is not None and ids:
        raise ValueError("dX: expected None when X holds character ids (no input gradient), "
                         "got an array")


cdef inline void _in(const floating **field, object a):
    """Point a descriptor's input field at a checked array (None: NULL)."""
    field[0] = <const floating *>_data(a)


cdef inline void _out(floating **field, object a):
    """Point a descriptor's output field at a checked array (None: NULL)."""
    field[0] = <floating *>_data(a)


cdef _check_dropout(object out, object mask, object dtype, tuple shape, bint forward):
    """Dropout's arrays, each of the layer's ``shape`` (T, B, H): the factors ``mask`` or None,
    and in a forward the output ``out``, given exactly when ``mask`` is."""
    if forward and (out is None) != (mask is None):
        given = "out" if mask is None else "mask"
        raise ValueError(f"out, mask: expected both (dropout) or neither, got {given} alone")
    if mask is not None:
        _check_array("mask", mask, dtype, shape)
    if out is not None:
        _check_output("out", out, dtype, shape)


cdef _fill_dropout(rf_recurrent *d, object out, object mask):
    _out(&d.layer.out, out)
    _in(&d.layer.mask, mask)


cdef object _fill_layer(rf_recurrent *d, object X, object W_x, object W_h, object b, object h0,
                        object c0, int T, int B, int I, int H, bint ids, int G):
    """Zero the descriptors, fill the layer's sizes and inputs and give the workspace a fresh
    pack (csrc/pgemm_tmpl.h; a new array per call, so concurrent calls never share one).
    Returns the pack, which the caller keeps alive through the C call."""
    memset(d, 0, sizeof(d[0]))
    d.layer.T, d.layer.B, d.layer.In, d.layer.H = T, B, I, H
    if ids:
        d.layer.ids = <const int64_t *>_data(X)
    else:
        _in(&d.layer.X, X)
    _in(&d.layer.W_x, W_x)
    _in(&d.layer.W_h, W_h)
    _in(&d.layer.b, b)
    _in(&d.layer.h0, h0)
    _in(&d.layer.c0, c0)
    if rf_recurrent is rf_recurrent_f32:
        pack = np.empty(max(rf_recurrent_pack_size_f32(H, G), 1), _F32)
    else:
        pack = np.empty(max(rf_recurrent_pack_size_f64(H, G), 1), _F64)
    _out(&d.ws.pack, pack)
    return pack


cdef _rnn_forward(rf_recurrent *d, object hs, object X, object W_x, object W_h, object b,
                  object h0, object out, object mask, int T, int B, int I, int n, bint ids):
    _pack = _fill_layer(d, X, W_x, W_h, b, h0, None, T, B, I, n, ids, n)
    _out(&d.layer.hs, hs)
    _fill_dropout(d, out, mask)
    with nogil:
        rf_rnn_forward(d)


def rnn_forward(hs, X, W_x, W_h, b, h0, *, out=None, mask=None):
    """Vanilla RNN over a sequence, with dropout on its output when ``out`` and ``mask`` are
    given; see ``reference.rnn_forward``."""
    cdef int T, B, I, n
    cdef bint ids
    dtype, T, B, I, n, ids = _check_layer("rnn", X, W_x, W_h, b, h0, None)
    _check_output("hs", hs, dtype, (T, B, n))
    _check_dropout(out, mask, dtype, (T, B, n), True)
    _check_no_overlap(("hs", "out", "X", "W_x", "W_h", "b", "h0", "mask"),
                      (hs, out, X, W_x, W_h, b, h0, mask), 2)
    cdef rf_recurrent_f32 d32
    cdef rf_recurrent_f64 d64
    if dtype == _F32:
        _rnn_forward(&d32, hs, X, W_x, W_h, b, h0, out, mask, T, B, I, n, ids)
    else:
        _rnn_forward(&d64, hs, X, W_x, W_h, b, h0, out, mask, T, B, I, n, ids)


cdef _fill_grads(rf_recurrent *d, object dX, object dW_x, object dW_h, object db, object dh0,
                 object dc0, object dA, object dhs, object dh_T, object dc_T):
    _out(&d.grads.dX, dX)
    _out(&d.grads.dW_x, dW_x)
    _out(&d.grads.dW_h, dW_h)
    _out(&d.grads.db, db)
    _out(&d.grads.dh0, dh0)
    _out(&d.grads.dc0, dc0)
    _in(&d.grads.dhs, dhs)
    _in(&d.grads.dh_T, dh_T)
    _in(&d.grads.dc_T, dc_T)
    _out(&d.ws.dA, dA)


cdef _rnn_backward(rf_recurrent *d, object dX, object dW_x, object dW_h, object db, object dh0,
                   object dA, object dhs, object X, object hs, object W_x, object W_h, object h0,
                   object mask, object dh_T, int T, int B, int I, int n, bint ids):
    _pack = _fill_layer(d, X, W_x, W_h, None, h0, None, T, B, I, n, ids, n)
    _out(&d.layer.hs, hs)
    _fill_dropout(d, None, mask)
    _fill_grads(d, dX, dW_x, dW_h, db, dh0, None, dA, dhs, dh_T, None)
    with nogil:
        rf_rnn_backward(d)


def rnn_backward(dX, dW_x, dW_h, db, dh0, dA, dhs, X, hs, W_x, W_h, h0, *, mask=None, dh_T=None):
    """Backward through time of ``rnn_forward`` (through its dropout when ``mask`` is given: dhs
    is then the gradient of out), from the final state's gradient ``dh_T`` (None: zero); see
    ``reference.rnn_backward``."""
    cdef int T, B, I, n
    cdef bint ids
    dtype, T, B, I, n, ids = _check_layer("rnn", X, W_x, W_h, None, h0, None)
    _check_array("dhs", dhs, dtype, (T, B, n))
    _check_array("hs", hs, dtype, (T, B, n))
    _check_dropout(None, mask, dtype, (T, B, n), False)
    _check_no_input_gradient(dX, ids)
    if dX is not None:
        _check_output("dX", dX, dtype, (T, B, I))
    _check_output("dW_x", dW_x, dtype, (I, n))
    _check_output("dW_h", dW_h, dtype, (n, n))
    _check_output("db", db, dtype, (n,))
    _check_output("dh0", dh0, dtype, (B, n))
    _check_output("dA", dA, dtype, (T, B, n))
    _check_final_state_grad("dh_T", dh_T, dtype, B, n)
    _check_no_overlap(("dX", "dW_x", "dW_h", "db", "dh0", "dA", "dhs", "X", "hs", "W_x", "W_h",
                       "h0", "mask", "dh_T"),
                      (dX, dW_x, dW_h, db, dh0, dA, dhs, X, hs, W_x, W_h, h0, mask, dh_T), 6)
    cdef rf_recurrent_f32 d32
    cdef rf_recurrent_f64 d64
    if dtype == _F32:
        _rnn_backward(&d32, dX, dW_x, dW_h, db, dh0, dA, dhs, X, hs, W_x, W_h, h0, mask, dh_T, T,
                      B, I, n, ids)
    else:
        _rnn_backward(&d64, dX, dW_x, dW_h, db, dh0, dA, dhs, X, hs, W_x, W_h, h0, mask, dh_T, T,
                      B, I, n, ids)


cdef _fill_lstm_cache(rf_recurrent *d, object hs, object cs, object tcs, object gates):
    _out(&d.layer.hs, hs)
    _out(&d.layer.cs, cs)
    _out(&d.layer.tcs, tcs)
    _out(&d.layer.gates, gates)


cdef _lstm_forward(rf_recurrent *d, object hs, object cs, object tcs, object gates, object X,
                   object W_x, object W_h, object b, object h0, object c0, object out,
                   object mask, int T, int B, int I, int n, bint ids):
    _pack = _fill_layer(d, X, W_x, W_h, b, h0, c0, T, B, I, n, ids, 4 * n)
    _fill_lstm_cache(d, hs, cs, tcs, gates)
    _fill_dropout(d, out, mask)
    with nogil:
        rf_lstm_forward(d)


def lstm_forward(hs, cs, tcs, gates, X, W_x, W_h, b, h0, c0, *, out=None, mask=None):
    """LSTM over a sequence, with dropout on its output when ``out`` and ``mask`` are given;
    see ``reference.lstm_forward``."""
    if c0 is None:
        raise TypeError("c0: expected a numpy.ndarray, got NoneType")
    cdef int T, B, I, n
    cdef bint ids
    dtype, T, B, I, n, ids = _check_layer("lstm", X, W_x, W_h, b, h0, c0)
    _check_output("hs", hs, dtype, (T, B, n))
    _check_output("cs", cs, dtype, (T, B, n))
    _check_output("tcs", tcs, dtype, (T, B, n))
    _check_output("gates", gates, dtype, (T, B, 4 * n))
    _check_dropout(out, mask, dtype, (T, B, n), True)
    _check_no_overlap(("hs", "cs", "tcs", "gates", "out", "X", "W_x", "W_h", "b", "h0", "c0",
                       "mask"), (hs, cs, tcs, gates, out, X, W_x, W_h, b, h0, c0, mask), 5)
    cdef rf_recurrent_f32 d32
    cdef rf_recurrent_f64 d64
    if dtype == _F32:
        _lstm_forward(&d32, hs, cs, tcs, gates, X, W_x, W_h, b, h0, c0, out, mask, T, B, I, n,
                      ids)
    else:
        _lstm_forward(&d64, hs, cs, tcs, gates, X, W_x, W_h, b, h0, c0, out, mask, T, B, I, n,
                      ids)


cdef _lstm_backward(rf_recurrent *d, object dX, object dW_x, object dW_h, object db, object dh0,
                    object dc0, object dA, object dhs, object X, object hs, object cs,
                    object tcs, object gates, object W_x, object W_h, object h0, object c0,
                    object mask, object dh_T, object dc_T, int T, int B, int I, int n,
                    bint ids):
    _pack = _fill_layer(d, X, W_x, W_h, None, h0, c0, T, B, I, n, ids, 4 * n)
    _fill_lstm_cache(d, hs, cs, tcs, gates)
    _fill_dropout(d, None, mask)
    _fill_grads(d, dX, dW_x, dW_h, db, dh0, dc0, dA, dhs, dh_T, dc_T)
    with nogil:
        rf_lstm_backward(d)


def lstm_backward(dX, dW_x, dW_h, db, dh0, dc0, dA, dhs, X, hs, cs, tcs, gates, W_x, W_h, h0,
                  c0, *, mask=None, dh_T=None, dc_T=None):
    """Backward through time of ``lstm_forward`` (through its dropout when ``mask`` is given:
    dhs is then the gradient of out), from the final state's gradients ``dh_T``, ``dc_T`` (None:
    zero); see ``reference.lstm_backward``."""
    if c0 is None:
        raise TypeError("c0: expected a numpy.ndarray, got NoneType")
    cdef int T, B, I, n
    cdef bint ids
    dtype, T, B, I, n, ids = _check_layer("lstm", X, W_x, W_h, None, h0, c0)
    for name, a in (("dhs", dhs), ("hs", hs), ("cs", cs), ("tcs", tcs)):
        _check_array(name, a, dtype, (T, B, n))
    _check_array("gates", gates, dtype, (T, B, 4 * n))
    _check_dropout(None, mask, dtype, (T, B, n), False)
    _check_no_input_gradient(dX, ids)
    if dX is not None:
        _check_output("dX", dX, dtype, (T, B, I))
    _check_output("dW_x", dW_x, dtype, (I, 4 * n))
    _check_output("dW_h", dW_h, dtype, (n, 4 * n))
    _check_output("db", db, dtype, (4 * n,))
    _check_output("dh0", dh0, dtype, (B, n))
    _check_output("dc0", dc0, dtype, (B, n))
    _check_output("dA", dA, dtype, (T, B, 4 * n))
    _check_final_state_grad("dh_T", dh_T, dtype, B, n)
    _check_final_state_grad("dc_T", dc_T, dtype, B, n)
    _check_no_overlap(("dX", "dW_x", "dW_h", "db", "dh0", "dc0", "dA", "dhs", "X", "hs", "cs",
                       "tcs", "gates", "W_x", "W_h", "h0", "c0", "mask", "dh_T", "dc_T"),
                      (dX, dW_x, dW_h, db, dh0, dc0, dA, dhs, X, hs, cs, tcs, gates, W_x, W_h,
                       h0, c0, mask, dh_T, dc_T), 7)
    cdef rf_recurrent_f32 d32
    cdef rf_recurrent_f64 d64
    if dtype == _F32:
        _lstm_backward(&d32, dX, dW_x, dW_h, db, dh0, dc0, dA, dhs, X, hs, cs, tcs, gates, W_x,
                       W_h, h0, c0, mask, dh_T, dc_T, T, B, I, n, ids)
    else:
        _lstm_backward(&d64, dX, dW_x, dW_h, db, dh0, dc0, dA, dhs, X, hs, cs, tcs, gates, W_x,
                       W_h, h0, c0, mask, dh_T, dc_T, T, B, I, n, ids)


cdef _fill_gru_cache(rf_recurrent *d, object hs, object gates, object R, object b_hn):
    _out(&d.layer.hs, hs)
    _out(&d.layer.gates, gates)
    _out(&d.layer.R, R)
    _in(&d.layer.b_hn, b_hn)


cdef _gru_forward(rf_recurrent *d, object hs, object gates, object R, object X, object W_x,
                  object W_h, object b, object b_hn, object h0, object out, object mask, int T,
                  int B, int I, int n, bint ids):
    _pack = _fill_layer(d, X, W_x, W_h, b, h0, None, T, B, I, n, ids, 3 * n)
    _fill_gru_cache(d, hs, gates, R, b_hn)
    _fill_dropout(d, out, mask)
    with nogil:
        rf_gru_forward(d)


def gru_forward(hs, gates, R, X, W_x, W_h, b, b_hn, h0, *, out=None, mask=None):
    """GRU over a sequence, with dropout on its output when ``out`` and ``mask`` are given; see
    ``reference.gru_forward``."""
    cdef int T, B, I, n
    cdef bint ids
    dtype, T, B, I, n, ids = _check_layer("gru", X, W_x, W_h, b, h0, None)
    _check_array("b_hn", b_hn, dtype, (n,))
    _check_output("hs", hs, dtype, (T, B, n))
    _check_output("gates", gates, dtype, (T, B, 3 * n))
    _check_output("R", R, dtype, (T, B, 3 * n))
    _check_dropout(out, mask, dtype, (T, B, n), True)
    _check_no_overlap(("hs", "gates", "R", "out", "X", "W_x", "W_h", "b", "b_hn", "h0", "mask"),
                      (hs, gates, R, out, X, W_x, W_h, b, b_hn, h0, mask), 4)
    cdef rf_recurrent_f32 d32
    cdef rf_recurrent_f64 d64
    if dtype == _F32:
        _gru_forward(&d32, hs, gates, R, X, W_x, W_h, b, b_hn, h0, out, mask, T, B, I, n, ids)
    else:
        _gru_forward(&d64, hs, gates, R, X, W_x, W_h, b, b_hn, h0, out, mask, T, B, I, n, ids)


cdef _gru_backward(rf_recurrent *d, object dX, object dW_x, object dW_h, object db,
                   object db_hn, object dh0, object dA, object dR, object dhs, object X, object hs,
                   object gates, object R, object W_x, object W_h, object h0, object mask,
                   object dh_T, int T, int B, int I, int n, bint ids):
    _pack = _fill_layer(d, X, W_x, W_h, None, h0, None, T, B, I, n, ids, 3 * n)
    _fill_gru_cache(d, hs, gates, R, None)
    _fill_dropout(d, None, mask)
    _fill_grads(d, dX, dW_x, dW_h, db, dh0, None, dA, dhs, dh_T, None)
    _out(&d.grads.db_hn, db_hn)
    _out(&d.ws.dR, dR)
    with nogil:
        rf_gru_backward(d)


def gru_backward(dX, dW_x, dW_h, db, db_hn, dh0, dA, dR, dhs, X, hs, gates, R, W_x, W_h, h0, *,
                 mask=None, dh_T=None):
    """Backward through time of ``gru_forward`` (through its dropout when ``mask`` is given: dhs
    is then the gradient of its ``out``), from the final state's gradient ``dh_T`` (None: zero);
    see ``reference.gru_backward``."""
    cdef int T, B, I, n
    cdef bint ids
    dtype, T, B, I, n, ids = _check_layer("gru", X, W_x, W_h, None, h0, None)
    _check_array("dhs", dhs, dtype, (T, B, n))
    _check_array("hs", hs, dtype, (T, B, n))
    _check_array("gates", gates, dtype, (T, B, 3 * n))
    _check_array("R", R, dtype, (T, B, 3 * n))
    _check_no_input_gradient(dX, ids)
    if dX is not None:
        _check_output("dX", dX, dtype, (T, B, I))
    _check_output("dW_x", dW_x, dtype, (I, 3 * n))
    _check_output("dW_h", dW_h, dtype, (n, 3 * n))
    _check_output("db", db, dtype, (3 * n,))
    _check_output("db_hn", db_hn, dtype, (n,))
    _check_output("dh0", dh0, dtype, (B, n))
    _check_output("dA", dA, dtype, (T, B, 3 * n))
    _check_output("dR", dR, dtype, (T, B, 3 * n))
    _check_dropout(None, mask, dtype, (T, B, n), False)
    _check_final_state_grad("dh_T", dh_T, dtype, B, n)
    _check_no_overlap(("dX", "dW_x", "dW_h", "db", "db_hn", "dh0", "dA", "dR", "dhs", "X", "hs",
                       "gates", "R", "W_x", "W_h", "h0", "mask", "dh_T"),
                      (dX, dW_x, dW_h, db, db_hn, dh0, dA, dR, dhs, X, hs, gates, R, W_x, W_h,
                       h0, mask, dh_T), 8)
    cdef rf_recurrent_f32 d32
    cdef rf_recurrent_f64 d64
    if dtype == _F32:
        _gru_backward(&d32, dX, dW_x, dW_h, db, db_hn, dh0, dA, dR, dhs, X, hs, gates, R, W_x,
                      W_h, h0, mask, dh_T, T, B, I, n, ids)
    else:
        _gru_backward(&d64, dX, dW_x, dW_h, db, db_hn, dh0, dA, dR, dhs, X, hs, gates, R, W_x,
                      W_h, h0, mask, dh_T, T, B, I, n, ids)


# ---- the sampling loop -----------------------------------------------------------------------

cdef list _check_layer_list(str name, object arrays, int L):
    if not isinstance(arrays, (list, tuple)):
        raise TypeError(f"{name}: expected a list of the {L} layers' arrays, "
                        f"got {type(arrays).__name__}")
    if len(arrays) != L:
        raise ValueError(f"{name}: expected {L} arrays (one per layer, L = h.shape[0]), "
                         f"got {len(arrays)}")
    return list(arrays)


cdef _sample(rf_sampler *m, object out, object uniforms, object first_ids, object h, object c,
             list W_x, list W_h, list b, list b_hn, object W_y, object b_y, double temperature,
             int top_k, double top_p, bint argmax, bint apart, int N, int S, int L, int n, int V,
             int G):
    if rf_sampler is rf_sampler_f32:
        dtype = _F32
    else:
        dtype = _F64
    # scratch for the whole call, never per step
    act = np.empty((S, G), dtype)
    rec = np.empty((S, G), dtype) if b_hn else None
    cbuf = np.empty((S, n), dtype)
    tcbuf = np.empty((S, n), dtype)
    logits = np.empty((S, V), dtype)
    w = np.empty((S, V), np.float64)
    sel = np.empty((S, V), np.float64)  # top_k's selection, top_p's heap
    ids = np.empty(S, _INDEX_DTYPE)
    # W_x[0..L-1], W_h[0..L-1], b[0..L-1], b_hn[0..L-1] (a.ctypes.data took 2 us an array)
    layer_arrays = [*W_x, *W_h, *b, *b_hn]
    pointers = np.empty(len(layer_arrays), np.uintp)
    cdef uintptr_t *pp = <uintptr_t *>_data(pointers)
    for i, a in enumerate(layer_arrays):
        pp[i] = <uintptr_t>_data(a)
    memset(m, 0, sizeof(m[0]))
    m.L, m.S, m.H, m.V = L, S, n, V
    if rf_sampler is rf_sampler_f32:
        m.W_x = <const float *const *>_data(pointers)
    else:
        m.W_x = <const double *const *>_data(pointers)
    m.W_h = m.W_x + L
    m.b = m.W_x + 2 * L
    m.b_hn = m.W_x + 3 * L if b_hn else NULL
    _in(&m.W_y, W_y)
    _in(&m.b_y, b_y)
    _out(&m.h, h)
    _out(&m.c, c)
    m.temperature, m.top_k, m.top_p, m.argmax, m.apart = temperature, top_k, top_p, argmax, apart
    _out(&m.act, act)
    _out(&m.rec, rec)
    _out(&m.cbuf, cbuf)
    _out(&m.tcbuf, tcbuf)
    _out(&m.logits, logits)
    m.w = <double *>_data(w)
    m.sel = <double *>_data(sel)
    m.ids = <int64_t *>_data(ids)
    pack_size = rf_sample_pack_size(m)  # 0: the products go through BLAS
    pack = np.empty(pack_size, dtype) if pack_size else None
    _out(&m.pack, pack)
    cdef int64_t *op = <int64_t *>_data(out)
    cdef const double *up = <const double *>_data(uniforms)
    cdef const int64_t *fp = <const int64_t *>_data(first_ids)
    with nogil:
        rf_sample(op, m, up, fp, N)


cdef bint _is_number(object value):
    """Whether ``value`` is a real number (a bool is not)."""
    return not isinstance(value, bool) and isinstance(value, (int, float, np.floating,
                                                              np.integer))


def sample(out, uniforms, first_ids, h, c, W_x, W_h, b, W_y, b_y, temperature, top_k, argmax,
           top_p=None, b_hn=None, apart=False):
    """Generate characters for S streams; see ``reference.sample`` and ``reference.draw``."""
    dtype = _float_dtype("h", h)
    if h.ndim != 3 or min(h.shape) < 1:
        raise ValueError(f"h: expected shape (L, S, H) with every dimension >= 1, got {h.shape}")
    L, S, n = h.shape
    if b_hn is not None and c is not None:
        raise ValueError("c: expected None with b_hn given (a GRU has no cell state), got an "
                         "array")
    cell = "gru" if b_hn is not None else "rnn" if c is None else "lstm"
    G = _GATES[cell] * n
    g_name = f"{_GATES[cell]}H" if cell != "rnn" else "H"
    _check_output("h", h, dtype, (L, S, n))
    if c is not None:
        _check_output("c", c, dtype, (L, S, n))
    W_x, W_h, b = (_check_layer_list(name, a, L) for name, a in
                   (("W_x", W_x), ("W_h", W_h), ("b", b)))
    b_hn = [] if b_hn is None else _check_layer_list("b_hn", b_hn, L)
    for layer in range(L):  # first W_h: its shape tells the cell (c, b_hn given or None)
        _check_ndim(f"W_h[{layer}]", W_h[layer], 2, f"(H, {g_name}) = {(n, G)}")
        if W_h[layer].shape != (n, G):
            raise ValueError(f"W_h[{layer}]: expected shape (H, {g_name}) = {(n, G)} for "
                             f"{_A_CELL[cell]} layer (c is {'None' if c is None else 'given'}, "
                             f"b_hn {'None' if not b_hn else 'given'}), got {W_h[layer].shape}")
        _check_array(f"W_h[{layer}]", W_h[layer], dtype, (n, G))
    _check_ndim("W_x[0]", W_x[0], 2, f"(V, {G})")
    V = W_x[0].shape[0]
    if V < 1:
        raise ValueError(f"W_x[0]: expected at least one row (V >= 1), got shape {W_x[0].shape}")
    for layer in range(L):
        _check_array(f"W_x[{layer}]", W_x[layer], dtype, (V if layer == 0 else n, G))
        _check_array(f"b[{layer}]", b[layer], dtype, (G,))
    for layer in range(len(b_hn)):
        _check_array(f"b_hn[{layer}]", b_hn[layer], dtype, (n,))
    _check_array("W_y", W_y, dtype, (n, V))
    _check_array("b_y", b_y, dtype, (V,))
    _check_ndim("out", out, 2, f"(N, {S})")
    N = out.shape[0]
    _check_output("out", out, _INDEX_DTYPE, (N, S))
    _check_array("uniforms", uniforms, _F64, (N, S))
    _check_ids("first_ids", first_ids, (S,), V)
    if not (_is_number(temperature) and math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature: expected a positive finite number, got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer))
                              or top_k < 1):
        raise ValueError(f"top_k: expected a positive integer or None, got {top_k!r}")
    if top_p is not None and not (_is_number(top_p) and 0 < top_p <= 1):  # NaN fails
        raise ValueError(f"top_p: expected a finite number in (0, 1] or None, got {top_p!r}")
    _check_int_size("out", (N, S * max(G, V)))
    names = ["out", "h", "c", "uniforms", "first_ids"]
    names += [f"{kind}[{k}]" for kind in ("W_x", "W_h", "b") for k in range(L)]
    names += [f"b_hn[{k}]" for k in range(len(b_hn))]
    _check_no_overlap((*names, "W_y", "b_y"),
                      (out, h, c, uniforms, first_ids, *W_x, *W_h, *b, *b_hn, W_y, b_y), 3)
    cdef int k = 0 if top_k is None or top_k >= V else top_k
    cdef int cN = N, cS = S, cL = L, cH = n, cV = V, cG = G
    cdef double temp = temperature, p = 1 if top_p is None else top_p
    cdef bint am = argmax, ap = apart
    cdef rf_sampler_f32 m32
    cdef rf_sampler_f64 m64
    if dtype == _F32:
        _sample(&m32, out, uniforms, first_ids, h, c, W_x, W_h, b, b_hn, W_y, b_y, temp, k, p,
                am, ap, cN, cS, cL, cH, cV, cG)
    else:
        _sample(&m64, out, uniforms, first_ids, h, c, W_x, W_h, b, b_hn, W_y, b_y, temp, k, p,
                am, ap, cN, cS, cL, cH, cV, cG)


# ---- the training step in one call (csrc/train_step.h) ---------------------------------------

_CELL_KINDS = {"rnn": RF_CELL_RNN, "lstm": RF_CELL_LSTM, "gru": RF_CELL_GRU}
_UPDATE_KINDS = {"sgd": RF_UPDATE_SGD, "adagrad": RF_UPDATE_ADAGRAD,
                 "rmsprop": RF_UPDATE_RMSPROP, "adam": RF_UPDATE_ADAM}
# the parts of a step that TrainStep.profile times, in order (enum rf_train_phase)
TRAIN_PHASES = ("zero grads", "forward", "output layer", "softmax xent", "output backward",
                "backward", "clip", "update", "final state")


cdef struct _phase_clock:
    double *ns  # (RF_PHASE_COUNT) nanoseconds per phase, accumulated
    clockid_t clock
    int64_t last


cdef inline int64_t _clock_ns(clockid_t clock) noexcept nogil:
    cdef timespec ts
    clock_gettime(clock, &ts)
    return <int64_t>ts.tv_sec * 1000000000 + ts.tv_nsec


cdef void _phase_done(void *context, int phase) noexcept nogil:
    cdef _phase_clock *c = <_phase_clock *>context
    cdef int64_t now = _clock_ns(c.clock)
    c.ns[phase] += now - c.last
    c.last = now


cdef inline bint _is_array(object a, object dtype, tuple shape):
    """Whether ``a`` is a C-contiguous ndarray of ``dtype`` and ``shape`` (a test, no error)."""
    return (isinstance(a, np.ndarray) and a.dtype == dtype and a.shape == shape
            and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>a))


cdef bint _finite(floating kind, object a):
    cdef const floating *p = <const floating *>_data(a)
    cdef int64_t n = a.size
    cdef bint finite
    with nogil:
        finite = rf_all_finite(p, n)
    return finite


cdef _fill_training(rf_training *t, int cell, object params, object grads, list hs,
                    list caches, list dhs, object dA, object dR, object logits, object dlogits,
                    object outs, object dstate_h, object dstate_c, object pack, int L, int T,
                    int B, int V, int H):
    """The model descriptor and its per-layer descriptors, from checked arrays (caches: the
    lists cs, tcs, gates, R, each empty where the cell has none)."""
    cs, tcs, gates, R = caches
    if rf_training is rf_training_f32:
        t.layers = <rf_layer_f32 *>PyMem_Calloc(L, sizeof(rf_layer_f32))
        t.grads = <rf_layer_grads_f32 *>PyMem_Calloc(L, sizeof(rf_layer_grads_f32))
    else:
        t.layers = <rf_layer_f64 *>PyMem_Calloc(L, sizeof(rf_layer_f64))
        t.grads = <rf_layer_grads_f64 *>PyMem_Calloc(L, sizeof(rf_layer_grads_f64))
    if t.layers == NULL or t.grads == NULL:
        raise MemoryError()
    cdef int l
    for l in range(L):
        t.layers[l].T, t.layers[l].B, t.layers[l].In, t.layers[l].H = T, B, V if l == 0 else H, H
        _in(&t.layers[l].W_x, params[f"W_x.{l}"])
        _in(&t.layers[l].W_h, params[f"W_h.{l}"])
        _in(&t.layers[l].b, params[f"b.{l}"])
        _out(&t.layers[l].hs, hs[l])
        _out(&t.grads[l].dW_x, grads[f"W_x.{l}"])
        _out(&t.grads[l].dW_h, grads[f"W_h.{l}"])
        _out(&t.grads[l].db, grads[f"b.{l}"])
        _out(&t.grads[l].dX, dhs[l - 1] if l else None)
        _in(&t.grads[l].dhs, dhs[l])
        _out(&t.grads[l].dh0, dstate_h)
        _out(&t.grads[l].dc0, dstate_c)
        if cell == RF_CELL_LSTM:
            _out(&t.layers[l].cs, cs[l])
            _out(&t.layers[l].tcs, tcs[l])
        if cell != RF_CELL_RNN:
            _out(&t.layers[l].gates, gates[l])
        if cell == RF_CELL_GRU:
            _in(&t.layers[l].b_hn, params[f"b_hn.{l}"])
            _out(&t.layers[l].R, R[l])
            _out(&t.grads[l].db_hn, grads[f"b_hn.{l}"])
    t.model.cell, t.model.L, t.model.T, t.model.B, t.model.V, t.model.H = cell, L, T, B, V, H
    t.model.layers = t.layers
    t.model.grads = t.grads
    _out(&t.model.ws.dA, dA)
    _out(&t.model.ws.dR, dR)
    _out(&t.model.ws.pack, pack)
    _in(&t.model.W_y, params["W_y"])
    _in(&t.model.b_y, params["b_y"])
    _out(&t.model.dW_y, grads["W_y"])
    _out(&t.model.db_y, grads["b_y"])
    _out(&t.model.logits, logits)
    _out(&t.model.dlogits, dlogits)
    _out(&t.model.dtop, dhs[L - 1])
    _out(&t.model.outs, outs)
    _out(&t.model.param, params.flat)
    _out(&t.model.grad, grads.flat)
    t.model.n = params.flat.size


cdef _train(rf_training *t, double *loss, object x, object y, object h, object c,
            object masks, object h_T, object c_T, double grad_scale, double clip,
            double max_norm, object moment1, object moment2, _phase_clock *clock):
    """Point the call descriptor at this call's arrays and run the step (whose status, 1 for
    a loss that is not finite, the caller reads from the loss)."""
    t.call.x = <const int64_t *>_data(x)
    t.call.y = <const int64_t *>_data(y)
    _in(&t.call.h0, h)
    _in(&t.call.c0, c)
    _in(&t.call.masks, masks)
    _out(&t.call.h_T, h_T)
    _out(&t.call.c_T, c_T)
    t.call.grad_scale, t.call.clip, t.call.max_norm = grad_scale, clip, max_norm
    _out(&t.call.moment1, moment1)
    _out(&t.call.moment2, moment2)
    t.call.phase_done = NULL
    if clock != NULL:
        t.call.phase_done = _phase_done
    t.call.phase_context = clock
    with nogil:
        if clock != NULL:
            clock.last = _clock_ns(clock.clock)
        rf_train_step(loss, t)


cdef _check_step_ids(str name, object ids, tuple shape, int64_t V):
    """A step's (T, B) ids: int64, C-contiguous, each in [0, V)."""
    if not _is_array(ids, _INDEX_DTYPE, shape):
        _check_array(name, ids, _INDEX_DTYPE, shape)
    cdef const int64_t *p = <const int64_t *>_data(ids)
    cdef int64_t n = ids.size
    cdef bint ok
    with nogil:
        ok = rf_ids_in_range(p, n, V)
    if not ok:
        bad = ids[(ids < 0) | (ids >= V)].ravel()[0]
        raise ValueError(f"{name}: character id {int(bad)} out of range [0, {V})")


cdef _check_step_state(str name, object a, object dtype, tuple shape, bint wanted):
    """A step's h or c: a finite C-contiguous array of ``shape`` when ``wanted``, else None."""
    if not wanted:
        if a is not None:
            raise ValueError(f"{name}: expected None for this cell, got an array")
        return
    if a is None:
        raise TypeError(f"{name}: expected an array of shape {shape}, got None")
    if not _is_array(a, dtype, shape):
        _check_array(name, a, dtype, shape)
    if not (_finite(<float>0, a) if dtype == _F32 else _finite(<double>0, a)):
        raise ValueError(f"{name}: expected finite values, got NaN or infinity")


cdef class TrainStep:
    """A CharLM's training step at one (T, B) as one C call (csrc/train_step.h).

    Built once per model and (T, B) over the model's buffers, which are checked here: the
    parameters and gradients (``params``, ``grads``: name -> view mappings over one flat buffer,
    ``.flat``, as ``model.Params``), the activations every layer caches for backward (``hs``,
    ``cs``, ``tcs``, ``gates``, ``R``: lists of L arrays, None where the cell has none), the
    gradients flowing between layers ``dhs`` (L arrays (T, B, H)), the scratch ``dA`` and ``dR``
    (T, B, G), ``logits`` and ``dlogits`` (T B, V), and with dropout ``outs`` and ``masks``
    (L, T, B, H).  ``step`` then checks only what changes from call to call.  Like the model
    whose buffers it uses, one step runs at a time.
    """
    cdef rf_training_f32 t32
    cdef rf_training_f64 t64
    cdef readonly object dtype
    cdef readonly int T, B
    cdef int L, V, H, cell
    cdef readonly object masks  # (L, T, B, H) the buffer draw_masks fills, or None
    cdef object _flat_params, _flat_grads, _keep
    cdef object _profile  # (RF_PHASE_COUNT) float64 ns per phase, or None
    cdef _phase_clock _clock

    def __dealloc__(self):
        PyMem_Free(self.t32.layers)
        PyMem_Free(self.t32.grads)
        PyMem_Free(self.t64.layers)
        PyMem_Free(self.t64.grads)

    def __init__(self, str cell, params, grads, list hs, cs, tcs, gates, R, list dhs, dA, dR,
                 logits, dlogits, outs=None, masks=None):
        if cell not in _CELL_KINDS:
            raise ValueError(f"cell: expected one of {tuple(_CELL_KINDS)}, got {cell!r}")
        if self.t32.layers != NULL or self.t64.layers != NULL:
            raise RuntimeError("TrainStep: already built")
        dtype = _float_dtype("params.flat", params.flat)
        _check_ndim("hs[0]", hs[0] if hs else None, 3, "(T, B, H)")
        T, B, H = hs[0].shape
        L = len(hs)
        _check_ndim("b_y", params["b_y"], 1, "(V,)")
        V = params["b_y"].shape[0]
        G = _GATES[cell] * H
        if min(T, B, H, V) < 1:
            raise ValueError(f"hs[0], b_y: expected T, B, H, V >= 1, got {(T, B, H, V)}")
        _check_int_size("logits", (T * B, max(V, G)))
        n = params.flat.size
        _check_output("params.flat", params.flat, dtype, (n,))
        _check_output("grads.flat", grads.flat, dtype, (n,))
        for prefix, mapping in (("", params), ("d", grads)):
            for l in range(L):
                I = V if l == 0 else H
                _check_array(f"{prefix}W_x.{l}", mapping[f"W_x.{l}"], dtype, (I, G))
                _check_array(f"{prefix}W_h.{l}", mapping[f"W_h.{l}"], dtype, (H, G))
                _check_array(f"{prefix}b.{l}", mapping[f"b.{l}"], dtype, (G,))
                if cell == "gru":
                    _check_array(f"{prefix}b_hn.{l}", mapping[f"b_hn.{l}"], dtype, (H,))
            _check_array(f"{prefix}W_y", mapping["W_y"], dtype, (H, V))
            _check_array(f"{prefix}b_y", mapping["b_y"], dtype, (V,))
        per_layer = {"hs": (hs, (T, B, H)), "dhs": (dhs, (T, B, H))}
        if cell == "lstm":
            per_layer.update(cs=(cs, (T, B, H)), tcs=(tcs, (T, B, H)))
        if cell != "rnn":
            per_layer["gates"] = (gates, (T, B, G))
        if cell == "gru":
            per_layer["R"] = (R, (T, B, G))
        names, arrays = ["params.flat", "grads.flat"], [params.flat, grads.flat]
        for name, (buffers, shape) in per_layer.items():
            _check_layer_list(name, buffers, L)
            for l in range(L):
                _check_output(f"{name}[{l}]", buffers[l], dtype, shape)
                names.append(f"{name}[{l}]")
                arrays.append(buffers[l])
        if (outs is None) != (masks is None):
            raise ValueError("outs, masks: expected both (dropout) or neither")
        dstate_h = np.empty((B, H), dtype)
        dstate_c = np.empty((B, H), dtype) if cell == "lstm" else None
        pack_size = (rf_recurrent_pack_size_f32(H, G) if dtype == _F32
                     else rf_recurrent_pack_size_f64(H, G))
        pack = np.empty(max(pack_size, 1), dtype)
        shapes = {"dA": (dA, (T, B, G)), "dR": (dR, (T, B, G)), "logits": (logits, (T * B, V)),
                  "dlogits": (dlogits, (T * B, V)), "outs": (outs, (L, T, B, H)),
                  "masks": (masks, (L, T, B, H))}
        required = {"dA", "logits", "dlogits", *(("dR",) if cell == "gru" else ())}
        for name, (a, shape) in shapes.items():
            if a is not None or name in required:
                _check_output(name, a, dtype, shape)
        names += [*shapes, "dstate_h", "dstate_c", "pack"]
        arrays += [a for a, _ in shapes.values()] + [dstate_h, dstate_c, pack]
        _check_no_overlap(tuple(names), tuple(arrays), len(arrays))
        if cell != "gru":
            dR = None
        self.dtype, self.T, self.B, self.L, self.V, self.H = dtype, T, B, L, V, H
        self.cell = _CELL_KINDS[cell]
        self.masks = masks
        self._flat_params, self._flat_grads = params.flat, grads.flat
        self._keep = (params, grads, hs, cs, tcs, gates, R, dhs, dA, dR, logits, dlogits, outs,
                      dstate_h, dstate_c, pack)
        cdef list caches = [a or [] for a in (cs, tcs, gates, R)]
        if dtype == _F32:  # (the specialization named: Cython 3.3 cannot infer it here)
            _fill_training[rf_training_f32](
                &self.t32, self.cell, params, grads, hs, caches, dhs, dA, dR, logits, dlogits,
                outs, dstate_h, dstate_c, pack, L, T, B, V, H)
        else:
            _fill_training[rf_training_f64](
                &self.t64, self.cell, params, grads, hs, caches, dhs, dA, dR, logits, dlogits,
                outs, dstate_h, dstate_c, pack, L, T, B, V, H)

    def profile(self, ns=None, *, bint cpu=True):
        """Time every later step's phases (``TRAIN_PHASES``), adding nanoseconds to ``ns``
        (float64, one per phase) on the calling thread's CPU clock (``cpu``) or the monotonic
        wall clock; None stops."""
        if ns is not None:
            _check_output("ns", ns, _F64, (RF_PHASE_COUNT,))
            self._clock.ns = <double *>_data(ns)
            self._clock.clock = CLOCK_THREAD_CPUTIME_ID if cpu else CLOCK_MONOTONIC
        self._profile = ns

    def step(self, x, y, h, c, draw_masks, double grad_scale, clip, max_norm, update):
        """One training step from the state (h, c): returns (loss, h_T, c_T), the final state
        in new arrays (c_T None but for an LSTM); when the loss is not finite no update is
        made.  x, y: (T, B) int64 ids in [0, V); h, c: finite (L, B, H) arrays of the model's
        dtype (c None but for an LSTM), all C-contiguous; anything else raises (the model
        converts what it can before the call: ``CharLM._step_inputs``).

        draw_masks: None (no dropout), or a function that fills ``masks`` with this step's
        dropout factors, called once the inputs are accepted.  grad_scale: every gradient is
        first multiplied by it (1: not).  clip, max_norm: None or > 0, as ``CharLM.clip_grads``'s
        value and max_norm.  update: None (gradients only, left in grads), or an
        ``rnnfast.core.Update`` (kind, lr, momentum, alpha, beta1, beta2, eps, step, moment1,
        moment2) with kind one of "sgd", "adagrad", "rmsprop", "adam" and the moments flat
        buffers like params.flat (None where the kind keeps fewer).
        """
        cdef tuple ids_shape = (self.T, self.B), state_shape = (self.L, self.B, self.H)
        _check_step_ids("x", x, ids_shape, self.V)
        _check_step_ids("y", y, ids_shape, self.V)
        _check_step_state("state.h", h, self.dtype, state_shape, True)
        _check_step_state("state.c", c, self.dtype, state_shape, self.cell == RF_CELL_LSTM)
        cdef double clip_ = 0 if clip is None else _hyper("clip", clip, 0.0, INFINITY, False)
        cdef double norm_ = (0 if max_norm is None
                             else _hyper("max_norm", max_norm, 0.0, INFINITY, False))
        cdef rf_update u
        memset(&u, 0, sizeof(u))
        moment1 = moment2 = None
        if update is not None:
            kind, u.lr, u.momentum, u.alpha, u.beta1, u.beta2, u.eps, u.step, moment1, moment2 \
                = update
            if kind not in _UPDATE_KINDS:
                raise ValueError(f"update: expected one of {tuple(_UPDATE_KINDS)}, got {kind!r}")
            u.kind = _UPDATE_KINDS[kind]
            self._check_moment("moment1", moment1, u.kind != RF_UPDATE_SGD or u.momentum != 0)
            self._check_moment("moment2", moment2, u.kind == RF_UPDATE_ADAM)
        if draw_masks is not None:
            if self.masks is None:
                raise ValueError("draw_masks: this TrainStep was built without dropout buffers")
            draw_masks(self.masks)
        h_T = np.empty(state_shape, self.dtype)
        c_T = np.empty(state_shape, self.dtype) if self.cell == RF_CELL_LSTM else None
        masks = self.masks if draw_masks is not None else None
        cdef _phase_clock *clock = &self._clock if self._profile is not None else NULL
        cdef double loss
        if self.dtype == _F32:
            self.t32.call.update = u
            _train(&self.t32, &loss, x, y, h, c, masks, h_T, c_T, grad_scale, clip_, norm_,
                   moment1, moment2, clock)
        else:
            self.t64.call.update = u
            _train(&self.t64, &loss, x, y, h, c, masks, h_T, c_T, grad_scale, clip_, norm_,
                   moment1, moment2, clock)
        return loss, h_T, c_T

    cdef _check_moment(self, str name, object moment, bint used):
        if not used:
            if moment is not None:
                raise ValueError(f"{name}: expected None for this update, got an array")
            return
        _check_output(name, moment, self.dtype, self._flat_params.shape)
        for other in (self._flat_params, self._flat_grads):
            if _overlap(moment, other):
                raise ValueError(f"{name}: output array overlaps the model's parameters or "
                                 "gradients, expected no memory shared with another argument")


# ---- test hooks: the kernels' own exp, tanh and sigmoid -------------------------------------

cdef _elementwise(floating kind, int which, object out, object x):
    cdef floating *o = <floating *>_data(out)
    cdef const floating *xp = <const floating *>_data(x)
    cdef int64_t n = x.size
    with nogil:
        if which == 0:
            rf_exp_array(o, xp, n)
        elif which == 1:
            rf_vec_tanh(o, xp, n)
        else:
            rf_vec_sigmoid(o, xp, n)


cdef _elementwise_hook(int which, object out, object x):
    dtype = _float_dtype("x", x)
    _check_array("x", x, dtype, (x.size,))
    _check_output("out", out, dtype, (x.size,))
    _check_no_overlap(("out", "x"), (out, x), 1)
    if dtype == _F32:
        _elementwise(<float>0, which, out, x)
    else:
        _elementwise(<double>0, which, out, x)


def vec_tanh(out, x):
    """out = tanh(x) by the kernels' own vectorizable tanh (for its error test against libm)."""
    _elementwise_hook(1, out, x)


def vec_sigmoid(out, x):
    """out = 1 / (1 + exp(-x)) by the kernels' own vectorizable sigmoid (for its error test)."""
    _elementwise_hook(2, out, x)


def _exp_approx(x):
    """Test hook: the vectorized exp that softmax_xent uses (csrc/vmath_tmpl.h), elementwise on a
    float32 or float64 array; returns a new array."""
    _float_dtype("x", x)
    x = np.ascontiguousarray(x).reshape(-1)
    out = np.empty_like(x)
    _elementwise_hook(0, out, x)
    return out
