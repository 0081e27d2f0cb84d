"""C optimizer, clipping, norm and output-layer kernels against their NumPy twins.

Every kernel runs on copies of the same inputs in both backends; all buffers it writes are
compared with the dtype's row of TOLERANCES.  Each kernel also has a negative control (a
perturbed input must make the same comparison fail) and bad-input checks on the bridge.
"""

import numpy as np
import pytest
from conftest import assert_close

from rnnfast import reference as ref

k = pytest.importorskip("rnnfast._kernels")

# Flat sizes: tiny, odd, not multiples of any vector width, and one past a multiple.
SIZES = [1, 2, 7, 31, 1000, 1001, 4099]
HYPER = {
    "sgd": {"lr": 0.1, "momentum": 0.0},
    "sgd_momentum": {"lr": 0.05, "momentum": 0.9},
    "adagrad": {"lr": 0.1, "eps": 1e-8},
    "rmsprop": {"lr": 2e-3, "alpha": 0.95, "eps": 1e-8},
    "adam": {"lr": 2e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "step": 3},
}
# (kernel name, names of the moment buffers, hyperparameter set)
OPTIMIZERS = [
    ("sgd_update", ["velocity"], "sgd"),
    ("sgd_update", ["velocity"], "sgd_momentum"),
    ("adagrad_update", ["memory"], "adagrad"),
    ("rmsprop_update", ["mean_square"], "rmsprop"),
    ("adam_update", ["m", "v"], "adam"),
]
OPT_IDS = [hyper for _, _, hyper in OPTIMIZERS]


def _buffers(rng, n, dtype, moments):
    """param, grad and non-negative moments (second moments must be >= 0), as in training."""
    bufs = {
        "param": rng.standard_normal(n).astype(dtype),
        "grad": (rng.standard_normal(n) * 0.5).astype(dtype),
    }
    for name in moments:
        bufs[name] = (np.abs(rng.standard_normal(n)) * 0.1).astype(dtype)
    return bufs


def _run(fn, bufs, moments, hyper):
    args = [bufs["param"], bufs["grad"], *(bufs[m] for m in moments)]
    fn(*args, **hyper)


def _copy(bufs):
    return {name: a.copy() for name, a in bufs.items()}


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize(("kernel", "moments", "hyper"), OPTIMIZERS, ids=OPT_IDS)
def test_optimizer_matches_reference(rng, dtype, n, kernel, moments, hyper):
    bufs = _buffers(rng, n, dtype, moments)
    c_bufs, r_bufs = _copy(bufs), _copy(bufs)
    _run(getattr(k, kernel), c_bufs, moments, HYPER[hyper])
    _run(getattr(ref, kernel), r_bufs, moments, HYPER[hyper])
    for name in bufs:
        assert_close(c_bufs[name], r_bufs[name], dtype, name)
    assert not np.array_equal(c_bufs["param"], bufs["param"])  # it did update


@pytest.mark.parametrize(("kernel", "moments", "hyper"), OPTIMIZERS, ids=OPT_IDS)
def test_optimizer_negative_control(rng, dtype, kernel, moments, hyper):
    bufs = _buffers(rng, 1001, dtype, moments)
    c_bufs, r_bufs = _copy(bufs), _copy(bufs)
    c_bufs["grad"][500] += dtype.type(1.0)
    _run(getattr(k, kernel), c_bufs, moments, HYPER[hyper])
    _run(getattr(ref, kernel), r_bufs, moments, HYPER[hyper])
    with pytest.raises(AssertionError):
        assert_close(c_bufs["param"], r_bufs["param"], dtype, "param")


def test_sgd_without_momentum_takes_no_velocity(rng, dtype):
    bufs = _buffers(rng, 7, dtype, [])
    c_bufs, r_bufs = _copy(bufs), _copy(bufs)
    k.sgd_update(c_bufs["param"], c_bufs["grad"], None, 0.1, 0.0)
    ref.sgd_update(r_bufs["param"], r_bufs["grad"], None, 0.1, 0.0)
    assert_close(c_bufs["param"], r_bufs["param"], dtype, "param")


@pytest.mark.parametrize("n", [1, 7, 1001])
def test_adam_consecutive_steps(rng, dtype, n):
    """Steps 1..5 with fresh gradients: bias corrections and moments stay in step."""
    bufs = _buffers(rng, n, dtype, [])
    bufs["m"] = np.zeros(n, dtype)
    bufs["v"] = np.zeros(n, dtype)
    c_bufs, r_bufs = _copy(bufs), _copy(bufs)
    for step in range(1, 6):
        grad = (rng.standard_normal(n) * 0.5).astype(dtype)
        args = dict(lr=2e-3, beta1=0.9, beta2=0.999, eps=1e-8, step=step)
        k.adam_update(c_bufs["param"], grad, c_bufs["m"], c_bufs["v"], **args)
        ref.adam_update(r_bufs["param"], grad, r_bufs["m"], r_bufs["v"], **args)
        for name in ("param", "m", "v"):
            assert_close(c_bufs[name], r_bufs[name], dtype, f"{name} after step {step}")


# -- clipping, norm, scale -----------------------------------------------------------------


def _spread_grad(rng, n, dtype):
    """Values on both sides of +-limit (limit 5 below), exact +-5 included."""
    g = (rng.standard_normal(n) * 6).astype(dtype)
    g[: min(n, 2)] = [5.0, -5.0][: min(n, 2)]
    return g


@pytest.mark.parametrize("n", SIZES)
def test_clip_by_value_matches_reference(rng, dtype, n):
    g = _spread_grad(rng, n, dtype)
    c, r = g.copy(), g.copy()
    k.clip_by_value(c, 5.0)
    ref.clip_by_value(r, 5.0)
    assert_close(c, r, dtype, "grad")
    assert np.max(np.abs(c)) <= 5.0


def test_clip_by_value_negative_control(rng, dtype):
    g = _spread_grad(rng, 1001, dtype)
    c, r = g.copy(), g.copy()
    k.clip_by_value(c, 4.0)
    ref.clip_by_value(r, 5.0)
    with pytest.raises(AssertionError):
        assert_close(c, r, dtype, "grad")


def test_clip_by_value_keeps_nan(dtype):
    g = np.array([np.nan, 10.0, -10.0, 1.0, np.inf, -np.inf, 0.0], dtype)
    c, r = g.copy(), g.copy()
    k.clip_by_value(c, 5.0)
    ref.clip_by_value(r, 5.0)
    np.testing.assert_array_equal(c, r)


@pytest.mark.parametrize("n", SIZES)
def test_global_norm_matches_reference(rng, dtype, n):
    g = (rng.standard_normal(n) * 3).astype(dtype)
    assert_close(k.global_norm(g), ref.global_norm(g), np.float64, "norm")


def test_global_norm_negative_control(rng, dtype):
    g = (rng.standard_normal(1001) * 3).astype(dtype)
    perturbed = g.copy()
    perturbed[3] += 1
    with pytest.raises(AssertionError):
        assert_close(k.global_norm(perturbed), ref.global_norm(g), np.float64, "norm")


def test_global_norm_accumulates_in_double():
    """Squares of 1e20 overflow float32; the norm does not."""
    g = np.full(9, 1e20, np.float32)
    assert_close(k.global_norm(g), ref.global_norm(g), np.float64, "norm")
    assert np.isfinite(k.global_norm(g))


@pytest.mark.parametrize("n", SIZES)
def test_scale_matches_reference(rng, dtype, n):
    g = rng.standard_normal(n).astype(dtype)
    c, r = g.copy(), g.copy()
    k.scale(c, 0.3)
    ref.scale(r, 0.3)
    assert_close(c, r, dtype, "grad")


def test_scale_negative_control(rng, dtype):
    g = rng.standard_normal(1001).astype(dtype)
    c, r = g.copy(), g.copy()
    k.scale(c, 0.3001)
    ref.scale(r, 0.3)
    with pytest.raises(AssertionError):
        assert_close(c, r, dtype, "grad")


# -- output layer --------------------------------------------------------------------------

# (N, I, O): single rows and columns, odd sizes, the shapes of the configs' output layers.
LINEAR_SHAPES = [
    (1, 1, 1),
    (1, 7, 3),
    (7, 1, 5),
    (3, 5, 1),
    (25, 100, 65),
    (37, 31, 65),
    (1, 512, 65),
    (128, 256, 65),
    (2500, 128, 65),
]
LINEAR_IDS = ["x".join(map(str, s)) for s in LINEAR_SHAPES]


def _linear_inputs(rng, shape, dtype):
    N, I, O = shape  # noqa: E741
    X = rng.standard_normal((N, I)).astype(dtype)
    W = (rng.standard_normal((I, O)) / np.sqrt(I)).astype(dtype)
    b = rng.standard_normal(O).astype(dtype)
    dout = rng.standard_normal((N, O)).astype(dtype)
    return X, W, b, dout


@pytest.mark.parametrize("shape", LINEAR_SHAPES, ids=LINEAR_IDS)
def test_linear_forward_matches_reference(rng, dtype, shape):
    X, W, b, _ = _linear_inputs(rng, shape, dtype)
    c = np.full((shape[0], shape[2]), np.nan, dtype)  # assigned, not accumulated
    r = np.empty_like(c)
    k.linear_forward(c, X, W, b)
    ref.linear_forward(r, X, W, b)
    assert_close(c, r, dtype, "out")


def test_linear_forward_negative_control(rng, dtype):
    X, W, b, _ = _linear_inputs(rng, (37, 31, 65), dtype)
    c, r = np.empty((37, 65), dtype), np.empty((37, 65), dtype)
    W2 = W.copy()
    W2[4, 7] += 0.5
    k.linear_forward(c, X, W2, b)
    ref.linear_forward(r, X, W, b)
    with pytest.raises(AssertionError):
        assert_close(c, r, dtype, "out")


def _grad_buffers(rng, shape, dtype):
    N, I, O = shape  # noqa: E741
    # start from non-zero gradients: the kernel must add to them
    return {
        "dW": rng.standard_normal((I, O)).astype(dtype),
        "db": rng.standard_normal(O).astype(dtype),
        "dX": np.full((N, I), np.nan, dtype),
    }


@pytest.mark.parametrize("with_dX", [True, False], ids=["dX", "no-dX"])
@pytest.mark.parametrize("shape", LINEAR_SHAPES, ids=LINEAR_IDS)
def test_linear_backward_matches_reference(rng, dtype, shape, with_dX):
    X, W, _, dout = _linear_inputs(rng, shape, dtype)
    grads = _grad_buffers(rng, shape, dtype)
    c, r = _copy(grads), _copy(grads)
    k.linear_backward(c["dX"] if with_dX else None, c["dW"], c["db"], dout, X, W)
    ref.linear_backward(r["dX"] if with_dX else None, r["dW"], r["db"], dout, X, W)
    for name in ("dW", "db") + (("dX",) if with_dX else ()):
        assert_close(c[name], r[name], dtype, name)
    if not with_dX:
        assert np.all(np.isnan(c["dX"]))  # untouched


def test_linear_backward_accumulates_twice(rng, dtype):
    shape = (37, 31, 65)
    X, W, _, dout = _linear_inputs(rng, shape, dtype)
    grads = _grad_buffers(rng, shape, dtype)
    c, r = _copy(grads), _copy(grads)
    for _ in range(2):
        k.linear_backward(c["dX"], c["dW"], c["db"], dout, X, W)
        ref.linear_backward(r["dX"], r["dW"], r["db"], dout, X, W)
    for name in ("dW", "db", "dX"):
        assert_close(c[name], r[name], dtype, name)
    once = _copy(grads)
    ref.linear_backward(once["dX"], once["dW"], once["db"], dout, X, W)
    with pytest.raises(AssertionError):  # twice is not once
        assert_close(c["dW"], once["dW"], dtype, "dW")


def test_linear_backward_negative_control(rng, dtype):
    shape = (37, 31, 65)
    X, W, _, dout = _linear_inputs(rng, shape, dtype)
    grads = _grad_buffers(rng, shape, dtype)
    c, r = _copy(grads), _copy(grads)
    dout2 = dout.copy()
    dout2[5, 5] += 1.0
    k.linear_backward(c["dX"], c["dW"], c["db"], dout2, X, W)
    ref.linear_backward(r["dX"], r["dW"], r["db"], dout, X, W)
    for name in ("dW", "db", "dX"):
        with pytest.raises(AssertionError):
            assert_close(c[name], r[name], dtype, name)


# -- the model with the C backend uses these kernels --------------------------------------


@pytest.mark.parametrize("opt", ["SGD", "Adagrad", "RMSProp", "Adam"])
def test_train_steps_match_numpy_backend(opt):
    import rnnfast

    rng = np.random.default_rng(5)
    x = rng.integers(0, 11, (6, 3))
    y = rng.integers(0, 11, (6, 3))
    models = [
        rnnfast.CharLM(
            11, cell="lstm", hidden_size=9, num_layers=2, dtype=np.float64, backend=backend, seed=1
        )
        for backend in ("c", "numpy")
    ]
    opts = [getattr(rnnfast, opt)(m, lr=0.01) for m in models]
    for _ in range(3):
        losses = [
            m.train_step(x, y, o, clip=0.05, max_norm=0.5)[0]
            for m, o in zip(models, opts, strict=True)
        ]
        assert_close(losses[0], losses[1], np.float64, "loss")
    assert_close(models[0].flat_params, models[1].flat_params, np.float64, "params")


# -- the bridge rejects bad input with a message naming the argument ----------------------


def _adam_args(n=8, dtype=np.float32):
    a = [np.zeros(n, dtype) for _ in range(4)]
    return a, dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, step=1)


def test_rejects_wrong_dtype():
    (p, g, m, v), hp = _adam_args()
    with pytest.raises(TypeError, match="grad: expected dtype float32, got float64"):
        k.adam_update(p, g.astype(np.float64), m, v, **hp)
    with pytest.raises(TypeError, match="param: expected dtype float32 or float64, got int64"):
        k.sgd_update(np.zeros(3, np.int64), np.zeros(3, np.int64), None, 0.1, 0.0)
    with pytest.raises(TypeError, match="param: expected a numpy.ndarray, got list"):
        k.sgd_update([1.0], np.zeros(1), None, 0.1, 0.0)


def test_rejects_non_contiguous():
    (p, g, m, v), hp = _adam_args(16)
    with pytest.raises(ValueError, match="v: expected a C-contiguous array"):
        k.adam_update(p[:8], g[:8], m[:8], v[::2], **hp)
    with pytest.raises(ValueError, match="param: expected a C-contiguous array"):
        k.adam_update(p[::2], g[:8], m[:8], v[8:], **hp)
    with pytest.raises(ValueError, match="grad: expected a C-contiguous array"):
        k.clip_by_value(g[::2], 1.0)
    W = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match="W: expected a C-contiguous array"):
        k.linear_forward(
            np.zeros((2, 4), np.float32), np.zeros((2, 3), np.float32), W.T, np.zeros(4, np.float32)
        )


def test_rejects_read_only():
    (p, g, m, v), hp = _adam_args()
    m.flags.writeable = False
    with pytest.raises(ValueError, match="m: output array is read-only"):
        k.adam_update(p, g, m, v, **hp)
    g.flags.writeable = False
    with pytest.raises(ValueError, match="grad: output array is read-only"):
        k.scale(g, 0.5)
    k.global_norm(g)  # reads only: a read-only gradient is fine


def test_rejects_shape_mismatch():
    (p, g, m, v), hp = _adam_args()
    with pytest.raises(ValueError, match=r"grad: expected shape \(8,\), got \(7,\)"):
        k.adam_update(p, g[:7], m, v, **hp)
    X, W, b = np.zeros((5, 3)), np.zeros((3, 4)), np.zeros(4)
    with pytest.raises(ValueError, match=r"out: expected shape \(5, 4\), got \(4, 5\)"):
        k.linear_forward(np.zeros((4, 5)), X, W, b)
    with pytest.raises(ValueError, match=r"W: expected shape \(3, 4\), got \(2, 4\)"):
        k.linear_forward(np.zeros((5, 4)), X, W[:2].copy(), b)
    with pytest.raises(ValueError, match=r"b: expected shape \(4,\), got \(3,\)"):
        k.linear_forward(np.zeros((5, 4)), X, W, b[:3])
    with pytest.raises(ValueError, match=r"dout: expected shape \(5, 4\), got \(5, 3\)"):
        k.linear_backward(None, np.zeros((3, 4)), np.zeros(4), np.zeros((5, 3)), X, W)
    with pytest.raises(ValueError, match=r"dX: expected shape \(5, 3\), got \(3, 5\)"):
        k.linear_backward(np.zeros((3, 5)), np.zeros((3, 4)), np.zeros(4), np.zeros((5, 4)), X, W)
    with pytest.raises(ValueError, match=r"X: expected a 2-D array of shape \(N, I\)"):
        k.linear_forward(np.zeros((5, 4)), np.zeros(3), W, b)


def test_rejects_overlap():
    (p, g, m, v), hp = _adam_args()
    with pytest.raises(ValueError, match="param: output array overlaps grad"):
        k.adam_update(p, p, m, v, **hp)
    with pytest.raises(ValueError, match="v: output array overlaps m"):
        k.adam_update(p, g, m, m, **hp)
    flat = np.zeros(16, np.float32)
    with pytest.raises(ValueError, match="param: output array overlaps grad"):
        k.sgd_update(flat[:8], flat[4:12], flat[8:], 0.1, 0.5)
    X, W = np.zeros((5, 3)), np.zeros((3, 4))
    with pytest.raises(ValueError, match="dW: output array overlaps W"):
        k.linear_backward(None, W, np.zeros(4), np.zeros((5, 4)), X, W)
    buf = np.zeros(16)  # dW and db as adjacent views of one gradient buffer are fine
    k.linear_backward(None, buf[:12].reshape(3, 4), buf[12:], np.zeros((5, 4)), X, W)


@pytest.mark.parametrize(("name", "value", "kind"), [
    ("lr", float("nan"), ValueError), ("lr", float("inf"), ValueError), ("lr", 0.0, ValueError),
    ("lr", -1e-3, ValueError), ("lr", "0.1", TypeError), ("lr", True, TypeError),
    ("beta1", 1.0, ValueError), ("beta2", -0.1, ValueError), ("eps", 0.0, ValueError),
    ("eps", float("nan"), ValueError), ("step", 0, ValueError), ("step", 1.5, ValueError),
])  # fmt: skip
def test_rejects_bad_hyperparameters(name, value, kind):
    (p, g, m, v), hp = _adam_args()
    hp[name] = value
    with pytest.raises(kind, match=f"{name}: expected"):
        k.adam_update(p, g, m, v, **hp)


def test_rejects_other_bad_hyperparameters():
    p, g = np.zeros(4), np.zeros(4)
    with pytest.raises(ValueError, match="momentum: expected a finite number in"):
        k.sgd_update(p, g, np.zeros(4), 0.1, 1.0)
    with pytest.raises(ValueError, match="velocity: expected an array when momentum != 0"):
        k.sgd_update(p, g, None, 0.1, 0.9)
    with pytest.raises(ValueError, match="alpha: expected"):
        k.rmsprop_update(p, g, np.zeros(4), 0.1, float("nan"), 1e-8)
    with pytest.raises(ValueError, match="limit: expected"):
        k.clip_by_value(g, float("inf"))
    with pytest.raises(ValueError, match="limit: expected"):
        k.clip_by_value(g, -1.0)
    with pytest.raises(ValueError, match="factor: expected"):
        k.scale(g, float("nan"))


def test_adjacent_views_of_one_buffer_are_not_overlap(dtype):
    """Disjoint slices of one allocation pass; one shared element does not."""
    flat = np.zeros(12, dtype)
    k.adam_update(flat[0:3], flat[3:6], flat[6:9], flat[9:12], 1e-3, 0.9, 0.999, 1e-8, 1)
    with pytest.raises(ValueError, match="v: output array overlaps m"):
        k.adam_update(flat[0:3], flat[3:6], flat[6:9], flat[8:11], 1e-3, 0.9, 0.999, 1e-8, 1)
