"""C vs NumPy backend on the recurrent kernels, in one run: CharLM.loss_and_grads (float32) and
sampling, best of several rounds of many calls (rounds, never alternating the two BLAS copies
call by call: see DESIGN.md, BLAS); and, where installed, PyTorch eager on the same training
step (one-hot input, nn.LSTM/nn.RNN, linear, cross-entropy, backward).

    PYTHONPATH=. python benchmarks/compare_recurrent.py [--threads N]
"""

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from rnnfast import (
    CharLM,
    _kernels,  # noqa: F401  (load SciPy's OpenBLAS before threadpool_limits)
)
from rnnfast.sampling import iter_sample

CONFIGS = [  # cell, V, H, L, B, T, calls per round
    ("lstm", 65, 128, 2, 50, 50, 4),
    ("rnn", 65, 100, 1, 1, 25, 200),
]


def best_time(fn, calls, rounds=5):
    fn()
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - t0) / calls)
    return best


def torch_step(cell, V, H, L, x, y, threads):
    """A PyTorch eager training step of the same model, or None without PyTorch."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    rnn = (torch.nn.LSTM if cell == "lstm" else torch.nn.RNN)(V, H, L)
    out = torch.nn.Linear(H, V)
    xt = torch.nn.functional.one_hot(torch.from_numpy(x), V).float()
    yt = torch.from_numpy(y).reshape(-1)

    def step():
        for p in (*rnn.parameters(), *out.parameters()):
            p.grad = None
        h, _ = rnn(xt)
        loss = torch.nn.functional.cross_entropy(out(h).reshape(-1, V), yt)
        loss.backward()

    return step


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    with threadpool_limits(args.threads):
        blas = sorted(
            {
                (i["internal_api"], i.get("architecture"), i["num_threads"])
                for i in threadpool_info()
            }
        )
        print(f"threads={args.threads} BLAS={blas}")
        for cell, V, H, L, B, T, calls in CONFIGS:
            rng = np.random.default_rng(0)
            x, y = rng.integers(0, V, (T, B)), rng.integers(0, V, (T, B))
            train, sample = {}, {}
            for backend in ("numpy", "c"):
                model = CharLM(V, cell=cell, hidden_size=H, num_layers=L, backend=backend, seed=0)
                train[backend] = best_time(lambda m=model, x=x, y=y: m.loss_and_grads(x, y), calls)
                n = 512 if backend == "c" else 64
                sample[backend] = (
                    best_time(
                        lambda m=model, n=n: list(iter_sample(m, n, np.array([1]), seed=0)), 1
                    )
                    / n
                )
            step = torch_step(cell, V, H, L, x, y, args.threads)
            torch_ms = "" if step is None else f", torch {best_time(step, calls) * 1e3:.3f} ms"
            name = f"{cell} V={V} H={H} L={L} B={B} T={T}"
            print(
                f"loss_and_grads {name}: numpy {train['numpy'] * 1e3:.3f} ms, "
                f"c {train['c'] * 1e3:.3f} ms ({train['numpy'] / train['c']:.1f}x), "
                f"c {T * B / train['c'] / 1e3:.0f}k chars/s{torch_ms}"
            )
            print(
                f"sample 1 stream  {name}: numpy {1 / sample['numpy'] / 1e3:.1f}k chars/s, "
                f"c {1 / sample['c'] / 1e3:.1f}k chars/s ({sample['numpy'] / sample['c']:.1f}x)"
            )


if __name__ == "__main__":
    main()
