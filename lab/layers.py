"""Speed of rnnfast.layers and rnnfast.cs231n against what they replace, in ONE process,
interleaved in rounds (ratios from one run; the machine's other load skews absolute times).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONPATH=. python lab/layers.py

1. ``layers.LSTM`` forward + backward (dx, the initial state's and every weight's gradient) on
   dense float32 inputs against PyTorch ``nn.LSTM`` forward + ``backward`` (input requiring its
   gradient, so both compute the same things), at (I, H, B, T) = (256, 256, 32, 64),
   (512, 512, 64, 64), (1024, 1024, 64, 32).
2. ``cs231n.lstm_forward`` + ``lstm_backward`` against the assignment-style NumPy loops over
   ``lstm_step_forward`` / ``lstm_step_backward`` (tests/api/cs231n_twin.py) at the captioning size
   N=50, T=17, D=256, H=512, float32 (CaptioningRNN's default) and float64 (the notebook's).

Each cell is the median over ``--rounds`` rounds (after a warm-up round) of the time per call,
each timing repeated until it lasts ``--min-time`` seconds.  Threads: threadpoolctl for every
BLAS loaded and ``torch.set_num_threads``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "api"))  # cs231n_twin
sys.path.insert(0, str(ROOT / "benchmarks"))  # bench_configs

LAYER_SHAPES = [(256, 256, 32, 64), (512, 512, 64, 64), (1024, 1024, 64, 32)]  # I, H, B, T
CAPTIONING = (50, 17, 256, 512)  # N, T, D, H


def seconds_per_call(fn, min_time: float) -> tuple[float, float]:
    """(wall, CPU) seconds per call of fn; CPU time (this process, all its threads) is the
    steadier of the two on a machine shared with other work."""
    calls = 1
    while True:
        w0, c0 = time.perf_counter(), time.process_time()
        for _ in range(calls):
            fn()
        elapsed, cpu = time.perf_counter() - w0, time.process_time() - c0
        if elapsed >= min_time:
            return elapsed / calls, cpu / calls
        calls = max(calls + 1, int(calls * 1.2 * min_time / max(elapsed, 1e-6)))


def compare(runners: dict, rounds: int, min_time: float) -> dict:
    """Median (wall, CPU) seconds per call of each runner, interleaved round by round."""
    times = {name: [] for name in runners}
    for round_ in range(rounds + 1):  # round 0 warms up
        for name, fn in runners.items():
            t = seconds_per_call(fn, min_time)
            if round_:
                times[name].append(t)
    return {
        name: tuple(statistics.median(t[k] for t in ts) for k in range(2))
        for name, ts in times.items()
    }


def row(label: str, ours: tuple, theirs: tuple) -> str:
    """ms per call (wall, then CPU) and the ratios theirs / ours."""
    cells = [f"{1e3 * ours[k]:9.1f} {1e3 * theirs[k]:9.1f} {theirs[k] / ours[k]:7.2f}x"
             for k in range(2)]  # fmt: skip
    return f"  {label:22s}       {cells[0]}        {cells[1]}"


def layer_runners(I, H, B, T, with_torch: bool) -> dict:  # noqa: E741
    from rnnfast import layers

    rng = np.random.default_rng(0)
    lstm = layers.LSTM(I, H, dtype=np.float32, seed=0)
    x = rng.standard_normal((T, B, I), dtype=np.float32)
    dout = rng.standard_normal((T, B, H), dtype=np.float32)
    state = lstm.zero_state(B)

    def rnnfast_step():
        _, _, cache = lstm.forward(x, state)
        lstm.backward(dout, cache)

    runners = {"rnnfast": rnnfast_step}
    if with_torch:
        import torch

        module = lstm.to_torch()
        xt = torch.from_numpy(x).requires_grad_()
        dt = torch.from_numpy(dout)
        h0 = torch.zeros(1, B, H).requires_grad_()
        c0 = torch.zeros(1, B, H).requires_grad_()

        def torch_step():
            module.zero_grad(set_to_none=True)
            xt.grad = h0.grad = c0.grad = None
            out, _ = module(xt, (h0, c0))
            out.backward(dt)

        runners["torch"] = torch_step
    return runners


def captioning_runners(dtype) -> dict:
    import cs231n_twin

    from rnnfast import cs231n

    N, T, D, H = CAPTIONING
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, T, D)).astype(dtype)
    h0 = rng.standard_normal((N, H)).astype(dtype)
    Wx = (rng.standard_normal((D, 4 * H)) / np.sqrt(D)).astype(dtype)
    Wh = (rng.standard_normal((H, 4 * H)) / np.sqrt(H)).astype(dtype)
    b = np.zeros(4 * H, dtype)
    dh = rng.standard_normal((N, T, H)).astype(dtype)

    def run(module):
        def step():
            _, cache = module.lstm_forward(x, h0, Wx, Wh, b)
            module.lstm_backward(dh, cache)

        return step

    return {"rnnfast.cs231n": run(cs231n), "numpy loops": run(cs231n_twin)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-time", type=float, default=1.0, help="seconds per timing")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--parts", default="layers,cs231n", help="layers and/or cs231n")
    parser.add_argument(
        "--shapes",
        default=";".join(",".join(map(str, s)) for s in LAYER_SHAPES),
        help="the layer shapes, I,H,B,T separated by ';'",
    )
    args = parser.parse_args(argv)
    parts = {p.strip() for p in args.parts.split(",")}
    shapes = [tuple(int(n) for n in s.split(",")) for s in args.shapes.split(";")]

    with_torch = not args.no_torch
    if with_torch:
        try:
            import torch
        except ImportError:
            print("PyTorch is not importable: its columns are skipped")
            with_torch = False

    import scipy.linalg.blas  # noqa: F401  every BLAS loaded before threadpool_limits
    from bench_configs import blas_summary
    from threadpoolctl import threadpool_limits

    from rnnfast import _kernels

    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if var in os.environ:
            print(f"warning: {var}={os.environ[var]} is set; unset it for benchmark runs")
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; rnnfast paths "
          f"{_kernels._paths()}")  # fmt: skip
    for threads in [int(t) for t in args.threads.split(",")]:
        with threadpool_limits(limits=threads):
            if with_torch:
                torch.set_num_threads(threads)
            print(f"\n== {threads} thread(s); BLAS: {blas_summary()}")
            header = f"{'ours':>9s} {'theirs':>9s} {'ratio':>8s}"
            if "layers" in parts:
                print("layers.LSTM (ours) vs torch nn.LSTM (theirs): forward+backward, float32, "
                      "ms per call; ratio = theirs / ours")  # fmt: skip
                print(f"  {'(I, H, B, T)':22s} wall: {header}   CPU: {header}")
                for shape in shapes:
                    res = compare(layer_runners(*shape, with_torch), args.rounds, args.min_time)
                    nan = (float("nan"),) * 2
                    print(row(str(shape), res["rnnfast"], res.get("torch", nan)), flush=True)
            if "cs231n" in parts:
                print(f"rnnfast.cs231n (ours) vs NumPy step loops (theirs): lstm_forward + "
                      f"lstm_backward at (N, T, D, H) = {CAPTIONING}, ms per call")  # fmt: skip
                print(f"  {'dtype':22s} wall: {header}   CPU: {header}")
                for dtype in (np.float32, np.float64):
                    res = compare(captioning_runners(dtype), args.rounds, args.min_time)
                    print(row(np.dtype(dtype).name, res["rnnfast.cs231n"], res["numpy loops"]),
                          flush=True)  # fmt: skip
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
