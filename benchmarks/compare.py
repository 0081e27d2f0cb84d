"""Training and sampling speed of rnnfast (C and NumPy backends), PyTorch CPU and, for the
mincharrnn config, a faithful NumPy min-char-rnn -- in ONE process, interleaved in rounds.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONPATH=. \\
        python benchmarks/compare.py --configs mincharrnn,charrnn-default --threads 1

Per config and thread count, every implementation runs training steps (Adam lr 2e-3, clip by
value 5, state carried between steps; min-char-rnn: its own Adagrad) and batch-1 sampling
(temperature 1) for ``--round-time`` seconds each, implementation after implementation, for
``--rounds`` rounds after one warm-up round; the table shows the median chars/s over rounds.
Rounds of many steps matter: NumPy and SciPy each load their own OpenBLAS, and switching
between the two thread pools at 2 threads costs milliseconds per switch (DESIGN.md).

%peak: FLOP rate as a share of the same run's float32 GEMM peak (scipy.linalg.blas.sgemm,
2048^3, same thread count).  Training counts 3x the forward GEMM FLOPs per char, sampling 1x
(see bench_configs.forward_gemm_flops_per_char).  PyTorch is optional: its rows are skipped
when it is not importable (``pip install torch==2.13.0``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_configs import (  # noqa: E402
    CONFIGS,
    Config,
    batch,
    bench_model,
    blas_info,
    blas_summary,
    forward_gemm_flops_per_char,
)

SAMPLE_CHUNK = 100  # characters per sampling call


def sgemm_peak_flops(n: int = 2048, repeats: int = 3) -> float:
    """Best float32 GEMM rate of this process's SciPy BLAS at the current thread limit."""
    from scipy.linalg import blas

    rng = np.random.default_rng(0)
    a = np.asfortranarray(rng.standard_normal((n, n), dtype=np.float32))
    b = np.asfortranarray(rng.standard_normal((n, n), dtype=np.float32))
    c = np.asfortranarray(np.zeros((n, n), np.float32))
    blas.sgemm(1.0, a, b, beta=0.0, c=c, overwrite_c=True)
    best = min(
        _time_once(lambda: blas.sgemm(1.0, a, b, beta=0.0, c=c, overwrite_c=True))
        for _ in range(repeats)
    )
    return 2.0 * n**3 / best


def _time_once(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# -- implementations: each has train(steps) and sample(chars), returning chars processed ----


class RnnfastRunner:
    def __init__(self, cfg: Config, backend: str):
        import rnnfast

        self.cfg = cfg
        self.model = bench_model(cfg, backend)
        self.opt = rnnfast.Adam(self.model, lr=2e-3)
        self.x, self.y = batch(cfg)
        self.state = self.model.zero_state(cfg.B)
        self.seed = 0
        self.note = ""

    def train(self, steps: int) -> int:
        for _ in range(steps):
            _, self.state = self.model.train_step(self.x, self.y, self.opt, self.state, clip=5.0)
        return steps * self.cfg.T * self.cfg.B

    def sample(self, calls: int) -> int:
        for _ in range(calls):
            self.seed += 1
            self.model.sample(SAMPLE_CHUNK, prime="a", temperature=1.0, seed=self.seed)
        return calls * SAMPLE_CHUNK


class TorchRunner:
    """nn.LSTM / nn.RNN on one-hot input + nn.Linear + cross-entropy + value clipping + Adam,
    eager, float32."""

    def __init__(self, cfg: Config):
        import torch
        from torch import nn

        self.torch, self.cfg = torch, cfg
        torch.manual_seed(0)
        rnn_type = nn.LSTM if cfg.cell == "lstm" else nn.RNN
        self.rnn = rnn_type(cfg.V, cfg.H, cfg.layers)
        self.head = nn.Linear(cfg.H, cfg.V)
        self.params = list(self.rnn.parameters()) + list(self.head.parameters())
        self.opt = torch.optim.Adam(self.params, lr=2e-3)
        self.eye = torch.eye(cfg.V)
        x, y = batch(cfg)
        self.x_onehot = self.eye[torch.from_numpy(x)]  # (T, B, V)
        self.y = torch.from_numpy(y.reshape(-1))
        self.state = self._zero_state(cfg.B)
        self.gen = torch.Generator().manual_seed(0)
        self.note = f"torch {torch.__version__}, {torch.get_num_threads()} threads"

    def _zero_state(self, B):
        h = self.torch.zeros(self.cfg.layers, B, self.cfg.H)
        return (h, h.clone()) if self.cfg.cell == "lstm" else h

    def _detach(self, state):
        return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()

    def train(self, steps: int) -> int:
        F = self.torch.nn.functional
        for _ in range(steps):
            self.opt.zero_grad(set_to_none=True)
            out, state = self.rnn(self.x_onehot, self.state)
            logits = self.head(out).reshape(-1, self.cfg.V)
            loss = F.cross_entropy(logits, self.y)
            loss.backward()
            self.torch.nn.utils.clip_grad_value_(self.params, 5.0)
            self.opt.step()
            self.state = self._detach(state)
        return steps * self.cfg.T * self.cfg.B

    def sample(self, calls: int) -> int:
        torch = self.torch
        with torch.no_grad():
            for _ in range(calls):
                state = self._zero_state(1)
                ix = 0
                for _ in range(SAMPLE_CHUNK):
                    out, state = self.rnn(self.eye[ix].view(1, 1, -1), state)
                    p = torch.softmax(self.head(out[0, 0]), dim=0)
                    ix = int(torch.multinomial(p, 1, generator=self.gen))
        return calls * SAMPLE_CHUNK


class MinCharRunner:
    """The faithful NumPy min-char-rnn; with ``drop_in`` its lossFun and sample are replaced by
    rnnfast.minchar.MinCharRNN's over the same arrays (the README's two-line switch)."""

    def __init__(self, cfg: Config, drop_in: bool = False):
        from minchar import MinCharRNN

        self.cfg = cfg
        self.model = MinCharRNN(cfg.V, cfg.H, cfg.T)
        x, y = batch(cfg)
        self.inputs, self.targets = list(x[:, 0]), list(y[:, 0])
        self.rng = np.random.RandomState(0)
        self.note = "float64, Adagrad lr 0.1 (its own), B=1"
        if drop_in:
            import rnnfast.minchar

            m = rnnfast.minchar.MinCharRNN(*self.model.params)
            self.model.lossFun = m.lossFun
            self.model.sample = lambda h, seed_ix, n, rng=None: m.sample(h, seed_ix, n)
            self.note += "; lossFun and sample from rnnfast.minchar"

    def train(self, steps: int) -> int:
        for _ in range(steps):
            self.model.train_step(self.inputs, self.targets)
        return steps * self.cfg.T

    def sample(self, calls: int) -> int:
        for _ in range(calls):
            self.model.sample(np.zeros((self.cfg.H, 1)), 0, SAMPLE_CHUNK, rng=self.rng)
        return calls * SAMPLE_CHUNK


def make_runners(name: str, cfg: Config, with_torch: bool) -> dict:
    runners = {"rnnfast-c": RnnfastRunner(cfg, "c"), "rnnfast-numpy": RnnfastRunner(cfg, "numpy")}
    if with_torch:
        runners["torch"] = TorchRunner(cfg)
    if name == "mincharrnn":
        runners["minchar-numpy"] = MinCharRunner(cfg)
        runners["minchar-rnnfast"] = MinCharRunner(cfg, drop_in=True)
    return runners


def rate(fn, round_time: float) -> float:
    """chars/s of fn(calls), with calls grown until one timing lasts round_time."""
    calls = 1
    while True:
        t0 = time.perf_counter()
        chars = fn(calls)
        elapsed = time.perf_counter() - t0
        if elapsed >= round_time:
            return chars / elapsed
        calls = max(calls + 1, int(calls * min(10.0, 1.2 * round_time / max(elapsed, 1e-6))))


def run_config(name, cfg, threads, args, with_torch):
    runners = make_runners(name, cfg, with_torch)
    samples = {(impl, task): [] for impl in runners for task in ("train", "sample")}
    for round_ in range(args.rounds + 1):  # round 0 warms up
        for impl, runner in runners.items():
            for task in ("train", "sample"):
                r = rate(getattr(runner, task), args.round_time)
                if round_:
                    samples[impl, task].append(r)
    return {
        impl: {
            "train": statistics.median(samples[impl, "train"]),
            "sample": statistics.median(samples[impl, "sample"]),
            "note": runners[impl].note,
        }
        for impl in runners
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--configs",
        default="mincharrnn,charrnn-default",
        help=f"comma-separated, from {', '.join(CONFIGS)}",
    )
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--round-time",
        type=float,
        default=0.5,
        help="seconds per implementation and task in each round",
    )
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.configs.split(",") if n.strip()]
    for n in names:
        if n not in CONFIGS:
            parser.error(f"--configs: unknown config {n!r}; expected some of {list(CONFIGS)}")
    thread_counts = [int(t) for t in args.threads.split(",")]

    with_torch = not args.no_torch
    if with_torch:
        try:
            import torch
        except ImportError:
            print(
                "PyTorch is not importable: its rows are skipped "
                "(pip install torch==2.13.0 to include them)"
            )
            with_torch = False

    import rnnfast._kernels  # noqa: F401 -- SciPy's OpenBLAS, through cython_blas

    # Load every BLAS before threadpool_limits: it limits only the libraries already loaded.
    import scipy.linalg.blas  # noqa: F401
    from threadpoolctl import threadpool_limits

    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if var in os.environ:
            print(f"warning: {var}={os.environ[var]} is set; unset it for benchmark runs")
    results = {"blas": blas_info(), "runs": [], "loadavg_before": os.getloadavg()}
    print(
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} (other processes "
        "on the machine skew every row; compare ratios from one run only)"
    )
    for threads in thread_counts:
        with threadpool_limits(limits=threads):
            if with_torch:
                torch.set_num_threads(threads)
            peak = sgemm_peak_flops()
            print(
                f"\n== {threads} thread(s): sgemm peak {peak / 1e9:.1f} GFLOP/s; "
                f"BLAS: {blas_summary()}"
            )
            for name in names:
                cfg = CONFIGS[name]
                res = run_config(name, cfg, threads, args, with_torch)
                fwd = forward_gemm_flops_per_char(cfg)
                print(f"\n{name} {tuple(cfg)}  (forward GEMM FLOPs/char {fwd})")
                print(
                    f"  {'impl':14s} {'train ch/s':>12s} {'%peak':>6s} "
                    f"{'sample ch/s':>12s} {'%peak':>6s}  note"
                )
                for impl, r in res.items():
                    r["train_pct_peak"] = 100 * r["train"] * 3 * fwd / peak
                    r["sample_pct_peak"] = 100 * r["sample"] * fwd / peak
                    print(
                        f"  {impl:14s} {r['train']:12,.0f} {r['train_pct_peak']:6.1f} "
                        f"{r['sample']:12,.0f} {r['sample_pct_peak']:6.1f}  {r['note']}"
                    )
                if "minchar-rnnfast" in res:
                    fast, slow = res["minchar-rnnfast"], res["minchar-numpy"]
                    print(
                        f"  min-char-rnn drop-in/NumPy  train {fast['train'] / slow['train']:6.2f}x"
                        f"   sample {fast['sample'] / slow['sample']:6.2f}x"
                    )
                c = res["rnnfast-c"]
                for other in ("torch", "rnnfast-numpy", "minchar-numpy"):
                    if other in res:
                        o = res[other]
                        print(
                            f"  C/{other:13s} train {c['train'] / o['train']:6.2f}x   "
                            f"sample {c['sample'] / o['sample']:6.2f}x"
                        )
                results["runs"].append(
                    {
                        "config": name,
                        "cfg": cfg._asdict(),
                        "threads": threads,
                        "sgemm_peak_flops": peak,
                        "results": res,
                    }
                )
    results["loadavg_after"] = os.getloadavg()
    print(f"\nload average after the run: {os.getloadavg()[0]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
