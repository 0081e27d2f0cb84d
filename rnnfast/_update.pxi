# Bridge of the optimizer, clipping, output-layer kernels (csrc/optim*, csrc/linear*) and the
# exp test hook of csrc/loss*.  Included at the end of _kernels.pyx, so it shares that module's
# helpers (_check_array, _check_output, _float_dtype, _data).  Same pattern as softmax_xent:
# check everything, name the argument, then call C without the GIL.

from libc.math cimport INFINITY, isfinite
from libc.stdint cimport int64_t
from libc.limits cimport INT_MAX

cdef extern from "optim.h" nogil:
    void rf_sgd_update_f32(float *param, const float *grad, float *velocity, double lr,
                           double momentum, int64_t n)
    void rf_sgd_update_f64(double *param, const double *grad, double *velocity, double lr,
                           double momentum, int64_t n)
    void rf_adagrad_update_f32(float *param, const float *grad, float *memory, double lr,
                               double eps, int64_t n)
    void rf_adagrad_update_f64(double *param, const double *grad, double *memory, double lr,
                               double eps, int64_t n)
    void rf_rmsprop_update_f32(float *param, const float *grad, float *mean_square, double lr,
                               double alpha, double eps, int64_t n)
    void rf_rmsprop_update_f64(double *param, const double *grad, double *mean_square,
                               double lr, double alpha, double eps, int64_t n)
    void rf_adam_update_f32(float *param, const float *grad, float *m, float *v, double lr,
                            double beta1, double beta2, double eps, int64_t step, int64_t n)
    void rf_adam_update_f64(double *param, const double *grad, double *m, double *v,
                            double lr, double beta1, double beta2, double eps, int64_t step,
                            int64_t n)
    void rf_clip_by_value_f32(float *grad, double limit, int64_t n)
    void rf_clip_by_value_f64(double *grad, double limit, int64_t n)
    double rf_global_norm_f32(const float *grad, int64_t n)
    double rf_global_norm_f64(const double *grad, int64_t n)
    void rf_scale_f32(float *grad, double factor, int64_t n)
    void rf_scale_f64(double *grad, double factor, int64_t n)

cdef extern from "linear.h" nogil:
    void rf_linear_forward_f32(float *out, const float *X, const float *W, const float *b,
                               int N, int In, int Out)
    void rf_linear_forward_f64(double *out, const double *X, const double *W, const double *b,
                               int N, int In, int Out)
    void rf_linear_backward_f32(float *dX, float *dW, float *db, const float *dout,
                                const float *X, const float *W, int N, int In,
                                int Out)
    void rf_linear_backward_f64(double *dX, double *dW, double *db, const double *dout,
                                const double *X, const double *W, int N, int In,
                                int Out)

cdef extern from "loss.h" nogil:
    void rf_exp_array_f32(float *out, const float *x, int64_t n)
    void rf_exp_array_f64(double *out, const double *x, int64_t n)


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


cdef inline bint _overlap(object a, object b):
    """Whether two C-contiguous arrays share bytes: their address ranges intersect."""
    cdef char *pa = <char *>cnp.PyArray_DATA(<cnp.ndarray>a)
    cdef char *pb = <char *>cnp.PyArray_DATA(<cnp.ndarray>b)
    cdef Py_ssize_t na = cnp.PyArray_NBYTES(<cnp.ndarray>a)
    cdef Py_ssize_t nb = cnp.PyArray_NBYTES(<cnp.ndarray>b)
    return na > 0 and nb > 0 and pa < pb + nb and pb < pa + na


cdef _flat_inputs(tuple names, tuple arrays, tuple written):
    """Check the flat buffers of an update: every array a C-contiguous ndarray with the dtype
    and shape of the first; those flagged in ``written`` writeable and sharing no memory with
    any other.  Returns the dtype.  (Lean on purpose: at min-char-rnn size the update itself
    takes about a microsecond, so the checks compare ranges of contiguous arrays directly.)"""
    dtype = _float_dtype(names[0], arrays[0])
    shape = arrays[0].shape
    cdef Py_ssize_t i, j, count = len(arrays)
    for i in range(count):
        _check_array(names[i], arrays[i], dtype, shape)
        if written[i] and not arrays[i].flags.writeable:
            raise ValueError(f"{names[i]}: output array is read-only")
    for i in range(count):
        if written[i]:
            for j in range(count):
                if j != i and _overlap(arrays[i], arrays[j]):
                    raise ValueError(f"{names[i]}: output array overlaps an input array")
    return dtype


def sgd_update(param, grad, velocity, lr, momentum):
    """SGD with optional momentum on flat buffers, in place; see ``reference.sgd_update``."""
    cdef double lr_ = _hyper("lr", lr, 0.0, INFINITY, False)
    cdef double mu = _hyper("momentum", momentum, 0.0, 1.0, True)
    if mu != 0 and velocity is None:
        raise ValueError("velocity: expected an array when momentum != 0, got None")
    if mu == 0:
        dtype = _flat_inputs(("param", "grad"), (param, grad), (True, False))
    else:
        dtype = _flat_inputs(("param", "grad", "velocity"), (param, grad, velocity),
                             (True, False, True))
    cdef int64_t n = param.size
    cdef void *p = _data(param)
    cdef void *g = _data(grad)
    cdef void *vel = NULL if mu == 0 else _data(velocity)
    if dtype == np.float32:
        with nogil:
            rf_sgd_update_f32(<float *>p, <const float *>g, <float *>vel, lr_, mu, n)
    else:
        with nogil:
            rf_sgd_update_f64(<double *>p, <const double *>g, <double *>vel, lr_, mu, n)


def adagrad_update(param, grad, memory, lr, eps):
    """Adagrad on flat buffers, in place; see ``reference.adagrad_update``."""
    cdef double lr_ = _hyper("lr", lr, 0.0, INFINITY, False)
    cdef double eps_ = _hyper("eps", eps, 0.0, INFINITY, False)
    dtype = _flat_inputs(("param", "grad", "memory"), (param, grad, memory),
                         (True, False, True))
    cdef int64_t n = param.size
    cdef void *p = _data(param)
    cdef void *g = _data(grad)
    cdef void *mem = _data(memory)
    if dtype == np.float32:
        with nogil:
            rf_adagrad_update_f32(<float *>p, <const float *>g, <float *>mem, lr_, eps_, n)
    else:
        with nogil:
            rf_adagrad_update_f64(<double *>p, <const double *>g, <double *>mem, lr_, eps_, n)


def rmsprop_update(param, grad, mean_square, lr, alpha, eps):
    """RMSProp on flat buffers, in place; see ``reference.rmsprop_update``."""
    cdef double lr_ = _hyper("lr", lr, 0.0, INFINITY, False)
    cdef double alpha_ = _hyper("alpha", alpha, 0.0, 1.0, True)
    cdef double eps_ = _hyper("eps", eps, 0.0, INFINITY, False)
    dtype = _flat_inputs(("param", "grad", "mean_square"), (param, grad, mean_square),
                         (True, False, True))
    cdef int64_t n = param.size
    cdef void *p = _data(param)
    cdef void *g = _data(grad)
    cdef void *ms = _data(mean_square)
    if dtype == np.float32:
        with nogil:
            rf_rmsprop_update_f32(<float *>p, <const float *>g, <float *>ms, lr_, alpha_, eps_,
                                  n)
    else:
        with nogil:
            rf_rmsprop_update_f64(<double *>p, <const double *>g, <double *>ms, lr_, alpha_,
                                  eps_, n)


def adam_update(param, grad, m, v, lr, beta1, beta2, eps, step):
    """Adam on flat buffers, in place, ``step`` counting from 1; see ``reference.adam_update``."""
    cdef double lr_ = _hyper("lr", lr, 0.0, INFINITY, False)
    cdef double b1 = _hyper("beta1", beta1, 0.0, 1.0, True)
    cdef double b2 = _hyper("beta2", beta2, 0.0, 1.0, True)
    cdef double eps_ = _hyper("eps", eps, 0.0, INFINITY, False)
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 1:
        raise ValueError(f"step: expected an integer >= 1 (the update count), got {step!r}")
    cdef int64_t t = step
    dtype = _flat_inputs(("param", "grad", "m", "v"), (param, grad, m, v),
                         (True, False, True, True))
    cdef int64_t n = param.size
    cdef void *p = _data(param)
    cdef void *g = _data(grad)
    cdef void *m_ = _data(m)
    cdef void *v_ = _data(v)
    if dtype == np.float32:
        with nogil:
            rf_adam_update_f32(<float *>p, <const float *>g, <float *>m_, <float *>v_, lr_, b1,
                               b2, eps_, t, n)
    else:
        with nogil:
            rf_adam_update_f64(<double *>p, <const double *>g, <double *>m_, <double *>v_, lr_,
                               b1, b2, eps_, t, n)


def clip_by_value(grad, limit):
    """Clamp every element of ``grad`` to [-limit, limit] in place; see the reference."""
    cdef double lim = _hyper("limit", limit, 0.0, INFINITY, False)
    dtype = _flat_inputs(("grad",), (grad,), (True,))
    cdef int64_t n = grad.size
    cdef void *g = _data(grad)
    if dtype == np.float32:
        with nogil:
            rf_clip_by_value_f32(<float *>g, lim, n)
    else:
        with nogil:
            rf_clip_by_value_f64(<double *>g, lim, n)


def global_norm(grad):
    """sqrt(sum grad^2), accumulated in float64; see ``reference.global_norm``."""
    dtype = _float_dtype("grad", grad)
    _check_array("grad", grad, dtype, grad.shape)
    cdef int64_t n = grad.size
    cdef const void *g = _data(grad)
    cdef double norm
    if dtype == np.float32:
        with nogil:
            norm = rf_global_norm_f32(<const float *>g, n)
    else:
        with nogil:
            norm = rf_global_norm_f64(<const double *>g, n)
    return norm


def scale(grad, factor):
    """grad *= factor in place; see ``reference.scale``."""
    cdef double f = _hyper("factor", factor, -INFINITY, INFINITY, False)
    dtype = _flat_inputs(("grad",), (grad,), (True,))
    cdef int64_t n = grad.size
    cdef void *g = _data(grad)
    if dtype == np.float32:
        with nogil:
            rf_scale_f32(<float *>g, f, n)
    else:
        with nogil:
            rf_scale_f64(<double *>g, f, n)


cdef tuple _matrix_shape(str name, object a, str expected):
    """The (rows, cols) of a 2-D array, each small enough for a BLAS int."""
    if a.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array of shape {expected}, got shape {a.shape}")
    if a.shape[0] > INT_MAX or a.shape[1] > INT_MAX:
        raise ValueError(f"{name}: each dimension must be at most {INT_MAX}, got {a.shape}")
    return a.shape


def linear_forward(out, X, W, b):
    """out = X W + b.  out (N, O);  X (N, I);  W (I, O);  b (O,).  See the reference."""
    dtype = _float_dtype("X", X)
    N, n_in = _matrix_shape("X", X, "(N, I)")
    _float_dtype("W", W)
    _, n_out = _matrix_shape("W", W, "(I, O)")
    _check_array("X", X, dtype, (N, n_in))
    _check_array("W", W, dtype, (n_in, n_out))
    _check_array("b", b, dtype, (n_out,))
    _check_output("out", out, dtype, (N, n_out), (X, W, b))
    cdef int n_ = N, i_ = n_in, o_ = n_out
    cdef void *o = _data(out)
    cdef const void *x = _data(X)
    cdef const void *w = _data(W)
    cdef const void *b_ = _data(b)
    if dtype == np.float32:
        with nogil:
            rf_linear_forward_f32(<float *>o, <const float *>x, <const float *>w,
                                  <const float *>b_, n_, i_, o_)
    else:
        with nogil:
            rf_linear_forward_f64(<double *>o, <const double *>x, <const double *>w,
                                  <const double *>b_, n_, i_, o_)


def linear_backward(dX, dW, db, dout, X, W):
    """dW += X^T dout;  db += sum dout;  dX = dout W^T (dX may be None).  See the reference."""
    dtype = _float_dtype("X", X)
    N, n_in = _matrix_shape("X", X, "(N, I)")
    _float_dtype("W", W)
    _, n_out = _matrix_shape("W", W, "(I, O)")
    _check_array("X", X, dtype, (N, n_in))
    _check_array("W", W, dtype, (n_in, n_out))
    _check_array("dout", dout, dtype, (N, n_out))
    inputs = (dout, X, W)
    outputs = {"dW": (dW, (n_in, n_out)), "db": (db, (n_out,))}
    if dX is not None:
        outputs["dX"] = (dX, (N, n_in))
    for name, (a, shape) in outputs.items():
        others = tuple(b for other, (b, _) in outputs.items() if other != name)
        _check_output(name, a, dtype, shape, inputs + others)
    cdef int n_ = N, i_ = n_in, o_ = n_out
    cdef void *dx = NULL if dX is None else _data(dX)
    cdef void *dw = _data(dW)
    cdef void *db_ = _data(db)
    cdef const void *dz = _data(dout)
    cdef const void *x = _data(X)
    cdef const void *w = _data(W)
    if dtype == np.float32:
        with nogil:
            rf_linear_backward_f32(<float *>dx, <float *>dw, <float *>db_, <const float *>dz,
                                   <const float *>x, <const float *>w, n_, i_, o_)
    else:
        with nogil:
            rf_linear_backward_f64(<double *>dx, <double *>dw, <double *>db_,
                                   <const double *>dz, <const double *>x, <const double *>w,
                                   n_, i_, o_)


def _exp_approx(x):
    """Test hook: the vectorized exp that softmax_xent uses (csrc/vmath_tmpl.h), elementwise on a
    float32 or float64 array; returns a new array."""
    dtype = _float_dtype("x", x)
    x = np.ascontiguousarray(x)
    out = np.empty_like(x)
    cdef int64_t n = x.size
    cdef void *o = _data(out)
    cdef const void *xp = _data(x)
    if dtype == np.float32:
        with nogil:
            rf_exp_array_f32(<float *>o, <const float *>xp, n)
    else:
        with nogil:
            rf_exp_array_f64(<double *>o, <const double *>xp, n)
    return out
