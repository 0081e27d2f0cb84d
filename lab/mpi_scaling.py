"""Data-parallel training over MPI on this machine, and a model of it on more processes.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONPATH=. \\
        python lab/mpi_scaling.py --configs charrnn-default,mid,large

For each config (float32, Adam, clip by value 5, state carried, the config's B as the global
batch) three setups run in turn, in ``--rounds`` rounds: 1 process x 1 BLAS thread, 1 process x 2
threads, and ``mpiexec -n 2`` x 1 thread (``DataParallel.train_step``).  Each reports the median
time per step, chars/s, and for 2 processes the time per step inside the gradient exchange and the
Allreduce bandwidth (the flat gradient buffer, timed alone after a barrier).  Scaling efficiency
is chars/s over P times the 1 x 1 rate.

The model of P = 4..64 processes (strong scaling: the global batch stays B, so a rank gets
B / P streams): t(P) = t_compute(ceil(B / P)) + t_allreduce(P), where t_compute is measured here
at 1 thread with the largest share (it loses GEMM efficiency as B / P shrinks), in CPU seconds
(process time: what a step costs a core, however many other jobs share it; t(1) likewise); and
a ring Allreduce of
n bytes costs 2 (P - 1) / P * n / bandwidth + 2 (P - 1) * latency.  The efficiency
t(1) / (P t(P)) is printed for the bandwidth measured here (shared memory) and for two networks.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

# bench_configs lives in benchmarks/
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_configs import CONFIGS, batch, bench_model, blas_summary  # noqa: E402

NETWORKS = {"100 Gb/s": 12.5e9, "10 Gb/s": 1.25e9}  # bytes/s of a node's link
LATENCY = 5e-6  # seconds per message between nodes, a typical RDMA/TCP order of magnitude
PROCESSES = (4, 8, 16, 32, 64)


def step_times(cfg, steps: int, batch_size: int | None = None, parallel=None) -> dict:
    """Median seconds per training step (and per gradient exchange under ``parallel``)."""
    import rnnfast

    if batch_size is not None:
        cfg = cfg._replace(B=batch_size)
    model = bench_model(cfg, "c")
    optimizer = rnnfast.Adam(model, lr=2e-3)
    x, y = batch(cfg)
    exchange = []
    if parallel is not None:
        reduce = parallel.allreduce_grads

        def timed(grads, loss, weight):
            t0 = time.perf_counter()
            total = reduce(grads, loss, weight)
            exchange.append(time.perf_counter() - t0)
            return total

        parallel.allreduce_grads = timed
        step = parallel.train_step
        args = (model, x, y, optimizer)
    else:
        step = model.train_step
        args = (x, y, optimizer)
    state, times, cpu_times = None, [], []
    for i in range(steps + 2):  # two warm-up steps
        t0, c0 = time.perf_counter(), time.process_time()
        _, state = step(*args, state)
        if i >= 2:
            times.append(time.perf_counter() - t0)
            cpu_times.append(time.process_time() - c0)
    result = {"step_s": statistics.median(times), "cpu_step_s": statistics.median(cpu_times)}
    result["params"] = model.num_params
    if exchange:
        result["exchange_s"] = statistics.median(exchange[2:])
    return result


def allreduce_bandwidth(parallel, n: int, repeats: int = 10) -> float:
    """Bytes/s of an Allreduce of n float32 values, each call after a barrier (no skew); the
    best of ``repeats`` (the least disturbed by other load)."""
    from mpi4py import MPI

    buffer = np.ones(n, np.float32)
    times = []
    for _ in range(repeats):
        parallel.comm.Barrier()
        t0 = time.perf_counter()
        parallel.comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
        times.append(time.perf_counter() - t0)
    return buffer.nbytes / min(times)


def worker(name: str, threads: int, steps: int, sweep: bool) -> None:
    """One setup; rank 0 prints one JSON line."""
    from threadpoolctl import threadpool_limits

    from rnnfast import distributed

    cfg = CONFIGS[name]
    parallel = distributed.from_environment(timeout=None)
    with threadpool_limits(threads):
        result = step_times(cfg, steps, parallel=parallel)
        if parallel is not None:
            result["allreduce_bytes_per_s"] = allreduce_bandwidth(parallel, result["params"])
        if sweep:  # the compute time of the largest share at P processes, ceil(B / P) streams
            result["share_step_s"] = {
                P: step_times(cfg, steps, batch_size=-(-cfg.B // P))["cpu_step_s"]
                for P in (1, 2, *PROCESSES)
                if P <= cfg.B
            }
        result["blas"] = blas_summary()
    result.update(processes=1 if parallel is None else parallel.size, threads=threads)
    if parallel is None or parallel.rank == 0:
        print(json.dumps(result), flush=True)


def run_setup(name: str, processes: int, threads: int, steps: int, sweep: bool) -> dict:
    command = [sys.executable, __file__, "--worker", name, "--threads", str(threads)]
    command += ["--steps", str(steps)] + (["--sweep"] if sweep else [])
    if processes > 1:
        command = [shutil.which("mpiexec"), "-n", str(processes), *command]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def ring_allreduce_s(nbytes: float, P: int, bandwidth: float, latency: float) -> float:
    return 2 * (P - 1) / P * nbytes / bandwidth + 2 * (P - 1) * latency


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="charrnn-default,mid,large")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=0, help="steps per setup (0: per config)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--sweep", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.threads, args.steps, args.sweep)
        return
    if shutil.which("mpiexec") is None:
        sys.exit('mpiexec not found: pip install "rnnfast[mpi]"')
    setups = [(1, 1), (1, 2), (2, 1)]
    default_steps = {"charrnn-default": 30, "mid": 8, "large": 5}
    print(
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; median step over "
        f"{args.rounds} rounds; wall-clock chars/s and efficiency (chars/s over P x threads x the "
        "1 x 1 rate); CPU ms: process time per step (rank 0; threads summed) and CPU eff. from it "
        "(what the steps cost the cores, whatever else runs); exchange: wall ms per step in the "
        "gradient Allreduce, waiting for the slower rank included"
    )
    for name in args.configs.split(","):
        cfg = CONFIGS[name]
        steps = args.steps or default_steps.get(name, 10)
        runs = {setup: [] for setup in setups}
        for round_ in range(args.rounds):
            for P, threads in setups:
                sweep = (P, threads) == (1, 1) and round_ == 0
                runs[P, threads].append(run_setup(name, P, threads, steps, sweep))
        report(name, cfg, runs)


def report(name: str, cfg, runs: dict) -> None:
    chars = cfg.B * cfg.T
    step = {setup: statistics.median(r["step_s"] for r in rs) for setup, rs in runs.items()}
    base = step[1, 1]
    two = runs[2, 1]
    exchange = statistics.median(r["exchange_s"] for r in two)
    bandwidth = statistics.median(r["allreduce_bytes_per_s"] for r in two)
    nbytes = 4 * two[0]["params"]
    print(f"\n{name} {cfg}: {two[0]['params']:,} parameters, {nbytes / 1e6:.2f} MB of gradient")
    print(f"  BLAS: {runs[1, 1][0]['blas']}")
    print("  setup                 step ms    CPU ms    chars/s  efficiency  CPU eff.  exchange ms")
    cpu = {s: statistics.median(r["cpu_step_s"] for r in rs) for s, rs in runs.items()}
    for (P, threads), seconds in step.items():
        efficiency = base / (P * threads * seconds)
        cpu_efficiency = cpu[1, 1] / (P * cpu[P, threads])
        ex = f"{exchange * 1e3:10.2f}" if P > 1 else ""
        print(
            f"  {P} proc x {threads} thread  {seconds * 1e3:9.1f} {cpu[P, threads] * 1e3:9.1f}"
            f" {chars / seconds:10,.0f}  {efficiency:9.0%}  {cpu_efficiency:7.0%}  {ex}"
        )
    print(f"  Allreduce alone, 2 processes: {bandwidth / 1e9:.2f} GB/s "
          f"({nbytes / bandwidth * 1e3:.2f} ms)")  # fmt: skip
    share = runs[1, 1][0]["share_step_s"]
    single = share.pop("1")
    networks = {"shared memory (measured)": (bandwidth, 0.0), **{
        k: (v, LATENCY) for k, v in NETWORKS.items()}}  # fmt: skip
    print("  model, strong scaling (global batch B): efficiency t(1) / (P t(P))")
    print("    P  streams  compute ms  " + "  ".join(f"{k:>24}" for k in networks))
    for P_text, compute in share.items():
        P = int(P_text)
        cells = []
        for bw, latency in networks.values():
            comm = ring_allreduce_s(nbytes, P, bw, latency)
            cells.append(f"{single / (P * (compute + comm)):6.0%} (comm {comm / compute:5.2f}x)")
        print(f"  {P:3d} {-(-cfg.B // P):8d}  {compute * 1e3:10.2f}  " + "  ".join(
            f"{c:>24}" for c in cells))  # fmt: skip


if __name__ == "__main__":
    main()
