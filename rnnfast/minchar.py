"""A drop-in for Karpathy's min-char-rnn: its ``lossFun`` and ``sample``, computed by rnnfast.

An existing script keeps its arrays, its Adagrad loop and its printed losses, and replaces its
two function definitions with::

    m = MinCharRNN(Wxh, Whh, Why, bh, by)
    lossFun, sample = m.lossFun, m.sample

The script's arrays are column-vector float64 (``Wxh (H, V)``, ``Whh (H, H)``, ``Why (V, H)``,
``bh (H, 1)``, ``by (V, 1)``) and are read at every call, so its in-place updates are seen.
"""

from __future__ import annotations

import numpy as np

from .model import CharLM
from .validation import check_array, check_ids, check_int

CLIP = 5.0  # min-char-rnn clips every gradient to [-5, 5] inside lossFun


class MinCharRNN:
    """min-char-rnn's model over the script's own arrays (not copied, read at every call)."""

    def __init__(self, Wxh, Whh, Why, bh, by, *, backend: str = "c"):
        arrays = {"Wxh": Wxh, "Whh": Whh, "Why": Why, "bh": bh, "by": by}
        for name, a in arrays.items():
            if not isinstance(a, np.ndarray):  # a copy would not see the script's updates
                raise TypeError(f"{name}: expected a numpy.ndarray, got {type(a).__name__}")
        H, V = check_array("Wxh", Wxh, ("H", "V"), np.float64, finite=False).shape
        expected = {"Whh": (H, H), "Why": (V, H), "bh": (H, 1), "by": (V, 1)}
        for name, shape in expected.items():
            check_array(name, arrays[name], shape, np.float64, finite=False)
        self.Wxh, self.Whh, self.Why, self.bh, self.by = Wxh, Whh, Why, bh, by
        self._model = CharLM(V, cell="rnn", hidden_size=H, num_layers=1, dtype=np.float64,
                             backend=backend)  # fmt: skip
        self.vocab_size, self.hidden_size = V, H

    def _load_weights(self) -> None:
        """Copy the script's current arrays into the model's layout (row vectors: W = W^T)."""
        p = self._model.params
        p["W_x.0"][...] = self.Wxh.T
        p["W_h.0"][...] = self.Whh.T
        p["b.0"][...] = self.bh[:, 0]
        p["W_y"][...] = self.Why.T
        p["b_y"][...] = self.by[:, 0]

    def _state(self, name: str, h):
        """The script's hidden state (H, 1) as the model's State (L=1, B=1, H)."""
        h = check_array(name, np.asarray(h, np.float64), (self.hidden_size, 1), np.float64)
        return self._model.zero_state(1)._replace(h=h.reshape(1, 1, self.hidden_size).copy())

    def lossFun(self, inputs, targets, hprev):  # noqa: N802 (min-char-rnn's name)
        """inputs, targets are lists of ints; hprev is Hx1 array of initial hidden state.
        Returns the loss (summed over the sequence), gradients on the parameters (clipped to
        [-5, 5]) and the last hidden state, exactly as min-char-rnn's lossFun does."""
        x = check_ids("inputs", inputs, self.vocab_size, ("T",)).reshape(-1, 1)
        y = check_ids("targets", targets, self.vocab_size, ("T",)).reshape(-1, 1)
        if x.shape != y.shape:
            raise ValueError(f"targets: expected {len(x)} ids like inputs, got {len(y)}")
        T = x.shape[0]
        self._load_weights()
        state = self._state("hprev", hprev)
        # rnnfast averages over the T characters, min-char-rnn sums: the gradients times T,
        # then clipped, in the one call of a training step without its update
        loss, grads, state = self._model.gradients(x, y, state, clip=CLIP, scale=T)
        return (
            loss * T,
            grads["W_x.0"].T.copy(),
            grads["W_h.0"].T.copy(),
            grads["W_y"].T.copy(),
            grads["b.0"].reshape(-1, 1).copy(),
            grads["b_y"].reshape(-1, 1).copy(),
            state.h[0, 0].reshape(-1, 1),
        )

    def sample(self, h, seed_ix, n):
        """A sequence of ``n`` integers from the model, starting from ``h`` and the character
        ``seed_ix``; each draw takes one number from NumPy's global random generator, as
        ``np.random.choice(range(V), p=p.ravel())`` does."""
        first_ids = check_ids("seed_ix", [seed_ix], self.vocab_size)
        n = check_int("n", n, minimum=0)
        state = self._state("h", h)
        if n == 0:
            return []
        self._load_weights()
        uniforms = np.random.random_sample((n, 1))  # noqa: NPY002 (the script seeds it)
        return self._model.sampler(first_ids, state).draw(uniforms)[:, 0].tolist()
