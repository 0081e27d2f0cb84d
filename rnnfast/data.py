"""Text in, character ids out: the vocabulary, the train/validation split, the batches of
truncated backpropagation through time, and the built-in corpus."""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from .validation import INDEX_DTYPE, check_ids, check_int, check_real


class Vocab:
    """An ordered set of characters; a character's id is its position.

    ``Vocab.from_text(text)`` takes the sorted set of code points of a text (the default);
    ``Vocab(chars)`` keeps an explicit order, e.g. min-char-rnn's ``chars`` list.
    """

    def __init__(self, chars: Iterable[str]):
        chars = list(chars)
        if not chars:
            raise ValueError("a vocabulary needs at least one character, got none")
        for ch in chars:
            if not isinstance(ch, str) or len(ch) != 1:
                raise ValueError(f"vocabulary entries must be single characters, got {ch!r}")
        seen = set()
        for ch in chars:
            if ch in seen:
                raise ValueError(f"character {ch!r} appears twice in the vocabulary")
            seen.add(ch)
        self.chars = "".join(chars)
        self._index = {ch: i for i, ch in enumerate(self.chars)}
        self._lookup = np.array([ord(ch) for ch in self.chars], dtype=np.uint32)

    @classmethod
    def from_text(cls, text: str) -> Vocab:
        """The sorted set of the text's Unicode code points."""
        if not isinstance(text, str):
            raise TypeError(f"text: expected str, got {type(text).__name__}")
        if not text:
            raise ValueError("cannot build a vocabulary from an empty text")
        return cls(sorted(set(text)))

    def __len__(self) -> int:
        return len(self.chars)

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocab) and self.chars == other.chars

    def __hash__(self) -> int:
        return hash(self.chars)

    def __repr__(self) -> str:
        return (
            f"Vocab({len(self)} characters: {self.chars[:40]!r}{'...' if len(self) > 40 else ''})"
        )

    def encode(self, text: str, *, skip_unknown: bool = False) -> np.ndarray:
        """Character ids (int64) of ``text``.

        A character outside the vocabulary is a ValueError naming it, or, with
        ``skip_unknown=True``, dropped with a warning that names it.
        """
        if not isinstance(text, str):
            raise TypeError(f"text: expected str, got {type(text).__name__}")
        index = self._index
        try:
            return np.fromiter((index[ch] for ch in text), dtype=INDEX_DTYPE, count=len(text))
        except KeyError:
            pass
        unknown = self.unknown(text)
        listing = char_listing(unknown)
        if not skip_unknown:
            raise ValueError(
                f"{len(unknown)} character(s) not in the vocabulary: {listing}"
                " (pass skip_unknown=True to drop them)"
            ) from None
        warnings.warn(f"dropping character(s) not in the vocabulary: {listing}", stacklevel=2)
        kept = [index[ch] for ch in text if ch in index]
        return np.array(kept, dtype=INDEX_DTYPE)

    def unknown(self, text: str) -> list[str]:
        """The characters of ``text`` outside the vocabulary, sorted, each once."""
        return sorted(set(text) - self._index.keys())

    def decode(self, ids) -> str:
        """The text of a sequence of ids; an id outside [0, len(vocab)) is a ValueError."""
        if np.size(ids) == 0:
            return ""
        ids = check_ids("ids", ids, len(self))
        return self._lookup[ids.ravel()].tobytes().decode("utf-32-le")


def char_listing(chars: list[str], most: int = 10) -> str:
    """The first ``most`` of ``chars`` as Python literals, comma-separated, then " ..." if
    there are more: how messages name unknown characters."""
    return ", ".join(repr(ch) for ch in chars[:most]) + (" ..." if len(chars) > most else "")


def split(ids: np.ndarray, val_fraction: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Contiguous train/validation split: the validation set is the last ``val_fraction``,
    cut where nanoGPT's shakespeare_char cuts it (train = the first int(n (1 - f)))."""
    check_real("val_fraction", val_fraction, low=0.0, high=1.0, low_inclusive=True)
    n_train = int(len(ids) * (1.0 - val_fraction))
    return ids[:n_train], ids[n_train:]


class Batches:
    """Truncated-BPTT batches: the ids are cut into ``batch_size`` contiguous streams, and step
    ``k`` of an epoch is the window ``[k T, (k + 1) T)`` of every stream, so the hidden state
    carried from step k to k + 1 continues each stream.

    ``batch(k)`` returns ``(x, y)``, int64 arrays of shape (T, B) with ``y`` the next character
    of ``x``; iterating yields the steps of one epoch.
    """

    def __init__(self, ids: np.ndarray, batch_size: int, seq_length: int):
        batch_size = check_int("batch_size", batch_size)
        seq_length = check_int("seq_length", seq_length)
        ids = np.asarray(ids, dtype=INDEX_DTYPE)
        stream_length = (len(ids) - 1) // batch_size
        if stream_length < seq_length:
            need = batch_size * seq_length + 1
            raise ValueError(
                f"a text of {len(ids)} characters is shorter than one batch: batch_size "
                f"{batch_size} x seq_length {seq_length} needs at least {need}"
            )
        self.batch_size = batch_size
        self.seq_length = seq_length
        self.steps_per_epoch = stream_length // seq_length
        used = self.steps_per_epoch * seq_length
        starts = np.arange(batch_size) * stream_length
        # (B, used + 1) windows: inputs are [:, :-1], targets [:, 1:]
        self._streams = ids[starts[:, None] + np.arange(used + 1)]

    def __len__(self) -> int:
        return self.steps_per_epoch

    def batch(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= k < self.steps_per_epoch:
            raise IndexError(f"batch {k} out of range [0, {self.steps_per_epoch})")
        T = self.seq_length
        window = self._streams[:, k * T : (k + 1) * T + 1]
        return np.ascontiguousarray(window[:, :-1].T), np.ascontiguousarray(window[:, 1:].T)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for k in range(self.steps_per_epoch):
            yield self.batch(k)


# The built-in corpus: the source of these standard-library modules, in this order.  It is on
# every machine that runs Python, needs no network, and ships nobody's text with the package.
BUILTIN_MODULES = (
    "abc", "argparse", "ast", "base64", "bisect", "calendar", "collections", "colorsys",
    "configparser", "contextlib", "copy", "csv", "dataclasses", "datetime", "decimal", "difflib",
    "enum", "fileinput", "fnmatch", "fractions", "ftplib", "functools", "getopt", "gettext",
    "glob", "gzip", "heapq", "hmac", "html", "inspect", "ipaddress", "json", "locale", "logging",
    "mailbox", "netrc", "numbers", "operator", "optparse", "os", "pathlib", "pickle", "pprint",
    "queue", "quopri", "random", "re", "reprlib", "sched", "secrets", "selectors", "shlex",
    "shutil", "signal", "smtplib", "socket", "statistics", "string", "subprocess", "tarfile",
    "tempfile", "textwrap", "threading", "timeit", "tokenize", "trace", "traceback", "types",
    "typing", "uuid", "warnings", "wave", "weakref", "zipfile",
)  # fmt: skip


def builtin_corpus() -> str:
    """The concatenated source of ``BUILTIN_MODULES`` from the running Python's standard library.

    A module this Python lacks (or ships without source) is skipped.
    """
    parts = []
    for name in BUILTIN_MODULES:
        spec = importlib.util.find_spec(name)
        origin = spec.origin if spec else None
        if not origin or not origin.endswith(".py"):
            continue
        parts.append(Path(origin).read_text(encoding="utf-8"))
    if not parts:
        raise RuntimeError("no standard-library source found for the built-in corpus")
    return "\n".join(parts)


def load_text(path) -> str:
    """A UTF-8 text file, with a clear error when it is missing, empty or not UTF-8."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"no such text file: {path}") from None
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not UTF-8 text ({err.reason} at byte {err.start})") from None
    if not text:
        raise ValueError(f"{path} is empty")
    return text
