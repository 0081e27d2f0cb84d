"""Packed per-step kernel (csrc/pgemm_tmpl.h) against BLAS for the per-step products, for every
ISA variant this build and CPU have -- the numbers behind csrc/paths.c's rf_use_packed.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONPATH=. python lab/packed_paths.py
    env -u OPENBLAS_L2_SIZE OPENBLAS_CORETYPE=Haswell RNNFAST_ISA=avx2 PYTHONPATH=. \\
        python lab/packed_paths.py          # an approximated AVX2-only host

Per shape, one recurrent layer (forward then backward over T steps, 1 BLAS thread) runs with the
packed kernel forced on and off, interleaved in rounds; the table shows the median time per step
of each and BLAS / packed (> 1: the packed kernel is faster).  The two paths do the same
projections, cells and weight-gradient GEMMs, so the difference per step is the per-step
products' (h_{t-1} W_h forward, dA_t W_h^T backward).  RNNFAST_ISA caps the variants measured.

Then the one-row products of batch-1 sampling through SciPy's BLAS (the library rnnfast calls):
sgemm with one row against sgemv, per call, Python's call overhead included in both.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from scipy.linalg import blas
from threadpoolctl import threadpool_limits

from rnnfast import _kernels as K

# bench_configs lives in benchmarks/
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_configs import blas_summary  # noqa: E402

# name: (cell, T, B, H); the first four are the configs' layers (bench_configs.py), the last
# three batch 1 at sampling sizes.
SHAPES = {
    "charrnn-default": ("lstm", 50, 50, 128),
    "small-batch1": ("lstm", 64, 1, 256),
    "mid": ("lstm", 64, 32, 512),
    "large": ("lstm", 64, 64, 1024),
    "b1-rnn-H100": ("rnn", 25, 1, 100),
    "b1-lstm-H128": ("lstm", 50, 1, 128),
    "b1-lstm-H512": ("lstm", 64, 1, 512),
}
GATES = {"rnn": 1, "lstm": 4}
# The baseline variant's packed kernel on x86-64 without FMA calls libm's fmaf per element (20-50x
# slower than BLAS): measured at the small shapes only.
BASELINE_MAX_H = 128
V = 65


def layer_call(cell, T, B, H, rng):
    """A closure running one layer's forward and backward (float32, id inputs)."""
    G = GATES[cell] * H
    f32 = np.float32
    X = rng.integers(0, V, (T, B)).astype(np.int64)
    W_x = rng.uniform(-0.1, 0.1, (V, G)).astype(f32)
    W_h = rng.uniform(-0.1, 0.1, (H, G)).astype(f32)
    b = np.zeros(G, f32)
    h0, c0 = np.zeros((B, H), f32), np.zeros((B, H), f32)
    Hs, C, tanhC = (np.empty((T, B, H), f32) for _ in range(3))
    gates = np.empty((T, B, G), f32)
    dW_x, dW_h, db = np.zeros_like(W_x), np.zeros_like(W_h), np.zeros_like(b)
    dh0, dc0 = np.empty_like(h0), np.empty_like(c0)
    dA = np.empty((T, B, G), f32)
    dH = rng.uniform(-1, 1, (T, B, H)).astype(f32)

    if cell == "rnn":

        def run():
            K.rnn_forward(Hs, X, W_x, W_h, b, h0)
            K.rnn_backward(None, dW_x, dW_h, db, dh0, dA, dH, X, Hs, W_x, W_h, h0)

    else:

        def run():
            K.lstm_forward(Hs, C, tanhC, gates, X, W_x, W_h, b, h0, c0)
            K.lstm_backward(
                None, dW_x, dW_h, db, dh0, dc0, dA, dH, X, Hs, C, tanhC, gates, W_x, W_h, h0, c0
            )

    return run


def seconds_per_call(fn, round_time):
    """Mean seconds per call of fn over about round_time seconds."""
    fn()
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= round_time:
            return elapsed / calls


def interleaved(fns, rounds, round_time):
    """{name: median seconds per call}, the fns run one after another in each round."""
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            times[name].append(seconds_per_call(fn, round_time))
    return {name: statistics.median(t) for name, t in times.items()}


def on_path(run, isa, packed):
    """run, with the ISA variant and the packed setting forced first."""

    def fn():
        K._set_paths(isa=isa, packed=packed)
        run()

    return fn


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--round-time", type=float, default=0.1)
    parser.add_argument("--shapes", default=",".join(SHAPES))
    args = parser.parse_args()
    saved = K._paths()
    isas = [isa for isa in K._available_isas() if isa != "avx512" or saved["isa"] == "avx512"]
    isas = [isa for isa in isas if isa != "avx2" or saved["isa"] != "baseline"]
    rng = np.random.default_rng(0)
    env = {k: os.environ.get(k, "-") for k in ("RNNFAST_ISA", "OPENBLAS_CORETYPE")}
    cpus = len(os.sched_getaffinity(0))
    print(f"# {time.strftime('%Y-%m-%d %H:%M:%S')}  {env}  cpus {cpus}")
    print(f"# BLAS: {blas_summary()}; 1 thread; float32; median of {args.rounds}")
    print(
        f"{'isa':9} {'shape':16} {'T,B,H':14} {'packed us/step':>14} {'BLAS us/step':>13} "
        f"{'BLAS/packed':>11}"
    )
    with threadpool_limits(1):
        try:
            for name in args.shapes.split(","):
                cell, T, B, H = SHAPES[name]
                run = layer_call(cell, T, B, H, rng)
                fns = {}
                measured = [isa for isa in isas if isa != "baseline" or H <= BASELINE_MAX_H]
                for isa in measured:
                    for packed in (True, False):
                        fns[isa, packed] = on_path(run, isa, packed)
                med = interleaved(fns, args.rounds, args.round_time)
                for isa in measured:
                    p, s = med[isa, True] / T * 1e6, med[isa, False] / T * 1e6
                    print(
                        f"{isa:9} {name:16} {f'{T},{B},{H}':14} {p:14.2f} {s:13.2f} {s / p:11.2f}"
                    )
        finally:
            K._set_paths(**saved)

        print(
            "\n# one-row products through scipy.linalg.blas (us a call, Python's overhead in both)"
        )
        print(f"{'shape (K x N)':16} {'sgemm 1 row':>11} {'sgemv':>8} {'sgemm/sgemv':>11}")
        for H, N in ((100, 100), (100, 65), (128, 512), (128, 65), (512, 2048), (512, 65)):
            W = rng.uniform(-0.1, 0.1, (N, H)).astype(np.float32, order="F")  # op(W) = W^T
            x = rng.uniform(-1, 1, (1, H)).astype(np.float32)
            xv = x[0]
            med = interleaved(
                {
                    "gemm": lambda W=W, x=x: blas.sgemm(1.0, x, W, trans_b=True),
                    "gemv": lambda W=W, xv=xv: blas.sgemv(1.0, W, xv),
                },
                args.rounds,
                args.round_time,
            )
            g, v = med["gemm"] * 1e6, med["gemv"] * 1e6
            print(f"{f'{H} x {N}':16} {g:11.2f} {v:8.2f} {g / v:11.2f}")


if __name__ == "__main__":
    main()
