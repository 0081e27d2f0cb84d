"""Requests/s and characters/s of ``rnnfast serve`` (``rnnfast.serve.Server``) at 1, 8 and 64
concurrent clients, next to the same requests made as sequential ``model.sample`` calls, in one
process and one run.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONPATH=. \\
        python benchmarks/serve.py --config charrnn-default --length 200 --threads 1

Every round makes ``--requests`` requests of ``--length`` characters after the prime "a", each
with its own seed: first as ``model.sample`` calls one after another, then through the server on
127.0.0.1 from each number of clients (threads of this process, each with its own keep-alive
connection, taking the next request as soon as it has its answer).  The table shows the median
over ``--rounds`` rounds after a warm-up round, and checks every answer against
``model.sample``'s text for its seed.  The clients' HTTP and JSON work runs in this process
beside the server's, under the same GIL and on the same cores: the server alone would do
better.  The last row is the ceiling of batching: the same number of characters drawn as
``model.sample(num_samples=S)`` calls of S = the most clients (other seeds, no HTTP).

Each server lives for one row, and the ``model.sample`` rows run in a thread of their own
that ends before the next server starts: only one Python thread at a time holds an OpenMP
pool, as in ``rnnfast serve`` (two pools on a small machine make libgomp's threads sleep at
every barrier: rnnfast/serve.py, ``_kernel_threads``).

``--smoke`` runs a tiny config, few requests and one round (CI checks that the script runs).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_configs import (  # noqa: E402
    CONFIGS,
    SMOKE_CONFIGS,
    bench_model,
    blas_info,
    blas_summary,
)

import rnnfast  # noqa: E402 -- loads SciPy's OpenBLAS, for threadpoolctl to reach

PRIME = "a"


def sequential(model, seeds, length, threads: int) -> tuple[float, list[str]]:
    """Seconds for the requests as ``model.sample`` calls in turn, and their texts."""
    rnnfast.set_num_threads(threads)
    start = time.perf_counter()
    texts = [model.sample(length, prime=PRIME, seed=seed) for seed in seeds]
    return time.perf_counter() - start, texts


def batched(model, seeds, length, streams: int, threads: int) -> float:
    """Seconds for the requests' characters drawn by ``model.sample(num_samples=streams)``
    calls (scaled to that many when ``streams`` does not divide them), no HTTP: what drawing
    ``streams`` requests together could give at most."""
    rnnfast.set_num_threads(threads)
    calls = seeds[::streams]
    start = time.perf_counter()
    for seed in calls:
        model.sample(length, prime=PRIME, seed=seed, num_samples=streams)
    return (time.perf_counter() - start) * len(seeds) / (len(calls) * streams)


def alone(function, *args):
    """function(*args) in a thread of its own, which ends (and frees its OpenMP pool) before
    this returns."""
    result = []
    thread = threading.Thread(target=lambda: result.append(function(*args)))
    thread.start()
    thread.join()
    return result[0]


def served(server, seeds, length, clients: int) -> tuple[float, list[str]]:
    """Seconds for the requests sent by ``clients`` threads at once, and the texts answered."""
    texts = [None] * len(seeds)
    position = iter(range(len(seeds)))
    lock = threading.Lock()
    ready = threading.Barrier(clients + 1)

    def client():
        connection = http.client.HTTPConnection(*server.address, timeout=60)
        ready.wait()
        while True:
            with lock:
                k = next(position, None)
            if k is None:
                break
            body = {"prime": PRIME, "length": length, "seed": seeds[k]}
            connection.request("POST", "/generate", json.dumps(body))
            response = connection.getresponse()
            answer = json.loads(response.read())
            texts[k] = answer.get("text", f"HTTP {response.status}: {answer}")
        connection.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    ready.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - start, texts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", help="default charrnn-default (with --smoke smoke-lstm)")
    parser.add_argument("--length", type=int, help="characters a request (default 200)")
    parser.add_argument("--requests", type=int, help="requests a round (default 256)")
    parser.add_argument("--clients", default="1,8,64", help="comma-separated client counts")
    parser.add_argument("--threads", type=int, default=1, help="the kernels' threads")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one round")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    configs = {**CONFIGS, **SMOKE_CONFIGS}
    name = args.config or ("smoke-lstm" if args.smoke else "charrnn-default")
    if name not in configs:
        parser.error(f"--config: unknown config {name!r}; expected one of {list(configs)}")
    length = args.length or (20 if args.smoke else 200)
    requests = args.requests or (16 if args.smoke else 256)
    rounds = 1 if args.smoke else args.rounds
    client_counts = [int(c) for c in args.clients.split(",")]

    from threadpoolctl import threadpool_limits

    from rnnfast.serve import Limits, Server

    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if var in os.environ:
            print(f"warning: {var}={os.environ[var]} is set; unset it for benchmark runs")
    model = bench_model(configs[name], "c")
    seeds = list(range(requests))
    limits = Limits(max_streams=max(client_counts), max_length=length)
    label = {c: f"{c} client{'s' * (c > 1)}" for c in client_counts}
    most = max(client_counts)
    ceiling = f"{most} streams, no HTTP"
    rows = {"sequential": []} | {label[c]: [] for c in client_counts} | {ceiling: []}
    wrong = dict.fromkeys(rows, 0)
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} (other processes skew "
          "every row; compare the rows of one run)")  # fmt: skip
    with threadpool_limits(limits=args.threads):
        print(f"{args.threads} thread(s); BLAS: {blas_summary()}")
        for round_ in range(rounds + (0 if args.smoke else 1)):
            seconds, truth = alone(sequential, model, seeds, length, args.threads)
            times = {"sequential": seconds}
            for c in client_counts:
                with Server(model, port=0, limits=limits, threads=args.threads) as server:
                    times[label[c]], texts = served(server, seeds, length, c)
                wrong[label[c]] += sum(a != b for a, b in zip(texts, truth, strict=True))
            times[ceiling] = alone(batched, model, seeds, length, most, args.threads)
            if args.smoke or round_:  # round 0 warms up
                for key, seconds in times.items():
                    rows[key].append(seconds)
    cfg = configs[name]
    print(f"\n{name} {tuple(cfg)}: {requests} requests of {length} characters after {PRIME!r}, "
          f"median of {rounds} round(s)")  # fmt: skip
    print(f"  {'':20s} {'requests/s':>11s} {'chars/s':>10s} {'x sequential':>13s}  wrong answers")
    results = {"config": name, "length": length, "requests": requests, "threads": args.threads,
               "blas": blas_info(), "loadavg": os.getloadavg(), "rows": {}}  # fmt: skip
    base = statistics.median(rows["sequential"])
    for key, times in rows.items():
        seconds = statistics.median(times)
        print(f"  {key:20s} {requests / seconds:11,.1f} {requests * length / seconds:10,.0f} "
              f"{base / seconds:12.2f}x  {'-' if key == ceiling else wrong[key]}")  # fmt: skip
        results["rows"][key] = {"seconds": times, "wrong": wrong[key]}
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 1 if any(wrong.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
