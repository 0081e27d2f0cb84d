"""Where each microsecond of a training step goes at min-char-rnn's size (RNN, H=100, T=25,
B=1, V=65, Adam, clip 5), float32 next to float64, BLAS at 1 thread, on both paths of
``CharLM.train_step``:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONPATH=. python lab/step_breakdown.py

Step by step (the fused step's NumPy twin ``rnnfast.engine.TrainStep`` composed of the C
elementary kernels, which gives the fused step's bits): the model's kernel namespace
(``model.kernels``) is replaced by timing shims around the same functions, so every kernel call
is a row, bridge checks included.

One call (``train_step`` with a built-in optimizer): the C step times its own phases
(``TrainStep.profile``, ``_kernels.TRAIN_PHASES``); "bridge" is the time of the
``TrainStep.step`` call outside the C step (its checks, the final state's arrays, the
descriptors), "train_step's Python" the rest of the step.

On both, "rest of Python" is the shimmed step's time minus the rows above and minus the shims'
own cost (measured by the same shims around a function that does nothing); the untimed step,
measured in the same rounds, is the last row: the figure the rows add up to, less what timing
costs (the profile reads the clock ten times a step).  Per-step microseconds are medians over
``--rounds`` rounds of ``--steps`` steps.

The clock is the calling thread's CPU time by default (``--clock cpu``): with BLAS at one thread
all of a step's work runs on that thread, and time spent descheduled on a shared machine does
not count.  ``--clock wall`` uses ``time.perf_counter_ns``.

``--smoke`` runs one short round (CI checks that the script runs).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import numpy as np

# bench_configs lives in benchmarks/
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_configs import CONFIGS, batch, blas_summary, vocab  # noqa: E402

TAIL = ["rest of Python", "shims (removed above)", "step, shimmed", "step, untimed"]

CLOCKS = {"cpu": time.thread_time_ns, "wall": time.perf_counter_ns}


def timed(fn, name: str, totals: dict, clock):
    """fn, adding its time on ``clock`` (ns) to totals[name] and 1 to totals[name, "calls"]."""

    def shim(*args, **kwargs):
        t0 = clock()
        result = fn(*args, **kwargs)
        totals[name] += clock() - t0
        totals[name, "calls"] += 1
        return result

    return shim


def shim_cost_ns(clock, calls: int = 20000) -> float:
    """Time one shimmed call adds around a call, in ns: the shim around a no-op, less the bare
    no-op."""
    totals = defaultdict(int)

    def noop(*args):
        return None

    shim = timed(noop, "noop", totals, clock)
    spent = []
    for fn in (shim, noop):
        t0 = clock()
        for _ in range(calls):
            fn(1, 2)
        spent.append(clock() - t0)
    return max(0.0, (spent[0] - spent[1]) / calls)


def make_model(dtype, cfg):
    import rnnfast

    model = rnnfast.CharLM(vocab(cfg.V), cell=cfg.cell, hidden_size=cfg.H, num_layers=cfg.layers,
                           dtype=dtype, backend="c", seed=0)  # fmt: skip
    return model, rnnfast.Adam(model, lr=2e-3)


def step_by_step(model, x, y, opt, state):
    return model.train_step(x, y, opt, state, clip=5.0)


def one_call(model, x, y, opt, state):
    return model.train_step(x, y, opt, state, clip=5.0)


def shim_step_by_step(model, totals, clock):
    """Time every kernel call; returns the phase counter (none)."""
    from rnnfast import engine

    shims = {name: timed(fn, name, totals, clock) for name, fn in vars(model.kernels).items()}
    shims["TrainStep"] = partial(engine.TrainStep, kernels=SimpleNamespace(**shims))
    model.kernels = SimpleNamespace(**shims)
    return None


class TimedTrainStep:
    """A model's TrainStep with its ``step`` calls timed into totals["bridge and C"]."""

    def __init__(self, train_step, totals, clock):
        self.step = timed(train_step.step, "bridge and C", totals, clock)


def shim_one_call(model, totals, clock, cfg, cpu: bool):
    """Profile the C step's phases and time the TrainStep.step calls; returns the phase ns."""
    import rnnfast._kernels as kernels

    train_step = model._train_step_for(cfg.T, cfg.B)
    ns = np.zeros(len(kernels.TRAIN_PHASES))
    train_step.profile(ns, cpu=cpu)
    model._workspace.train_step = TimedTrainStep(train_step, totals, clock)
    return ns


def breakdown(path, dtype, cfg, rounds: int, steps: int, clock_name) -> tuple[dict, dict]:
    """Per-step microseconds of each row (medians over rounds) and calls per step."""
    import rnnfast._kernels as kernels

    clock = CLOCKS[clock_name]
    x, y = batch(cfg)
    plain, plain_opt = make_model(dtype, cfg)
    model, opt = make_model(dtype, cfg)
    totals = defaultdict(int)
    if path is one_call:
        ns = shim_one_call(model, totals, clock, cfg, cpu=clock_name == "cpu")
    else:
        ns = shim_step_by_step(model, totals, clock)
    cost = shim_cost_ns(clock)

    def run(m, o):
        state = None
        t0 = clock()
        for _ in range(steps):
            _, state = path(m, x, y, o, state)
        return clock() - t0

    per_round = defaultdict(list)
    for round_ in range(rounds + 1):  # round 0 warms up
        totals.clear()
        if ns is not None:
            ns[...] = 0
        shimmed = run(model, opt)
        untimed = run(plain, plain_opt)
        if not round_:
            continue
        names = [k for k in totals if not isinstance(k, tuple)]
        calls = sum(totals[k, "calls"] for k in names)
        rest = shimmed - sum(totals[k] for k in names) - calls * cost
        if ns is not None:  # the bridge call splits into its C phases and the bridge itself
            for phase, spent in zip(kernels.TRAIN_PHASES, ns, strict=True):
                per_round[f"C: {phase}"].append(spent / steps / 1e3)
            per_round["bridge"].append((totals["bridge and C"] - ns.sum()) / steps / 1e3)
        else:
            for k in names:
                per_round[k].append(totals[k] / steps / 1e3)
        per_round["rest of Python"].append(rest / steps / 1e3)
        per_round["shims (removed above)"].append(calls * cost / steps / 1e3)
        per_round["step, shimmed"].append(shimmed / steps / 1e3)
        per_round["step, untimed"].append(untimed / steps / 1e3)
    calls_per_step = {k: totals[k, "calls"] / steps for k in totals if not isinstance(k, tuple)}
    if ns is not None:
        calls_per_step = {"bridge": calls_per_step["bridge and C"]}
    return {k: statistics.median(v) for k, v in per_round.items()}, calls_per_step


def print_table(title, results, cfg):
    (us32, calls), (us64, _) = results["float32"], results["float64"]
    rows = [k for k in us32 if k not in TAIL] + TAIL
    total = us32["step, shimmed"], us64["step, shimmed"]
    print(f"\n{title}")
    print(f"  {'part of the step':24s} {'calls':>5s} {'float32 us':>11s} {'%':>5s} "
          f"{'float64 us':>11s} {'%':>5s}")  # fmt: skip
    for k in rows:
        n = f"{calls[k]:5.0f}" if k in calls else " " * 5
        print(f"  {k:24s} {n} {us32[k]:11.2f} {100 * us32[k] / total[0]:5.1f} "
              f"{us64[k]:11.2f} {100 * us64[k] / total[1]:5.1f}")  # fmt: skip
    chars = cfg.T * cfg.B
    print(f"  untimed step: float32 {chars / us32['step, untimed'] * 1e6:,.0f} chars/s, "
          f"float64 {chars / us64['step, untimed'] * 1e6:,.0f} chars/s")  # fmt: skip


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--steps", type=int, default=500, help="training steps per round")
    parser.add_argument("--clock", choices=CLOCKS, default="cpu", help="see above")
    parser.add_argument("--smoke", action="store_true", help="one round of 20 steps")
    args = parser.parse_args(argv)
    if args.smoke:
        args.rounds, args.steps = 1, 20
    cfg = CONFIGS["mincharrnn"]

    from threadpoolctl import threadpool_limits

    import rnnfast  # noqa: F401 -- loads SciPy's OpenBLAS before threadpool_limits

    paths = {"step by step (one bridge call per kernel)": step_by_step,
             "one call (TrainStep: the whole step in C)": one_call}  # fmt: skip
    with threadpool_limits(limits=1):
        print(f"mincharrnn {tuple(cfg)}, Adam, clip 5; {args.clock} clock; BLAS: {blas_summary()}")
        results = {
            title: {
                dt: breakdown(path, dt, cfg, args.rounds, args.steps, args.clock)
                for dt in ("float32", "float64")
            }
            for title, path in paths.items()
        }
    for title, result in results.items():
        print_table(title, result, cfg)
    before, after = results.values()
    for dt in ("float32", "float64"):
        old, new = before[dt][0]["step, untimed"], after[dt][0]["step, untimed"]
        print(f"\n  {dt}: untimed step {old:.1f} us -> {new:.1f} us, {old / new:.2f}x")


if __name__ == "__main__":
    main()
