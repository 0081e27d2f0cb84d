"""A faithful NumPy min-char-rnn (karpathy, 2015): per-step column vectors, a dense one-hot
input, float64, Adagrad, gradients clipped to [-5, 5], sampling with ``np.random.choice``.

It is the baseline the mincharrnn config is named after; compare.py times it next to rnnfast.
The code follows the original's structure on purpose (dicts of per-step vectors, W x column
products), including its costs; only the data loading is replaced by ids handed in.

Run as a script, it times training at min-char-rnn's own setting (float64, V=65, H=100, T=25,
Adagrad lr 0.1, clip 5), BLAS at 1 thread, interleaved in rounds in one process: this script,
the script with ``rnnfast.minchar``'s lossFun (it keeps its own NumPy Adagrad), and
``rnnfast.CharLM`` (float64, Adagrad, clip 5: one C call per step); chars/s are medians over
rounds:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONPATH=. python benchmarks/minchar.py
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


class MinCharRNN:
    def __init__(
        self,
        vocab_size: int,
        hidden_size: int = 100,
        seq_length: int = 25,
        learning_rate: float = 1e-1,
        seed: int = 0,
    ):
        rng = np.random.default_rng(seed)
        V, H = vocab_size, hidden_size
        self.V, self.H, self.seq_length, self.learning_rate = V, H, seq_length, learning_rate
        self.Wxh = rng.standard_normal((H, V)) * 0.01  # input to hidden
        self.Whh = rng.standard_normal((H, H)) * 0.01  # hidden to hidden
        self.Why = rng.standard_normal((V, H)) * 0.01  # hidden to output
        self.bh = np.zeros((H, 1))
        self.by = np.zeros((V, 1))
        self.mem = [np.zeros_like(p) for p in self.params]  # Adagrad memory
        self.hprev = np.zeros((H, 1))

    @property
    def params(self):
        return [self.Wxh, self.Whh, self.Why, self.bh, self.by]

    def lossFun(self, inputs, targets, hprev):  # noqa: N802 -- the original's name
        """inputs, targets: lists of ids; hprev: (H, 1).  Returns loss, gradients, last h."""
        Wxh, Whh, Why, bh, by = self.params
        xs, hs, ys, ps = {}, {}, {}, {}
        hs[-1] = np.copy(hprev)
        loss = 0
        for t in range(len(inputs)):
            xs[t] = np.zeros((self.V, 1))  # encode in 1-of-k representation
            xs[t][inputs[t]] = 1
            hs[t] = np.tanh(np.dot(Wxh, xs[t]) + np.dot(Whh, hs[t - 1]) + bh)
            ys[t] = np.dot(Why, hs[t]) + by  # unnormalized log probabilities for next chars
            ps[t] = np.exp(ys[t]) / np.sum(np.exp(ys[t]))  # probabilities for next chars
            loss += -np.log(ps[t][targets[t], 0])  # softmax (cross-entropy loss)
        dWxh, dWhh, dWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
        dbh, dby = np.zeros_like(bh), np.zeros_like(by)
        dhnext = np.zeros_like(hs[0])
        for t in reversed(range(len(inputs))):
            dy = np.copy(ps[t])
            dy[targets[t]] -= 1  # backprop into y
            dWhy += np.dot(dy, hs[t].T)
            dby += dy
            dh = np.dot(Why.T, dy) + dhnext  # backprop into h
            dhraw = (1 - hs[t] * hs[t]) * dh  # backprop through tanh nonlinearity
            dbh += dhraw
            dWxh += np.dot(dhraw, xs[t].T)
            dWhh += np.dot(dhraw, hs[t - 1].T)
            dhnext = np.dot(Whh.T, dhraw)
        for dparam in [dWxh, dWhh, dWhy, dbh, dby]:
            np.clip(dparam, -5, 5, out=dparam)  # clip to mitigate exploding gradients
        return loss, dWxh, dWhh, dWhy, dbh, dby, hs[len(inputs) - 1]

    def train_step(self, inputs, targets):
        loss, *grads, self.hprev = self.lossFun(inputs, targets, self.hprev)
        for param, dparam, mem in zip(self.params, grads, self.mem, strict=True):
            mem += dparam * dparam
            param += -self.learning_rate * dparam / np.sqrt(mem + 1e-8)  # adagrad update
        return loss

    def sample(self, h, seed_ix, n, rng=np.random):
        """Sample a sequence of n ids from the model; h is the memory state."""
        x = np.zeros((self.V, 1))
        x[seed_ix] = 1
        ixes = []
        for _ in range(n):
            h = np.tanh(np.dot(self.Wxh, x) + np.dot(self.Whh, h) + self.bh)
            y = np.dot(self.Why, h) + self.by
            p = np.exp(y) / np.sum(np.exp(y))
            ix = rng.choice(range(self.V), p=p.ravel())
            x = np.zeros((self.V, 1))
            x[ix] = 1
            ixes.append(ix)
        return ixes


def _trainers(V: int, H: int, T: int) -> dict:
    """name -> a function running n training steps at min-char-rnn's setting."""
    import rnnfast
    import rnnfast.minchar

    rng = np.random.default_rng(0)
    ids = rng.integers(0, V, T + 1)
    inputs, targets = ids[:-1].tolist(), ids[1:].tolist()
    script, drop_in = MinCharRNN(V, H, T), MinCharRNN(V, H, T)
    drop_in.lossFun = rnnfast.minchar.MinCharRNN(*drop_in.params).lossFun
    model = rnnfast.CharLM(V, cell="rnn", hidden_size=H, num_layers=1, dtype=np.float64, seed=0)
    opt = rnnfast.Adagrad(model, lr=0.1)
    x, y = ids[:-1].reshape(T, 1), ids[1:].reshape(T, 1)
    state = [None]

    def charlm(n):
        for _ in range(n):
            _, state[0] = model.train_step(x, y, opt, state[0], clip=5.0)

    def script_steps(runner):
        def run(n):
            for _ in range(n):
                runner.train_step(inputs, targets)

        return run

    return {"min-char-rnn (NumPy)": script_steps(script),
            "drop-in lossFun": script_steps(drop_in), "CharLM float64": charlm}  # fmt: skip


def main(argv=None):
    parser = argparse.ArgumentParser(description="min-char-rnn's setting: training chars/s")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--round-time", type=float, default=1.0, help="seconds per runner")
    parser.add_argument("--smoke", action="store_true", help="one short round")
    args = parser.parse_args(argv)
    if args.smoke:
        args.rounds, args.round_time = 1, 0.05
    V, H, T = 65, 100, 25

    from threadpoolctl import threadpool_limits

    import rnnfast  # noqa: F401 -- loads SciPy's OpenBLAS before threadpool_limits

    rates = {}
    with threadpool_limits(limits=1):
        trainers = _trainers(V, H, T)
        for round_ in range(args.rounds + 1):  # round 0 warms up
            for name, run in trainers.items():
                done, batch, t0 = 0, 1, time.perf_counter()
                while (elapsed := time.perf_counter() - t0) < args.round_time:
                    run(batch)
                    done, batch = done + batch, 2 * batch
                if round_:
                    rates.setdefault(name, []).append(done * T / elapsed)
    base = statistics.median(rates["min-char-rnn (NumPy)"])
    print(f"min-char-rnn's setting (float64, V={V}, H={H}, T={T}, Adagrad, clip 5), 1 thread:")
    for name, r in rates.items():
        rate = statistics.median(r)
        print(f"  {name:22s} {rate:12,.0f} chars/s  {rate / base:6.2f}x the script")


if __name__ == "__main__":
    main()
