"""Validation loss against training wall time: rnnfast and PyTorch, same model, same data.

    python lab/quality.py --framework rnnfast --minutes 10 --out runs/quality-rnnfast.csv
    python lab/quality.py --framework torch   --minutes 10 --out runs/quality-torch.csv

Both train char-rnn's default model (a 2x128 LSTM, batch 50, 50 steps, Adam 2e-3, gradient
clipped by value at 5, one-hot input, uniform(+-1/sqrt(H)) initial weights) on the first 90% of
tinyshakespeare and report the mean cross-entropy (nats per character) on the last 10% (the
111,540 characters of nanoGPT's split) every ``--eval-every`` seconds of training, scored as
``rnnfast train`` scores it (``rnnfast.training.evaluate``: every character once, the state
carried).  ``--dropout P`` applies rnnfast's rule in both: on every layer's output, between the
layers (nn.LSTM's dropout) and before the decoder (an nn.Dropout), in training only;
``--lr-decay D --lr-decay-every N`` is the CLI's step schedule (lr times D every N steps).  Only
training time is counted: the clock stops while the validation loss is computed.  Each row of the
CSV: seconds, training characters, training loss (mean of the last interval), validation loss.
"""

from __future__ import annotations

import argparse
import csv
import math
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

import rnnfast
from rnnfast.training import evaluate

DEFAULT_DATA = (
    Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tinyshakespeare.txt"
)


class RnnfastRun:
    def __init__(self, V, args):
        self.model = rnnfast.CharLM(V, cell=args.cell, hidden_size=args.hidden_size,
                                    num_layers=args.num_layers, seed=args.seed,
                                    dropout=args.dropout)  # fmt: skip
        self.opt = rnnfast.Adam(self.model, lr=args.lr)
        self.state = None
        self.clip = args.clip

    def reset(self):
        self.state = None

    def set_lr(self, lr):
        self.opt.lr = lr

    def train_step(self, x, y):
        loss, self.state = self.model.train_step(x, y, self.opt, self.state, clip=self.clip)
        return loss

    def evaluate(self, val_ids):
        return evaluate(self.model, val_ids)


class TorchRun:
    def __init__(self, V, args):
        import torch

        torch.manual_seed(args.seed)
        self.torch, self.V = torch, V
        cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[args.cell]
        between = args.dropout if args.num_layers > 1 else 0.0  # nn.LSTM warns at one layer
        self.rnn = cls(V, args.hidden_size, num_layers=args.num_layers, dropout=between)
        self.dropout = torch.nn.Dropout(args.dropout)  # the top layer's output, as rnnfast
        self.linear = torch.nn.Linear(args.hidden_size, V)
        self.params = list(self.rnn.parameters()) + list(self.linear.parameters())
        self.opt = torch.optim.Adam(self.params, lr=args.lr)
        self.clip = args.clip
        self.state = None

    def reset(self):
        self.state = None

    def set_lr(self, lr):
        for group in self.opt.param_groups:
            group["lr"] = lr

    def _forward(self, x, y, state):
        torch = self.torch
        onehot = torch.nn.functional.one_hot(torch.from_numpy(x), self.V).float()
        out, state = self.rnn(onehot, state)
        logits = self.linear(self.dropout(out)).reshape(-1, self.V)
        target = torch.from_numpy(y.reshape(-1))
        return torch.nn.functional.cross_entropy(logits, target), state

    def train_step(self, x, y):
        torch = self.torch
        self.rnn.train()
        self.dropout.train()
        self.opt.zero_grad()
        loss, state = self._forward(x, y, self.state)
        loss.backward()
        torch.nn.utils.clip_grad_value_(self.params, self.clip)
        self.opt.step()
        self.state = (
            tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
        )
        return loss.item()

    def loss(self, x, y, state=None):
        """What rnnfast.training.evaluate asks of a model: the mean loss and the next state."""
        with self.torch.no_grad():
            loss, state = self._forward(x, y, state)
        return loss.item(), state

    def evaluate(self, val_ids):
        self.rnn.eval()
        self.dropout.eval()
        return evaluate(self, val_ids)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--framework", choices=["rnnfast", "torch"], required=True)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--eval-every", type=float, default=30.0, help="seconds of training")
    parser.add_argument("--cell", choices=["lstm", "gru", "rnn"], default="lstm")
    parser.add_argument("--hidden-size", type=int, default=128)
    parser.add_argument("--num-layers", type=int, default=2)
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--seq-length", type=int, default=50)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--lr-decay", type=float, default=1.0, help="as `rnnfast train`")
    parser.add_argument("--lr-decay-every", type=int, default=0, help="steps; 0 never decays")
    parser.add_argument("--clip", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    text = rnnfast.load_text(args.data)
    vocab = rnnfast.Vocab.from_text(text)
    train_ids, val_ids = rnnfast.split(vocab.encode(text))
    train = rnnfast.Batches(train_ids, args.batch_size, args.seq_length)

    with threadpool_limits(args.threads):
        if args.framework == "torch":
            import torch

            torch.set_num_threads(args.threads)
            run = TorchRun(len(vocab), args)
        else:
            run = RnnfastRun(len(vocab), args)
        blas = ", ".join(f"{i['internal_api']} {i.get('architecture', '')} x{i['num_threads']}"
                         for i in threadpool_info())  # fmt: skip
        print(
            f"{args.framework}: {args.num_layers}x{args.hidden_size} {args.cell}, "
            f"B={args.batch_size} T={args.seq_length}, threads={args.threads}; BLAS: {blas}"
        )
        args.out.parent.mkdir(parents=True, exist_ok=True)
        rows, trained, chars, step, interval = [], 0.0, 0, 0, []
        best = math.inf
        with open(args.out, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["seconds", "train_chars", "train_loss", "val_loss"])
            next_eval = args.eval_every
            while trained < args.minutes * 60:
                k = step % len(train)
                if k == 0:
                    run.reset()
                x, y = train.batch(k)
                if args.lr_decay_every:  # the CLI's schedule: lr * decay ** (step // every)
                    run.set_lr(args.lr * args.lr_decay ** (step // args.lr_decay_every))
                start = time.perf_counter()
                interval.append(run.train_step(x, y))
                trained += time.perf_counter() - start
                chars += x.size
                step += 1
                if trained >= next_eval or trained >= args.minutes * 60:
                    val_loss = run.evaluate(val_ids)
                    best = min(best, val_loss)
                    row = [round(trained, 1), chars, round(float(np.mean(interval)), 4),
                           round(val_loss, 4)]  # fmt: skip
                    writer.writerow(row)
                    f.flush()
                    rows.append(row)
                    print(
                        f"{row[0]:7.1f} s  {chars / 1e6:6.2f}M chars  train {row[2]:.4f}  "
                        f"val {row[3]:.4f}  (best {best:.4f})",
                        flush=True,
                    )
                    interval = []
                    next_eval += args.eval_every
    print(f"best validation loss {best:.4f} nats/char after {trained:.0f} s of training")


if __name__ == "__main__":
    main()
