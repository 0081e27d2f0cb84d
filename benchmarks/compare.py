"""Training and sampling speed of rnnfast (C and NumPy backends), PyTorch CPU, JAX CPU and, for
the mincharrnn config, a faithful NumPy min-char-rnn -- in ONE run, interleaved in rounds.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONPATH=. \\
        python benchmarks/compare.py --configs mincharrnn,charrnn-default,charrnn-gru --threads 1

Per config and thread count, every implementation runs training steps (Adam lr 2e-3, clip by
value 5, state carried between steps; min-char-rnn: its own Adagrad) and sampling (temperature
1; batch 1, or ``--sample-streams`` streams at once for rnnfast and PyTorch) for ``--round-time``
seconds each, implementation after implementation, for
``--rounds`` rounds after one warm-up round; the table shows the median chars/s over rounds.
Rounds of many steps matter: NumPy and SciPy each load their own OpenBLAS, and switching
between the two thread pools at 2 threads costs milliseconds per switch (DESIGN.md).

%peak: FLOP rate as a share of the same run's float32 GEMM peak (scipy.linalg.blas.sgemm,
2048^3, same thread count).  Training counts 3x the forward GEMM FLOPs per char, sampling 1x
(see bench_configs.forward_gemm_flops_per_char).  PyTorch and JAX are optional: their rows are
skipped when they are not importable (``pip install torch==2.13.0``, ``pip install jax``).

JAX runs the same recipe (jax_recipe.py: one jit-compiled call per training step, one per sampled
chunk) in a child process, driven round by round like the others.  Its thread count is pinned by
the child's CPU affinity (``os.sched_setaffinity``, what ``taskset`` does) set before jax is
imported: XLA sizes its CPU thread pool from the CPUs it may run on, and with one CPU it runs a
computation inline on the calling thread.  ``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false
intra_op_parallelism_threads=1`` does not pin it: with jaxlib 0.10 two XLA pool threads still
shared the work.  At 1 thread the child is pinned to one fixed CPU while the in-process
implementations may move between CPUs; on a busy machine that costs JAX more.

``--smoke`` runs tiny configs for one short round (CI checks that the script runs).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_configs import (  # noqa: E402
    CONFIGS,
    SMOKE_CONFIGS,
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
    def __init__(self, cfg: Config, backend: str, streams: int = 1):
        import rnnfast

        self.cfg, self.streams = cfg, streams
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
        num_samples = self.streams if self.streams > 1 else None
        for _ in range(calls):
            self.seed += 1
            self.model.sample(
                SAMPLE_CHUNK, prime="a", temperature=1.0, seed=self.seed, num_samples=num_samples
            )
        return calls * SAMPLE_CHUNK * self.streams


class TorchRunner:
    """nn.LSTM / nn.GRU / nn.RNN on one-hot input + nn.Linear + cross-entropy + value clipping
    + Adam, eager, float32 unless ``dtype`` says otherwise (a torch dtype); ``streams``
    sequences sampled at once."""

    def __init__(self, cfg: Config, dtype=None, streams: int = 1):
        import torch
        from torch import nn

        self.torch, self.cfg, self.streams = torch, cfg, streams
        self.dtype = torch.float32 if dtype is None else dtype
        torch.manual_seed(0)
        rnn_type = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[cfg.cell]
        self.rnn = rnn_type(cfg.V, cfg.H, cfg.layers, dtype=self.dtype)
        self.head = nn.Linear(cfg.H, cfg.V, dtype=self.dtype)
        self.params = list(self.rnn.parameters()) + list(self.head.parameters())
        self.opt = torch.optim.Adam(self.params, lr=2e-3)
        self.eye = torch.eye(cfg.V, dtype=self.dtype)
        x, y = batch(cfg)
        self.x_onehot = self.eye[torch.from_numpy(x)]  # (T, B, V)
        self.y = torch.from_numpy(y.reshape(-1))
        self.state = self._zero_state(cfg.B)
        self.gen = torch.Generator().manual_seed(0)
        self.note = f"torch {torch.__version__}, {torch.get_num_threads()} threads"

    def _zero_state(self, B):
        h = self.torch.zeros(self.cfg.layers, B, self.cfg.H, dtype=self.dtype)
        return (h, h.clone()) if self.cfg.cell == "lstm" else h

    def _detach(self, state):
        return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()

    def loss(self):
        """Mean cross-entropy of the batch from the carried state, and the final state."""
        out, state = self.rnn(self.x_onehot, self.state)
        logits = self.head(out).reshape(-1, self.cfg.V)
        return self.torch.nn.functional.cross_entropy(logits, self.y), state

    def train(self, steps: int) -> int:
        for _ in range(steps):
            self.opt.zero_grad(set_to_none=True)
            loss, state = self.loss()
            loss.backward()
            self.torch.nn.utils.clip_grad_value_(self.params, 5.0)
            self.opt.step()
            self.state = self._detach(state)
        return steps * self.cfg.T * self.cfg.B

    def sample(self, calls: int) -> int:
        torch, S = self.torch, self.streams
        with torch.no_grad():
            for _ in range(calls):
                state = self._zero_state(S)
                ix = torch.zeros(S, dtype=torch.long)
                for _ in range(SAMPLE_CHUNK):
                    out, state = self.rnn(self.eye[ix].view(1, S, -1), state)
                    p = torch.softmax(self.head(out[0]), dim=1)
                    ix = torch.multinomial(p, 1, generator=self.gen)[:, 0]
        return calls * SAMPLE_CHUNK * S


def _jax_worker(conn, cfg: Config, threads: int) -> None:
    """JaxRunner's child: pin the CPUs, build the recipe, answer (task, count) requests."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
        if threads < len(cpus):
            os.sched_setaffinity(0, cpus[:threads])
        import jax
        from jax_recipe import JaxModel

        model = JaxModel(
            {k: np.array(v) for k, v in bench_model(cfg, "c").params.items()},
            cfg.cell, cfg.layers, cfg.B, SAMPLE_CHUNK,
        )  # fmt: skip
        x, y = (jax.numpy.asarray(a.astype(np.int32)) for a in batch(cfg))
        seed = 0

        def train(steps):
            for _ in range(steps):
                model.train_step(x, y)
            model.block()
            return steps * cfg.T * cfg.B

        def sample(calls):
            nonlocal seed
            for _ in range(calls):
                seed += 1
                np.asarray(model.sample(seed))
            return calls * SAMPLE_CHUNK

        train(1), sample(1)  # compile both
        pinned = sorted(os.sched_getaffinity(0))
        conn.send(("ok", f"jax {jax.__version__}, CPU affinity {pinned}"))
        tasks = {"train": train, "sample": sample}
        while (request := conn.recv())[0] != "stop":
            task, count = request
            conn.send(("ok", tasks[task](count)))
    except Exception as err:  # reported to the parent, which raises it
        conn.send(("error", f"{type(err).__name__}: {err}"))
    finally:
        conn.close()


class JaxRunner:
    """The JAX recipe (jax_recipe.py) in a child process whose CPU affinity holds ``threads``
    CPUs; ``close()`` stops it."""

    def __init__(self, cfg: Config, threads: int):
        ctx = multiprocessing.get_context("spawn")
        self.conn, child_conn = ctx.Pipe()
        self.process = ctx.Process(target=_jax_worker, args=(child_conn, cfg, threads))
        self.process.start()
        child_conn.close()
        self.note = self._reply()

    def _reply(self):
        status, value = self.conn.recv()
        if status != "ok":
            raise RuntimeError(f"the JAX benchmark process failed: {value}")
        return value

    def train(self, steps: int) -> int:
        self.conn.send(("train", steps))
        return self._reply()

    def sample(self, calls: int) -> int:
        self.conn.send(("sample", calls))
        return self._reply()

    def close(self) -> None:
        if self.process.is_alive():
            self.conn.send(("stop", 0))
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()
        self.conn.close()


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


def make_runners(
    name: str, cfg: Config, threads: int, with_torch: bool, with_jax: bool, streams: int
) -> dict:
    runners = {
        "rnnfast-c": RnnfastRunner(cfg, "c", streams),
        "rnnfast-numpy": RnnfastRunner(cfg, "numpy", streams),
    }
    if with_torch:
        runners["torch"] = TorchRunner(cfg, streams=streams)
    if with_jax:
        runners["jax"] = JaxRunner(cfg, threads)
    if name == "mincharrnn" and streams == 1:  # the script samples one stream
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


def run_config(name, cfg, threads, args, with_torch, with_jax):
    # jax_recipe.py has the RNN and LSTM cells only, and samples one stream
    with_jax = with_jax and cfg.cell != "gru" and args.sample_streams == 1
    runners = make_runners(name, cfg, threads, with_torch, with_jax, args.sample_streams)
    samples = {(impl, task): [] for impl in runners for task in ("train", "sample")}
    try:
        for round_ in range(args.rounds + 1):  # round 0 warms up
            for impl, runner in runners.items():
                for task in ("train", "sample"):
                    r = rate(getattr(runner, task), args.round_time)
                    if round_:
                        samples[impl, task].append(r)
    finally:
        if with_jax:
            runners["jax"].close()
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
        help=f"comma-separated, from {', '.join(CONFIGS)} (default mincharrnn,charrnn-default,"
        "charrnn-gru; "
        f"with --smoke mincharrnn,{','.join(SMOKE_CONFIGS)})",
    )
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--round-time",
        type=float,
        default=0.5,
        help="seconds per implementation and task in each round",
    )
    parser.add_argument(
        "--sample-streams",
        type=int,
        default=1,
        help="streams sampled at once (num_samples) by rnnfast and PyTorch; above 1 the JAX and "
        "min-char-rnn rows are left out (they sample one)",
    )
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--no-jax", action="store_true")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny configs (unless --configs is given), one short round: checks the script runs",
    )
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    configs = {**CONFIGS, **SMOKE_CONFIGS}
    if args.configs is None:
        args.configs = ",".join(
            ["mincharrnn", *SMOKE_CONFIGS]
            if args.smoke
            else ["mincharrnn", "charrnn-default", "charrnn-gru"]
        )
    if args.smoke:
        args.rounds, args.round_time = 1, 0.01
    names = [n.strip() for n in args.configs.split(",") if n.strip()]
    for n in names:
        if n not in configs:
            parser.error(f"--configs: unknown config {n!r}; expected some of {list(configs)}")
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
    with_jax = not args.no_jax and importlib.util.find_spec("jax") is not None
    if not args.no_jax and not with_jax:
        print("JAX is not importable: its rows are skipped (pip install jax to include them)")

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
            peak = sgemm_peak_flops(256 if args.smoke else 2048)
            print(
                f"\n== {threads} thread(s): sgemm peak {peak / 1e9:.1f} GFLOP/s; "
                f"BLAS: {blas_summary()}"
            )
            for name in names:
                cfg = configs[name]
                res = run_config(name, cfg, threads, args, with_torch, with_jax)
                fwd = forward_gemm_flops_per_char(cfg)
                streams = f", {args.sample_streams} streams sampled" * (args.sample_streams > 1)
                print(f"\n{name} {tuple(cfg)}  (forward GEMM FLOPs/char {fwd}{streams})")
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
                for other in ("torch", "jax", "rnnfast-numpy", "minchar-numpy"):
                    if other in res:
                        o = res[other]
                        print(
                            f"  C/{other:13s} train {c['train'] / o['train']:6.2f}x   "
                            f"sample {c['sample'] / o['sample']:6.2f}x"
                        )
                if "jax" in res and "torch" in res:
                    j, t = res["jax"], res["torch"]
                    print(
                        f"  jax/torch       train {j['train'] / t['train']:6.2f}x   "
                        f"sample {j['sample'] / t['sample']:6.2f}x"
                    )
                results["runs"].append(
                    {
                        "config": name,
                        "cfg": cfg._asdict(),
                        "threads": threads,
                        "sample_streams": args.sample_streams,
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
