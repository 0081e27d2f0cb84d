# The recurrent layers and the sampling loop: checks, then the C of csrc/recurrent.c and
# csrc/sample.c without the GIL.  Included at the end of _kernels.pyx; each function has the name
# and signature of its twin in rnnfast.reference.

cdef extern from "recurrent.h" nogil:
    void rf_rnn_forward_f32(float *hs, float *pack, const int64_t *ids, const float *X,
                            const float *W_x, const float *W_h, const float *b,
                            const float *h0, int T, int B, int I, int H)
    void rf_rnn_forward_f64(double *hs, double *pack, const int64_t *ids, const double *X,
                            const double *W_x, const double *W_h, const double *b,
                            const double *h0, int T, int B, int I, int H)
    void rf_rnn_backward_f32(float *dX, float *dW_x, float *dW_h, float *db, float *dh0,
                             float *dA, float *pack, const float *dH, const int64_t *ids,
                             const float *X, const float *hs, const float *W_x,
                             const float *W_h, const float *h0, int T, int B, int I, int H)
    void rf_rnn_backward_f64(double *dX, double *dW_x, double *dW_h, double *db, double *dh0,
                             double *dA, double *pack, const double *dH, const int64_t *ids,
                             const double *X, const double *hs, const double *W_x,
                             const double *W_h, const double *h0, int T, int B, int I, int H)
    void rf_lstm_forward_f32(float *hs, float *cs, float *tcs, float *gates, float *pack,
                             const int64_t *ids, const float *X, const float *W_x,
                             const float *W_h, const float *b, const float *h0,
                             const float *c0, int T, int B, int I, int H)
    void rf_lstm_forward_f64(double *hs, double *cs, double *tcs, double *gates, double *pack,
                             const int64_t *ids, const double *X, const double *W_x,
                             const double *W_h, const double *b, const double *h0,
                             const double *c0, int T, int B, int I, int H)
    void rf_lstm_backward_f32(float *dX, float *dW_x, float *dW_h, float *db, float *dh0,
                              float *dc0, float *dA, float *pack, const float *dH,
                              const int64_t *ids, const float *X, const float *hs,
                              const float *cs, const float *tcs, const float *gates,
                              const float *W_x, const float *W_h, const float *h0,
                              const float *c0, int T, int B, int I, int H)
    void rf_lstm_backward_f64(double *dX, double *dW_x, double *dW_h, double *db, double *dh0,
                              double *dc0, double *dA, double *pack, const double *dH,
                              const int64_t *ids, const double *X, const double *hs,
                              const double *cs, const double *tcs, const double *gates,
                              const double *W_x, const double *W_h, const double *h0,
                              const double *c0, int T, int B, int I, int H)
    void rf_sample_f32(int64_t *out, const double *uniforms, const int64_t *first_ids, float *h,
                       float *c, const float *const *W_x, const float *const *W_h,
                       const float *const *b, const float *W_y, const float *b_y,
                       double temperature, int top_k, int argmax, int N, int S, int L, int H,
                       int V, float *act, float *cbuf, float *tcbuf, float *logits, double *w,
                       double *sel, int64_t *ids)
    void rf_sample_f64(int64_t *out, const double *uniforms, const int64_t *first_ids,
                       double *h, double *c, const double *const *W_x,
                       const double *const *W_h, const double *const *b, const double *W_y,
                       const double *b_y, double temperature, int top_k, int argmax, int N,
                       int S, int L, int H, int V, double *act, double *cbuf, double *tcbuf,
                       double *logits, double *w, double *sel, int64_t *ids)
    int64_t rf_recurrent_pack_size_f32(int H, int G)
    int64_t rf_recurrent_pack_size_f64(int H, int G)
    void rf_vec_tanh_f32(float *out, const float *x, int64_t n)
    void rf_vec_tanh_f64(double *out, const double *x, int64_t n)
    void rf_vec_sigmoid_f32(float *out, const float *x, int64_t n)
    void rf_vec_sigmoid_f64(double *out, const double *x, int64_t n)

import math

_GATES = {"rnn": 1, "lstm": 4}
_INT_MAX = 2**31 - 1


cdef object _pack_scratch(object dtype, int H, int G):
    """The kernels' scratch for W_h packed once per call (csrc/pgemm_tmpl.h); a new array per
    call, so concurrent calls from several threads never share one."""
    cdef int64_t n
    if dtype == np.float32:
        n = rf_recurrent_pack_size_f32(H, G)
    else:
        n = rf_recurrent_pack_size_f64(H, G)
    return np.empty(max(n, 1), dtype)


cdef _check_ndim(str name, object a, int ndim, str expected):
    """Raise unless ``a`` is an ndarray with ``ndim`` dimensions (``expected`` names them)."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray, got {type(a).__name__}")
    if a.ndim != ndim:
        raise ValueError(f"{name}: expected shape {expected}, got {a.shape}")


cdef _check_outputs(list outputs, list inputs):
    """Each (name, array, dtype, shape) of ``outputs`` (None entries skipped) must pass
    _check_array, be writeable and share no memory with any (name, array) of ``inputs`` nor with
    an output before it."""
    seen = list(inputs)
    for name, a, dtype, shape in outputs:
        if a is None:
            continue
        _check_array(name, a, dtype, shape)
        if not a.flags.writeable:
            raise ValueError(f"{name}: output array is read-only")
        for other_name, other in seen:
            if other is not None and np.may_share_memory(a, other):
                raise ValueError(f"{name}: output array overlaps {other_name}")
        seen.append((name, a))


cdef _check_size(str name, tuple shape):
    """C indexes rows with int: every matrix the kernels see must stay below 2^31 per dim."""
    for n in shape:
        if n > _INT_MAX:
            raise ValueError(f"{name}: dimension {n} of shape {shape} exceeds 2^31 - 1")


cdef tuple _check_layer(str cell, object X, object W_x, object W_h, object b, object h0,
                        object c0):
    """Check a layer's inputs (b, c0: None when the kernel takes none); returns
    (dtype, T, B, I, H, ids), ids True when X holds character ids."""
    cdef int gates = _GATES[cell]
    dtype = _float_dtype("W_h", W_h)
    g_name = "4H" if gates == 4 else "H"
    if W_h.ndim != 2 or W_h.shape[0] < 1 or W_h.shape[1] != gates * W_h.shape[0]:
        raise ValueError(f"W_h: expected shape (H, {g_name}) with H >= 1 for an {cell} layer, "
                         f"got {W_h.shape}")
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
    if not isinstance(X, np.ndarray):
        raise TypeError(f"X: expected a numpy.ndarray, got {type(X).__name__}")
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
    _check_size("X", (T * B, I, G))
    return dtype, T, B, I, H, ids


cdef inline void *_data_or_null(object a):
    return NULL if a is None else _data(a)


def rnn_forward(H, X, W_x, W_h, b, h0):
    """Vanilla RNN over a sequence; see ``reference.rnn_forward``."""
    dtype, T, B, I, n, ids = _check_layer("rnn", X, W_x, W_h, b, h0, None)
    inputs = [("X", X), ("W_x", W_x), ("W_h", W_h), ("b", b), ("h0", h0)]
    _check_outputs([("H", H, dtype, (T, B, n))], inputs)
    cdef int cT = T, cB = B, cI = I, cH = n
    pack = _pack_scratch(dtype, n, n)
    cdef void *pk = _data(pack)
    cdef void *hs = _data(H)
    cdef void *x = _data(X)
    cdef const int64_t *idp = <const int64_t *>x if ids else NULL
    cdef void *xp = NULL if ids else x
    cdef void *wx = _data(W_x)
    cdef void *wh = _data(W_h)
    cdef void *bp = _data(b)
    cdef void *h0p = _data(h0)
    if dtype == np.float32:
        with nogil:
            rf_rnn_forward_f32(<float *>hs, <float *>pk, idp, <const float *>xp, <const float *>wx,
                               <const float *>wh, <const float *>bp, <const float *>h0p,
                               cT, cB, cI, cH)
    else:
        with nogil:
            rf_rnn_forward_f64(<double *>hs, <double *>pk, idp, <const double *>xp,
                               <const double *>wx, <const double *>wh, <const double *>bp,
                               <const double *>h0p, cT, cB, cI, cH)


def rnn_backward(dX, dW_x, dW_h, db, dh0, dA, dH, X, H, W_x, W_h, h0):
    """Backward through time of ``rnn_forward``; see ``reference.rnn_backward``."""
    dtype, T, B, I, n, ids = _check_layer("rnn", X, W_x, W_h, None, h0, None)
    _check_array("dH", dH, dtype, (T, B, n))
    _check_array("H", H, dtype, (T, B, n))
    if dX is not None and ids:
        raise ValueError("dX: expected None when X holds character ids (no input gradient)")
    inputs = [("dH", dH), ("X", X), ("H", H), ("W_x", W_x), ("W_h", W_h), ("h0", h0)]
    _check_outputs([("dX", dX, dtype, (T, B, I)), ("dW_x", dW_x, dtype, (I, n)),
                    ("dW_h", dW_h, dtype, (n, n)), ("db", db, dtype, (n,)),
                    ("dh0", dh0, dtype, (B, n)), ("dA", dA, dtype, (T, B, n))], inputs)
    cdef int cT = T, cB = B, cI = I, cH = n
    pack = _pack_scratch(dtype, n, n)
    cdef void *pk = _data(pack)
    cdef void *dxp = _data_or_null(dX)
    cdef void *dwx = _data(dW_x)
    cdef void *dwh = _data(dW_h)
    cdef void *dbp = _data(db)
    cdef void *dh0p = _data(dh0)
    cdef void *dap = _data(dA)
    cdef void *dhp = _data(dH)
    cdef void *x = _data(X)
    cdef const int64_t *idp = <const int64_t *>x if ids else NULL
    cdef void *xp = NULL if ids else x
    cdef void *hs = _data(H)
    cdef void *wx = _data(W_x)
    cdef void *wh = _data(W_h)
    cdef void *h0p = _data(h0)
    if dtype == np.float32:
        with nogil:
            rf_rnn_backward_f32(<float *>dxp, <float *>dwx, <float *>dwh, <float *>dbp,
                                <float *>dh0p, <float *>dap, <float *>pk, <const float *>dhp, idp,
                                <const float *>xp, <const float *>hs, <const float *>wx,
                                <const float *>wh, <const float *>h0p, cT, cB, cI, cH)
    else:
        with nogil:
            rf_rnn_backward_f64(<double *>dxp, <double *>dwx, <double *>dwh, <double *>dbp,
                                <double *>dh0p, <double *>dap, <double *>pk,
                                <const double *>dhp, idp, <const double *>xp,
                                <const double *>hs, <const double *>wx, <const double *>wh,
                                <const double *>h0p, cT, cB, cI, cH)


def lstm_forward(H, C, tanhC, gates, X, W_x, W_h, b, h0, c0):
    """LSTM over a sequence; see ``reference.lstm_forward``."""
    if c0 is None:
        raise TypeError("c0: expected a numpy.ndarray, got NoneType")
    dtype, T, B, I, n, ids = _check_layer("lstm", X, W_x, W_h, b, h0, c0)
    inputs = [("X", X), ("W_x", W_x), ("W_h", W_h), ("b", b), ("h0", h0), ("c0", c0)]
    _check_outputs([("H", H, dtype, (T, B, n)), ("C", C, dtype, (T, B, n)),
                    ("tanhC", tanhC, dtype, (T, B, n)),
                    ("gates", gates, dtype, (T, B, 4 * n))], inputs)
    cdef int cT = T, cB = B, cI = I, cH = n
    pack = _pack_scratch(dtype, n, 4 * n)
    cdef void *pk = _data(pack)
    cdef void *hs = _data(H)
    cdef void *cs = _data(C)
    cdef void *tcs = _data(tanhC)
    cdef void *gp = _data(gates)
    cdef void *x = _data(X)
    cdef const int64_t *idp = <const int64_t *>x if ids else NULL
    cdef void *xp = NULL if ids else x
    cdef void *wx = _data(W_x)
    cdef void *wh = _data(W_h)
    cdef void *bp = _data(b)
    cdef void *h0p = _data(h0)
    cdef void *c0p = _data(c0)
    if dtype == np.float32:
        with nogil:
            rf_lstm_forward_f32(<float *>hs, <float *>cs, <float *>tcs, <float *>gp,
                                <float *>pk, idp, <const float *>xp, <const float *>wx,
                                <const float *>wh, <const float *>bp, <const float *>h0p,
                                <const float *>c0p, cT, cB, cI, cH)
    else:
        with nogil:
            rf_lstm_forward_f64(<double *>hs, <double *>cs, <double *>tcs, <double *>gp,
                                <double *>pk, idp, <const double *>xp, <const double *>wx,
                                <const double *>wh, <const double *>bp, <const double *>h0p,
                                <const double *>c0p, cT, cB, cI, cH)


def lstm_backward(dX, dW_x, dW_h, db, dh0, dc0, dA, dH, X, H, C, tanhC, gates, W_x, W_h, h0,
                  c0):
    """Backward through time of ``lstm_forward``; see ``reference.lstm_backward``."""
    if c0 is None:
        raise TypeError("c0: expected a numpy.ndarray, got NoneType")
    dtype, T, B, I, n, ids = _check_layer("lstm", X, W_x, W_h, None, h0, c0)
    for name, a in (("dH", dH), ("H", H), ("C", C), ("tanhC", tanhC)):
        _check_array(name, a, dtype, (T, B, n))
    _check_array("gates", gates, dtype, (T, B, 4 * n))
    if dX is not None and ids:
        raise ValueError("dX: expected None when X holds character ids (no input gradient)")
    inputs = [("dH", dH), ("X", X), ("H", H), ("C", C), ("tanhC", tanhC), ("gates", gates),
              ("W_x", W_x), ("W_h", W_h), ("h0", h0), ("c0", c0)]
    _check_outputs([("dX", dX, dtype, (T, B, I)), ("dW_x", dW_x, dtype, (I, 4 * n)),
                    ("dW_h", dW_h, dtype, (n, 4 * n)), ("db", db, dtype, (4 * n,)),
                    ("dh0", dh0, dtype, (B, n)), ("dc0", dc0, dtype, (B, n)),
                    ("dA", dA, dtype, (T, B, 4 * n))], inputs)
    cdef int cT = T, cB = B, cI = I, cH = n
    pack = _pack_scratch(dtype, n, 4 * n)
    cdef void *pk = _data(pack)
    cdef void *dxp = _data_or_null(dX)
    cdef void *dwx = _data(dW_x)
    cdef void *dwh = _data(dW_h)
    cdef void *dbp = _data(db)
    cdef void *dh0p = _data(dh0)
    cdef void *dc0p = _data(dc0)
    cdef void *dap = _data(dA)
    cdef void *dhp = _data(dH)
    cdef void *x = _data(X)
    cdef const int64_t *idp = <const int64_t *>x if ids else NULL
    cdef void *xp = NULL if ids else x
    cdef void *hs = _data(H)
    cdef void *cs = _data(C)
    cdef void *tcs = _data(tanhC)
    cdef void *gp = _data(gates)
    cdef void *wx = _data(W_x)
    cdef void *wh = _data(W_h)
    cdef void *h0p = _data(h0)
    cdef void *c0p = _data(c0)
    if dtype == np.float32:
        with nogil:
            rf_lstm_backward_f32(<float *>dxp, <float *>dwx, <float *>dwh, <float *>dbp,
                                 <float *>dh0p, <float *>dc0p, <float *>dap, <float *>pk,
                                 <const float *>dhp, idp, <const float *>xp, <const float *>hs,
                                 <const float *>cs, <const float *>tcs, <const float *>gp,
                                 <const float *>wx, <const float *>wh, <const float *>h0p,
                                 <const float *>c0p, cT, cB, cI, cH)
    else:
        with nogil:
            rf_lstm_backward_f64(<double *>dxp, <double *>dwx, <double *>dwh, <double *>dbp,
                                 <double *>dh0p, <double *>dc0p, <double *>dap, <double *>pk,
                                 <const double *>dhp, idp, <const double *>xp,
                                 <const double *>hs, <const double *>cs, <const double *>tcs,
                                 <const double *>gp, <const double *>wx, <const double *>wh,
                                 <const double *>h0p, <const double *>c0p, cT, cB, cI, cH)


cdef list _check_layer_list(str name, object arrays, int L):
    if not isinstance(arrays, (list, tuple)):
        raise TypeError(f"{name}: expected a list of the {L} layers' arrays, "
                        f"got {type(arrays).__name__}")
    if len(arrays) != L:
        raise ValueError(f"{name}: expected {L} arrays (one per layer, L = h.shape[0]), "
                         f"got {len(arrays)}")
    return list(arrays)


def sample(out, uniforms, first_ids, h, c, W_x, W_h, b, W_y, b_y, temperature, top_k, argmax,
           b_hn=None):
    """Generate characters for S streams; see ``reference.sample`` and ``reference.draw``."""
    if b_hn is not None:
        raise NotImplementedError("b_hn: the C sampling loop has no GRU yet")
    dtype = _float_dtype("h", h)
    if h.ndim != 3 or min(h.shape) < 1:
        raise ValueError(f"h: expected shape (L, S, H) with every dimension >= 1, got {h.shape}")
    L, S, n = h.shape
    cell = "rnn" if c is None else "lstm"
    G = _GATES[cell] * n
    g_name = "4H" if cell == "lstm" else "H"
    _check_array("h", h, dtype, (L, S, n))
    if c is not None:
        _check_array("c", c, dtype, (L, S, n))
    W_x, W_h, b = (_check_layer_list(name, a, L) for name, a in
                   (("W_x", W_x), ("W_h", W_h), ("b", b)))
    for layer in range(L):  # first W_h: its shape tells an LSTM (c given) from an RNN
        _check_ndim(f"W_h[{layer}]", W_h[layer], 2, f"(H, {g_name}) = {(n, G)}")
        if W_h[layer].shape != (n, G):
            raise ValueError(f"W_h[{layer}]: expected shape (H, {g_name}) = {(n, G)} for an "
                             f"{cell} layer (c is {'None' if c is None else 'given'}), "
                             f"got {W_h[layer].shape}")
        _check_array(f"W_h[{layer}]", W_h[layer], dtype, (n, G))
    _check_ndim("W_x[0]", W_x[0], 2, f"(V, {G})")
    V = W_x[0].shape[0]
    if V < 1:
        raise ValueError(f"W_x[0]: expected at least one row (V >= 1), got shape {W_x[0].shape}")
    for layer in range(L):
        _check_array(f"W_x[{layer}]", W_x[layer], dtype, (V if layer == 0 else n, G))
        _check_array(f"b[{layer}]", b[layer], dtype, (G,))
    _check_array("W_y", W_y, dtype, (n, V))
    _check_array("b_y", b_y, dtype, (V,))
    _check_ndim("out", out, 2, f"(N, {S})")
    N = out.shape[0]
    _check_array("uniforms", uniforms, np.dtype(np.float64), (N, S))
    _check_ids("first_ids", first_ids, (S,), V)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float, np.floating,
                                                                     np.integer)) \
            or not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature: expected a positive finite number, got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer))
                              or top_k < 1):
        raise ValueError(f"top_k: expected a positive integer or None, got {top_k!r}")
    _check_size("out", (N, S * max(G, V)))
    weights = [(f"W_x[{k}]", a) for k, a in enumerate(W_x)]
    weights += [(f"W_h[{k}]", a) for k, a in enumerate(W_h)]
    weights += [(f"b[{k}]", a) for k, a in enumerate(b)]
    inputs = [("uniforms", uniforms), ("first_ids", first_ids), *weights, ("W_y", W_y),
              ("b_y", b_y)]
    _check_outputs([("out", out, _INDEX_DTYPE, (N, S)), ("h", h, dtype, (L, S, n)),
                    ("c", c, dtype, (L, S, n))], inputs)
    # scratch for the whole call, never per step
    act = np.empty((S, G), dtype)
    cbuf = np.empty((S, n), dtype)
    tcbuf = np.empty((S, n), dtype)
    logits = np.empty((S, V), dtype)
    w = np.empty(V, np.float64)
    sel = np.empty(V, np.float64)
    ids = np.empty(S, _INDEX_DTYPE)
    pointers = np.array([a.ctypes.data for arrays in (W_x, W_h, b) for a in arrays],
                        dtype=np.uintp)  # W_x[0..L-1], W_h[0..L-1], b[0..L-1]
    cdef size_t *ptrs = <size_t *>_data(pointers)
    cdef int cN = N, cS = S, cL = L, cH = n, cV = V
    cdef int k = 0 if top_k is None or top_k >= V else top_k
    cdef int am = 1 if argmax else 0
    cdef double temp = temperature
    cdef void *op = _data(out)
    cdef void *up = _data(uniforms)
    cdef void *fp = _data(first_ids)
    cdef void *hp = _data(h)
    cdef void *cp = _data_or_null(c)
    cdef void *wy = _data(W_y)
    cdef void *by = _data(b_y)
    cdef void *actp = _data(act)
    cdef void *cbp = _data(cbuf)
    cdef void *tcp = _data(tcbuf)
    cdef void *lp = _data(logits)
    cdef void *wp = _data(w)
    cdef void *sp = _data(sel)
    cdef void *ip = _data(ids)
    if dtype == np.float32:
        with nogil:
            rf_sample_f32(<int64_t *>op, <const double *>up, <const int64_t *>fp, <float *>hp,
                          <float *>cp, <const float *const *>ptrs,
                          <const float *const *>(ptrs + cL), <const float *const *>(ptrs + 2 * cL),
                          <const float *>wy, <const float *>by, temp, k, am, cN, cS, cL, cH, cV,
                          <float *>actp, <float *>cbp, <float *>tcp, <float *>lp, <double *>wp,
                          <double *>sp, <int64_t *>ip)
    else:
        with nogil:
            rf_sample_f64(<int64_t *>op, <const double *>up, <const int64_t *>fp, <double *>hp,
                          <double *>cp, <const double *const *>ptrs,
                          <const double *const *>(ptrs + cL),
                          <const double *const *>(ptrs + 2 * cL), <const double *>wy,
                          <const double *>by, temp, k, am, cN, cS, cL, cH, cV, <double *>actp,
                          <double *>cbp, <double *>tcp, <double *>lp, <double *>wp,
                          <double *>sp, <int64_t *>ip)


def vec_tanh(out, x):
    """out = tanh(x) by the kernels' own vectorizable tanh (for its error test against libm)."""
    dtype = _float_dtype("x", x)
    _check_array("x", x, dtype, (x.size,))
    _check_outputs([("out", out, dtype, (x.size,))], [("x", x)])
    cdef int64_t n = x.size
    cdef void *op = _data(out)
    cdef void *xp = _data(x)
    if dtype == np.float32:
        with nogil:
            rf_vec_tanh_f32(<float *>op, <const float *>xp, n)
    else:
        with nogil:
            rf_vec_tanh_f64(<double *>op, <const double *>xp, n)


def vec_sigmoid(out, x):
    """out = 1 / (1 + exp(-x)) by the kernels' own vectorizable sigmoid (for its error test)."""
    dtype = _float_dtype("x", x)
    _check_array("x", x, dtype, (x.size,))
    _check_outputs([("out", out, dtype, (x.size,))], [("x", x)])
    cdef int64_t n = x.size
    cdef void *op = _data(out)
    cdef void *xp = _data(x)
    if dtype == np.float32:
        with nogil:
            rf_vec_sigmoid_f32(<float *>op, <const float *>xp, n)
    else:
        with nogil:
            rf_vec_sigmoid_f64(<double *>op, <const double *>xp, n)
