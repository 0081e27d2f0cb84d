"""The training loop: batches, learning-rate schedule, validation, checkpoints and exact resume.

    trainer = Trainer(text, TrainConfig(hidden_size=64), out_dir="runs")
    trainer.train(steps=1000)                     # checkpoints runs/latest.npz and runs/best.npz
    trainer = Trainer.resume("runs", text)        # continues bit for bit
    trainer.train(steps=2000)                     # step counts start at the first run

The loop is truncated BPTT over ``Batches``: the hidden state is carried from one step to the
next and reset to zeros at the start of each epoch.  Everything the next step depends on (the
parameters, the optimizer's moments and step count, the step, the epoch and batch index, the
carried state) goes into the checkpoint, and the learning rate is a pure function of the step, so
``k`` steps, save, load, ``n - k`` steps give the same parameters as ``n`` steps straight.  The
batches are deterministic (no shuffling), so there is no data RNG to save.

The ``--out`` directory holds ``latest.npz`` (written at every validation, at the end and on
Ctrl-C), ``best.npz`` (the lowest validation loss), ``history.csv``, ``history.json`` and, when
matplotlib is installed, ``loss.png``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import signal
import threading
import time
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from . import checkpoint
from .data import Batches, Vocab, split
from .model import CharLM, State
from .optim import OPTIMIZERS

LN2 = math.log(2.0)
DEFAULT_LR = {"adam": 2e-3, "rmsprop": 2e-3, "adagrad": 0.1, "sgd": 0.1}
# Validation reads its text as EVAL_BATCH streams in windows of EVAL_WINDOW characters, whatever
# the training batch: few calls for a large validation set, bounded memory for a large model.
EVAL_BATCH = 32
EVAL_WINDOW = 128


@dataclass
class TrainConfig:
    """Everything that defines a training run; stored in every checkpoint."""

    cell: str = "lstm"               # "lstm", "rnn" or "gru"
    hidden_size: int = 128
    num_layers: int = 2
    batch_size: int = 50             # B contiguous streams
    seq_length: int = 50             # T characters per step (the BPTT window)
    optimizer: str = "adam"          # a key of rnnfast.optim.OPTIMIZERS
    lr: float | None = None          # None: the optimizer's usual value (DEFAULT_LR)
    momentum: float = 0.9            # sgd only
    lr_decay: float = 1.0            # lr = lr * lr_decay ** (step // lr_decay_every)
    lr_decay_every: int = 0          # steps; 0 never decays
    clip: float | None = 5.0         # clip each gradient element to [-clip, clip]
    max_norm: float | None = None    # and/or the global gradient norm
    val_every: int = 250             # steps between validations (and checkpoints)
    val_fraction: float = 0.1        # the last 10% of the text, contiguous
    max_loss: float | None = None    # a loss above this stops training; None: 3 ln V + 5
    seed: int = 0                    # the initial weights
    dtype: str = "float32"
    backend: str | None = None       # None: "c", the C kernels

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer: expected one of {sorted(OPTIMIZERS)}, "
                             f"got {self.optimizer!r}")
        if self.lr is None:
            self.lr = DEFAULT_LR[self.optimizer]
        self.dtype = np.dtype(self.dtype).name
        for name in ("batch_size", "seq_length", "val_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive integer, got {value!r}")
        if not isinstance(self.lr_decay_every, int) or self.lr_decay_every < 0:
            raise ValueError(f"lr_decay_every: expected a non-negative integer, "
                             f"got {self.lr_decay_every!r}")
        if not (math.isfinite(self.lr_decay) and 0 < self.lr_decay <= 1):
            raise ValueError(f"lr_decay: expected a number in (0, 1], got {self.lr_decay!r}")
        for name in ("clip", "max_norm", "max_loss"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name}: expected a positive number or None, got {value!r}")

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


class TrainingDiverged(RuntimeError):
    """The loss became non-finite or exploded; the last good checkpoint is kept."""


def data_description(text: str, name: str) -> dict:
    """What a checkpoint records about its training text: no path, a name and a fingerprint."""
    return {"name": name, "chars": len(text),
            "sha256": hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()}


def evaluate(model: CharLM, ids, batch_size: int = EVAL_BATCH,
             seq_length: int = EVAL_WINDOW) -> float:
    """Mean cross-entropy in nats per character of predicting ``ids[1:]`` from ``ids[:-1]``.

    The ids are cut into ``batch_size`` contiguous streams read in windows of ``seq_length``
    with the hidden state carried between windows (as in training); the few predictions left
    over by the cut form one more stream.  Every character but the first is scored once.
    """
    ids = np.asarray(ids)
    n = len(ids) - 1
    if n < 1:
        raise ValueError(f"evaluation needs at least 2 characters, got {len(ids)}")
    B = max(1, min(batch_size, n // seq_length))
    stream = n // B
    total = 0.0
    starts = np.arange(B) * stream
    total += _stream_loss(model, ids, starts, stream, seq_length)
    rest = n - B * stream
    if rest:
        total += _stream_loss(model, ids, np.array([B * stream]), rest, seq_length)
    return total / n


def _stream_loss(model, ids, starts, length, T) -> float:
    """Summed loss over streams ``ids[s : s + length + 1]`` for s in starts, state carried."""
    state = None
    total = 0.0
    for t0 in range(0, length, T):
        t1 = min(t0 + T, length)
        window = ids[starts[None, :] + np.arange(t0, t1 + 1)[:, None]]  # (t1 - t0 + 1, B)
        loss, state = model.loss(window[:-1], window[1:], state)
        total += float(loss) * (t1 - t0) * len(starts)
    return total


class Trainer:
    """Trains a CharLM on a text; ``Trainer.resume`` continues from a checkpoint exactly.

    Parameters
    ----------
    text : str
        The whole corpus; the last ``config.val_fraction`` of it is the validation set.
    config : TrainConfig
    out_dir : path or None
        Where checkpoints and the loss history go; None writes nothing unless asked (``save``).
    data_name : str
        How the checkpoint names the text (e.g. a file name, or "builtin"); never a full path.
    log : callable or None
        Receives progress messages (one line each); None is silent.
    """

    def __init__(self, text: str, config: TrainConfig | None = None, *, out_dir=None,
                 data_name: str = "text", log: Callable[[str], None] | None = None,
                 _vocab: Vocab | None = None):
        self.config = config = config or TrainConfig()
        self.vocab = _vocab or Vocab.from_text(text)
        self.data = data_description(text, data_name)
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.log = log or (lambda message: None)
        ids = self.vocab.encode(text)
        self.train_ids, self.val_ids = split(ids, config.val_fraction)
        self.batches = Batches(self.train_ids, config.batch_size, config.seq_length)
        self.model = CharLM(self.vocab, cell=config.cell, hidden_size=config.hidden_size,
                            num_layers=config.num_layers, dtype=config.dtype,
                            backend=config.backend or "c", seed=config.seed)
        cls = OPTIMIZERS[config.optimizer]
        extra = {"momentum": config.momentum} if config.optimizer == "sgd" else {}
        self.optimizer = cls(self.model, lr=config.lr, **extra)
        self.step = 0           # steps done since the start of training
        self.epoch = 0          # epochs completed
        self.batch_index = 0    # the next batch of the current epoch
        self.state: State | None = None
        self.history = {"step": [], "epoch": [], "lr": [], "train_loss": []}
        self.val_history = {"val_step": [], "val_loss": []}
        self.best_val_loss = math.inf
        self.best_val_step = -1
        self.last_saved: tuple[Path, int] | None = None
        self.last_val_loss = math.nan
        self._interrupted = False
        self.max_loss = config.max_loss or 3 * math.log(len(self.vocab)) + 5

    # -- resume ----------------------------------------------------------------------------

    @classmethod
    def resume(cls, path, text: str, *, out_dir=None, data_name: str = "text",
               log: Callable[[str], None] | None = None, **overrides) -> Trainer:
        """Continue the training saved in checkpoint ``path`` (a file or an out directory) on
        ``text``.  ``overrides`` may change the schedule (``lr``, ``lr_decay``,
        ``lr_decay_every``, ``clip``, ``max_norm``, ``val_every``, ``max_loss``, ``backend``);
        the model, batch shape and optimizer come from the checkpoint."""
        ck = checkpoint.load(path)
        training = ck.training
        if "config" not in training or ck.optimizer is None:
            raise checkpoint.CheckpointError(
                f"{ck.path} holds a model without a training state: it can be sampled or "
                "evaluated, not resumed")
        allowed = {"lr", "lr_decay", "lr_decay_every", "clip", "max_norm", "val_every",
                   "max_loss", "backend"}
        unknown = set(overrides) - allowed
        if unknown:
            raise ValueError(f"cannot change {sorted(unknown)} when resuming; allowed: "
                             f"{sorted(allowed)}")
        saved = dict(training["config"])
        saved.update({k: v for k, v in overrides.items() if v is not None})
        config = TrainConfig.from_dict(saved)
        vocab = ck.model.vocab
        missing = sorted(set(text) - set(vocab.chars))
        if missing:
            listing = ", ".join(repr(ch) for ch in missing[:10])
            raise ValueError(f"the text has {len(missing)} character(s) not in the checkpoint's "
                             f"vocabulary: {listing}; resume on the text it was trained on")
        self = cls(text, config, out_dir=out_dir, data_name=data_name, log=log, _vocab=vocab)
        if self.data["sha256"] != training.get("data", {}).get("sha256"):
            warnings.warn(f"the text ({self.data['chars']} characters) differs from the one "
                          f"{ck.path.name} was trained on "
                          f"({training.get('data', {}).get('chars')} characters): training "
                          "continues, but not as an exact resume", stacklevel=2)
        # the model and optimizer in the checkpoint replace the fresh ones
        self.model.flat_params[...] = ck.model.flat_params
        self.optimizer.load_state_dict(ck.optimizer.state_dict())
        self.step = int(training["step"])
        self.epoch = int(training["epoch"])
        self.batch_index = int(training["batch_index"])
        if self.batch_index >= self.batches.steps_per_epoch:
            self.epoch, self.batch_index = self.epoch + 1, 0
        self.state = ck.state if self.batch_index > 0 else None
        for name in self.history:
            self.history[name] = ck.history.get(name, np.empty(0)).tolist()
        for name in self.val_history:
            self.val_history[name] = ck.history.get(name, np.empty(0)).tolist()
        self.best_val_loss = float(training.get("best_val_loss", math.inf))
        self.best_val_step = int(training.get("best_val_step", -1))
        if self.val_history["val_loss"]:
            self.last_val_loss = self.val_history["val_loss"][-1]
        self.last_saved = (ck.path, self.step)
        return self

    # -- the loop --------------------------------------------------------------------------

    def lr_at(self, step: int) -> float:
        """The learning rate of step ``step`` (0-based): a pure function of the step."""
        c = self.config
        if c.lr_decay_every and c.lr_decay != 1.0:
            return c.lr * c.lr_decay ** (step // c.lr_decay_every)
        return c.lr

    def train_one_step(self) -> float:
        """One optimizer step on the next batch; returns its training loss."""
        if self.batch_index == 0:
            self.state = None  # a new epoch starts from the zero state
        x, y = self.batches.batch(self.batch_index)
        self.optimizer.lr = self.lr_at(self.step)
        c = self.config
        try:
            loss, state = self.model.train_step(x, y, self.optimizer, self.state, clip=c.clip,
                                                max_norm=c.max_norm)
        except FloatingPointError as err:
            self._diverged(f"{err}")
        loss = float(loss)
        self.history["step"].append(self.step + 1)
        self.history["epoch"].append(self.epoch)
        self.history["lr"].append(self.optimizer.lr)
        self.history["train_loss"].append(loss)
        if loss > self.max_loss:
            self._diverged(f"the training loss {loss:.4g} exploded (above {self.max_loss:.4g}; "
                           f"a uniform guess scores {math.log(len(self.vocab)):.4g})")
        self.step += 1
        self.state = state
        self.batch_index += 1
        if self.batch_index == self.batches.steps_per_epoch:
            self.epoch += 1
            self.batch_index = 0
        return loss

    def _diverged(self, why: str):
        if self.last_saved is not None:
            kept = f"the last good checkpoint is {self.last_saved[0]} (step {self.last_saved[1]})"
        else:
            kept = "no checkpoint was saved before"
        if self.out_dir is not None:
            self.write_history()
        raise TrainingDiverged(f"training stopped at step {self.step + 1}: {why}; {kept}. "
                               "Try a lower learning rate or gradient clipping.")

    def train(self, steps: int | None = None, epochs: int | None = None,
              seconds: float | None = None, *, progress: bool = False) -> str:
        """Train until ``steps`` steps or ``epochs`` epochs in all (counted from the start of
        training, so a resumed run continues to the same total) or ``seconds`` of this call.

        Validates every ``config.val_every`` steps and at the end, checkpointing to
        ``out_dir`` each time.  Ctrl-C stops after the current step and saves.  Returns why it
        stopped: "steps", "epochs", "time" or "interrupted".  Raises TrainingDiverged on a
        non-finite or exploding loss (after keeping the last good checkpoint).
        """
        if steps is None and epochs is None and seconds is None:
            raise ValueError("train: give steps, epochs or seconds")
        target = steps
        if epochs is not None:
            left = (epochs - self.epoch) * self.batches.steps_per_epoch - self.batch_index
            target = min(target or math.inf, self.step + max(0, left))
        log = self.log
        start, done_here, reason = time.perf_counter(), 0, None
        train_time = 0.0  # without validation and checkpoints: the chars/s of training
        chars_per_step = self.config.batch_size * self.config.seq_length
        self._interrupted = False
        with self._deferred_interrupt(log):
            log(f"training {self.model!r}, {self.model.num_params:,} parameters, on "
                f"{len(self.train_ids):,} characters ({self.batches.steps_per_epoch} steps per "
                f"epoch); Ctrl-C stops and saves")
            bar = _progress_bar(progress, self.step,
                                None if target in (None, math.inf) else target)
            try:
                while True:
                    if target is not None and self.step >= target:
                        reason = "epochs" if epochs is not None and steps is None else "steps"
                        break
                    if seconds is not None and time.perf_counter() - start >= seconds:
                        reason = "time"
                        break
                    if self._interrupted:
                        reason = "interrupted"
                        break
                    t0 = time.perf_counter()
                    loss = self.train_one_step()
                    train_time += time.perf_counter() - t0
                    done_here += 1
                    if self.step % self.config.val_every == 0:
                        self._validate_and_save(log)
                    if bar is not None:
                        rate = done_here * chars_per_step / train_time
                        val = self.last_val_loss
                        val = f"{val:.3f}" if math.isfinite(val) else "-"
                        bar.set_postfix_str(f"loss {loss:.3f} val {val} {rate:,.0f} chars/s",
                                            refresh=False)
                        bar.update(1)
            finally:
                if bar is not None:
                    bar.close()
            if done_here and self.step % self.config.val_every != 0:
                if reason == "interrupted" and self.out_dir is not None:
                    self.save_latest()  # quickly: no validation pass after a Ctrl-C
                    self.write_history()
                else:
                    self._validate_and_save(log)
            elif not done_here and self.out_dir is not None and self.last_saved is None:
                self.save_latest()
            if reason == "interrupted":
                log(f"interrupted at step {self.step}; checkpoint saved")
        elapsed = time.perf_counter() - start
        if done_here:
            log(f"{done_here} steps in {elapsed:.1f} s, {train_time:.1f} s of them training "
                f"({done_here * chars_per_step / train_time:,.0f} chars/s)")
        return reason

    @contextmanager
    def _deferred_interrupt(self, log):
        """While training, the first Ctrl-C asks the loop to stop at the end of the step (so a
        consistent state is saved); a second one interrupts at once."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum, frame):
            if self._interrupted:
                raise KeyboardInterrupt
            self._interrupted = True
            log("Ctrl-C: stopping after this step to save a checkpoint (again to quit now)")

        previous = signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous if previous is not None
                          else signal.default_int_handler)

    # -- validation, checkpoints, history ---------------------------------------------------

    def validate(self) -> float:
        """Nats per character on the validation split (NaN when it is too short)."""
        if len(self.val_ids) < 2:
            return math.nan
        return evaluate(self.model, self.val_ids)

    def _validate_and_save(self, log) -> None:
        val = self.validate()
        self.last_val_loss = val
        if not math.isnan(val):
            self.val_history["val_step"].append(self.step)
            self.val_history["val_loss"].append(val)
            log(f"step {self.step}: train loss {self.history['train_loss'][-1]:.4f}, "
                f"val loss {val:.4f} nats/char ({val / LN2:.4f} bits/char)")
        improved = val < self.best_val_loss
        if improved:
            self.best_val_loss, self.best_val_step = val, self.step
        if self.out_dir is not None:
            path = self.save_latest()
            if improved:
                checkpoint.save(self.out_dir / checkpoint.BEST, self.model, self.optimizer,
                                state=self._state_to_save(), training=self.training_meta(),
                                history=self.history_arrays())
            self.write_history()
            self.last_saved = (path, self.step)

    def _state_to_save(self) -> State:
        return self.state if self.state is not None else self.model.zero_state(
            self.config.batch_size)

    def training_meta(self) -> dict:
        return {
            "config": asdict(self.config),
            "step": self.step,
            "epoch": self.epoch,
            "batch_index": self.batch_index,
            "steps_per_epoch": self.batches.steps_per_epoch,
            "lr": self.lr_at(self.step),
            "best_val_loss": self.best_val_loss,
            "best_val_step": self.best_val_step,
            "data": self.data,
            "data_rng": None,  # batches are deterministic: nothing random to restore
        }

    def history_arrays(self) -> dict[str, np.ndarray]:
        arrays = {
            "step": np.asarray(self.history["step"], np.int64),
            "epoch": np.asarray(self.history["epoch"], np.int64),
            "lr": np.asarray(self.history["lr"], np.float64),
            "train_loss": np.asarray(self.history["train_loss"], np.float64),
            "val_step": np.asarray(self.val_history["val_step"], np.int64),
            "val_loss": np.asarray(self.val_history["val_loss"], np.float64),
        }
        return arrays

    def save(self, path) -> Path:
        """Write a checkpoint of the whole training state to ``path``."""
        return checkpoint.save(path, self.model, self.optimizer, state=self._state_to_save(),
                               training=self.training_meta(), history=self.history_arrays())

    def save_latest(self) -> Path:
        path = self.save(self.out_dir / checkpoint.LATEST)
        self.last_saved = (path, self.step)
        return path

    def write_history(self) -> bool:
        """history.csv, history.json and loss.png in out_dir; returns whether the PNG was made
        (False when matplotlib is not installed)."""
        return write_history(self.out_dir, self.history, self.val_history)


def write_history(out_dir, history: dict, val_history: dict) -> bool:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    val = dict(zip(val_history["val_step"], val_history["val_loss"], strict=True))
    with open(out_dir / "history.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["step", "epoch", "lr", "train_loss", "val_loss", "val_bpc"])
        for step, epoch, lr, loss in zip(history["step"], history["epoch"], history["lr"],
                                         history["train_loss"], strict=True):
            v = val.get(step)
            writer.writerow([step, epoch, repr(lr), repr(loss),
                             "" if v is None else repr(v), "" if v is None else repr(v / LN2)])
    doc = {
        "train": [{"step": s, "epoch": e, "lr": lr, "loss": loss} for s, e, lr, loss in
                  zip(history["step"], history["epoch"], history["lr"], history["train_loss"],
                      strict=True)],
        "val": [{"step": s, "loss": v, "bpc": v / LN2} for s, v in val.items()],
    }
    (out_dir / "history.json").write_text(json.dumps(doc) + "\n", encoding="utf-8")
    return _plot(out_dir / "loss.png", history, val_history)


def _plot(path: Path, history: dict, val_history: dict) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(history["step"], history["train_loss"], label="train", linewidth=0.8)
    if val_history["val_step"]:
        ax.plot(val_history["val_step"], val_history["val_loss"], "o-", label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats per character)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def _progress_bar(enabled: bool, initial: int, total: int | None):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    # disable=None: a bar on a terminal, nothing when stderr is a file or a pipe
    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, disable=None)
