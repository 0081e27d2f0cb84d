"""The kernels' threads (csrc/threads.h, rnnfast.threads): the same bits at any thread count, and
every way of setting the count reaches the pool.

Each bits test runs the same computation at 1, 2, 3 and 4 threads (oversubscribed on purpose on a
small machine: a thread descheduled mid-block must change nothing) and compares every output bit
for bit with the 1-thread run, through every forced path (ISA variant, packed per-step kernel on
and off, chunks of one step), every call threaded however small.  The thread count is set with
threadpoolctl, as ``--threads`` does, so SciPy's BLAS gets the same count and the kernels must
hold it at one thread themselves.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import KERNEL_PATHS, _forced, fit_chunk, subprocess_env
from test_recurrent import (
    GATES,
    backward_grads,
    dropout_mask,
    make_layer,
    run_backward,
    run_forward,
    with_dropout,
)
from threadpoolctl import threadpool_info, threadpool_limits

import rnnfast
from rnnfast import _kernels as K
from rnnfast import layers

THREAD_COUNTS = [1, 2, 3, 4]
CELLS = ["rnn", "lstm", "gru"]


@pytest.fixture(autouse=True)
def every_call_threaded():
    """The shapes here are small: without this, calls below the kernels' work floor would run
    on one thread whatever the count."""
    before = K._team_min_flops(0)
    yield
    K._team_min_flops(before)


def at_each_thread_count(fn):
    """{threads: fn()} with the kernels' threads (and every BLAS's) at each count."""
    results = {}
    for threads in THREAD_COUNTS:
        with threadpool_limits(limits=threads):
            assert rnnfast.get_num_threads() == threads
            results[threads] = fn()
    return results


def assert_same_bits(results):
    """Every run's arrays equal the 1-thread run's, bit for bit (NaN where it has NaN)."""
    first = results[THREAD_COUNTS[0]]
    for threads, result in results.items():
        assert result.keys() == first.keys()
        for name, expected in first.items():
            if expected is None:
                assert result[name] is None, name
                continue
            actual = np.asarray(result[name])
            np.testing.assert_array_equal(
                actual.view(np.uint8), np.asarray(expected).view(np.uint8),
                err_msg=f"{name}: {threads} threads vs {THREAD_COUNTS[0]}",
            )  # fmt: skip


def test_same_bits_negative_control():
    """The comparison sees one ulp, and a NaN against a number."""
    a = np.linspace(-1, 1, 11, dtype=np.float32)
    b = a.copy()
    b[3] = np.nextafter(b[3], np.float32(2))
    with pytest.raises(AssertionError, match="x: 2 threads vs 1"):
        assert_same_bits({1: {"x": a}, 2: {"x": b}})
    b = a.copy()
    b[5] = np.nan
    with pytest.raises(AssertionError):
        assert_same_bits({1: {"x": a}, 2: {"x": b}})


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads in /proc")
def test_kernels_fork_a_team_of_the_count():
    """At 4 threads a kernel call starts 3 workers (OpenMP keeps them for the next call)."""
    code = textwrap.dedent("""
        import os, numpy as np, rnnfast
        from rnnfast import _kernels as K
        K._team_min_flops(0)
        rnnfast.set_num_threads(4)
        B, H = 8, 16
        args = [np.zeros((5, B, H), np.float32), np.zeros((5, B), np.int64),
                np.zeros((3, H), np.float32), np.zeros((H, H), np.float32),
                np.zeros(H, np.float32), np.zeros((B, H), np.float32)]
        before = len(os.listdir("/proc/self/task"))
        K.rnn_forward(*args)
        print(len(os.listdir("/proc/self/task")) - before)
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=subprocess_env(), cwd="/", timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert int(run.stdout) == 3


# ---- setting the count --------------------------------------------------------------------


@pytest.fixture
def restore_threads():
    before = rnnfast.get_num_threads()
    yield
    rnnfast.set_num_threads(before)


@pytest.mark.usefixtures("restore_threads")
def test_set_num_threads_round_trip():
    assert K._openmp(), "the extension was built without OpenMP (setup.py adds -fopenmp)"
    for n in (3, 1, 2):
        rnnfast.set_num_threads(n)
        assert rnnfast.get_num_threads() == n
    rnnfast.set_num_threads(np.int64(4))
    assert rnnfast.get_num_threads() == 4


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        (0, ValueError, "n: expected at least 1 thread, got 0"),
        (-2, ValueError, "n: expected at least 1 thread, got -2"),
        (1.5, TypeError, "n: expected an integer number of threads, got float"),
        ("2", TypeError, "got str"),
        (True, TypeError, "got bool"),
        (None, TypeError, "got NoneType"),
    ],
)
@pytest.mark.usefixtures("restore_threads")
def test_set_num_threads_rejects_bad_counts(value, error, match):
    rnnfast.set_num_threads(3)
    with pytest.raises(error, match=match):
        rnnfast.set_num_threads(value)
    assert rnnfast.get_num_threads() == 3


@pytest.mark.parametrize("user_api", [None, "openmp"])
def test_threadpool_limits_reaches_the_pool(user_api):
    before = rnnfast.get_num_threads()
    with threadpool_limits(limits=3, user_api=user_api):
        assert rnnfast.get_num_threads() == 3
        with threadpool_limits(limits=1, user_api=user_api):
            assert rnnfast.get_num_threads() == 1
        assert rnnfast.get_num_threads() == 3
    assert rnnfast.get_num_threads() == before
    assert any(lib["user_api"] == "openmp" for lib in threadpool_info())


def test_kernels_restore_blas_threads():
    """A kernel holds SciPy's BLAS at one thread while it runs and gives back the count after."""
    assert K._blas_thread_control(), "SciPy's OpenBLAS thread controls were not found"
    rng = np.random.default_rng(1)
    layer = make_layer(rng, "lstm", (4, 5, 6, 9), np.float32, "float")

    def scipy_blas_threads():
        scipy_libs = [lib for lib in threadpool_info()
                      if lib["user_api"] == "blas" and "scipy.libs" in lib["filepath"]]  # fmt: skip
        if not scipy_libs:
            pytest.skip("SciPy's OpenBLAS is not the scipy.libs copy of a wheel")
        return scipy_libs[0]["num_threads"]

    with threadpool_limits(limits=2):
        assert scipy_blas_threads() == 2
        run_forward(K, "lstm", layer)
        assert scipy_blas_threads() == 2


# ---- the same bits at any thread count ----------------------------------------------------

# (T, B, I, H): B = 1 (sampling-sized, one thread), odd B below and above the row blocks, a batch
# of 50 as charrnn's; H = 37 leaves partial panels of the packed kernel.
BITS_SHAPES = [(5, 1, 7, 37), (6, 5, 9, 37), (4, 7, 5, 20), (5, 50, 11, 37)]


@pytest.mark.parametrize("dropout", [False, True], ids=["plain", "dropout"])
@pytest.mark.parametrize("inputs", ["ids", "float"])
@pytest.mark.parametrize("shape", BITS_SHAPES, ids=lambda s: "T{}-B{}-I{}-H{}".format(*s))
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("path", KERNEL_PATHS, ids=repr)
def test_recurrent_kernels_same_bits_at_any_thread_count(dtype, cell, shape, inputs, dropout,
                                                         path):  # fmt: skip
    gen = _forced(path)
    next(gen)
    try:
        T, B, _, H = shape
        fit_chunk(B, GATES[cell] * H, dtype)

        def run():
            rng = np.random.default_rng(17)
            layer = make_layer(rng, cell, shape, dtype, inputs)
            ops, out = K, {}
            if dropout:
                mask = dropout_mask(rng, (T, B, H), dtype)
                out["out"] = np.full((T, B, H), np.nan, dtype)
                ops = with_dropout(K, mask, out["out"])
            fwd = run_forward(ops, cell, layer)
            grads = backward_grads(rng, cell, layer)
            dH = rng.uniform(-1, 1, (T, B, H)).astype(dtype)
            run_backward(ops, cell, layer, fwd, dH, grads, final={"dh_T": dH[0]})
            return {**out, **fwd, **grads}

        assert_same_bits(at_each_thread_count(run))
    finally:
        next(gen, None)


@pytest.mark.parametrize("B", [1, 7])
@pytest.mark.parametrize("dropout", [0.0, 0.3])
@pytest.mark.parametrize("cell", CELLS)
def test_charlm_training_same_bits_at_any_thread_count(dtype, cell, dropout, B):
    """Several train_steps (state carried, Adam, clipping): parameters, moments and losses."""
    data = np.random.default_rng(5).integers(0, 23, (4, 9, B))

    def run():
        model = rnnfast.CharLM(23, cell=cell, hidden_size=37, num_layers=2, dtype=dtype, seed=3,
                               dropout=dropout)  # fmt: skip
        optimizer = rnnfast.Adam(model, lr=1e-2)
        state, losses = None, []
        for x in data:
            y = np.roll(x, -1, axis=0)
            loss, state = model.train_step(x, y, optimizer, state, clip=1.0)
            losses.append(loss)
        moments = optimizer.state_dict()["moments"]
        return {"params": model.flat_params, "losses": np.array(losses), "h": state.h, **moments}

    assert_same_bits(at_each_thread_count(run))


def test_late_workers_put_the_next_kernels_on_one_thread(late_workers):
    """Every verdict late: after one threaded kernel call the next calls fork one thread (for
    the backoff, 20 ms at first), and setting the wait again forgets it."""
    B, H = 8, 16
    args = [np.zeros((5, B, H), np.float32), np.zeros((5, B), np.int64),
            np.zeros((3, H), np.float32), np.zeros((H, H), np.float32),
            np.zeros(H, np.float32), np.zeros((B, H), np.float32)]  # fmt: skip
    with threadpool_limits(limits=2):
        assert K._team_size() == 2
        K.rnn_forward(*args)
        assert K._team_size() == 1
        late_workers()
        assert K._team_size() == 2


@pytest.mark.parametrize("cell", CELLS)
def test_training_with_late_workers_same_bits(dtype, cell, late_workers):
    """Every verdict late, so that the kernels alternate between a team and one thread as the
    backoff comes and goes: the bits of one thread.  63 rows a step: the output layer's bias
    pass stays one block (its plain OpenMP loop has no TSan annotations, csrc/threads.h)."""
    data = np.random.default_rng(6).integers(0, 23, (3, 9, 7))

    def run():
        late_workers()  # a team again for the first kernel
        model = rnnfast.CharLM(23, cell=cell, hidden_size=37, num_layers=2, dtype=dtype, seed=3)
        optimizer, state = rnnfast.Adam(model, lr=1e-2), None
        for x in data:
            _, state = model.train_step(x, np.roll(x, -1, axis=0), optimizer, state, clip=1.0)
        return {"params": model.flat_params, "h": state.h}

    assert_same_bits(at_each_thread_count(run))


@pytest.mark.parametrize("cls", [layers.RNN, layers.LSTM, layers.GRU])
def test_dense_layers_same_bits_at_any_thread_count(dtype, cls):
    """Two stacked layers with dropout between them, forward and backward with the final state's
    gradient."""
    rng = np.random.default_rng(9)
    x = rng.uniform(-1, 1, (7, 13, 10)).astype(dtype)
    dout = rng.uniform(-1, 1, (7, 13, 20)).astype(dtype)

    def run():
        layer = cls(10, 20, num_layers=2, dtype=dtype, seed=4, dropout=0.25)
        out, state, cache = layer.forward(x, train=True)
        dx, dstate0, grads = layer.backward(dout, cache, state)
        return {"out": out, "h": state.h, "dx": dx, "dh0": dstate0.h, "grads": grads.flat}

    assert_same_bits(at_each_thread_count(run))


# ---- PyTorch alongside ----------------------------------------------------------------------

TRAIN_AT_2_THREADS = """
import hashlib, os, numpy as np
{first}
import rnnfast
from threadpoolctl import threadpool_info, threadpool_limits
x = np.random.default_rng(0).integers(0, 30, (3, 20, 16))
with threadpool_limits(limits=2):
    {torch_work}
    model = rnnfast.CharLM(30, hidden_size=64, num_layers=2, seed=0, dropout=0.1)
    optimizer, state = rnnfast.Adam(model, lr=1e-2), None
    for xs in x:
        loss, state = model.train_step(xs, np.roll(xs, -1, axis=0), optimizer, state)
    assert rnnfast.get_num_threads() == 2
    {torch_check}
runtimes = sorted({{lib["filepath"] for lib in threadpool_info() if lib["user_api"] == "openmp"}})
print(hashlib.sha256(model.flat_params.tobytes()).hexdigest(), len(runtimes),
      len(os.listdir("/proc/self/task")))
"""


def _train_in_child(first="", torch_work="", torch_check=""):
    code = textwrap.dedent(TRAIN_AT_2_THREADS).format(
        first=first, torch_work=torch_work, torch_check=torch_check
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=subprocess_env(), cwd="/", timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr
    digest, runtimes, threads = run.stdout.split()
    return digest, int(runtimes), int(threads)


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads in /proc")
@pytest.mark.parametrize("order", ["torch first", "rnnfast first"])
def test_pytorch_alongside_same_bits_no_deadlock_no_extra_pool(order):
    """PyTorch's wheel bundles its own libgomp.  Imported before or after rnnfast, with PyTorch
    running its own 2-thread OpenMP work between rnnfast's training steps, training gives the
    bits of a process without PyTorch, no run hangs (the timeout), and there is one OpenMP
    runtime whose pool both share: no more threads than the run without PyTorch plus PyTorch's
    own."""
    pytest.importorskip("torch")
    alone, runtimes_alone, threads_alone = _train_in_child()
    torch_work = "torch.set_num_threads(2); torch.ones(512, 512).exp().sum()"
    first = "import torch" if order == "torch first" else "import rnnfast, torch"
    digest, runtimes, threads = _train_in_child(
        first=first, torch_work=torch_work,
        torch_check="torch.ones(512, 512).tanh().sum(); assert torch.get_num_threads() == 2",
    )  # fmt: skip
    assert digest == alone
    assert runtimes == runtimes_alone == 1
    torch_only, _, torch_threads = _torch_thread_count()
    assert threads <= threads_alone + torch_threads - torch_only


def _torch_thread_count():
    """(threads before, OpenMP runtimes, threads after) of a process that imports PyTorch and
    runs the same 2-thread work without rnnfast."""
    code = textwrap.dedent("""
        import os, torch
        before = len(os.listdir("/proc/self/task"))
        torch.set_num_threads(2); torch.ones(512, 512).exp().sum()
        torch.ones(512, 512).tanh().sum()
        print(before, 1, len(os.listdir("/proc/self/task")))
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=subprocess_env(), cwd="/", timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr
    before, runtimes, after = map(int, run.stdout.split())
    return before, runtimes, after
