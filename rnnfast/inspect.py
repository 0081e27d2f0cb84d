"""See inside a model: every layer's state at every character of a text, the model's
predictions there, and the units that track a property of the text.

    acts = rnnfast.inspect.activations(model, text)       # one pass of forward's kernels
    rnnfast.inspect.search_units(acts, "quotes")          # [(layer, unit, correlation), ...]
    rnnfast.inspect.search_units(acts, r"\\d+")           # a regular expression's matches
    rnnfast.viz.render_page(acts)                         # the same as a self-contained page

``activations`` runs the kernels ``CharLM.forward`` runs (``rnnfast.stack.forward``, then the
output layer's ``linear_forward``) over chunks of the text, carrying the state, and keeps what
forward computes on the way: so its logits and states are forward's own bits over the same
chunks, on either backend.  Dimension letters: ``N`` characters, ``L`` layers, ``H`` hidden
size, ``G`` = gates x H, ``V`` vocabulary, ``k`` candidates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np

from . import stack
from .core import CELL_NAMES, GATES
from .validation import check_array, check_choice, check_ids, check_int

CHUNK = 4096  # characters a pass: the (T, 1, G) buffers of one chunk bound the memory
TOP_K = 5  # candidates kept by default


@dataclass(frozen=True, eq=False)  # arrays: == would compare them elementwise
class Activations:
    """What a model computes at every character of a text (``activations``).

    Attributes
    ----------
    ids : (N,) int64
        The characters' ids.
    h : (N, L, H)
        Every layer's hidden state after reading each character, in the model's dtype.
    c : (N, L, H) or None
        An LSTM's cell state after each character; None for an RNN or a GRU.
    gates : (N, L, G) or None
        Every layer's activated gates at each character, in the kernels' order: an LSTM's
        i, f, g, o (G = 4H), a GRU's r, z, n (G = 3H).  None for an RNN, whose kernel keeps
        no gates (its one gate, the tanh, is h itself), and when not asked for.
    logits : (N, V)
        The output layer's logits after each character: what ``CharLM.forward`` returns.
    next_prob : (N - 1,) float64
        The probability given to the actual next character: softmax(logits[t])[ids[t + 1]].
    top_ids, top_probs : (N, k) int64, float64
        The k likeliest next characters after each character and their probabilities, most
        likely first (ties: lower id first).
    loss : (N - 1,) float64
        Per-character loss in nats, -log next_prob: its mean is ``CharLM.loss`` over the text.
    cell : str
        "lstm", "rnn" or "gru".
    text : str or None
        The text, when ``activations`` was given one (None: it was given ids).
    chars : str or None
        The model's vocabulary in id order (None for a model without a ``Vocab``).
    """

    ids: np.ndarray
    h: np.ndarray
    c: np.ndarray | None
    gates: np.ndarray | None
    logits: np.ndarray
    next_prob: np.ndarray
    top_ids: np.ndarray
    top_probs: np.ndarray
    loss: np.ndarray
    cell: str
    text: str | None = None
    chars: str | None = None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def num_layers(self) -> int:
        return self.h.shape[1]

    @property
    def hidden_size(self) -> int:
        return self.h.shape[2]

    def head(self, n: int) -> Activations:
        """The activations of the first ``n`` characters (views, not copies)."""
        n = check_int("n", n)
        cut = {}
        for name in ("ids", "h", "c", "gates", "logits", "top_ids", "top_probs", "text"):
            value = getattr(self, name)
            cut[name] = None if value is None else value[:n]
        return replace(self, **cut, next_prob=self.next_prob[: n - 1], loss=self.loss[: n - 1])


def activations(
    model, text, *, top_k: int | None = None, gates: bool = True, chunk: int = CHUNK
) -> Activations:
    """Every layer's state, the gates and the predictions of ``model`` at every character.

    Parameters
    ----------
    model : CharLM
        Either backend, either dtype; dropout is never applied (as in ``forward``).
    text : str or array of int
        A text, encoded with ``model.vocab`` (a character outside it is a ValueError naming
        it), or character ids (N,).  At least one character.
    top_k : int or None
        How many candidates ``top_ids`` and ``top_probs`` keep, at most V (None: 5, or V
        when that is smaller).
    gates : bool
        Keep the gates, (N, L, G): four times the memory of ``h`` for an LSTM; False leaves
        ``gates`` None.
    chunk : int
        Characters a pass of the kernels; the state is carried from one chunk to the next.

    Returns
    -------
    Activations
        From the zero state.  ``logits``, ``h``, ``c`` and ``gates`` are, bit for bit, what
        ``model.forward`` computes over the same chunks with the state carried (over the
        whole text when it fits one chunk); the probabilities are a float64 softmax of the
        logits.
    """
    if not hasattr(model, "vocab_size") or not hasattr(model, "zero_state"):
        raise TypeError(f"model: expected a CharLM, got {type(model).__name__}")
    V, L, H, cell = model.vocab_size, model.num_layers, model.hidden_size, model.cell
    top_k = min(TOP_K, V) if top_k is None else check_int("top_k", top_k)
    chunk = check_int("chunk", chunk)
    if top_k > V:
        raise ValueError(f"top_k: expected at most the vocabulary size {V}, got {top_k}")
    ids, text = _ids_of(model, text)
    N = len(ids)
    dtype = model.dtype
    out_h = np.empty((N, L, H), dtype)
    out_c = np.empty((N, L, H), dtype) if cell == "lstm" else None
    keep_gates = gates and cell != "rnn"
    out_gates = np.empty((N, L, GATES[cell] * H), dtype) if keep_gates else None
    logits = np.empty((N, V), dtype)
    top_ids = np.empty((N, top_k), ids.dtype)
    top_probs = np.empty((N, top_k), np.float64)
    next_prob = np.empty(N - 1, np.float64)
    loss = np.empty(N - 1, np.float64)
    state = model.zero_state(1)
    W_y, b_y = model.params["W_y"], model.params["b_y"]
    bufs = None
    for start in range(0, N, chunk):
        stop = min(start + chunk, N)
        T = stop - start
        if bufs is None or bufs.shape[0] != T:
            bufs = stack.Buffers.allocate(cell, T, 1, H, L, dtype)
        # CharLM._forward's two steps, on this call's own buffers
        stack.forward(model.kernels, bufs, ids[start:stop, None], model._weights, state.h,
                      state.c)  # fmt: skip
        model.kernels.linear_forward(logits[start:stop], bufs.outputs[-1].reshape(T, H), W_y, b_y)
        state = bufs.final_state()
        for k in range(L):
            out_h[start:stop, k] = bufs.hs[k][:, 0]
            if out_c is not None:
                out_c[start:stop, k] = bufs.cs[k][:, 0]
            if out_gates is not None:
                out_gates[start:stop, k] = bufs.gates[k][:, 0]
        # softmax in float64; the next character of the chunk's last one is the next chunk's first
        z = logits[start:stop].astype(np.float64)
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        total = p.sum(axis=1, keepdims=True)
        p /= total
        order = np.argsort(-p, axis=1, kind="stable")[:, :top_k]
        top_ids[start:stop] = order
        top_probs[start:stop] = np.take_along_axis(p, order, axis=1)
        rows = np.arange(min(stop, N - 1) - start)
        following = ids[start + 1 : start + 1 + len(rows)]
        next_prob[start : start + len(rows)] = p[rows, following]
        loss[start : start + len(rows)] = np.log(total[rows, 0]) - z[rows, following]
    chars = None if model.vocab is None else model.vocab.chars
    return Activations(ids, out_h, out_c, out_gates, logits, next_prob, top_ids, top_probs,
                       loss, cell, text, chars)  # fmt: skip


def _ids_of(model, text) -> tuple[np.ndarray, str | None]:
    """(ids (N,), the text or None) of a text or of ids; an empty one is a ValueError."""
    if isinstance(text, str):
        if not text:
            raise ValueError("text: expected at least one character, got an empty text")
        if model.vocab is None:
            raise ValueError("text: the model has no vocabulary (built with an int V); pass ids")
        codes = _codes(text)
        unknown = np.unique(codes[~np.isin(codes, _codes(model.vocab.chars))])
        if unknown.size:
            listing = ", ".join(repr(chr(c)) for c in unknown[:10])
            raise ValueError(
                f"text: {unknown.size} character(s) not in the model's vocabulary: {listing}"
                + (" ..." if unknown.size > 10 else "")
            )
        return model.vocab.encode(text), text
    ids = np.asarray(text)
    if ids.ndim == 1 and ids.size == 0:
        raise ValueError("text: expected at least one character, got no ids")
    return check_ids("text", ids, model.vocab_size, ("N",)), None


# -- properties of a text, one number per character ------------------------------------------

# A one-line string literal (a quote, then anything but its closing quote, a backslash escape
# or a newline, up to its closing quote), or a comment from # to the end of the line: scanned
# left to right, a # inside a string is no comment and a quote inside a comment opens no string.
_TOKENS = re.compile(r"""(?P<quote>(["'])(?:\\.|(?!\2)[^\\\n])*)\2?|(?P<comment>#[^\n]*)""")


def _codes(text: str) -> np.ndarray:
    """The code point of each character, (N,) uint32."""
    return np.frombuffer(text.encode("utf-32-le"), np.uint32)


def _spans(n: int, spans) -> np.ndarray:
    """1.0 inside the (start, end) spans of a text of n characters, 0.0 elsewhere."""
    bounds = np.fromiter((i for span in spans for i in span), np.int64).reshape(-1, 2)
    edges = np.zeros(n + 1, np.int64)
    np.add.at(edges, bounds[:, 0], 1)
    np.add.at(edges, bounds[:, 1], -1)
    return (np.cumsum(edges[:n]) > 0).astype(np.float64)


def _token_spans(text: str, group: str):
    return (m.span(group) for m in _TOKENS.finditer(text) if m.start(group) >= 0)


def inside_quotes(text: str) -> np.ndarray:
    """1 from an opening ' or " to its closing quote, which is outside again (the state after
    reading each character); a string ends at the end of its line, a backslash escapes."""
    return _spans(len(text), _token_spans(text, "quote"))


def inside_brackets(text: str) -> np.ndarray:
    """1 where the depth of ()[]{} after the character is above 0 (an opening bracket is
    inside, the one that closes the outermost outside); a stray closing bracket stays at 0."""
    codes = _codes(text)
    opening, closing = [np.isin(codes, [ord(b) for b in kind]) for kind in ("([{", ")]}")]
    walk = np.cumsum(opening.astype(np.int64) - closing)
    depth = walk - np.minimum(np.minimum.accumulate(walk), 0)  # the walk held at 0 from below
    return (depth > 0).astype(np.float64)


def line_position(text: str) -> np.ndarray:
    """The column of each character, 0 at the start of a line (a newline: its line's length)."""
    n = len(text)
    line_start = np.zeros(n, np.int64)
    starts = np.flatnonzero(_codes(text) == ord("\n")) + 1
    starts = starts[starts < n]
    line_start[starts] = starts
    return (np.arange(n) - np.maximum.accumulate(line_start)).astype(np.float64)


def indentation(text: str) -> np.ndarray:
    """The leading spaces and tabs of each character's line, on every character of it."""
    lines = text.split("\n")
    widths = [len(line) - len(line.lstrip(" \t")) for line in lines]
    lengths = [len(line) + 1 for line in lines]  # each with its newline
    lengths[-1] -= 1
    return np.repeat(np.array(widths, np.float64), lengths)


def inside_comment(text: str) -> np.ndarray:
    """1 from a # outside a string to the end of its line (the newline excluded)."""
    return _spans(len(text), _token_spans(text, "comment"))


def word_start(text: str) -> np.ndarray:
    """1 on the first letter of a word: a letter not preceded by a letter, digit or _."""
    return _spans(len(text), (m.span() for m in re.finditer(r"(?<!\w)[^\W\d_]", text)))


FEATURES = {
    "quotes": inside_quotes,
    "brackets": inside_brackets,
    "line_position": line_position,
    "indent": indentation,
    "comment": inside_comment,
    "word_start": word_start,
}


def feature_values(text: str | None, feature, n: int | None = None) -> np.ndarray:
    """One number per character of ``text``: (N,) float64.

    ``feature`` is a name of ``FEATURES``; a regular expression (a compiled pattern, or a
    string that is not such a name): 1 inside a match, 0 elsewhere; or N numbers of the
    user's own (returned as float64; ``text`` may then be None and ``n`` give N).
    """
    if isinstance(feature, (str, re.Pattern)):
        if not isinstance(text, str):
            raise TypeError(f"text: expected str for the feature {describe(feature)}, got "
                            f"{type(text).__name__}")  # fmt: skip
        if isinstance(feature, str) and feature in FEATURES:
            return FEATURES[feature](text)
        try:
            pattern = re.compile(feature)
        except re.error as err:
            raise ValueError(f"regex {feature!r}: does not compile: {err}") from None
        return _spans(len(text), (m.span() for m in pattern.finditer(text)))
    values = np.asarray(feature)
    n = len(text) if text is not None else n
    if values.dtype.kind not in "biuf":
        raise TypeError(
            f"feature: expected one of {tuple(FEATURES)}, a regular expression or {n} "
            f"numbers, got {type(feature).__name__}"
        )
    return check_array("feature", values.astype(np.float64), (n,))


def describe(feature) -> str:
    """How a page or a table names ``feature``: its name, regex /pattern/, or "your feature"."""
    if isinstance(feature, str) and feature in FEATURES:
        return feature
    if isinstance(feature, (str, re.Pattern)):
        return f"regex /{getattr(feature, 'pattern', feature)}/"
    return "your feature"


# -- which units track a feature --------------------------------------------------------------


class UnitScore(NamedTuple):
    """A unit of a layer and its correlation with a feature over the text."""

    layer: int
    unit: int
    score: float


STATES = ("h", "c", "gates")


def _state_of(acts: Activations, state: str) -> np.ndarray:
    check_choice("state", state, STATES)
    values = getattr(acts, state)
    if values is None:
        if acts.cell != "rnn" and state == "gates":
            why = "activations(..., gates=False) kept none"
        else:
            why = f"{CELL_NAMES[acts.cell]} has no {'cell state' if state == 'c' else 'gates'}"
        raise ValueError(f"state: {state!r} is not in these activations ({why})")
    return values


def correlations(
    acts: Activations, feature, *, text: str | None = None, state: str = "h"
) -> np.ndarray:
    """The Pearson correlation over the text of every unit with ``feature``: (L, U) float64,
    U = H for ``state`` "h" or "c", G for "gates".  A constant unit scores 0.

    ``feature``: as ``feature_values`` takes it (a name or a regex needs the text: ``text``,
    or the one ``acts`` was computed from).  A constant feature is a ValueError.
    """
    X = _state_of(acts, state)
    N, L, U = X.shape
    if isinstance(feature, (str, re.Pattern)):
        text = acts.text if text is None else text
        if text is None:
            raise ValueError(
                f"text: needed for the feature {describe(feature)} (the activations were "
                "computed from ids)"
            )
    if text is not None and len(text) != N:
        raise ValueError(f"text: expected the {N} characters of the activations, got {len(text)}")
    f = feature_values(text, feature, N)
    f = f - f.mean()
    if not np.any(f):
        raise ValueError(f"feature: {describe(feature)} is constant over the text: no unit "
                         "can track it")  # fmt: skip
    X = X.reshape(N, L * U)
    mean = X.mean(axis=0, dtype=np.float64)
    cov, var = np.zeros(L * U), np.zeros(L * U)
    rows = max(1, 2**20 // (L * U))  # float64 blocks of 8 MiB
    for start in range(0, N, rows):
        block = X[start : start + rows].astype(np.float64) - mean
        cov += f[start : start + rows] @ block
        var += np.einsum("nu,nu->u", block, block)
    denominator = np.sqrt(var * (f @ f))
    scores = np.divide(cov, denominator, out=np.zeros(L * U), where=denominator > 0)
    return scores.reshape(L, U)


def search_units(
    acts: Activations,
    feature,
    *,
    text: str | None = None,
    layer: int | None = None,
    top: int = 10,
    state: str = "h",
) -> list[UnitScore]:
    """The ``top`` units that track ``feature`` best: sorted by |correlation| (``correlations``),
    of one ``layer`` or of all (None), as (layer, unit, score)."""
    top = check_int("top", top)
    scores = correlations(acts, feature, text=text, state=state)
    layers = list(range(scores.shape[0]))
    if layer is not None:
        layer = check_int("layer", layer, minimum=0)
        if layer >= scores.shape[0]:
            raise ValueError(f"layer: expected one of 0 .. {scores.shape[0] - 1}, got {layer}")
        layers = [layer]
    chosen = scores[layers]
    order = np.argsort(-np.abs(chosen), axis=None, kind="stable")[:top]
    rows, units = np.unravel_index(order, chosen.shape)
    pairs = zip(rows, units, strict=True)
    return [UnitScore(layers[r], int(u), float(chosen[r, u])) for r, u in pairs]


def check_unit(unit, num_layers: int, hidden_size: int) -> tuple[int, int]:
    """``unit`` (layer, index) as two ints within the model's L layers of H units."""
    if not (isinstance(unit, (tuple, list)) and len(unit) == 2):
        raise ValueError(f"unit: expected (layer, index), got {unit!r}")
    layer = check_int("unit's layer", unit[0], minimum=0)
    index = check_int("unit's index", unit[1], minimum=0)
    if layer >= num_layers:
        raise ValueError(f"unit: layer {layer} out of range: the model has {num_layers} "
                         f"layer(s), 0 .. {num_layers - 1}")  # fmt: skip
    if index >= hidden_size:
        raise ValueError(f"unit: index {index} out of range: a layer has {hidden_size} units, "
                         f"0 .. {hidden_size - 1}")  # fmt: skip
    return layer, index
