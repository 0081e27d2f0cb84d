"""The C sampling loop (rnnfast._kernels.sample) against reference.sample / reference.draw.

Both turn the same uniform numbers into characters by the same rule, so the ids must be
identical, not merely close: in float64 always, in float32 on these seeds.  The C runs the
streams in blocks over OpenMP threads, and each stream's ids and state are the same bits at any
thread count.
"""

import numpy as np
import pytest
from conftest import assert_close
from threadpoolctl import threadpool_info, threadpool_limits

import rnnfast.reference as ref
from rnnfast import CharLM, Vocab
from rnnfast import _kernels as K  # a missing or broken extension must fail, not skip

GATES = {"rnn": 1, "lstm": 4, "gru": 3}
CELLS = ["rnn", "lstm", "gru"]
OPTIONS = {
    "plain": dict(temperature=1.0, top_k=None, argmax=False),
    "cold": dict(temperature=0.5, top_k=None, argmax=False),
    "hot": dict(temperature=1.7, top_k=None, argmax=False),
    "top1": dict(temperature=1.0, top_k=1, argmax=False),
    "top3-cold": dict(temperature=0.8, top_k=3, argmax=False),
    "top5-nucleus-hot": dict(temperature=1.3, top_k=5, argmax=False, top_p=0.7),
    "argmax": dict(temperature=1.0, top_k=None, argmax=True),
}


@pytest.fixture(
    params=[(isa, packed) for isa in K._available_isas() for packed in ("auto", False, True)],
    ids=lambda p: f"{p[0]}-packed-{p[1]}",
)
def sample_path(request):
    """Every ISA variant with the products packed as the machine chooses, through BLAS, packed."""
    saved = K._paths()
    K._set_paths(isa=request.param[0], packed=request.param[1])
    yield
    K._set_paths(**saved)


def make_sampler(rng, cell, V, H, L, S, N, dtype):
    """Arguments of ``sample``: recurrent weights small enough that the dynamics contract (in a
    chaotic RNN any rounding difference, even one ulp of tanh, grows until the streams part),
    output weights large enough that the distributions are far from flat."""
    G = GATES[cell] * H
    scale = 1.0 / np.sqrt(H)
    u = lambda shape, s=scale: rng.uniform(-s, s, shape).astype(dtype)  # noqa: E731
    return {
        "out": np.full((N, S), -1, np.int64),
        "uniforms": rng.random((N, S)),
        "first_ids": rng.integers(0, V, S).astype(np.int64),
        "h": u((L, S, H), 0.9),
        "c": u((L, S, H), 0.9) if cell == "lstm" else None,
        "W_x": [u((V, G), 1.0) if layer == 0 else u((H, G)) for layer in range(L)],
        "W_h": [u((H, G)) for _ in range(L)],
        "b": [u(G, 0.3) for _ in range(L)],
        "b_hn": [u(H, 0.3) for _ in range(L)] if cell == "gru" else None,
        "W_y": u((H, V), 3.0),
        "b_y": u(V, 0.5),
    }


def call(ops, args, temperature, top_k, argmax, top_p=None):
    a = {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in args.items()}
    ops.sample(
        a["out"],
        a["uniforms"],
        a["first_ids"],
        a["h"],
        a["c"],
        a["W_x"],
        a["W_h"],
        a["b"],
        a["W_y"],
        a["b_y"],
        temperature,
        top_k,
        argmax,
        top_p,
        b_hn=a["b_hn"],
    )
    return a


@pytest.mark.parametrize("option", list(OPTIONS))
@pytest.mark.parametrize(
    "dims",
    [(2, 1, 1, 1, 40), (11, 7, 2, 4, 60), (29, 13, 3, 3, 50), (65, 70, 2, 1, 50),
     (17, 9, 2, 19, 30)],
    ids=["V2-H1-L1-S1", "V11-H7-L2-S4", "V29-H13-L3-S3", "V65-H70-L2-S1", "V17-H9-L2-S19"],
)  # fmt: skip
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.usefixtures("sample_path")
def test_sample_ids_identical_to_reference(rng, dtype, cell, dims, option):
    V, H, L, S, N = dims
    args = make_sampler(rng, cell, V, H, L, S, N, dtype)
    got = call(K, args, **OPTIONS[option])
    expected = call(ref, args, **OPTIONS[option])
    np.testing.assert_array_equal(got["out"], expected["out"])
    assert got["out"].min() >= 0 and got["out"].max() < V
    # the state advanced in place the same way
    assert_close(got["h"], expected["h"], dtype, "h")
    if cell == "lstm":
        assert_close(got["c"], expected["c"], dtype, "c")
    if option != "argmax" and V > 2 and N >= 50:
        assert len(np.unique(got["out"])) > 1  # really sampled, not a constant stream


@pytest.mark.parametrize("cell", CELLS)
def test_sample_negative_control(rng, dtype, cell):
    args = make_sampler(rng, cell, 11, 7, 2, 4, 60, dtype)
    expected = call(ref, args, **OPTIONS["plain"])
    args["W_y"] = args["W_y"].copy()
    args["W_y"][:, 3] += dtype.type(1.0)  # makes character 3 more likely
    got = call(K, args, **OPTIONS["plain"])
    assert not np.array_equal(got["out"], expected["out"])


@pytest.mark.parametrize("cell", CELLS)
def test_sample_continues_where_it_stopped(rng, dtype, cell):
    args = make_sampler(rng, cell, 11, 7, 2, 3, 40, dtype)
    whole = call(K, args, 0.9, 4, False)
    first = dict(args, out=args["out"][:15].copy(), uniforms=args["uniforms"][:15].copy())
    first = call(K, first, 0.9, 4, False)
    second = dict(
        args,
        out=args["out"][15:].copy(),
        uniforms=args["uniforms"][15:].copy(),
        first_ids=first["out"][-1].copy(),
        h=first["h"],
        c=first["c"],
    )
    second = call(K, second, 0.9, 4, False)
    np.testing.assert_array_equal(np.concatenate([first["out"], second["out"]]), whole["out"])


def test_top_k_keeps_ties_and_argmax_takes_the_first(dtype):
    """Logits with ties at the k-th value: every tied entry stays in play, as in draw."""
    V, H, S, N = 6, 3, 1, 400
    rng = np.random.default_rng(3)
    args = make_sampler(rng, "rnn", V, H, 1, S, N, dtype)
    args["W_y"] = np.zeros((H, V), dtype)
    args["b_y"] = np.array([0.0, 2.0, 1.0, 2.0, 2.0, -1.0], dtype)
    got = call(K, args, 1.0, 2, False)
    np.testing.assert_array_equal(got["out"], call(ref, args, 1.0, 2, False)["out"])
    assert set(np.unique(got["out"])) == {1, 3, 4}
    got = call(K, args, 1.0, None, True)
    assert np.all(got["out"] == 1)


def test_top_k_at_least_V_means_no_top_k(rng, dtype):
    args = make_sampler(rng, "lstm", 11, 7, 2, 4, 60, dtype)
    np.testing.assert_array_equal(
        call(K, args, 1.0, 11, False)["out"], call(ref, args, 1.0, None, False)["out"]
    )
    np.testing.assert_array_equal(
        call(K, args, 1.0, 50, False)["out"], call(ref, args, 1.0, None, False)["out"]
    )


# ---- threads ---------------------------------------------------------------------------------

THREAD_COUNTS = (1, 2, 3, 4)  # more threads than this machine's 2 cores, on purpose


def openmp_threads():
    """The thread counts of the OpenMP runtimes loaded (the extension's among them)."""
    return [info["num_threads"] for info in threadpool_info() if info["user_api"] == "openmp"]


def sample_at_thread_counts(args, option):
    """The sampler's results at each of THREAD_COUNTS."""
    assert openmp_threads(), "no OpenMP runtime loaded: the extension was built without it"
    runs = {}
    for n in THREAD_COUNTS:
        with threadpool_limits(n, user_api="openmp"):
            assert set(openmp_threads()) == {n}
            runs[n] = call(K, args, **OPTIONS[option])
    return runs


@pytest.mark.parametrize("option", ["plain", "top3-cold", "argmax"])
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.usefixtures("sample_path")
def test_sample_same_bits_at_any_thread_count(rng, dtype, cell, option):
    """23 streams: one block per thread (1-4 blocks of 5-23 streams) when the products are
    packed, blocks of 8, 8 and 7 streams through BLAS."""
    args = make_sampler(rng, cell, 29, 13, 2, 23, 30, dtype)
    runs = sample_at_thread_counts(args, option)
    for n in THREAD_COUNTS[1:]:
        for name in ("out", "h", "c"):
            if runs[1][name] is not None:
                np.testing.assert_array_equal(runs[n][name], runs[1][name], f"{name}, {n} threads")
    np.testing.assert_array_equal(runs[1]["out"], call(ref, args, **OPTIONS[option])["out"])
    if option != "argmax":
        assert len(np.unique(runs[1]["out"])) > 1


@pytest.fixture
def every_stream_split():
    """The work floor at 0: one stream splits its products over the team however small."""
    before = K._team_min_flops(0)
    yield
    K._team_min_flops(before)


@pytest.mark.parametrize("H", [37, 70])
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.usefixtures("sample_path", "every_stream_split")
def test_one_stream_same_bits_at_any_thread_count(rng, dtype, cell, H):
    """One stream, its per-step products split by columns over 1-4 threads (whole panels each,
    the last partial): the bits of one thread, and the reference's ids."""
    args = make_sampler(rng, cell, 29, H, 2, 1, 40, dtype)
    runs = sample_at_thread_counts(args, "plain")
    for n in THREAD_COUNTS[1:]:
        for name in ("out", "h", "c"):
            if runs[1][name] is not None:
                np.testing.assert_array_equal(runs[n][name], runs[1][name], f"{name}, {n} threads")
    np.testing.assert_array_equal(runs[1]["out"], call(ref, args, **OPTIONS["plain"])["out"])
    assert len(np.unique(runs[1]["out"])) > 1


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.usefixtures("sample_path", "every_stream_split")
def test_one_stream_team_found_late_finishes_alone(rng, dtype, cell, late_workers):
    """Every verdict late: where the products are packed (forced: H = 70 pads too much for the
    default) the team splits the first 16 steps and thread 0 takes the other 24 alone, every
    column; the bits of one thread at 2-4 threads.  (Whether the next kernel runs on one thread
    depends on the clock, the backoff being 20 ms: test_threads checks it after a short call.)"""
    args = make_sampler(rng, cell, 29, 70, 2, 1, 40, dtype)
    runs = {}
    for n in THREAD_COUNTS:
        late_workers()  # forgets the last count's verdict: a team again
        with threadpool_limits(n, user_api="openmp"):
            runs[n] = call(K, args, **OPTIONS["plain"])
    for n in THREAD_COUNTS[1:]:
        for name in ("out", "h", "c"):
            if runs[1][name] is not None:
                np.testing.assert_array_equal(runs[n][name], runs[1][name], f"{name}, {n} threads")


def test_sample_threads_negative_control(rng, dtype):
    """A sum taken in another order on another thread count moves pre-activations by an ulp or
    so: the bitwise comparison above sees the top layer's biases moved by one ulp."""
    args = make_sampler(rng, "lstm", 29, 13, 2, 23, 30, dtype)
    base = call(K, args, **OPTIONS["plain"])
    args["b"] = [args["b"][0], np.nextafter(args["b"][1], dtype.type(1))]
    nudged = call(K, args, **OPTIONS["plain"])
    assert np.any(nudged["h"] != base["h"])


# ---- through the model ----------------------------------------------------------------------

TEXT = "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n"


@pytest.mark.parametrize("cell", CELLS)
def test_model_sample_text_identical_across_backends(dtype, cell):
    vocab = Vocab.from_text(TEXT)
    models = {
        be: CharLM(vocab, cell=cell, hidden_size=24, num_layers=2, dtype=dtype, backend=be, seed=7)
        for be in ("c", "numpy")
    }
    for m in models.values():  # a peaked distribution, a real test of the draw
        m.params["W_y"][...] *= 8
    for kwargs in (
        dict(),
        dict(prime="To be", temperature=0.7),
        dict(prime="the ", top_k=5, num_samples=3),
        dict(prime="the ", top_p=0.8, temperature=1.2),
        dict(prime="To ", top_k=8, top_p=0.6, num_samples=3),
        dict(prime="Wh", argmax=True),
    ):
        texts = {be: m.sample(300, seed=11, **kwargs) for be, m in models.items()}
        assert texts["c"] == texts["numpy"], kwargs


@pytest.mark.parametrize("cell", CELLS)
def test_model_num_samples_same_text_at_any_thread_count(dtype, cell):
    model = CharLM(Vocab.from_text(TEXT), cell=cell, hidden_size=24, dtype=dtype, seed=3)
    model.params["W_y"][...] *= 8
    texts = {}
    for n in THREAD_COUNTS:
        with threadpool_limits(n, user_api="openmp"):
            texts[n] = model.sample(150, prime="To be", top_k=5, seed=5, num_samples=11)
    assert all(texts[n] == texts[1] for n in THREAD_COUNTS)
    assert len(set(texts[1])) > 1  # the streams differ


# ---- bad input raises before any C runs -----------------------------------------------------


def test_sample_bad_input_raises_before_c(rng, dtype):
    args = make_sampler(rng, "lstm", 11, 7, 2, 3, 20, dtype)
    call(K, args, 1.0, None, False)  # the good call passes
    other = np.float32 if dtype == np.float64 else np.float64
    ro = args["out"].copy()
    ro.flags.writeable = False
    bad_ids = args["first_ids"].copy()
    bad_ids[1] = 11
    neg_ids = args["first_ids"].copy()
    neg_ids[0] = -1
    cases = [
        (TypeError, "W_y: expected dtype", dict(W_y=args["W_y"].astype(other))),
        (
            TypeError,
            r"W_h\[1\]: expected dtype",
            dict(W_h=[args["W_h"][0], args["W_h"][1].astype(other)]),
        ),
        (
            TypeError,
            "uniforms: expected dtype float64",
            dict(uniforms=args["uniforms"].astype(np.float32)),
        ),
        (
            TypeError,
            "first_ids: expected dtype int64",
            dict(first_ids=args["first_ids"].astype(np.int32)),
        ),
        (ValueError, "W_y: expected a C-contiguous", dict(W_y=np.asfortranarray(args["W_y"]))),
        (ValueError, "out: output array is read-only", dict(out=ro)),
        (ValueError, "W_x: expected 2 arrays", dict(W_x=args["W_x"][:1])),
        (ValueError, r"b\[0\]: expected shape", dict(b=[args["b"][0][:-1].copy(), args["b"][1]])),
        (ValueError, r"W_h\[0\]: expected shape \(H, H\) = \(7, 7\) for an rnn", dict(c=None)),
        (ValueError, "uniforms: expected shape", dict(uniforms=args["uniforms"][:-1].copy())),
        (ValueError, "first_ids: character id 11 out of range", dict(first_ids=bad_ids)),
        (ValueError, "first_ids: character id -1 out of range", dict(first_ids=neg_ids)),
        (ValueError, "W_y: expected shape", dict(W_y=args["W_y"][:, :-1].copy())),
        (ValueError, "temperature", dict(temperature=0.0)),
        (ValueError, "temperature", dict(temperature=float("nan"))),
        (ValueError, "top_k", dict(top_k=0)),
        (ValueError, "h: expected a C-contiguous", dict(h=np.zeros((2, 3, 14), dtype)[..., ::2])),
    ]
    for exc, match, change in cases:
        a = {k: v for k, v in args.items()}
        options = dict(temperature=1.0, top_k=None, argmax=False)
        for k, v in change.items():
            (options if k in options else a)[k] = v
        if a["out"].flags.writeable:
            a["out"] = a["out"].copy()
            a["out"][...] = -7
        h_before = a["h"].copy()
        with pytest.raises(exc, match=match):
            K.sample(
                a["out"],
                a["uniforms"],
                a["first_ids"],
                a["h"],
                a["c"],
                a["W_x"],
                a["W_h"],
                a["b"],
                a["W_y"],
                a["b_y"],
                **options,
            )
        if a["out"].flags.writeable:
            assert np.all(a["out"] == -7), match
        np.testing.assert_array_equal(a["h"], h_before, err_msg=match)


def test_gru_sample_bad_input_raises_before_c(rng, dtype):
    args = make_sampler(rng, "gru", 11, 7, 2, 3, 20, dtype)
    call(K, args, 1.0, None, False)  # the good call passes
    cases = [
        (r"c: expected None with b_hn given", dict(c=args["h"].copy())),
        (r"b_hn: expected 2 arrays", dict(b_hn=args["b_hn"][:1])),
        (r"b_hn\[1\]: expected shape \(7,\)", dict(b_hn=[args["b_hn"][0], args["b_hn"][1][:-1]])),
        (r"W_h\[0\]: expected shape \(H, H\) = \(7, 7\) for an rnn", dict(b_hn=None)),
    ]
    for match, change in cases:
        a = dict(args, out=np.full_like(args["out"], -7), h=args["h"].copy(), **change)
        h_before = a["h"].copy()
        with pytest.raises(ValueError, match=match):
            K.sample(a["out"], a["uniforms"], a["first_ids"], a["h"], a["c"], a["W_x"], a["W_h"],
                     a["b"], a["W_y"], a["b_y"], 1.0, None, False, b_hn=a["b_hn"])  # fmt: skip
        assert np.all(a["out"] == -7), match
        np.testing.assert_array_equal(a["h"], h_before, err_msg=match)


def test_sample_overlapping_state_raises(rng, dtype):
    args = make_sampler(rng, "lstm", 11, 7, 2, 3, 20, dtype)
    with pytest.raises(ValueError, match="c: output array overlaps h"):
        K.sample(
            args["out"],
            args["uniforms"],
            args["first_ids"],
            args["h"],
            args["h"],
            args["W_x"],
            args["W_h"],
            args["b"],
            args["W_y"],
            args["b_y"],
            1.0,
            None,
            False,
        )
    shared = np.zeros(14 + 7 * 28, dtype)
    h = shared[:42].reshape(2, 3, 7)
    W_h0 = shared[14:].reshape(7, 28)  # its first 28 elements are h's last 28
    with pytest.raises(ValueError, match=r"h: output array overlaps W_h\[0\]"):
        K.sample(
            args["out"],
            args["uniforms"],
            args["first_ids"],
            h,
            args["c"],
            args["W_x"],
            [W_h0, args["W_h"][1]],
            args["b"],
            args["W_y"],
            args["b_y"],
            1.0,
            None,
            False,
        )


@pytest.mark.parametrize("V", [2, 5, 17, 64])
def test_top_k_selection_with_many_ties(dtype, V):
    """Constant logits (W_y = 0) drawn from a few values, so the k-th largest is often tied:
    every k from 1 to V gives the same ids as the reference over 300 draws."""
    rng = np.random.default_rng(V)
    args = make_sampler(rng, "rnn", V, 3, 1, 2, 300, dtype)
    args["W_y"] = np.zeros((3, V), dtype)
    args["b_y"] = rng.integers(-2, 3, V).astype(dtype)
    for k in range(1, V + 1):
        got = call(K, args, 1.3, k, False)["out"]
        np.testing.assert_array_equal(got, call(ref, args, 1.3, k, False)["out"], err_msg=k)
        kth = np.sort(args["b_y"])[::-1][k - 1]
        assert np.all(args["b_y"][got] >= kth), k
