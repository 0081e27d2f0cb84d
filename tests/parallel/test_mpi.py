"""Data-parallel training under a real ``mpiexec``: the same parameters as one process, real
exchanges between ranks that see different data, resume with another process count, a killed or
hung rank, and bad setups.  Each test starts its processes with a bounded timeout.

This file is also the program the ranks run: ``python tests/parallel/test_mpi.py WORKER ARGS_JSON``.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_as_accurate, subprocess_env

# 3000 characters: 2700 to train on, 7 streams of 385 characters, 48 steps per epoch at T=8
TEXT = ("def f(x):\n    return x + 1  # add one\n\nclass A:\n    pass\n" * 60)[:3000]
B = 7  # the global batch: 2 ranks take 3 + 4 streams, 3 ranks 2 + 2 + 3
STEPS = 6
CASES = [
    dict(cell=cell, num_layers=layers, dtype=dtype)
    for cell in ("rnn", "lstm")
    for layers in (1, 2)
    for dtype in ("float32", "float64")
] + [dict(cell="lstm", num_layers=2, dtype=dtype, dropout=0.25) for dtype in ("float32", "float64")]
LIMIT = 60  # seconds any one mpiexec may run


def config(**kw):
    from rnnfast.training import TrainConfig

    base = dict(hidden_size=12, batch_size=B, seq_length=8, val_every=4, seed=1, lr=0.01)
    return TrainConfig(**{**base, **kw})


# -- the programs the ranks run ----------------------------------------------------------------


def worker_train(out: str) -> None:
    """Train every case for STEPS steps with the Trainer over all ranks; rank 0 saves the
    parameters, and the first batch each rank fed to its model."""
    from threadpoolctl import threadpool_limits

    from rnnfast.distributed import DataParallel
    from rnnfast.training import Trainer

    dp = DataParallel(timeout=LIMIT)
    results, seen = {}, {}
    with threadpool_limits(1):
        for i, case in enumerate(CASES):
            trainer = Trainer(TEXT, config(**case), parallel=dp)
            fed = []
            original = trainer.model.gradients

            def spy(x, y, state=None, original=original, fed=fed, **kw):
                fed.append(np.array(x))
                return original(x, y, state, **kw)

            trainer.model.gradients = spy
            trainer.train(steps=STEPS)
            results[f"params{i}"] = trainer.model.flat_params
            results[f"val{i}"] = np.array(trainer.val_history["val_loss"])
            seen[i] = dp.comm.gather(fed[0], root=0)
    if dp.rank == 0:
        firsts = {f"fed{r}": x for r, x in enumerate(seen[0])}
        np.savez(out, **results, **firsts)


def worker_without_allreduce(out: str) -> None:
    """Each rank updates from its own gradient only: the checksum must catch the drift."""
    from rnnfast.distributed import DataParallel, RanksOutOfSync
    from rnnfast.training import Trainer

    dp = DataParallel(timeout=LIMIT, check_every=2)
    dp.allreduce_grads = lambda grads, loss, weight: loss
    trainer = Trainer(TEXT, config(cell="rnn", num_layers=1), parallel=dp)
    try:
        trainer.train(steps=STEPS)
    except RanksOutOfSync as err:
        Path(f"{out}.{dp.rank}").write_text(str(err))


WORKERS = {"train": worker_train, "without_allreduce": worker_without_allreduce}


# -- running them ------------------------------------------------------------------------------

needs_mpi = pytest.mark.skipif(
    shutil.which("mpiexec") is None or not __import__("importlib").util.find_spec("mpi4py"),
    reason="mpi4py and an mpiexec are needed (pip install 'rnnfast[mpi]')",
)


def env(**extra) -> dict:
    return {**subprocess_env(), **extra}


def mpiexec(n: int, *args: str, cwd, **extra_env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [shutil.which("mpiexec"), "-n", str(n), *args],
        capture_output=True,
        text=True,
        timeout=LIMIT,
        env=env(**extra_env),
        cwd=cwd,
    )


def run_worker(n: int, name: str, out: Path) -> subprocess.CompletedProcess:
    tests = str(Path(__file__).resolve().parents[1])  # the workers import conftest too
    path = os.pathsep.join([subprocess_env()["PYTHONPATH"], tests])
    done = mpiexec(n, sys.executable, __file__, name, str(out), cwd=out.parent, PYTHONPATH=path)
    assert done.returncode == 0, done.stderr
    return done


def train_command(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "rnnfast", "train", "--data", str(data), "--hidden-size", "12",
        "--num-layers", "2", "--batch-size", str(B), "--seq-length", "8", "--dtype", "float64",
        "--val-every", "5", "--out", str(out), "--sample-length", "0", *extra,
    ]  # fmt: skip


@pytest.fixture
def data(tmp_path) -> Path:
    path = tmp_path / "input.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def one_process_runs() -> list[tuple[np.ndarray, list[float]]]:
    """Parameters and validation losses of each case trained by one process."""
    from rnnfast.training import Trainer

    runs = []
    for case in CASES:
        trainer = Trainer(TEXT, config(**case))
        trainer.train(steps=STEPS)
        runs.append((trainer.model.flat_params, trainer.val_history["val_loss"]))
    return runs


@pytest.fixture(scope="module")
def single():
    return one_process_runs()


# -- the tests ---------------------------------------------------------------------------------


@needs_mpi
@pytest.mark.parametrize("n", [1, 2, 3])
def test_ranks_train_the_one_process_model(tmp_path, single, n):
    """float64 to 1e-12 (measured: up to 3e-15); float32 as close to the float64 run as the
    one-process float32 run is (the suite's rule for training runs, where Adam amplifies the
    round-off of a different summation order; measured: up to 4e-7, 13 ulp of the weights)."""
    run_worker(n, "train", tmp_path / "params.npz")
    with np.load(tmp_path / "params.npz") as saved:
        for i, case in enumerate(CASES):
            (reference, val_reference), params = single[i], saved[f"params{i}"]
            if case["dtype"] == "float64":
                np.testing.assert_allclose(params, reference, rtol=0, atol=1e-12, err_msg=str(case))
            else:
                reference64 = single[CASES.index({**case, "dtype": "float64"})][0]
                assert_as_accurate(params, reference, reference64, name=str(case))
            # validation split over the ranks: at steps 4 and 6, the same losses
            assert len(val_reference) == 2
            rtol = 1e-12 if case["dtype"] == "float64" else 1e-5
            np.testing.assert_allclose(saved[f"val{i}"], val_reference, rtol=rtol)
        # each rank fed its own contiguous streams of the global batch, and no others
        from rnnfast.data import Batches, Vocab, split

        vocab = Vocab.from_text(TEXT)
        x, _ = Batches(split(vocab.encode(TEXT), 0.1)[0], B, 8).batch(0)
        fed = [saved[f"fed{r}"] for r in range(n)]
    bounds = [(r * B // n, (r + 1) * B // n) for r in range(n)]
    for r, (lo, hi) in enumerate(bounds):
        np.testing.assert_array_equal(fed[r], x[:, lo:hi])
    assert np.array_equal(np.concatenate(fed, axis=1), x)


@needs_mpi
def test_without_the_allreduce_the_ranks_drift_and_are_stopped(tmp_path):
    """Negative control: ranks that see different data and skip the exchange end up with
    different parameters, which the checksum reports on every rank."""
    run_worker(2, "without_allreduce", tmp_path / "drift")
    for rank in (0, 1):
        message = (tmp_path / f"drift.{rank}").read_text()
        assert "after step 2 the parameters of rank(s) [1] differ from rank 0's" in message


@needs_mpi
def test_resume_with_another_process_count(tmp_path, data):
    """Resumed on the same number of processes a run is bit-identical; on another number it is
    the same to float64 round-off (the streams' sums are split differently)."""
    from rnnfast import checkpoint

    first = mpiexec(2, *train_command(data, tmp_path / "a", "--steps", "10"), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    for n, run in ((3, "a"), (2, "b")):
        resume = ["--resume", str(tmp_path / run), "--steps", "20", "--sample-length", "0"]
        done = mpiexec(n, sys.executable, "-m", "rnnfast", "train", *resume, cwd=tmp_path)
        assert done.returncode == 0 and "resuming" in done.stderr, done.stderr
    straight = mpiexec(2, *train_command(data, tmp_path / "c", "--steps", "20"), cwd=tmp_path)
    assert straight.returncode == 0, straight.stderr
    a, b, c = (checkpoint.load(tmp_path / run) for run in "abc")
    assert a.step == b.step == c.step == 20
    np.testing.assert_array_equal(b.model.flat_params, c.model.flat_params)
    np.testing.assert_array_equal(b.history["train_loss"], c.history["train_loss"])
    np.testing.assert_allclose(a.model.flat_params, c.model.flat_params, rtol=0, atol=1e-12)


def rank_pid(tag: str, rank: int) -> int | None:
    """The process of ``rank`` among those started with RNNFAST_TEST_TAG=tag."""
    wanted = {f"RNNFAST_TEST_TAG={tag}".encode(), f"PMI_RANK={rank}".encode()}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = set((entry / "environ").read_bytes().split(b"\0"))
        except OSError:
            continue
        if wanted <= environ:
            return int(entry.name)
    return None


def start_long_run(tmp_path, data, *extra):
    """A 2-process run that trains until stopped; returns it once rank 0 wrote a checkpoint."""
    tag = uuid.uuid4().hex
    out = tmp_path / "run"
    command = train_command(data, out, "--steps", "1000000", *extra)
    proc = subprocess.Popen(
        [shutil.which("mpiexec"), "-n", "2", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(RNNFAST_TEST_TAG=tag),
        cwd=tmp_path,
    )
    deadline = time.monotonic() + LIMIT
    while not (out / "latest.npz").exists() or rank_pid(tag, 1) is None:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"training did not start: {proc.communicate()[1]}")
        time.sleep(0.1)
    return proc, rank_pid(tag, 1), out


def stop(proc) -> tuple[int, str, float]:
    start = time.monotonic()
    try:
        _, stderr = proc.communicate(timeout=LIMIT)
    finally:
        proc.kill()
    return proc.returncode, stderr, time.monotonic() - start


@needs_mpi
def test_a_killed_rank_ends_the_run_and_the_checkpoint_loads(tmp_path, data):
    from rnnfast import checkpoint

    proc, pid, out = start_long_run(tmp_path, data)
    os.kill(pid, signal.SIGKILL)
    code, stderr, seconds = stop(proc)
    assert code != 0 and seconds < LIMIT, stderr
    ck = checkpoint.load(out)
    assert ck.step > 0 and ck.step % 5 == 0 and ck.state.h.shape[1] == B


@needs_mpi
def test_a_hung_rank_is_reported_by_the_others(tmp_path, data):
    """A rank that stops answering (SIGSTOP): the watchdog of rank 0 ends the run."""
    proc, pid, out = start_long_run(tmp_path, data, "--mpi-timeout", "3")
    os.kill(pid, signal.SIGSTOP)
    code, stderr, seconds = stop(proc)
    assert code != 0, stderr
    assert "rank 0 of 2: no answer from the other ranks for 3 s" in stderr
    assert "Traceback" not in stderr


def assert_one_line(done: subprocess.CompletedProcess, code: int, message: str) -> None:
    assert done.returncode == code, done.stderr
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


@needs_mpi
def test_more_processes_than_streams(tmp_path, data):
    command = train_command(data, tmp_path / "run", "--batch-size", "2", "--steps", "2")
    done = mpiexec(3, *command, cwd=tmp_path)
    assert_one_line(done, 2, "3 processes need a batch of at least 3 streams, one each")


@needs_mpi
def test_ranks_started_with_different_settings(tmp_path, data):
    def launch(rank0, rank1):
        args = [shutil.which("mpiexec"), "-n", "1", *rank0, ":", "-n", "1", *rank1]
        return subprocess.run(
            args, capture_output=True, text=True, timeout=LIMIT, env=env(), cwd=tmp_path
        )

    command = train_command(data, tmp_path / "run", "--steps", "2")
    other = [*command, "--hidden-size", "8"]
    done = launch(command, other)
    assert_one_line(done, 2, "hidden_size is 12 on rank 0 but 8 on rank 1")
    missing = train_command(tmp_path / "missing.txt", tmp_path / "run", "--steps", "2")
    done = launch(command, missing)
    assert_one_line(done, 2, "rank 1 failed to start: no such text file")


@pytest.mark.parametrize("rank, lines", [(0, 1), (1, 0)])
def test_mpi4py_missing_is_one_line_with_the_install_hint(tmp_path, data, rank, lines):
    """Started by a launcher (its environment) without mpi4py: an import hook hides it."""
    blocker = tmp_path / "blocker" / "mpi4py"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError(\"No module named 'mpi4py'\")\n")
    child = env(PMI_SIZE="2", PMI_RANK=str(rank))
    child["PYTHONPATH"] = os.pathsep.join([str(blocker.parent), child["PYTHONPATH"]])
    done = subprocess.run(
        train_command(data, tmp_path / "run", "--steps", "2"),
        capture_output=True, text=True, timeout=LIMIT, env=child, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == lines, done.stderr
    if lines:
        hint = 'mpi4py is not installed: pip install "rnnfast[mpi]"'
        assert "started by MPI with 2 processes but " + hint in done.stderr


@pytest.mark.parametrize(
    "variables, size, rank",
    [
        ({}, 1, 0),
        ({"PMI_SIZE": "4", "PMI_RANK": "2"}, 4, 2),
        ({"OMPI_COMM_WORLD_SIZE": "3", "OMPI_COMM_WORLD_RANK": "1"}, 3, 1),
        ({"PMI_SIZE": "1", "PMI_RANK": "0"}, 1, 0),
    ],
    ids=["none", "mpich", "open-mpi", "one-process"],
)
def test_the_launcher_is_read_from_the_environment(monkeypatch, variables, size, rank):
    from rnnfast import distributed

    for name in ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK",
                 "MV2_COMM_WORLD_SIZE", "MV2_COMM_WORLD_RANK", "PMIX_RANK"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert (distributed.launched_size(), distributed.launched_rank()) == (size, rank)
    if size == 1:  # one process: no DataParallel
        assert distributed.from_environment() is None


if __name__ == "__main__":
    WORKERS[sys.argv[1]](sys.argv[2])
