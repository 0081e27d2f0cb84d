"""A many-to-one model with rnnfast.layers: read two numbers written as digit strings, "07+85",
and predict their sum from the LSTM's last output through a NumPy softmax head per digit.

    python examples/add_digits.py                     # 3-digit numbers
    python examples/add_digits.py --digits 2 --steps 400

The data is generated; one pair in five (by a fixed rule on the pair) never appears in training,
and the accuracy reported is the exact sum on those held-out pairs (a guess: 1 in 2*10^digits).
"""

from __future__ import annotations

import argparse

import numpy as np
from threadpoolctl import threadpool_limits

import rnnfast
from rnnfast import layers

SYMBOLS = "0123456789+"


def held_out(a, b):
    """The fixed rule that keeps one pair (a, b) in five out of training: a multiplicative hash
    of the pair (no pattern in a + b that training could miss)."""
    return (a * 1_000_003 + b) * 2654435761 % 2**32 < 2**32 // 5


def draw_pairs(rng, n, digits, want_held_out):
    """n pairs of numbers below 10^digits, all from the held-out part or all from the rest."""
    pairs = np.empty((0, 2), np.int64)
    while len(pairs) < n:
        ab = rng.integers(0, 10**digits, (2 * n, 2))
        pairs = np.concatenate([pairs, ab[held_out(ab[:, 0], ab[:, 1]) == want_held_out]])
    return pairs[:n]


def encode(pairs, digits, dtype):
    """One-hot "a+b", zero-padded, batch first: (N, 2 digits + 1, 11); and the sum's digits
    (N, digits + 1), most significant first."""
    text = [f"{a:0{digits}d}+{b:0{digits}d}" for a, b in pairs]
    ids = np.array([[SYMBOLS.index(ch) for ch in s] for s in text])
    x = np.eye(len(SYMBOLS), dtype=dtype)[ids]
    sums = pairs.sum(axis=1)
    y = np.stack([(sums // 10**k) % 10 for k in reversed(range(digits + 1))], axis=1)
    return x, y


class Head:
    """Per-digit softmax classifiers on the LSTM's last output: logits (N, digits + 1, 10)."""

    def __init__(self, hidden, n_digits, rng, dtype):
        self.W = rng.normal(0, 1 / np.sqrt(hidden), (hidden, n_digits * 10)).astype(dtype)
        self.b = np.zeros(n_digits * 10, dtype)
        self.n_digits = n_digits
        self.moments = [np.zeros_like(p) for p in (self.W, self.b, self.W, self.b)]
        self.t = 0

    def logits(self, h):
        return (h @ self.W + self.b).reshape(len(h), self.n_digits, 10)

    def loss_and_grad(self, h, y):
        """Mean cross-entropy over examples and digits; its gradient for h, and the head's
        own gradients."""
        z = self.logits(h)
        p = np.exp(z - z.max(axis=2, keepdims=True))
        p /= p.sum(axis=2, keepdims=True)
        rows, cols = np.indices(y.shape)
        loss = -np.mean(np.log(p[rows, cols, y]))
        dz = p
        dz[rows, cols, y] -= 1
        dz = dz.reshape(len(h), -1) / y.size
        return loss, dz @ self.W.T, (h.T @ dz, dz.sum(axis=0))

    def adam_step(self, grads, lr, beta1=0.9, beta2=0.999, eps=1e-8):
        """Adam on the head's two arrays (the LSTM's parameters use rnnfast.Adam)."""
        self.t += 1
        for param, grad, m, v in zip((self.W, self.b), grads, self.moments[:2],
                                     self.moments[2:], strict=True):  # fmt: skip
            m += (1 - beta1) * (grad - m)
            v += (1 - beta2) * (grad * grad - v)
            m_hat, v_hat = m / (1 - beta1**self.t), v / (1 - beta2**self.t)
            param -= lr * m_hat / (np.sqrt(v_hat) + eps)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--digits", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-2)
    parser.add_argument("--backend", choices=["c", "numpy"], default="c")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    # One BLAS thread: the head's NumPy products and the LSTM's kernels run on two OpenBLAS
    # copies, whose thread pools fight over the cores when they alternate (README).
    with threadpool_limits(1):
        train_and_evaluate(args)


def train_and_evaluate(args):

    dtype = np.float32
    rng = np.random.default_rng(args.seed)
    lstm = layers.LSTM(len(SYMBOLS), args.hidden, num_layers=args.layers, dtype=dtype,
                       backend=args.backend, batch_first=True, seed=args.seed)  # fmt: skip
    head = Head(args.hidden, args.digits + 1, rng, dtype)
    optimizer = rnnfast.Adam(lstm, lr=args.lr)
    report_every = max(1, args.steps // 10)
    for step in range(1, args.steps + 1):
        x, y = encode(draw_pairs(rng, args.batch, args.digits, False), args.digits, dtype)
        out, _, cache = lstm.forward(x)  # out (B, T, H)
        loss, dh_last, head_grads = head.loss_and_grad(out[:, -1], y)
        dout = np.zeros_like(out)  # only the last step's output feeds the head
        dout[:, -1] = dh_last
        _, _, grads = lstm.backward(dout, cache, input_grad=False)
        lstm.clip_grads(grads, max_norm=5.0)
        optimizer.step(grads)
        head.adam_step(head_grads, args.lr)
        if step % report_every == 0:
            print(f"step {step:5d}  train loss {loss:.4f}")

    x, y = encode(draw_pairs(np.random.default_rng(12345), 2000, args.digits, True),
                  args.digits, dtype)  # fmt: skip
    out, _, _ = lstm.forward(x)
    predicted = head.logits(out[:, -1]).argmax(axis=2)
    digit_accuracy = np.mean(predicted == y)
    accuracy = np.mean(np.all(predicted == y, axis=1))
    print(f"held-out digits right: {100 * digit_accuracy:.1f}%")
    print(f"held-out sums exactly right: {100 * accuracy:.1f}%")


if __name__ == "__main__":
    main()
