"""The C recurrent layers (rnnfast._kernels) against their NumPy twins (rnnfast.reference).

Each kernel runs on the same inputs in both backends over a grid of shapes (T = 1, B = 1, odd H,
V = 2, H not a multiple of the vector width), ids and float inputs, zero and random initial
state, both dtypes; the comparison is conftest.assert_close.  Each comparison has a negative
control that must fail, and bad input must raise before any C runs.
"""

from functools import partial
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import VMATH_ULPS, assert_close, fit_chunk

import rnnfast.reference as ref
from rnnfast import CharLM, State
from rnnfast import _kernels as K  # a missing or broken extension must fail, not skip

GATES = {"rnn": 1, "lstm": 4, "gru": 3}
CELLS = ["rnn", "lstm", "gru"]
# (T, B, I, H): I is V for id inputs.  B = 1 with H >= 70 sends the one-row products through
# blas.c's gemv path (N * K >= 16384).  B = 8, 13 cover the packed per-step kernel's row blocks
# (csrc/pgemm_tmpl.h: 6 rows, the last two sharing what is left), H = 37, 70 its partial column
# panels and K = 4H > 192 its chunks of K (tests/kernels/test_paths.py crosses its row groups).
SHAPES = [
    (1, 1, 2, 1),
    (1, 1, 2, 7),
    (5, 3, 2, 13),
    (6, 4, 11, 7),
    (4, 2, 9, 20),
    (12, 5, 17, 33),
    (1, 1, 5, 130),
    (3, 1, 5, 70),
    (3, 13, 6, 37),
    (2, 8, 5, 70),
]
SHAPE_IDS = ["T{}-B{}-I{}-H{}".format(*s) for s in SHAPES]


def make_layer(rng, cell, shape, dtype, inputs="ids", init="random"):
    """Inputs of one layer: a dict with X, W_x, W_h, b, h0 (and c0 for an LSTM, b_hn for a
    GRU)."""
    T, B, I, H = shape  # noqa: E741
    G = GATES[cell] * H
    if inputs == "ids":
        X = rng.integers(0, I, (T, B)).astype(np.int64)
        X[0, 0] = I - 1  # the last row of W_x is reachable
    else:
        X = rng.uniform(-1, 1, (T, B, I)).astype(dtype)
    layer = {
        "X": X,
        "W_x": rng.uniform(-0.6, 0.6, (I, G)).astype(dtype),
        "W_h": rng.uniform(-0.6, 0.6, (H, G)).astype(dtype),
        "b": rng.uniform(-0.3, 0.3, G).astype(dtype),
    }
    if cell == "gru":
        layer["b_hn"] = rng.uniform(-0.3, 0.3, H).astype(dtype)
    states = ["h0", "c0"] if cell == "lstm" else ["h0"]
    for name in states:
        layer[name] = (
            rng.uniform(-0.9, 0.9, (B, H)) if init == "random" else np.zeros((B, H))
        ).astype(dtype)
    return layer


def forward_outputs(cell, layer):
    T, B = layer["X"].shape[:2]
    H, G = layer["W_h"].shape
    dtype = layer["W_h"].dtype
    if cell == "rnn":
        return {"hs": np.full((T, B, H), np.nan, dtype)}
    if cell == "gru":
        return {"hs": np.full((T, B, H), np.nan, dtype), "gates": np.full((T, B, G), np.nan, dtype),
                "R": np.full((T, B, G), np.nan, dtype)}  # fmt: skip
    out = {name: np.full((T, B, H), np.nan, dtype) for name in ("hs", "cs", "tcs")}
    out["gates"] = np.full((T, B, G), np.nan, dtype)
    return out


def run_forward(ops, cell, layer):
    out = forward_outputs(cell, layer)
    forward_call(cell, layer, out, ops)()
    return out


def backward_grads(rng, cell, layer, fill="random"):
    """Gradient buffers; parameter gradients start nonzero to check that they accumulate."""
    T, B = layer["X"].shape[:2]
    H, G = layer["W_h"].shape
    dtype = layer["W_h"].dtype
    start = (
        (lambda shape: rng.uniform(-1, 1, shape).astype(dtype))
        if fill == "random"
        else (lambda shape: np.zeros(shape, dtype))
    )
    grads = {
        "dW_x": start(layer["W_x"].shape),
        "dW_h": start((H, G)),
        "db": start(G),
        "dh0": np.full((B, H), np.nan, dtype),
        "dA": np.full((T, B, G), np.nan, dtype),
    }
    if cell == "lstm":
        grads["dc0"] = np.full((B, H), np.nan, dtype)
    if cell == "gru":
        grads["db_hn"] = start(H)
        grads["dR"] = np.full((T, B, G), np.nan, dtype)
    grads["dX"] = None if layer["X"].dtype == np.int64 else np.full(layer["X"].shape, np.nan, dtype)
    return grads


def run_backward(ops, cell, layer, fwd, dhs, grads, final=None):
    """One backward call; ``final``: the final state's gradient {"dh_T": .., "dc_T": ..}, passed
    as keywords (none: the kernels' defaults, zero)."""
    g = grads
    final = final or {}
    if cell == "rnn":
        ops.rnn_backward(
            g["dX"],
            g["dW_x"],
            g["dW_h"],
            g["db"],
            g["dh0"],
            g["dA"],
            dhs,
            layer["X"],
            fwd["hs"],
            layer["W_x"],
            layer["W_h"],
            layer["h0"],
            **final,
        )
    elif cell == "gru":
        ops.gru_backward(
            g["dX"], g["dW_x"], g["dW_h"], g["db"], g["db_hn"], g["dh0"], g["dA"], g["dR"], dhs,
            layer["X"], fwd["hs"], fwd["gates"], fwd["R"], layer["W_x"], layer["W_h"], layer["h0"],
            **final,
        )  # fmt: skip
    else:
        ops.lstm_backward(
            g["dX"],
            g["dW_x"],
            g["dW_h"],
            g["db"],
            g["dh0"],
            g["dc0"],
            g["dA"],
            dhs,
            layer["X"],
            fwd["hs"],
            fwd["cs"],
            fwd["tcs"],
            fwd["gates"],
            layer["W_x"],
            layer["W_h"],
            layer["h0"],
            layer["c0"],
            **final,
        )


def final_state_grad(rng, cell, layer, parts="hc"):
    """Random gradients of the final state: dh_T, and dc_T for an LSTM, those in ``parts``."""
    B, H = layer["h0"].shape
    dtype = layer["h0"].dtype
    names = [n for n in ("dh_T", "dc_T") if n[1] in parts and (cell == "lstm" or n == "dh_T")]
    return {name: rng.uniform(-1, 1, (B, H)).astype(dtype) for name in names}


def copy_dict(d):
    return {k: None if v is None else v.copy() for k, v in d.items()}


def assert_all_close(actual, expected, dtype):
    for name in expected:
        if expected[name] is None:
            assert actual[name] is None, name
        else:
            assert_close(actual[name], expected[name], dtype, name)


# ---- forward ------------------------------------------------------------------------------


@pytest.mark.parametrize("init", ["zero", "random"])
@pytest.mark.parametrize("inputs", ["ids", "float"])
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.usefixtures("kernel_path")
def test_forward_matches_reference(rng, dtype, cell, shape, inputs, init):
    layer = make_layer(rng, cell, shape, dtype, inputs, init)
    fit_chunk(shape[1], GATES[cell] * shape[3], dtype)
    assert_all_close(run_forward(K, cell, layer), run_forward(ref, cell, layer), dtype)


@pytest.mark.parametrize("cell", CELLS)
def test_forward_negative_control(rng, dtype, cell):
    layer = make_layer(rng, cell, (5, 3, 11, 13), dtype, "float")
    expected = run_forward(ref, cell, layer)
    layer["W_h"][2, 3] += dtype.type(0.01)
    with pytest.raises(AssertionError):
        assert_close(run_forward(K, cell, layer)["hs"], expected["hs"], dtype)


# ---- backward -----------------------------------------------------------------------------


@pytest.mark.parametrize("init", ["zero", "random"])
@pytest.mark.parametrize("inputs", ["ids", "float"])
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.usefixtures("kernel_path")
def test_backward_matches_reference(rng, dtype, cell, shape, inputs, init):
    layer = make_layer(rng, cell, shape, dtype, inputs, init)
    fit_chunk(shape[1], GATES[cell] * shape[3], dtype)
    fwd = run_forward(ref, cell, layer)
    dhs = rng.uniform(-1, 1, fwd["hs"].shape).astype(dtype)
    dhs_before = dhs.copy()
    grads = backward_grads(rng, cell, layer)
    expected = copy_dict(grads)
    run_backward(ref, cell, layer, fwd, dhs, expected)
    run_backward(K, cell, layer, fwd, dhs, grads)
    assert_all_close(grads, expected, dtype)
    np.testing.assert_array_equal(dhs, dhs_before)  # dhs is read only


@pytest.mark.parametrize("inputs", ["ids", "float"])
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.usefixtures("kernel_path")
def test_backward_from_final_state_gradient_matches_reference(rng, dtype, cell, shape, inputs):
    """Carries that start from the final state's gradient (dh_T, dc_T) instead of zero."""
    layer = make_layer(rng, cell, shape, dtype, inputs)
    fit_chunk(shape[1], GATES[cell] * shape[3], dtype)
    fwd = run_forward(ref, cell, layer)
    dhs = rng.uniform(-1, 1, fwd["hs"].shape).astype(dtype)
    final = final_state_grad(rng, cell, layer)
    final_before = copy_dict(final)
    grads = backward_grads(rng, cell, layer)
    expected = copy_dict(grads)
    run_backward(ref, cell, layer, fwd, dhs, expected, final)
    run_backward(K, cell, layer, fwd, dhs, grads, final)
    assert_all_close(grads, expected, dtype)
    for name in final:  # read only
        np.testing.assert_array_equal(final[name], final_before[name], err_msg=name)


@pytest.mark.parametrize("parts", ["h", "c"])
def test_backward_from_part_of_the_final_state_gradient(rng, dtype, parts):
    """dh_T alone or dc_T alone (the other None, zero): the same as passing zeros for it, and
    not the same as passing nothing."""
    layer = make_layer(rng, "lstm", (5, 3, 11, 13), dtype, "float")
    fwd = run_forward(K, "lstm", layer)
    dhs = rng.uniform(-1, 1, fwd["hs"].shape).astype(dtype)
    final = final_state_grad(rng, "lstm", layer, parts)
    zeros = {name: np.zeros_like(layer["h0"]) for name in ("dh_T", "dc_T")}
    results = {}
    for key, given in (("part", final), ("zeros", {**zeros, **final}), ("none", None)):
        results[key] = backward_grads(rng, "lstm", layer, fill="zero")
        run_backward(K, "lstm", layer, fwd, dhs, results[key], given)
    for name in ("dX", "dW_x", "dW_h", "db", "dh0", "dc0", "dA"):
        np.testing.assert_array_equal(results["part"][name], results["zeros"][name], err_msg=name)
    assert not np.array_equal(results["part"]["dh0"], results["none"]["dh0"])


@pytest.mark.parametrize("bug", ["perturbed W_h", "final state gradient ignored"])
@pytest.mark.parametrize("cell", CELLS)
def test_backward_negative_control(rng, dtype, cell, bug):
    layer = make_layer(rng, cell, (5, 3, 11, 13), dtype, "float")
    fwd = run_forward(ref, cell, layer)
    dhs = rng.uniform(-1, 1, fwd["hs"].shape).astype(dtype)
    grads = backward_grads(rng, cell, layer)
    expected = copy_dict(grads)
    run_backward(ref, cell, layer, fwd, dhs, expected)
    final = None
    if bug == "perturbed W_h":
        layer["W_h"][1, 2] += dtype.type(0.01)
    else:  # the C call gets the carries, the reference did not
        final = final_state_grad(rng, cell, layer)
    run_backward(K, cell, layer, fwd, dhs, grads, final)
    with pytest.raises(AssertionError):
        assert_close(grads["dh0"], expected["dh0"], dtype)


@pytest.mark.parametrize("inputs", ["ids", "float"])
@pytest.mark.parametrize("cell", CELLS)
def test_backward_twice_accumulates_twice(rng, dtype, cell, inputs):
    layer = make_layer(rng, cell, (6, 4, 11, 7), dtype, inputs)
    fwd = run_forward(K, cell, layer)
    dhs = rng.uniform(-1, 1, fwd["hs"].shape).astype(dtype)
    grads = backward_grads(rng, cell, layer, fill="zero")
    run_backward(K, cell, layer, fwd, dhs, grads)
    once = copy_dict(grads)
    run_backward(K, cell, layer, fwd, dhs, grads)
    for name in ("dW_x", "dW_h", "db", "db_hn"):
        if name in grads:
            assert_close(grads[name], 2 * once[name], dtype, name)
            assert np.abs(once[name]).max() > 0, name
    for name in ("dX", "dh0", "dc0", "dA", "dR"):  # assigned: identical on the second call
        if name in grads and grads[name] is not None:
            np.testing.assert_array_equal(grads[name], once[name], err_msg=name)


# ---- the whole model ----------------------------------------------------------------------


@pytest.mark.parametrize("init", ["zero", "random"])
@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("cell", CELLS)
def test_model_loss_and_grads_match_numpy(rng, dtype, cell, layers, init):
    V, H, T, B = 7, 13, 9, 3
    models = {
        be: CharLM(V, cell=cell, hidden_size=H, num_layers=layers, dtype=dtype, backend=be, seed=5)
        for be in ("c", "numpy")
    }
    x = rng.integers(0, V, (T, B))
    y = rng.integers(0, V, (T, B))
    state = models["c"].zero_state(B)
    if init == "random":
        state = State(
            *(None if s is None else rng.uniform(-0.9, 0.9, s.shape).astype(dtype) for s in state)
        )
    loss_c, grads_c, final_c, dstate_c = models["c"].loss_and_grads(x, y, state, state_grad=True)
    loss_n, grads_n, final_n, dstate_n = models["numpy"].loss_and_grads(
        x, y, state, state_grad=True
    )
    assert_close(loss_c, loss_n, dtype, "loss")
    for name in grads_n:
        assert_close(grads_c[name], grads_n[name], dtype, name)
    for part in range(2 if cell == "lstm" else 1):
        assert_close(final_c[part], final_n[part], dtype, f"final state {part}")
        assert_close(dstate_c[part], dstate_n[part], dtype, f"dstate {part}")


def test_model_long_sequence_float32(rng):
    """A longer BPTT (T = 50, B = 8, H = 64, 2 layers) in float32 stays within the table."""
    dtype = np.dtype(np.float32)
    models = {
        be: CharLM(30, cell="lstm", hidden_size=64, num_layers=2, dtype=dtype, backend=be, seed=1)
        for be in ("c", "numpy")
    }
    x = rng.integers(0, 30, (50, 8))
    y = rng.integers(0, 30, (50, 8))
    loss_c, grads_c, _ = models["c"].loss_and_grads(x, y)
    loss_n, grads_n, _ = models["numpy"].loss_and_grads(x, y)
    assert_close(loss_c, loss_n, dtype, "loss")
    for name in grads_n:
        assert_close(grads_c[name], grads_n[name], dtype, name)


def test_model_negative_control(rng, dtype):
    models = {
        be: CharLM(7, cell="lstm", hidden_size=13, num_layers=2, dtype=dtype, backend=be, seed=5)
        for be in ("c", "numpy")
    }
    models["c"].params["W_h.0"][3, 5] += dtype.type(0.5)
    x = rng.integers(0, 7, (9, 3))
    _, _, final_c = models["c"].loss_and_grads(x, x)
    _, _, final_n = models["numpy"].loss_and_grads(x, x)
    with pytest.raises(AssertionError):
        assert_close(final_c.h, final_n.h, dtype)


def test_model_c_backend_uses_the_c_kernels():
    ops = CharLM(5, backend="c").kernels
    names = [f"{cell}_{part}" for cell in CELLS for part in ("forward", "backward")]
    for name in (*names, "sample"):
        assert getattr(ops, name) is getattr(K, name), name


# ---- the vectorizable tanh and sigmoid ------------------------------------------------------


def test_vmath_error_vs_libm(dtype):
    x = np.linspace(-20, 20, 2_000_001).astype(dtype)
    x = np.concatenate([x, np.geomspace(1e-30, 1, 10_001).astype(dtype)])
    x = np.concatenate([x, -x])
    exact = {
        "tanh": np.tanh(x.astype(np.float64)),
        "sigmoid": 1 / (1 + np.exp(-x.astype(np.float64))),
    }
    eps = np.finfo(dtype).eps
    for name, fn in (("tanh", K.vec_tanh), ("sigmoid", K.vec_sigmoid)):
        out = np.empty_like(x)
        fn(out, x)
        nonzero = exact[name] != 0
        rel = np.abs(out[nonzero] - exact[name][nonzero]) / np.abs(exact[name][nonzero])
        assert rel.max() <= VMATH_ULPS[dtype] * eps, (name, rel.max() / eps)
        assert np.all(out[~nonzero] == 0), name


def test_vmath_special_values(dtype):
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e4, -1e4, 100, -100], dtype)
    t = np.empty_like(x)
    K.vec_tanh(t, x)
    assert np.isnan(t[0])
    np.testing.assert_array_equal(t[1:], np.tanh(x[1:]))
    assert np.signbit(t[4])
    s = np.empty_like(x)
    K.vec_sigmoid(s, x)
    assert np.isnan(s[0])
    np.testing.assert_array_equal(s[[1, 3, 5, 7]], [1, 0.5, 1, 1])
    assert np.all((s[[2, 6, 8]] >= 0) & (s[[2, 6, 8]] < 1e-37))


# ---- bad input raises before any C runs -----------------------------------------------------


def forward_call(cell, layer, out, ops=K):
    """The kernel call of ``ops`` (the C bridge unless told) for this layer, not yet made."""
    if cell == "rnn":
        return lambda: ops.rnn_forward(
            out["hs"], layer["X"], layer["W_x"], layer["W_h"], layer["b"], layer["h0"]
        )
    if cell == "gru":
        return lambda: ops.gru_forward(
            out["hs"], out["gates"], out["R"], layer["X"], layer["W_x"], layer["W_h"], layer["b"],
            layer["b_hn"], layer["h0"],
        )  # fmt: skip
    return lambda: ops.lstm_forward(
        out["hs"],
        out["cs"],
        out["tcs"],
        out["gates"],
        layer["X"],
        layer["W_x"],
        layer["W_h"],
        layer["b"],
        layer["h0"],
        layer["c0"],
    )


def bad_forward_cases(cell, layer, out, dtype):
    """(description, exception, message fragment, layer, out) with one thing wrong each."""
    other = np.float32 if dtype == np.float64 else np.float64
    cases = []

    def case(desc, exc, match, **changes):
        new_layer, new_out = dict(layer), dict(out)
        for k, v in changes.items():
            (new_out if k in out else new_layer)[k] = v
        cases.append((desc, exc, match, new_layer, new_out))

    T, B, V = layer["X"].shape[0], layer["X"].shape[1], layer["W_x"].shape[0]
    case("W_x dtype", TypeError, "W_x: expected dtype", W_x=layer["W_x"].astype(other))
    case("h0 dtype", TypeError, "h0: expected dtype", h0=layer["h0"].astype(other))
    case("hs dtype", TypeError, "hs: expected dtype", hs=out["hs"].astype(other))
    case("ids dtype", TypeError, "X: expected dtype int64", X=layer["X"].astype(np.int32))
    case(
        "W_h not contiguous",
        ValueError,
        "W_h: expected a C-contiguous",
        W_h=np.asfortranarray(layer["W_h"]),
    )
    case(
        "hs not contiguous",
        ValueError,
        "hs: expected a C-contiguous",
        hs=np.full((T, B, 2 * out["hs"].shape[2]), np.nan, dtype)[:, :, ::2],
    )
    ro = out["hs"].copy()
    ro.flags.writeable = False
    case("hs read-only", ValueError, "hs: output array is read-only", hs=ro)
    case("b length", ValueError, "b: expected shape", b=layer["b"][:-1].copy())
    if "b_hn" in layer:
        case("b_hn length", ValueError, "b_hn: expected shape", b_hn=layer["b_hn"][:-1].copy())
    case(
        "h0 batch",
        ValueError,
        "(X|c0): expected shape",
        h0=np.zeros((B + 1, out["hs"].shape[2]), dtype),
    )
    case("empty batch", ValueError, "h0: expected at least one row", h0=layer["h0"][:0].copy())
    case(
        "W_h not (H, G)",
        ValueError,
        "W_h: expected shape",
        W_h=np.zeros((layer["W_h"].shape[0] + 1, layer["W_h"].shape[1]), dtype),
    )
    case("X batch", ValueError, "X: expected shape", X=layer["X"][:, :0].copy())
    case("hs shape", ValueError, "hs: expected shape", hs=out["hs"][:, :, :-1].copy())
    case("W_x rows", ValueError, "W_x: expected shape", X=layer["X"][..., None].astype(dtype))
    bad = layer["X"].copy()
    bad[-1, -1] = -1
    case("negative id", ValueError, "X: character id -1 out of range", X=bad)
    bad = layer["X"].copy()
    bad[0, -1] = V
    case("id >= V", ValueError, f"X: character id {V} out of range", X=bad)
    case("not an array", TypeError, "h0: expected a numpy.ndarray", h0=layer["h0"].tolist())
    return cases


@pytest.mark.parametrize("cell", CELLS)
def test_forward_bad_input_raises_before_c(rng, dtype, cell):
    layer = make_layer(rng, cell, (4, 3, 5, 6), dtype)
    out = forward_outputs(cell, layer)
    forward_call(cell, layer, out)()  # the good call passes
    for desc, exc, match, bad_layer, bad_out in bad_forward_cases(cell, layer, out, dtype):
        for name in bad_out:
            if bad_out[name].flags.writeable:
                bad_out[name][...] = -7
        with pytest.raises(exc, match=match):
            forward_call(cell, bad_layer, bad_out)()
            pytest.fail(f"no exception for {desc}")
        for name in bad_out:  # no C ran: the outputs are untouched
            assert np.all(bad_out[name] == -7) or not bad_out[name].flags.writeable, desc


@pytest.mark.parametrize("cell", CELLS)
def test_forward_overlapping_output_raises(rng, dtype, cell):
    layer = make_layer(rng, cell, (4, 3, 6, 6), dtype, "float")
    out = forward_outputs(cell, layer)
    out["hs"] = layer["X"]  # (T, B, I) with I == H: the output would overwrite the input
    with pytest.raises(ValueError, match="hs: output array overlaps X"):
        forward_call(cell, layer, out)()
    if cell == "lstm":
        out = forward_outputs(cell, layer)
        out["cs"] = out["hs"]
        with pytest.raises(ValueError, match="cs: output array overlaps hs"):
            forward_call(cell, layer, out)()
    if cell == "gru":
        out = forward_outputs(cell, layer)
        out["R"] = out["gates"]
        with pytest.raises(ValueError, match="R: output array overlaps gates"):
            forward_call(cell, layer, out)()


@pytest.mark.parametrize("cell", CELLS)
def test_backward_bad_input_raises_before_c(rng, dtype, cell):
    layer = make_layer(rng, cell, (4, 3, 6, 6), dtype, "float")
    fwd = run_forward(K, cell, layer)
    dhs = rng.uniform(-1, 1, fwd["hs"].shape).astype(dtype)
    other = np.float32 if dtype == np.float64 else np.float64

    def attempt(exc, match, grads=None, dhs_=dhs, fwd_=fwd, layer_=layer, final=None):
        grads = grads or backward_grads(rng, cell, layer, fill="zero")
        before = copy_dict(grads)
        with pytest.raises(exc, match=match):
            run_backward(K, cell, layer_, fwd_, dhs_, grads, final)
        for name in grads:
            if grads[name] is not None and grads[name].flags.writeable:
                np.testing.assert_array_equal(grads[name], before[name], err_msg=name)

    g = backward_grads(rng, cell, layer, fill="zero")
    g["dW_h"] = g["dW_h"].astype(other)
    attempt(TypeError, "dW_h: expected dtype", g)
    attempt(TypeError, "dhs: expected dtype", dhs_=dhs.astype(other))
    g = backward_grads(rng, cell, layer, fill="zero")
    g["db"] = np.zeros(2 * g["db"].size, dtype)[::2]
    attempt(ValueError, "db: expected a C-contiguous", g)
    g = backward_grads(rng, cell, layer, fill="zero")
    g["dW_x"].flags.writeable = False
    attempt(ValueError, "dW_x: output array is read-only", g)
    g = backward_grads(rng, cell, layer, fill="zero")
    g["dh0"] = g["dh0"][:, :-1].copy()
    attempt(ValueError, "dh0: expected shape", g)
    attempt(ValueError, "dhs: expected shape", dhs_=dhs[:-1].copy())
    g = backward_grads(rng, cell, layer, fill="zero")
    g["dX"] = dhs  # the input gradient would overwrite the incoming gradient
    attempt(ValueError, "dX: output array overlaps dhs", g)
    g = backward_grads(rng, cell, layer, fill="zero")
    g["dW_x"] = g["dW_h"]  # I == H: one buffer for two gradients
    attempt(ValueError, "dW_h: output array overlaps dW_x", g)
    if cell == "gru":
        g = backward_grads(rng, cell, layer, fill="zero")
        g["dR"] = g["dA"]
        attempt(ValueError, "dR: output array overlaps dA", g)
        g = backward_grads(rng, cell, layer, fill="zero")
        g["db_hn"] = g["db_hn"][:-1].copy()
        attempt(ValueError, "db_hn: expected shape", g)
    ids_layer = make_layer(rng, cell, (4, 3, 6, 6), dtype, "ids")
    ids_fwd = run_forward(K, cell, ids_layer)
    bad = dict(ids_layer)
    bad["X"] = ids_layer["X"].copy()
    bad["X"][1, 1] = 6
    attempt(
        ValueError,
        "X: character id 6 out of range",
        backward_grads(rng, cell, ids_layer, fill="zero"),
        fwd_=ids_fwd,
        layer_=bad,
    )
    bad["X"][1, 1] = -3
    attempt(
        ValueError,
        "X: character id -3 out of range",
        backward_grads(rng, cell, ids_layer, fill="zero"),
        fwd_=ids_fwd,
        layer_=bad,
    )
    good = final_state_grad(rng, cell, layer)  # the optional final state's gradient
    attempt(ValueError, "dh_T: expected shape", final={"dh_T": good["dh_T"][:, :-1].copy()})
    attempt(TypeError, "dh_T: expected dtype", final={"dh_T": good["dh_T"].astype(other)})
    attempt(TypeError, "dh_T: expected a numpy.ndarray", final={"dh_T": good["dh_T"].tolist()})
    g = backward_grads(rng, cell, layer, fill="zero")
    attempt(ValueError, "dh0: output array overlaps dh_T", g, final={"dh_T": g["dh0"]})
    if cell == "lstm":
        attempt(ValueError, "dc_T: expected shape", final={**good, "dc_T": good["dc_T"][:-1]})
        g = backward_grads(rng, cell, layer, fill="zero")
        attempt(ValueError, "dc0: output array overlaps dc_T", g, final={"dc_T": g["dc0"]})


# ---- dropout --------------------------------------------------------------------------------


def dropout_mask(rng, shape, dtype, p=0.4):
    """Inverted-dropout factors of ``shape``: 0 with probability p, else 1 / (1 - p)."""
    return np.where(rng.random(shape) < p, 0.0, 1.0 / (1.0 - p)).astype(dtype)


def with_dropout(ops, mask, out=None):
    """``ops`` whose recurrent kernels apply dropout: the forwards write ``out`` through
    ``mask``, the backwards take their dhs as the gradient of out."""
    forward = {"out": out, "mask": mask}
    return SimpleNamespace(
        rnn_forward=partial(ops.rnn_forward, **forward),
        lstm_forward=partial(ops.lstm_forward, **forward),
        gru_forward=partial(ops.gru_forward, **forward),
        rnn_backward=partial(ops.rnn_backward, mask=mask),
        lstm_backward=partial(ops.lstm_backward, mask=mask),
        gru_backward=partial(ops.gru_backward, mask=mask),
    )


@pytest.mark.parametrize("inputs", ["ids", "float"])
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.usefixtures("kernel_path")
def test_dropout_forward_matches_reference(rng, dtype, cell, shape, inputs):
    """The cell pass writes out = h * mask beside h: h is the plain forward's, bit for bit, out
    is exactly h * mask, and both match the reference."""
    layer = make_layer(rng, cell, shape, dtype, inputs)
    fit_chunk(shape[1], GATES[cell] * shape[3], dtype)
    T, B, _, H = shape
    mask = dropout_mask(rng, (T, B, H), dtype)
    outs = {ops: np.full((T, B, H), np.nan, dtype) for ops in (K, ref)}
    got = run_forward(with_dropout(K, mask, outs[K]), cell, layer)
    expected = run_forward(with_dropout(ref, mask, outs[ref]), cell, layer)
    assert_all_close(got, expected, dtype)
    plain = run_forward(K, cell, layer)
    for name in plain:
        np.testing.assert_array_equal(got[name], plain[name], err_msg=name)
    np.testing.assert_array_equal(outs[K], got["hs"] * mask)
    np.testing.assert_array_equal(outs[ref], expected["hs"] * mask)


@pytest.mark.parametrize("inputs", ["ids", "float"])
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.usefixtures("kernel_path")
def test_dropout_backward_matches_reference(rng, dtype, cell, shape, inputs):
    """Backward through the mask: against the reference, and bit for bit the plain backward of
    dhs * mask (the product taken in the fused pass is the same IEEE product)."""
    layer = make_layer(rng, cell, shape, dtype, inputs)
    fit_chunk(shape[1], GATES[cell] * shape[3], dtype)
    fwd = run_forward(ref, cell, layer)
    mask = dropout_mask(rng, fwd["hs"].shape, dtype)
    dhs = rng.uniform(-1, 1, fwd["hs"].shape).astype(dtype)
    grads = backward_grads(rng, cell, layer)
    expected, plain = copy_dict(grads), copy_dict(grads)
    run_backward(with_dropout(ref, mask), cell, layer, fwd, dhs, expected)
    run_backward(with_dropout(K, mask), cell, layer, fwd, dhs, grads)
    assert_all_close(grads, expected, dtype)
    run_backward(K, cell, layer, fwd, dhs * mask, plain)
    for name, a in grads.items():
        if a is not None:
            np.testing.assert_array_equal(a, plain[name], err_msg=name)


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("cell", CELLS)
def test_dropout_backward_from_final_state_gradient_matches_reference(rng, dtype, cell, shape):
    """The final state's gradient enters as the carries, past the mask (it reaches h_{T-1}, not
    out_{T-1}): against the reference, and bit for bit the plain backward of dhs * mask from the
    same carries."""
    layer = make_layer(rng, cell, shape, dtype, "float")
    fwd = run_forward(ref, cell, layer)
    mask = dropout_mask(rng, fwd["hs"].shape, dtype)
    dhs = rng.uniform(-1, 1, fwd["hs"].shape).astype(dtype)
    final = final_state_grad(rng, cell, layer)
    grads = backward_grads(rng, cell, layer)
    expected, plain = copy_dict(grads), copy_dict(grads)
    run_backward(with_dropout(ref, mask), cell, layer, fwd, dhs, expected, final)
    run_backward(with_dropout(K, mask), cell, layer, fwd, dhs, grads, final)
    assert_all_close(grads, expected, dtype)
    run_backward(K, cell, layer, fwd, dhs * mask, plain, final)
    for name, a in grads.items():
        if a is not None:
            np.testing.assert_array_equal(a, plain[name], err_msg=name)


@pytest.mark.parametrize("cell", CELLS)
def test_dropout_backward_negative_control(rng, dtype, cell):
    """The comparison above notices a backward that ignores the mask."""
    layer = make_layer(rng, cell, (5, 3, 11, 13), dtype, "float")
    fwd = run_forward(ref, cell, layer)
    mask = dropout_mask(rng, fwd["hs"].shape, dtype)
    dhs = rng.uniform(-1, 1, fwd["hs"].shape).astype(dtype)
    grads = backward_grads(rng, cell, layer)
    expected = copy_dict(grads)
    run_backward(with_dropout(ref, mask), cell, layer, fwd, dhs, expected)
    run_backward(K, cell, layer, fwd, dhs, grads)
    with pytest.raises(AssertionError):
        assert_all_close(grads, expected, dtype)


@pytest.mark.parametrize("cell", CELLS)
def test_dropout_bad_input_raises_before_c(rng, dtype, cell):
    layer = make_layer(rng, cell, (4, 3, 5, 6), dtype)
    fwd = forward_outputs(cell, layer)
    mask = dropout_mask(rng, fwd["hs"].shape, dtype)
    out = np.full(mask.shape, np.nan, dtype)
    other = np.float32 if dtype == np.float64 else np.float64
    read_only = out.copy()
    read_only.flags.writeable = False
    cases = [
        ("mask alone", None, mask, ValueError, "out, mask: expected both .* got mask alone"),
        ("out alone", out, None, ValueError, "out, mask: expected both .* got out alone"),
        ("mask shape", out, mask[:, :, :-1].copy(), ValueError, "mask: expected shape"),
        ("mask dtype", out, mask.astype(other), TypeError, "mask: expected dtype"),
        ("out shape", out[:-1].copy(), mask, ValueError, "out: expected shape"),
        ("out read-only", read_only, mask, ValueError, "out: output array is read-only"),
        ("out is H", fwd["hs"], mask, ValueError, "out: output array overlaps hs"),
        ("out is the mask", mask, mask, ValueError, "out: output array overlaps mask"),
    ]
    for desc, bad_out, bad_mask, exc, match in cases:
        before = {name: a.copy() for name, a in fwd.items()}
        with pytest.raises(exc, match=match):
            forward_call(cell, layer, fwd, with_dropout(K, bad_mask, bad_out))()
        for name, a in fwd.items():  # nothing ran
            np.testing.assert_array_equal(a, before[name], err_msg=desc)
    run_forward(with_dropout(K, mask, out), cell, layer)  # the good call passes
    dhs = rng.uniform(-1, 1, mask.shape).astype(dtype)
    with pytest.raises(ValueError, match="mask: expected shape"):
        run_backward(with_dropout(K, mask[:-1].copy()), cell, layer, fwd, dhs,
                     backward_grads(rng, cell, layer))  # fmt: skip
