"""Is tree B's training and sampling speed unchanged, within noise, against tree A?

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \\
        python lab/ab_speed.py --trees /work/ace0ce3 /work/main --rounds 5 --round-time 1.0

Each tree is a source tree built in place (``python setup.py build_ext --inplace``).  Every round
runs one child process per tree, A then B (B then A in every second round, so a drift of the
machine cancels), each with ``PYTHONPATH=<tree>`` and the tree as its cwd; the child checks
that every ``rnnfast`` module it loaded comes from that tree (an unbuilt tree would otherwise
get ``rnnfast._kernels`` from an editable install elsewhere) and prints ``rnnfast.__file__``.
Per config and thread count the child times, on a float32 ``CharLM``
seeded 0, batch-1 sampling (``model.sample`` of 100 characters after "a", temperature 1, seed 0,
on the fresh weights) and then training (``model.train_step`` with ``rnnfast.Adam`` lr 2e-3,
clip 5, state carried), each for ``--round-time`` seconds after a warm-up of a quarter of that.
The child uses only the public API (``CharLM``, ``Adam``, ``Vocab``, ``train_step``, ``sample``,
``set_num_threads``), so a tree whose internals were refactored runs the same measurement.

Configs come from ``benchmarks/bench_configs.py`` of this script's own repo, so both trees run
the same shapes.  The table shows each tree's median chars/s over rounds, B/A of the medians,
the min and max of the per-round ratios (A and B of one round ran next to each other), and the
noise: the larger of the two trees' round-to-round spreads (max / min - 1).  The verdict is
"same" when the ratios' range holds 1 or the medians' ratio is within the noise of 1 (none is
given under 3 rounds).  Other processes on the machine widen both; the load average is printed
before and after.

``--smoke`` runs tiny configs for two short rounds (checks that the script runs).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_configs import CONFIGS, SMOKE_CONFIGS, Config, batch, vocab  # noqa: E402

ALL_CONFIGS = {**CONFIGS, **SMOKE_CONFIGS}
SMOKE = ",".join(["mincharrnn", *SMOKE_CONFIGS])  # --smoke's default configs
SAMPLE_CHARS = 100  # characters per model.sample call
WARMUP = 0.25  # warm-up time, as a share of --round-time
ENV_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS", "OMP_WAIT_POLICY")
MEASURES = ("train", "sample")


# -- child: one tree, one round ------------------------------------------------------------


def rate(call, chars_per_call: int, seconds: float) -> float:
    """chars/s of call() repeated until ``seconds`` have passed (at least twice)."""
    calls, t0 = 0, time.perf_counter()
    while True:
        call()
        calls += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds and calls >= 2:
            return calls * chars_per_call / elapsed


def measure(cfg: Config, round_time: float) -> dict:
    """Sampling and training chars/s of one config at the current thread setting."""
    import rnnfast

    model = rnnfast.CharLM(
        vocab(cfg.V), cell=cfg.cell, hidden_size=cfg.H, num_layers=cfg.layers,
        dtype=np.float32, seed=0,
    )  # fmt: skip

    def sample():
        return model.sample(SAMPLE_CHARS, prime="a", temperature=1.0, seed=0)

    text = sample()  # from the fresh weights: the same in every tree that draws the same bits
    rate(sample, SAMPLE_CHARS, WARMUP * round_time)
    sample_rate = rate(sample, SAMPLE_CHARS, round_time)

    opt = rnnfast.Adam(model, lr=2e-3)
    x, y = batch(cfg)
    state = None

    def train():
        nonlocal state
        _, state = model.train_step(x, y, opt, state, clip=5.0)

    rate(train, cfg.T * cfg.B, WARMUP * round_time)
    return {
        "train": rate(train, cfg.T * cfg.B, round_time),
        "sample": sample_rate,
        "sample_sha": hashlib.sha256(text.encode()).hexdigest()[:12],
    }


def pools() -> list[dict]:
    """threadpoolctl's report of the BLAS and OpenMP pools loaded in this process."""
    from threadpoolctl import threadpool_info

    keep = ("user_api", "internal_api", "version", "num_threads", "architecture")
    report = [
        {**{k: pool.get(k) for k in keep}, "library": Path(pool["filepath"]).name}
        for pool in threadpool_info()
    ]
    return sorted(report, key=lambda p: (p["user_api"], p["library"]))  # found in varying order


def check_loaded_from(tree: Path) -> None:
    """Exit unless every rnnfast module loaded in this process comes from ``tree``."""
    outside = [
        f"{name} ({module.__file__})"
        for name, module in sorted(sys.modules.items())
        if (name == "rnnfast" or name.startswith("rnnfast."))
        and getattr(module, "__file__", None)
        and not Path(module.__file__).resolve().is_relative_to(tree)
    ]
    if outside:
        sys.exit(f"rnnfast modules loaded from outside {tree}: {', '.join(outside)}")


def child(spec: dict) -> dict:
    """Measure every config and thread count of ``spec`` with the rnnfast on PYTHONPATH."""
    import scipy.linalg.blas  # noqa: F401 -- load SciPy's BLAS before threadpool_limits
    from threadpoolctl import threadpool_limits

    import rnnfast

    tree = Path(spec["tree"]).resolve()
    print(f"  [{spec['label']}] rnnfast {rnnfast.__file__}", file=sys.stderr, flush=True)
    check_loaded_from(tree)
    results, blas = [], {}
    for threads in spec["threads"]:
        rnnfast.set_num_threads(threads)  # the kernels' pool
        with threadpool_limits(limits=threads, user_api="blas"):  # NumPy's and SciPy's BLAS
            for name in spec["configs"]:
                res = measure(ALL_CONFIGS[name], spec["round_time"])
                results.append({"config": name, "threads": threads, **res})
            blas[threads] = pools()
    check_loaded_from(tree)  # the submodules loaded since
    return {"rnnfast": rnnfast.__file__, "pools": blas, "results": results}


# -- parent: rounds of children, A B then B A --------------------------------------------------


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_child(label: str, tree: Path, args) -> dict:
    spec = {
        "label": label,
        "tree": str(tree),
        "configs": args.configs,
        "threads": args.threads,
        "round_time": args.round_time,
    }
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        stdout=subprocess.PIPE,
        text=True,
    )
    if proc.returncode:
        sys.exit(f"the child for {label} ({tree}) failed with exit status {proc.returncode}")
    return json.loads(proc.stdout.splitlines()[-1])  # the child's last line


def pools_line(pools: list[dict]) -> str:
    return "; ".join(
        " ".join(str(p[k]) for k in ("internal_api", "version", "architecture") if p[k])
        + f" x{p['num_threads']} ({p['library']})"
        for p in pools
    )


def summarize(runs: dict[str, list[dict]], args) -> list[dict]:
    """Per config, thread count and measure: each tree's chars/s by round, medians, ratios."""
    rows = []
    for threads in args.threads:
        for name in args.configs:
            for m in MEASURES:
                per_tree = {
                    label: [
                        r[m]
                        for run in runs[label]
                        for r in run["results"]
                        if r["config"] == name and r["threads"] == threads
                    ]
                    for label in runs
                }
                ratios = [b / a for a, b in zip(per_tree["A"], per_tree["B"], strict=True)]
                med_a, med_b = statistics.median(per_tree["A"]), statistics.median(per_tree["B"])
                rows.append(
                    {
                        "config": name,
                        "cfg": ALL_CONFIGS[name]._asdict(),
                        "threads": threads,
                        "measure": m,
                        "A": per_tree["A"],
                        "B": per_tree["B"],
                        "median_A": med_a,
                        "median_B": med_b,
                        "ratio": med_b / med_a,
                        "ratio_min": min(ratios),
                        "ratio_max": max(ratios),
                        "noise": max(max(v) / min(v) - 1 for v in per_tree.values()),
                    }
                )
    return rows


def verdict(row: dict) -> str:
    """B faster or slower where every round's ratio and the medians' ratio lie past 1 and the
    noise; else the same.  No verdict under 3 rounds."""
    if len(row["A"]) < 3:
        return "- (under 3 rounds)"
    if row["ratio_min"] <= 1 <= row["ratio_max"] or abs(row["ratio"] - 1) <= row["noise"]:
        return "same"
    return "B faster" if row["ratio"] > 1 else "B slower"


def print_table(rows: list[dict]) -> None:
    print(
        f"\n{'config':16s} {'thr':>3s} {'measure':7s} {'A ch/s':>12s} {'B ch/s':>12s} "
        f"{'B/A':>6s} {'min':>6s} {'max':>6s} {'noise':>6s}  verdict"
    )
    for r in rows:
        print(
            f"{r['config']:16s} {r['threads']:3d} {r['measure']:7s} {r['median_A']:12,.0f} "
            f"{r['median_B']:12,.0f} {r['ratio']:6.3f} {r['ratio_min']:6.3f} "
            f"{r['ratio_max']:6.3f} {r['noise']:6.1%}  {verdict(r)}"
        )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--trees",
        nargs=2,
        type=Path,
        metavar=("A", "B"),
        help="two source trees, each built in place (required); ratios are B/A",
    )
    parser.add_argument(
        "--configs",
        help=f"comma-separated, from {', '.join(ALL_CONFIGS)} "
        f"(default mincharrnn,charrnn-default; with --smoke {SMOKE})",
    )
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--rounds", type=int, default=5, help="child processes per tree")
    parser.add_argument(
        "--round-time", type=float, default=1.0, help="seconds per config, thread count, measure"
    )
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    parser.add_argument(
        "--smoke", action="store_true", help="tiny configs, two rounds of 0.01 s: checks it runs"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)  # the spec of one child's run
    args = parser.parse_args(argv)

    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    if args.trees is None:
        parser.error("--trees: expected two source trees")
    if args.configs is None:
        args.configs = SMOKE if args.smoke else "mincharrnn,charrnn-default"
    if args.smoke:
        args.rounds, args.round_time = 2, 0.01
    args.configs = [n.strip() for n in args.configs.split(",") if n.strip()]
    for n in args.configs:
        if n not in ALL_CONFIGS:
            parser.error(f"--configs: unknown config {n!r}; expected some of {list(ALL_CONFIGS)}")
    args.threads = [int(t) for t in args.threads.split(",")]
    if args.rounds < 1 or args.round_time <= 0 or min(args.threads) < 1:
        parser.error("--rounds, --round-time and every --threads count must be positive")
    trees = {"A": args.trees[0].resolve(), "B": args.trees[1].resolve()}
    for label, tree in trees.items():
        if not (tree / "rnnfast" / "__init__.py").is_file():
            parser.error(f"--trees: {label} {tree} has no rnnfast/__init__.py")

    print(f"CPU: {cpu_model()} ({os.cpu_count()} CPUs)")
    env = {var: os.environ.get(var) for var in ENV_VARS}
    print("env: " + ", ".join(f"{var}={'unset' if v is None else v}" for var, v in env.items()))
    if env["OPENBLAS_CORETYPE"] is not None or env["OPENBLAS_L2_SIZE"] is not None:
        print("warning: run with env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE for measurements")
    loadavg_before = os.getloadavg()
    print(f"load average {loadavg_before[0]:.2f} (other processes widen the ratios' range)")
    for label, tree in trees.items():
        print(f"{label}: {tree}")

    runs = {label: [] for label in trees}
    for round_ in range(1, args.rounds + 1):
        print(f"round {round_}/{args.rounds}", flush=True)
        order = list(trees.items())
        for label, tree in order if round_ % 2 else order[::-1]:  # A B, B A: drift cancels
            runs[label].append(run_child(label, tree, args))

    print()
    for label in trees:
        first = runs[label][0]
        for threads, pools in first["pools"].items():
            print(f"{label} pools at {threads} thread(s): {pools_line(pools)}")
        if any(run["pools"] != first["pools"] for run in runs[label]):
            print(f"warning: {label}'s pools differ between rounds (see --json)")
    for name in args.configs:  # one text per config, whatever the tree and thread count
        shas = {
            r["sample_sha"]
            for run in runs["A"] + runs["B"]
            for r in run["results"]
            if r["config"] == name
        }
        if len(shas) > 1:
            print(f"note: {name}'s sampled texts differ between trees or thread counts")
    rows = summarize(runs, args)
    print_table(rows)
    loadavg_after = os.getloadavg()
    print(f"\nload average after the run: {loadavg_after[0]:.2f}")
    if args.json:
        out = {
            "cpu": cpu_model(),
            "env": env,
            "trees": {label: str(tree) for label, tree in trees.items()},
            "rounds": args.rounds,
            "round_time": args.round_time,
            "loadavg_before": loadavg_before,
            "loadavg_after": loadavg_after,
            "children": runs,
            "rows": rows,
        }
        args.json.write_text(json.dumps(out, indent=1) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
