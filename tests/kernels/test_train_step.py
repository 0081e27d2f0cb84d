"""The fused training step (``_kernels.TrainStep``, csrc/train_step.c) against its NumPy twin
(``rnnfast.engine.TrainStep``): composed of the C elementary kernels (one bridge call each) the twin
gives the fused step's bits; composed of the NumPy kernels it is the reference, to the tolerance
table.  Also the gradients-only mode, a user's optimizer, and the bridge's checks."""

import functools
import itertools
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import assert_as_accurate, assert_close
from threadpoolctl import threadpool_info, threadpool_limits

import rnnfast
from rnnfast import _kernels, engine
from rnnfast.backends import kernels

V, H, T, B = 7, 5, 4, 3
CLIPS = {"value": (0.05, None), "norm": (None, 0.5), "both": (0.05, 0.5), "none": (None, None)}
OPTIMIZERS = {
    "sgd": lambda m: rnnfast.SGD(m, lr=0.5),
    "sgd-momentum": lambda m: rnnfast.SGD(m, lr=0.5, momentum=0.9),
    "adagrad": lambda m: rnnfast.Adagrad(m, lr=0.3),
    "rmsprop": lambda m: rnnfast.RMSProp(m, lr=0.05, alpha=0.9),
    "adam": lambda m: rnnfast.Adam(m, lr=0.05),
}


def batches(steps, T=T, B=B, V=V, seed=0):
    rng = np.random.default_rng(seed)
    return [tuple(rng.integers(0, V, (2, T, B))) for _ in range(steps)]


def snapshot(model, opt, loss, state):
    """Everything a step changes: parameters, moments, step count, loss, state, generator."""
    moments = opt.state_dict()["moments"]
    generator = model.generator.bit_generator.state["state"]["state"]
    parts = {"params": model.flat_params, **moments, "loss": np.array(loss), "h": state.h,
             "step_count": np.array(opt.step_count), "generator": np.array(generator)}  # fmt: skip
    if state.c is not None:
        parts["c"] = state.c
    return {k: np.array(v, copy=True) for k, v in parts.items()}


def composed(model):
    """``model`` (C backend), its training step now the twin over the C elementary kernels."""
    c = kernels("c")
    twin = functools.partial(engine.TrainStep, kernels=c)
    model.kernels = SimpleNamespace(**{**vars(c), "TrainStep": twin})
    return model


def run(model, opt, data, clip, max_norm, one_call=True):
    """Steps of ``model`` (made ``composed`` unless ``one_call``): their snapshots."""
    if not one_call:
        composed(model)
    state, snaps = None, []
    for x, y in data:
        loss, state = model.train_step(x, y, opt, state, clip=clip, max_norm=max_norm)
        snaps.append(snapshot(model, opt, loss, state))
    return snaps


def assert_same_bits(a, b):
    for step, (sa, sb) in enumerate(zip(a, b, strict=True)):
        assert sa.keys() == sb.keys()
        for name in sa:
            np.testing.assert_array_equal(sa[name], sb[name], err_msg=f"{name} after step {step}")


@pytest.mark.parametrize("dropout", [0.0, 0.3], ids=["no-dropout", "dropout"])
@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_the_fused_step_gives_the_bits_of_its_c_twin(cell, layers, dropout, dtype):
    """Three steps of every optimizer under every clipping: parameters, moments, step count,
    loss, final state and the dropout generator are bit-identical."""
    data = batches(3)
    for (opt_name, make_opt), (clip_name, (clip, max_norm)) in itertools.product(
        OPTIMIZERS.items(), CLIPS.items()
    ):
        models = [rnnfast.CharLM(V, cell=cell, hidden_size=H, num_layers=layers, dtype=dtype,
                                 seed=1, dropout=dropout) for _ in range(2)]  # fmt: skip
        initial = models[0].flat_params.copy()
        fused, stepwise = (run(m, make_opt(m), data, clip, max_norm, one_call)
                           for m, one_call in zip(models, (True, False), strict=True))  # fmt: skip
        assert isinstance(models[0]._workspace.train_step, _kernels.TrainStep)
        assert isinstance(models[1]._workspace.train_step, engine.TrainStep)
        assert not np.array_equal(models[0].flat_params, initial), (opt_name, clip_name)
        assert_same_bits(fused, stepwise)


def test_the_bit_comparison_sees_a_difference():
    """A control for the test above: runs that differ in one clip setting differ in their bits."""
    data = batches(2)
    snaps = []
    for clip in (0.05, 0.06):
        model = rnnfast.CharLM(V, cell="lstm", hidden_size=H, num_layers=2, seed=1)
        snaps.append(run(model, rnnfast.Adam(model, lr=0.05), data, clip, None, True))
    with pytest.raises(AssertionError):
        assert_same_bits(*snaps)


def reference_runs(make_model, make_opt, data, clip, max_norm, dtype):
    """Steps of the C model (its fused step), of the NumPy reference (the twin over the NumPy
    kernels) and, for float32, of the float64 reference: their snapshots."""
    runs = {}
    for backend, run_dtype in [("c", dtype), ("numpy", dtype), ("exact", np.float64)]:
        if backend == "exact" and np.dtype(dtype) == np.float64:
            break
        model = make_model("c" if backend == "c" else "numpy", run_dtype)
        runs[backend] = run(model, make_opt(model), data, clip, max_norm, one_call=True)
    return runs


def assert_as_close_as_the_reference(runs, dtype):
    """float64: the table's bounds.  float32: as close to the float64 reference as the float32
    reference is (conftest.assert_as_accurate), since Adam's first steps turn the rounding of
    a near-zero gradient into a step of up to lr."""
    for quantity in ("loss", "params", "h"):
        c, ref = ([s[quantity] for s in runs[k]] for k in ("c", "numpy"))
        if np.dtype(dtype) == np.float64:
            assert_close(c, ref, dtype, "losses" if quantity == "loss" else "final state")
        else:
            exact = [s[quantity] for s in runs["exact"]]
            assert_as_accurate(c, ref, exact, quantity)


@pytest.mark.parametrize("cell, layers, clip, max_norm, optimizer", [
    ("rnn", 1, 5.0, None, "adagrad"),
    ("lstm", 3, None, 0.5, "adam"),
    ("gru", 2, 0.05, 0.5, "rmsprop"),
    ("lstm", 2, None, None, "sgd-momentum"),
])  # fmt: skip
def test_one_call_matches_the_numpy_reference(cell, layers, clip, max_norm, optimizer, dtype):
    """Five steps on the C backend (one call each) against the NumPy reference."""

    def make_model(backend, run_dtype):
        return rnnfast.CharLM(V, cell=cell, hidden_size=H, num_layers=layers, dtype=run_dtype,
                              backend=backend, seed=2)  # fmt: skip

    runs = reference_runs(make_model, OPTIMIZERS[optimizer], batches(5), clip, max_norm, dtype)
    assert_as_close_as_the_reference(runs, dtype)


def test_one_call_matches_the_numpy_reference_with_dropout(dtype):
    """With dropout both backends draw the same masks from the same generator."""

    def make_model(backend, run_dtype):
        return rnnfast.CharLM(V, cell="lstm", hidden_size=H, num_layers=2, dtype=run_dtype,
                              backend=backend, seed=3, dropout=0.25)  # fmt: skip

    runs = reference_runs(make_model, OPTIMIZERS["adam"], batches(4), 5.0, None, dtype)
    for c, ref in zip(runs["c"], runs["numpy"], strict=True):
        np.testing.assert_array_equal(c["generator"], ref["generator"])
    assert_as_close_as_the_reference(runs, dtype)


class TracedAdam(rnnfast.Adam):
    """A user's optimizer: its own step must run, after the fused step's gradients-only mode."""

    def __init__(self, model, **kwargs):
        super().__init__(model, **kwargs)
        self.steps = 0

    def step(self, grads):
        self.steps += 1
        super().step(grads)


def test_an_optimizer_of_the_users_gets_the_gradients_only_step(dtype):
    data = batches(3)
    ours, theirs = (rnnfast.CharLM(V, hidden_size=H, dtype=dtype, seed=4) for _ in range(2))
    traced = TracedAdam(theirs, lr=0.05)
    assert traced.fused_update() is None
    fused = run(ours, rnnfast.Adam(ours, lr=0.05), data, 5.0, None)
    stepwise = run(theirs, traced, data, 5.0, None)
    assert traced.steps == 3
    assert_same_bits(fused, stepwise)


@pytest.mark.parametrize("backend", ["c", "numpy"])
def test_gradients_is_the_step_without_its_update(backend, dtype):
    """``gradients`` leaves the parameters alone and returns what the step then applies:
    Adam over them gives the train_step's parameters bit for bit, with scale and clipping."""
    x, y = batches(1)[0]
    models = [rnnfast.CharLM(V, hidden_size=H, dtype=dtype, backend=backend, seed=11,
                             dropout=0.2) for _ in range(2)]  # fmt: skip
    before = models[0].flat_params.copy()
    loss, grads, state = models[0].gradients(x, y, clip=0.05, max_norm=0.5)
    np.testing.assert_array_equal(models[0].flat_params, before)
    rnnfast.Adam(models[0], lr=0.05).step(grads)
    trained_loss, trained_state = models[1].train_step(x, y, rnnfast.Adam(models[1], lr=0.05),
                                                       clip=0.05, max_norm=0.5)  # fmt: skip
    assert loss == trained_loss
    np.testing.assert_array_equal(state.h, trained_state.h)
    np.testing.assert_array_equal(models[0].flat_params, models[1].flat_params)
    scaled = models[0].gradients(x, y, scale=3.0, train=False)[1].flat.copy()
    plain = models[0].gradients(x, y, train=False)[1].flat
    np.testing.assert_array_equal(scaled, plain * np.dtype(dtype).type(3.0))


def test_inputs_that_need_converting_give_the_same_bits():
    """int32 ids, Fortran-ordered ids and a Fortran-ordered state are converted before the
    fused step; the results are those of the step on the converted inputs."""
    x, y = batches(1)[0]
    state = rnnfast.CharLM(V, hidden_size=H).zero_state(B)
    state.h[...] = 0.1
    state.c[...] = -0.2
    variants = [
        (x, y, state),
        (x.astype(np.int32), y.astype(np.int32), state),
        (np.asfortranarray(x), y, state),
        (x, y, rnnfast.State(np.asfortranarray(state.h), np.asfortranarray(state.c))),
        (x.tolist(), y.tolist(), tuple(state)),
    ]
    snaps = []
    for xv, yv, sv in variants:
        model = rnnfast.CharLM(V, hidden_size=H, seed=5)
        opt = rnnfast.Adam(model, lr=0.05)
        loss, final = model.train_step(xv, yv, opt, sv)
        snaps.append([snapshot(model, opt, loss, final)])
    for other in snaps[1:]:
        assert_same_bits(snaps[0], other)


@pytest.mark.parametrize("bad", ["y out of range", "negative x", "NaN state"])
def test_refused_inputs_draw_no_masks_and_change_nothing(bad):
    """Inputs the step-by-step path rejects raise its error before any dropout mask is drawn."""
    model = rnnfast.CharLM(V, hidden_size=H, num_layers=2, seed=6, dropout=0.5)
    opt = rnnfast.Adam(model, lr=0.05)
    x, y = batches(1)[0]
    _, state = model.train_step(x, y, opt)
    if bad == "y out of range":
        y = y + V
    elif bad == "negative x":
        x = x - V
    else:
        state.h[0, 0, 0] = np.nan
    before = snapshot(model, opt, 0.0, state)
    with pytest.raises(ValueError, match="out of range|finite"):
        model.train_step(x, y, opt, state)
    assert_same_bits([before], [snapshot(model, opt, 0.0, state)])


def test_a_non_finite_loss_updates_nothing_on_the_one_call_path():
    model = rnnfast.CharLM(V, hidden_size=H, seed=7)
    opt = rnnfast.RMSProp(model, lr=0.05)
    x, y = batches(1)[0]
    model.train_step(x, y, opt)
    model.params["b_y"][0] = np.inf
    before = snapshot(model, opt, 0.0, model.zero_state(B))
    with pytest.raises(FloatingPointError, match="training loss is nan"), \
            np.errstate(invalid="ignore"):  # fmt: skip
        model.train_step(x, y, opt)
    assert model._workspace.train_step is not None
    assert_same_bits([before], [snapshot(model, opt, 0.0, model.zero_state(B))])


def _openmp_loaded():
    return any(info["user_api"] == "openmp" for info in threadpool_info())


@pytest.mark.skipif(not _openmp_loaded(), reason="the extension was built without OpenMP")
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_the_thread_count_changes_no_bit(cell, dtype):
    """Training at 1, 2, 3 and 4 OpenMP threads (oversubscribed on two cores on purpose) on a
    model with several blocks of every split loop: over 32768 parameters, over 64 rows of
    logits and over 64 columns of the output layer."""
    Vb, Hb, Tb, Bb = 70, 48, 9, 8
    data = batches(3, T=Tb, B=Bb, V=Vb)
    results = []
    for threads in (1, 2, 3, 4):
        model = rnnfast.CharLM(Vb, cell=cell, hidden_size=Hb, num_layers=2, dtype=dtype, seed=8)
        assert model.num_params > 32768
        with threadpool_limits(limits=threads, user_api="openmp"):
            results.append(run(model, rnnfast.Adam(model, lr=0.01), data, 5.0, 1.0, True))
    for other in results[1:]:
        assert_same_bits(results[0], other)


# -- the bridge ---------------------------------------------------------------------------------


def built_steps(cell="lstm", dropout=0.0, dtype=np.float32):
    """A model and its fused step, and the twin over a copy of the same buffers."""
    model = rnnfast.CharLM(V, cell=cell, hidden_size=H, num_layers=2, dtype=dtype, seed=9,
                           dropout=dropout)  # fmt: skip
    fused = model._train_step_for(T, B)
    twin = rnnfast.CharLM(V, cell=cell, hidden_size=H, num_layers=2, dtype=dtype, seed=9,
                          dropout=dropout, backend="numpy")  # fmt: skip
    return model, fused, twin._train_step_for(T, B)


def built_step(cell="lstm", dropout=0.0, dtype=np.float32):
    model, fused, _ = built_steps(cell, dropout, dtype)
    return model, fused


@pytest.mark.parametrize("side", ["fused", "twin"])
def test_the_step_and_its_twin_refuse_the_same_inputs(side):
    model, fused, twin = built_steps()
    step = fused if side == "fused" else twin
    assert isinstance(twin, engine.TrainStep)
    x, y = batches(1)[0]
    state = model.zero_state(B)
    refused = [
        ((x.astype(np.int32), y, state.h, state.c), TypeError, "x: expected dtype int64"),
        ((x[:, :2], y[:, :2], state.h, state.c), ValueError, r"x: expected shape \(4, 3\)"),
        ((x, y + V, state.h, state.c), ValueError, "y: character id [0-9]+ out of range"),
        ((x - V, y, state.h, state.c), ValueError, "x: character id -[0-9] out of range"),
        ((x, y, state.h.astype(np.float64), state.c), TypeError, "state.h: expected dtype"),
        ((x, y, state.h, None), TypeError, "state.c: expected an array"),
        ((x, y, np.full_like(state.h, np.inf), state.c), ValueError, "state.h: expected fin"),
        ((x, y, state.h, state.c[:, :, ::-1]), ValueError, "state.c: expected a C-contiguous"),
    ]
    for args, error, message in refused:
        with pytest.raises(error, match=message):
            step.step(*args, None, 1.0, None, None, None)
    loss, h, c = step.step(x, y, state.h, state.c, None, 1.0, None, None, None)
    assert np.isfinite(loss) and h.shape == c.shape == state.h.shape


def test_the_step_checks_the_update():
    model, step = built_step()
    x, y = batches(1)[0]
    state = model.zero_state(B)
    m = np.zeros_like(model.flat_params)

    def update(kind, moment1, moment2=None):
        return (kind, 0.1, 0.0, 0.0, 0.9, 0.99, 1e-8, 1, moment1, moment2)

    for bad, error, message in [
        (update("lamb", m), ValueError, "update: expected one of"),
        (update("adagrad", model.flat_params), ValueError, "moment1: output array overlaps"),
        (update("adagrad", m.astype(float)), TypeError, "moment1: expected dtype float32"),
        (update("adagrad", m, m.copy()), ValueError, "moment2: expected None"),
        (update("adam", m), TypeError, "moment2: expected a numpy.ndarray"),
    ]:
        with pytest.raises(error, match=message):
            step.step(x, y, *state, None, 1.0, None, None, bad)
    with pytest.raises(ValueError, match="draw_masks: this TrainStep was built without dropout"):
        step.step(x, y, *state, lambda masks: None, 1.0, None, None, None)


def test_building_checks_the_buffers():
    model = rnnfast.CharLM(V, hidden_size=H, num_layers=2, seed=9)
    ws = model._workspace_for(T, B)
    bufs = ws.bufs
    args = [model.params, model._grads, bufs.hs, bufs.cs, bufs.tcs, bufs.gates, None, ws.dhs,
            ws.dA, ws.dR, ws.logits, ws.dlogits]  # fmt: skip
    with pytest.raises(ValueError, match="cell: expected one of"):
        _kernels.TrainStep("transformer", *args)
    bad = list(args)
    bad[8] = np.empty((T, B, 3 * H), np.float32)
    with pytest.raises(ValueError, match=r"dA: expected shape \(4, 3, 20\)"):
        _kernels.TrainStep("lstm", *bad)
    bad = list(args)
    bad[2] = [bufs.hs[0], bufs.hs[0]]
    with pytest.raises(ValueError, match=r"hs\[1\]: output array overlaps hs\[0\]"):
        _kernels.TrainStep("lstm", *bad)
    with pytest.raises(ValueError, match="outs, masks: expected both"):
        _kernels.TrainStep("lstm", *args, np.empty((2, T, B, H), np.float32), None)


def test_the_profile_times_every_phase():
    model, step = built_step(cell="gru", dropout=0.2, dtype=np.float64)
    opt = rnnfast.Adam(model, lr=0.05)
    ns = np.zeros(len(_kernels.TRAIN_PHASES))
    step.profile(ns)
    x, y = batches(1)[0]
    model.train_step(x, y, opt)
    assert np.all(ns > 0), dict(zip(_kernels.TRAIN_PHASES, ns, strict=True))
    step.profile(None)
    again = ns.copy()
    model.train_step(x, y, opt)
    np.testing.assert_array_equal(ns, again)


def test_dropout_switched_on_after_the_first_step():
    """The fused step built without dropout buffers is rebuilt when dropout is switched on."""
    models = [rnnfast.CharLM(V, hidden_size=H, num_layers=2, seed=10) for _ in range(2)]
    snaps = []
    for model, one_call in zip(models, (True, False), strict=True):
        opt = rnnfast.Adam(model, lr=0.05)
        data = batches(4)
        snaps.append(run(model, opt, data[:2], 5.0, None, one_call))
        model.dropout = 0.4
        snaps.append(run(model, opt, data[2:], 5.0, None, one_call))
    assert models[0]._workspace.train_step.masks is not None
    assert_same_bits(snaps[0] + snaps[1], snaps[2] + snaps[3])
