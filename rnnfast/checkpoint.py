"""Checkpoints: one ``.npz`` file (never pickle) that holds everything needed to continue training
bit for bit, or to sample.

Layout of the archive (``numpy.savez``, read back with ``allow_pickle=False``):

    meta.json            uint8 array: UTF-8 JSON metadata (below)
    params               the model's flat parameter buffer (its dtype)
    optimizer.<moment>   each optimizer moment, in the parameters' layout (e.g. optimizer.m)
    state.h, state.c     the hidden state carried between training steps, (L, B, H)
    history.<column>     the loss history, one float64/int64 array per column

The metadata JSON sits inside the archive rather than beside it, so a checkpoint is one file and
one atomic rename.  Its keys: ``format`` ("rnnfast-checkpoint"), ``format_version``,
``rnnfast_version``, ``model`` (cell, hidden_size, num_layers, dtype, vocab_size, dropout,
generator: the state of the model's dropout generator), ``vocab`` (the characters, in id
order), ``optimizer`` (name, step_count, hyperparameters) or null, ``training`` (whatever the
trainer needs: step, epoch, batch index, learning rate schedule, data description, ...).  No
absolute path is stored.

Writes are atomic: the archive is written to a temporary file in the destination directory,
flushed and fsynced, then renamed over the destination with ``os.replace``; a crash at any moment
leaves either the previous checkpoint or the new one, never a mixture.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .data import Vocab
from .model import CharLM, State
from .optim import OPTIMIZERS, Optimizer

FORMAT = "rnnfast-checkpoint"
# The newest format this rnnfast reads.  A file is written with the lowest version that holds
# its model, so that an older rnnfast refuses only what it would misread: version 2 added the
# GRU cell and dropout (a version-1 reader would fail on the cell, or resume without dropout).
FORMAT_VERSION = 2
META_KEY = "meta.json"
LATEST = "latest.npz"
BEST = "best.npz"

_OPTIMIZER_CLASSES = {cls.__name__: cls for cls in OPTIMIZERS.values()}
_ZIP_MAGIC = b"PK\x03\x04"
_NPY_MAGIC = b"\x93NUMPY"


class CheckpointError(ValueError):
    """A file that is missing, damaged, foreign or too new to be read as a checkpoint."""


@dataclass
class Checkpoint:
    """What ``load`` returns: a ready model, its optimizer (or None), the carried hidden state
    (or None), the trainer's metadata and the loss history."""

    model: CharLM
    optimizer: Optimizer | None
    state: State | None
    training: dict
    history: dict[str, np.ndarray]
    meta: dict
    path: Path = field(default_factory=Path)

    @property
    def step(self) -> int:
        return int(self.training.get("step", 0))


def resolve(path) -> Path:
    """The checkpoint file a user means by ``path``: a file as is, a directory's ``latest.npz``,
    and ``runs/latest`` for ``runs/latest.npz``."""
    path = Path(path)
    if path.is_dir():
        return path / LATEST
    if not path.exists() and path.suffix != ".npz" and path.with_name(path.name + ".npz").exists():
        return path.with_name(path.name + ".npz")
    return path


# -- writing ---------------------------------------------------------------------------------


def save(
    path,
    model: CharLM,
    optimizer: Optimizer | None = None,
    *,
    state: State | None = None,
    training: dict | None = None,
    history: dict | None = None,
) -> Path:
    """Write a checkpoint atomically to ``path`` (a ``.npz`` file); returns the path.

    ``training`` is JSON-serialisable metadata stored as is; ``history`` maps column names to
    1-D arrays.  The parent directory is created if needed.
    """
    if model.vocab is None:
        raise ValueError("model: a checkpoint needs a model built from a Vocab, not a size")
    path = Path(path)
    meta = {
        "format": FORMAT,
        "format_version": 2 if model.cell == "gru" or model.dropout else 1,
        "rnnfast_version": _version(),
        "model": {
            "cell": model.cell,
            "hidden_size": model.hidden_size,
            "num_layers": model.num_layers,
            "dtype": model.dtype.name,
            "vocab_size": model.vocab_size,
            "dropout": model.dropout,
            "generator": model.generator.bit_generator.state,
        },
        "vocab": model.vocab.chars,
        "optimizer": None,
        "training": training or {},
    }
    arrays = {"params": model.flat_params}
    if optimizer is not None:
        if optimizer.model is not model:
            raise ValueError("optimizer: it was created for a different model")
        sd = optimizer.state_dict()
        meta["optimizer"] = {
            "name": sd["name"],
            "step_count": sd["step_count"],
            "hyperparameters": sd["hyperparameters"],
            "moments": sorted(sd["moments"]),
        }
        arrays.update({f"optimizer.{k}": v for k, v in sd["moments"].items()})
    if state is not None:
        arrays["state.h"] = np.asarray(state.h)
        if state.c is not None:
            arrays["state.c"] = np.asarray(state.c)
    for name, column in (history or {}).items():
        arrays[f"history.{name}"] = np.asarray(column)
    # ensure_ascii: any character (even a lone surrogate) survives the UTF-8 round trip
    blob = json.dumps(meta, ensure_ascii=True, allow_nan=True).encode("ascii")
    arrays[META_KEY] = np.frombuffer(blob, dtype=np.uint8)
    _atomic_savez(path, arrays)
    return path


def _atomic_savez(path: Path, arrays: dict) -> None:
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~_umask())  # mkstemp makes it 0600
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _version() -> str:
    from . import __version__

    return __version__


# -- reading ---------------------------------------------------------------------------------


def read(path) -> tuple[dict, dict[str, np.ndarray]]:
    """The metadata and every array of a checkpoint, checked for damage, without building a
    model.  Raises CheckpointError naming the problem."""
    path = resolve(path)
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}")
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory without a {LATEST}")
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as err:
        raise CheckpointError(f"cannot read {path}: {err.strerror}") from None
    if not head:
        raise CheckpointError(f"{path} is empty (a truncated checkpoint?)")
    if head.startswith(_NPY_MAGIC):
        raise CheckpointError(f"{path} is a single .npy array, not an rnnfast checkpoint")
    if not head.startswith(_ZIP_MAGIC):
        raise CheckpointError(f"{path} is not an rnnfast checkpoint (not a .npz archive)")
    try:
        archive = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as err:
        raise CheckpointError(
            f"{path} is truncated or corrupted (not a readable .npz archive: {err})"
        ) from None
    with archive:
        if META_KEY not in archive.files:
            raise CheckpointError(
                f"{path} is a .npz archive but not an rnnfast checkpoint (no {META_KEY!r} entry)"
            )
        arrays = {}
        for key in archive.files:
            try:
                arrays[key] = archive[key]
            except (zipfile.BadZipFile, ValueError, OSError, EOFError, zlib.error) as err:
                raise CheckpointError(
                    f"{path} is corrupted: entry {key!r} cannot be read ({err})"
                ) from None
    blob = arrays.pop(META_KEY)
    try:
        if blob.dtype != np.uint8 or blob.ndim != 1:
            raise ValueError(f"expected a 1-D uint8 array, got {blob.dtype} {blob.shape}")
        meta = json.loads(blob.tobytes().decode("ascii"))
        if not isinstance(meta, dict):
            raise ValueError("not a JSON object")
    except (ValueError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path} is corrupted: its metadata is not valid ({err})") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not an rnnfast checkpoint (format {meta.get('format')!r})"
        )
    version = meta.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{path} has an invalid format version {version!r}")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {version}, newer than this rnnfast "
            f"{_version()} reads (up to {FORMAT_VERSION}); upgrade rnnfast to load it"
        )
    return meta, arrays


def load(path, *, dtype=None, backend: str | None = None) -> Checkpoint:
    """Read a checkpoint and rebuild its model (and optimizer, if saved).

    ``path`` may be a file or a training directory (its ``latest.npz``).  ``dtype`` converts the
    model (float32 <-> float64, e.g. to sample from a float64 checkpoint in float32); the
    default keeps the saved dtype.  Raises CheckpointError (a ValueError) naming the problem.
    """
    path = resolve(path)
    meta, arrays = read(path)
    return build(path, meta, arrays, dtype=dtype, backend=backend)


def build(
    path, meta: dict, arrays: dict[str, np.ndarray], *, dtype=None, backend: str | None = None
) -> Checkpoint:
    """The second half of ``load``: a Checkpoint from what ``read(path)`` returned, for a
    caller that chooses ``dtype`` or ``backend`` from the metadata."""
    try:
        return _build(Path(path), meta, arrays, dtype, backend)
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError) as err:
        detail = f"missing {err}" if isinstance(err, KeyError) else str(err)
        raise CheckpointError(f"{path} is inconsistent: {detail}") from None


def _build(path, meta, arrays, dtype, backend) -> Checkpoint:
    config = meta["model"]
    vocab = Vocab(meta["vocab"])
    if len(vocab) != config["vocab_size"]:
        raise CheckpointError(
            f"{path} is inconsistent: vocab has {len(vocab)} characters, "
            f"the model {config['vocab_size']}"
        )
    dtype = np.dtype(config["dtype"] if dtype is None else dtype)
    model = CharLM(
        vocab,
        cell=config["cell"],
        hidden_size=config["hidden_size"],
        num_layers=config["num_layers"],
        dtype=dtype,
        backend=backend or "c",
        dropout=config.get("dropout", 0.0),
    )
    if "generator" in config:  # the dropout masks continue where they stopped
        model.generator.bit_generator.state = config["generator"]
    params = arrays["params"]
    if params.shape != model.flat_params.shape:
        raise CheckpointError(
            f"{path} is inconsistent: params has shape {params.shape}, the "
            f"model config needs {model.flat_params.shape}"
        )
    model.flat_params[...] = params

    optimizer = None
    opt_meta = meta.get("optimizer")
    if opt_meta is not None:
        cls = _OPTIMIZER_CLASSES.get(opt_meta["name"])
        if cls is None:
            raise CheckpointError(f"{path} names an unknown optimizer {opt_meta['name']!r}")
        optimizer = cls(model, **opt_meta["hyperparameters"])
        moments = {name: arrays[f"optimizer.{name}"] for name in opt_meta["moments"]}
        optimizer.load_state_dict(
            {
                "name": opt_meta["name"],
                "step_count": opt_meta["step_count"],
                "hyperparameters": opt_meta["hyperparameters"],
                "moments": moments,
            }
        )

    state = None
    if "state.h" in arrays:
        h = arrays["state.h"].astype(dtype)
        c = arrays["state.c"].astype(dtype) if "state.c" in arrays else None
        if (c is None) != (model.cell != "lstm"):
            raise CheckpointError(
                f"{path} is inconsistent: the saved state does not fit a {model.cell} model"
            )
        state = model.check_state(State(h, c), h.shape[1] if h.ndim == 3 else -1)

    history = {
        key[len("history.") :]: value for key, value in arrays.items() if key.startswith("history.")
    }
    return Checkpoint(model, optimizer, state, meta.get("training") or {}, history, meta, path)
