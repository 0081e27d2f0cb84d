"""Training and batch-1 sampling speed with one core kept busy by another process: rnnfast (C)
and PyTorch at 1 and 2 threads, quiet and loaded, interleaved in ONE run.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONPATH=. python lab/under_load.py

The load is a busy loop in a child Python process pinned to one CPU (``--busy-cpu``, the last
one by default).  It stops itself after ``--busy-limit`` seconds and is killed when each loaded
phase ends, so nothing outlives the run.  Each round measures every implementation and thread
count quiet, then loaded (``--round-time`` seconds each, after a warm-up round); the table shows
the median chars/s over rounds and the ratios the issue asks about: loaded 2-thread / quiet
1-thread is the figure that must not fall below loaded 1-thread / quiet 1-thread.  "Quiet" is
only as quiet as the machine: the load average is printed before and after.

``--smoke`` runs a tiny config for one short round (CI checks that the script runs).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

# bench_configs and compare live in benchmarks/
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_configs import CONFIGS, SMOKE_CONFIGS, blas_summary  # noqa: E402
from compare import RnnfastRunner, TorchRunner, rate  # noqa: E402

BUSY_LOOP = """
import sys, time
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    pass
"""


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def busy_core(cpu: int, limit: float):
    """A child process spinning on ``cpu`` for at most ``limit`` seconds; yields a function
    that returns the share of one core it has used so far."""
    proc = subprocess.Popen([sys.executable, "-c", BUSY_LOOP, str(limit)])
    start = time.perf_counter()
    try:
        os.sched_setaffinity(proc.pid, {cpu})
        yield lambda: _cpu_seconds(proc.pid) / (time.perf_counter() - start)
    finally:
        proc.kill()
        proc.wait()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="charrnn-default", choices=[*CONFIGS, *SMOKE_CONFIGS])
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--round-time", type=float, default=1.0)
    parser.add_argument("--busy-cpu", type=int, default=max(os.sched_getaffinity(0)))
    parser.add_argument("--busy-limit", type=float, default=300.0,
                        help="seconds after which the busy process stops on its own")  # fmt: skip
    parser.add_argument("--tasks", default="train,sample", help="train and/or sample (batch 1)")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="tiny config, one short round")
    args = parser.parse_args(argv)
    if args.smoke:
        args.config, args.rounds, args.round_time = "smoke-lstm", 1, 0.01
    cfg = {**CONFIGS, **SMOKE_CONFIGS}[args.config]
    thread_counts = [int(t) for t in args.threads.split(",")]
    tasks = args.tasks.split(",")
    if not set(tasks) <= {"train", "sample"}:
        parser.error(f"--tasks: expected train and/or sample, got {args.tasks!r}")

    runners = {"rnnfast-c": RnnfastRunner(cfg, "c")}
    torch = None
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            print("PyTorch is not importable: its rows are skipped (pip install torch==2.13.0)")
        else:
            runners["torch"] = TorchRunner(cfg)
    # Load every BLAS before threadpool_limits: it limits only the libraries already loaded.
    import scipy.linalg.blas  # noqa: F401
    from threadpoolctl import threadpool_limits

    print(f"{args.config} {tuple(cfg)}; {os.cpu_count()} CPUs; busy process on CPU "
          f"{args.busy_cpu}; load average {os.getloadavg()[0]:.2f}")  # fmt: skip

    def measure_all(samples, load, keep):
        for threads in thread_counts:
            with threadpool_limits(limits=threads):
                if torch is not None:
                    torch.set_num_threads(threads)
                for impl, runner in runners.items():
                    for task in tasks:
                        r = rate(getattr(runner, task), args.round_time)
                        if keep:
                            samples.setdefault((impl, task, load, threads), []).append(r)

    samples, busy_share = {}, []
    for round_ in range(args.rounds + 1):  # round 0 warms up
        measure_all(samples, "quiet", keep=round_ > 0)
        with busy_core(args.busy_cpu, args.busy_limit) as share:
            measure_all(samples, "loaded", keep=round_ > 0)
            busy_share.append(share())
    import rnnfast

    with threadpool_limits(limits=thread_counts[-1]):
        print(f"BLAS: {blas_summary()}; rnnfast's OpenMP pool: x{rnnfast.get_num_threads()}")
    print(f"busy process: {min(busy_share):.2f}-{max(busy_share):.2f} of a core per loaded phase")

    median = {key: statistics.median(v) for key, v in samples.items()}
    base_label = f"/ quiet {thread_counts[0]}-thread"
    print(f"\n  {'impl':10s} {'task':6s} {'load':7s} {'threads':>7s} {'ch/s':>12s} "
          f"{base_label:>17s}")  # fmt: skip
    for impl in runners:
        for task in tasks:
            base = median[impl, task, "quiet", thread_counts[0]]
            for load in ("quiet", "loaded"):
                for threads in thread_counts:
                    r = median[impl, task, load, threads]
                    print(f"  {impl:10s} {task:6s} {load:7s} {threads:7d} {r:12,.0f} "
                          f"{r / base:16.2f}x")  # fmt: skip
    if "torch" in runners:
        print()
        for task in tasks:
            for load in ("quiet", "loaded"):
                for threads in thread_counts:
                    r = (
                        median["rnnfast-c", task, load, threads]
                        / median["torch", task, load, threads]
                    )
                    print(
                        f"  rnnfast-c / torch, {task:6s} {load:6s} {threads} thread(s): {r:6.2f}x"
                    )
    print(f"\nload average after the run: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
