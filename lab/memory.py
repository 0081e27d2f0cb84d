"""Peak resident memory of training steps, rnnfast or PyTorch, each in its own process.

    python lab/memory.py --framework rnnfast --config large
    python lab/memory.py --framework torch --config large

Prints the resident memory after building the model and optimizer, the peak after three
training steps (Adam, clip by value 5, float32, one thread), and the growth the steps cost.
"""

from __future__ import annotations

import argparse
import resource
import sys
from pathlib import Path

import numpy as np

# bench_configs lives in benchmarks/
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_configs import CONFIGS, batch  # noqa: E402


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rnnfast_steps(cfg, x, y):
    import rnnfast

    model = rnnfast.CharLM(cfg.V, cell=cfg.cell, hidden_size=cfg.H, num_layers=cfg.layers,
                           seed=0)  # fmt: skip
    opt = rnnfast.Adam(model, lr=2e-3)
    before = rss_mib()
    state = None
    for _ in range(3):
        _, state = model.train_step(x, y, opt, state, clip=5.0)
    return before


def torch_steps(cfg, x, y):
    import torch

    torch.set_num_threads(1)
    cls = torch.nn.LSTM if cfg.cell == "lstm" else torch.nn.RNN
    rnn, head = cls(cfg.V, cfg.H, num_layers=cfg.layers), torch.nn.Linear(cfg.H, cfg.V)
    params = list(rnn.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=2e-3)
    eye = torch.eye(cfg.V)
    before = rss_mib()
    state = None
    for _ in range(3):
        opt.zero_grad()
        out, state = rnn(eye[torch.from_numpy(x)], state)
        loss = torch.nn.functional.cross_entropy(head(out).reshape(-1, cfg.V),
                                                 torch.from_numpy(y.reshape(-1)))  # fmt: skip
        loss.backward()
        torch.nn.utils.clip_grad_value_(params, 5.0)
        opt.step()
        state = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
    return before


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--framework", choices=["rnnfast", "torch"], required=True)
    parser.add_argument("--config", choices=sorted(CONFIGS), default="large")
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_limits

    cfg = CONFIGS[args.config]
    x, y = batch(cfg)
    with threadpool_limits(1):
        steps = rnnfast_steps if args.framework == "rnnfast" else torch_steps
        before = steps(cfg, np.ascontiguousarray(x), np.ascontiguousarray(y))
    peak = peak_mib()
    print(f"{args.framework} {args.config}: {before:.0f} MiB after setup, peak {peak:.0f} MiB, "
          f"training steps add {peak - before:.0f} MiB")  # fmt: skip


if __name__ == "__main__":
    main()
