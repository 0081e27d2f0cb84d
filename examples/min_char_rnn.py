"""min-char-rnn's training loop, unchanged but for two lines: lossFun and sample come from
rnnfast.minchar.MinCharRNN, which computes them with rnnfast's kernels.

    python examples/min_char_rnn.py [TEXT_FILE] [--iterations N]

Without a file it reads rnnfast's built-in corpus.  It prints min-char-rnn's lines:
"iter N, loss: X" (the smoothed summed loss) and a 200-character sample every 100 iterations.
"""

import argparse

import numpy as np

import rnnfast
from rnnfast.minchar import MinCharRNN

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("file", nargs="?", help="a UTF-8 text file (default: the built-in corpus)")
parser.add_argument("--iterations", type=int, default=2000)
args = parser.parse_args()

data = rnnfast.load_text(args.file) if args.file else rnnfast.builtin_corpus()
chars = sorted(set(data))
data_size, vocab_size = len(data), len(chars)
print(f"data has {data_size} characters, {vocab_size} unique.")
char_to_ix = {ch: i for i, ch in enumerate(chars)}
ix_to_char = dict(enumerate(chars))

hidden_size = 100
seq_length = 25
learning_rate = 1e-1

np.random.seed(0)  # noqa: NPY002 (min-char-rnn uses the global generator)
Wxh = np.random.randn(hidden_size, vocab_size) * 0.01  # noqa: NPY002
Whh = np.random.randn(hidden_size, hidden_size) * 0.01  # noqa: NPY002
Why = np.random.randn(vocab_size, hidden_size) * 0.01  # noqa: NPY002
bh = np.zeros((hidden_size, 1))
by = np.zeros((vocab_size, 1))

# the switch: these two lines replace min-char-rnn's two function definitions
m = MinCharRNN(Wxh, Whh, Why, bh, by)
lossFun, sample = m.lossFun, m.sample

n, p = 0, 0
mWxh, mWhh, mWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
mbh, mby = np.zeros_like(bh), np.zeros_like(by)
smooth_loss = -np.log(1.0 / vocab_size) * seq_length
while n < args.iterations:
    if p + seq_length + 1 >= len(data) or n == 0:
        hprev = np.zeros((hidden_size, 1))
        p = 0
    inputs = [char_to_ix[ch] for ch in data[p : p + seq_length]]
    targets = [char_to_ix[ch] for ch in data[p + 1 : p + seq_length + 1]]

    if n % 100 == 0:
        sample_ix = sample(hprev, inputs[0], 200)
        txt = "".join(ix_to_char[ix] for ix in sample_ix)
        print(f"----\n {txt} \n----")

    loss, dWxh, dWhh, dWhy, dbh, dby, hprev = lossFun(inputs, targets, hprev)
    smooth_loss = smooth_loss * 0.999 + loss * 0.001
    if n % 100 == 0:
        print(f"iter {n}, loss: {smooth_loss:f}")

    for param, dparam, mem in zip(
        [Wxh, Whh, Why, bh, by],
        [dWxh, dWhh, dWhy, dbh, dby],
        [mWxh, mWhh, mWhy, mbh, mby],
        strict=True,
    ):
        mem += dparam * dparam
        param += -learning_rate * dparam / np.sqrt(mem + 1e-8)  # Adagrad, in place

    p += seq_length
    n += 1
