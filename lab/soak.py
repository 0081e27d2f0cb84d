"""Soak run: many thousands of training steps, then a million sampled characters, with the
process's resident memory recorded at intervals.  Memory must stay flat: the kernels allocate
nothing per step, the model reuses one workspace per (T, B), and sampling streams in chunks.

    python lab/soak.py [--steps 20000] [--sample-chars 1000000] [--threads 1]

Prints one line per interval (steps or characters done, resident MiB) and the growth from the
first record after warm-up to the last.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

import rnnfast
from rnnfast.sampling import iter_sample


def resident_mib() -> float:
    """VmRSS of this process from /proc (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--sample-chars", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--records", type=int, default=10, help="records per phase")
    args = parser.parse_args(argv)

    text = rnnfast.builtin_corpus()
    vocab = rnnfast.Vocab.from_text(text)
    batches = rnnfast.Batches(vocab.encode(text), batch_size=16, seq_length=32)
    model = rnnfast.CharLM(vocab, hidden_size=64, num_layers=2, seed=0)
    opt = rnnfast.Adam(model, lr=2e-3)
    records = []
    start = time.perf_counter()
    with threadpool_limits(args.threads):
        state = None
        every = max(1, args.steps // args.records)
        for step in range(args.steps):
            k = step % len(batches)
            if k == 0:
                state = None
            x, y = batches.batch(k)
            loss, state = model.train_step(x, y, opt, state)
            if (step + 1) % every == 0:
                records.append(("train", step + 1, resident_mib(), loss))
                print(f"train step {step + 1:>7}  loss {loss:.3f}  RSS {records[-1][2]:.1f} MiB",
                      flush=True)  # fmt: skip
        every = max(1, args.sample_chars // args.records)
        done, next_record = 0, every
        for chunk in iter_sample(model, args.sample_chars, vocab.encode("def "), seed=0):
            vocab.decode(chunk[:, 0])
            done += chunk.shape[0]
            if done >= next_record:
                records.append(("sample", done, resident_mib(), np.nan))
                print(f"sampled {done:>9} chars  RSS {records[-1][2]:.1f} MiB", flush=True)
                next_record += every
    first, last = records[1][2], records[-1][2]  # records[0] still includes warm-up allocations
    print(f"{args.steps} steps and {args.sample_chars} sampled characters in "
          f"{time.perf_counter() - start:.0f} s; resident memory {first:.1f} MiB after warm-up, "
          f"{last:.1f} MiB at the end ({last - first:+.1f} MiB)")  # fmt: skip


if __name__ == "__main__":
    main()
