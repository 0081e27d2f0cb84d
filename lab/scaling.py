"""What the thread design predicts at 8, 16 and 64 cores, from a step's phases measured at 1 and 2.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python lab/scaling.py

For each config, the one-call training step's phases (``TrainStep.profile``, wall time, medians
over rounds) at 1 and 2 threads give each phase's serial share by Amdahl's law,
``s = 2 t2 / t1 - 1`` (clamped to [0, 1]).  At p threads a phase then takes
``t1 (s + (1 - s) / min(p, cap))``, where ``cap`` is how many tasks the phase's partition has:

- forward and backward: the row blocks of the recurrence (pg_gemm's 6-row blocks, so
  ceil(B / 6); one at batch 1) bound the per-step part, and the whole-sequence GEMMs' column
  tasks (about 8 a matrix) the rest: the smaller of the two is the cap;
- the elementwise phases (loss rows, clip, update): blocks of 32768 elements or 64 rows;
- the output layer's products: one thread (BLAS is held at one thread inside the step).

It models no memory-bandwidth limit, no barrier cost beyond what 2 threads already show, and no
turbo: an upper bound.  Measured 1- and 2-thread figures come from the same run.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import rnnfast._kernels as kernels
from threadpoolctl import threadpool_info, threadpool_limits

import rnnfast

# bench_configs lives in benchmarks/
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_configs import CONFIGS, batch  # noqa: E402

CORES = (1, 2, 8, 16, 64)
COLUMN_TASKS = 8  # the whole-sequence GEMMs' column tasks a matrix (recurrent_tmpl.h)
ELEMENT_BLOCK = 32768  # omp_blocks.h
ROW_BLOCK = 64


def caps(cfg, num_params: int) -> dict[str, int]:
    """Tasks each phase can run at once (see the module docstring)."""
    recurrence = 1 if cfg.B == 1 else min(math.ceil(cfg.B / 6), COLUMN_TASKS)
    rows = math.ceil(cfg.T * cfg.B / ROW_BLOCK)
    elements = math.ceil(num_params / ELEMENT_BLOCK)
    return {
        "zero grads": elements,
        "forward": recurrence,
        "output layer": 1,
        "softmax xent": rows,
        "output backward": 1,
        "backward": recurrence,
        "clip": elements,
        "update": elements,
        "final state": 1,
    }


def phases(cfg, threads: int, rounds: int, seconds: float) -> tuple[np.ndarray, int]:
    """Median wall nanoseconds per step of each phase at ``threads``, and the parameter count."""
    with threadpool_limits(threads):
        model = rnnfast.CharLM(cfg.V, cell=cfg.cell, hidden_size=cfg.H, num_layers=cfg.layers,
                               backend="c", seed=0)  # fmt: skip
        opt = rnnfast.Adam(model, lr=2e-3)
        x, y = batch(cfg)
        state = None
        _, state = model.train_step(x, y, opt, state, clip=5.0)
        step = model._train_step_for(cfg.T, cfg.B)
        per_round = []
        for _ in range(rounds):
            ns = np.zeros(len(kernels.TRAIN_PHASES))
            step.profile(ns, cpu=False)
            start, n = time.perf_counter(), 0
            while time.perf_counter() - start < seconds:
                _, state = model.train_step(x, y, opt, state, clip=5.0)
                n += 1
            per_round.append(ns / n)
        step.profile(None)
        return np.median(per_round, axis=0), model.num_params


def predict(cfg, t1, t2, num_params) -> dict[int, float]:
    """Predicted step time (ns) at each core count."""
    cap = caps(cfg, num_params)
    out = {}
    for p in CORES:
        total = 0.0
        for name, a, b in zip(kernels.TRAIN_PHASES, t1, t2, strict=True):
            serial = min(1.0, max(0.0, 2 * b / a - 1)) if a > 0 else 1.0
            total += a * (serial + (1 - serial) / min(p, cap[name]))
        out[p] = total
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="charrnn-default,charrnn-gru,mid,large,mincharrnn")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--round-time", type=float, default=1.0)
    parser.add_argument("--smoke", action="store_true", help="one short round (CI)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.rounds, args.round_time, args.configs = 1, 0.05, "mincharrnn"
    blas = ", ".join(f"{i['internal_api']} {i.get('architecture', '')}" for i in threadpool_info())
    print(f"BLAS: {blas}; ISA path: {kernels._paths()}")
    head = " | ".join(f"{p} cores" for p in CORES)
    print(f"| config | measured 2/1 | predicted speedup: {head} | time at 1 thread |")
    for name in args.configs.split(","):
        cfg = CONFIGS[name]
        t1, num_params = phases(cfg, 1, args.rounds, args.round_time)
        t2, _ = phases(cfg, 2, args.rounds, args.round_time)
        pred = predict(cfg, t1, t2, num_params)
        speedups = " | ".join(f"{pred[1] / pred[p]:.2f}x" for p in CORES)
        shares = ", ".join(
            f"{phase} {a / t1.sum():.0%}"
            for phase, a in zip(kernels.TRAIN_PHASES, t1, strict=True)
            if a > 0
        )
        print(f"| {name} | {t1.sum() / t2.sum():.2f}x | {speedups} | {shares} |")


if __name__ == "__main__":
    main()
