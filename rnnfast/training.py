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
from dataclasses import asdict, dataclass, fields
from functools import partial
from pathlib import Path

import numpy as np

from . import checkpoint
from .data import Batches, Vocab, char_listing, split
from .distributed import DataParallel, checksum
from .model import CharLM, State
from .optim import OPTIMIZERS
from .validation import check_real

LN2 = math.log(2.0)
DEFAULT_LR = {"adam": 2e-3, "rmsprop": 2e-3, "adagrad": 0.1, "sgd": 0.1}
# Validation reads its text as EVAL_BATCH streams in windows of EVAL_WINDOW characters, whatever
# the training batch: few calls for a large validation set, bounded memory for a large model.
EVAL_BATCH = 32
EVAL_WINDOW = 128


@dataclass
class TrainConfig:
    """Everything that defines a training run; stored in every checkpoint."""

    cell: str = "lstm"  # "lstm", "rnn" or "gru"
    hidden_size: int = 128
    num_layers: int = 2
    dropout: float = 0.0  # inverted dropout on every layer's output in training (CharLM)
    batch_size: int = 50  # B contiguous streams
    seq_length: int = 50  # T characters per step (the BPTT window)
    optimizer: str = "adam"  # a key of rnnfast.optim.OPTIMIZERS
    lr: float | None = None  # None: the optimizer's usual value (DEFAULT_LR)
    momentum: float = 0.9  # sgd only
    lr_decay: float = 1.0  # lr = lr * lr_decay ** (step // lr_decay_every)
    lr_decay_every: int = 0  # steps; 0 never decays
    clip: float | None = 5.0  # clip each gradient element to [-clip, clip]
    max_norm: float | None = None  # and/or the global gradient norm
    val_every: int = 250  # steps between validations (and checkpoints)
    val_fraction: float = 0.1  # the last 10% of the text, contiguous
    max_loss: float | None = None  # a loss above this stops training; None: 3 ln V + 5
    seed: int = 0  # the initial weights
    dtype: str = "float32"
    backend: str | None = None  # None: "c", the C kernels

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"optimizer: expected one of {sorted(OPTIMIZERS)}, got {self.optimizer!r}"
            )
        if self.lr is None:
            self.lr = DEFAULT_LR[self.optimizer]
        self.dtype = np.dtype(self.dtype).name
        self.dropout = check_real("dropout", self.dropout, high=1.0, low_inclusive=True)
        for name in ("batch_size", "seq_length", "val_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive integer, got {value!r}")
        if not isinstance(self.lr_decay_every, int) or self.lr_decay_every < 0:
            raise ValueError(
                f"lr_decay_every: expected a non-negative integer, got {self.lr_decay_every!r}"
            )
        if not (math.isfinite(self.lr_decay) and 0 < self.lr_decay <= 1):
            raise ValueError(f"lr_decay: expected a number in (0, 1], got {self.lr_decay!r}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum: expected a number in [0, 1), got {self.momentum!r}")
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
    return {
        "name": name,
        "chars": len(text),
        "sha256": hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest(),
    }


def evaluate(
    model: CharLM,
    ids,
    batch_size: int = EVAL_BATCH,
    seq_length: int = EVAL_WINDOW,
    parallel: DataParallel | None = None,
) -> float:
    """Mean cross-entropy in nats per character of predicting ``ids[1:]`` from ``ids[:-1]``.

    The ids are cut into ``batch_size`` contiguous streams read in windows of ``seq_length``
    with the hidden state carried between windows (as in training); the few predictions left
    over by the cut form one more stream.  Every character but the first is scored once.
    With ``parallel`` each rank scores its share of the streams (the last rank the extra
    stream) and the sums are added over the ranks.
    """
    ids = np.asarray(ids)
    n = len(ids) - 1
    if n < 1:
        raise ValueError(f"evaluation needs at least 2 characters, got {len(ids)}")
    B = max(1, min(batch_size, n // seq_length))
    stream = n // B
    starts = np.arange(B) * stream
    rest = n - B * stream
    extra = rest > 0
    if parallel is not None:
        starts = starts[slice(*parallel.bounds(B))]
        extra = extra and parallel.rank == parallel.size - 1
    total = 0.0
    if len(starts):
        total += _stream_loss(model, ids, starts, stream, seq_length)
    if extra:
        total += _stream_loss(model, ids, np.array([B * stream]), rest, seq_length)
    if parallel is not None:
        total = parallel.sum(total)
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


class History:
    """The loss record of a run: a row per training step and a row per validation."""

    def __init__(self, arrays: dict[str, np.ndarray] | None = None):
        arrays = arrays or {}
        steps = len(arrays.get("step", ()))
        # seconds: training time since the start of the run, validation excluded (NaN in
        # checkpoints written before the column existed)
        self.train = {
            name: arrays.get(name, np.full(steps, np.nan)).tolist()
            for name in ("step", "epoch", "lr", "train_loss", "seconds")
        }
        self.val = {
            name: arrays.get(name, np.empty(0)).tolist() for name in ("val_step", "val_loss")
        }

    def add_step(self, step: int, epoch: int, lr: float, loss: float, seconds: float) -> None:
        for name, value in zip(self.train, (step, epoch, lr, loss, seconds), strict=True):
            self.train[name].append(value)

    def add_validation(self, step: int, loss: float) -> None:
        self.val["val_step"].append(step)
        self.val["val_loss"].append(loss)

    def arrays(self) -> dict[str, np.ndarray]:
        """The columns as a checkpoint stores them."""
        integer = {"step", "epoch", "val_step"}
        return {
            name: np.asarray(column, np.int64 if name in integer else np.float64)
            for name, column in (*self.train.items(), *self.val.items())
        }


class Reporter:
    """What a run tells its user: log lines, the progress bar, and the history files and plot
    in ``out_dir`` (none when it is None)."""

    def __init__(self, log: Callable[[str], None] | None = None, out_dir=None):
        self.log = log or (lambda message: None)
        self.out_dir = None if out_dir is None else Path(out_dir)
        self._bar = None

    def open_bar(self, enabled: bool, initial: int, total: float | None) -> None:
        self._bar = _progress_bar(enabled, initial, None if total == math.inf else total)

    def step_done(self, loss: float, val_loss: float, chars_per_second: float) -> None:
        if self._bar is None:
            return
        val = f"{val_loss:.3f}" if math.isfinite(val_loss) else "-"
        self._bar.set_postfix_str(
            f"loss {loss:.3f} val {val} {chars_per_second:,.0f} chars/s", refresh=False
        )
        self._bar.update(1)

    def close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def write_history(self, history: History) -> bool:
        """history.csv, history.json and loss.png; returns whether the PNG was made."""
        if self.out_dir is None:
            return False
        return write_history(self.out_dir, history.train, history.val)


class CheckpointPolicy:
    """When and where a run is saved: ``latest.npz`` at every validation, at the end and on
    Ctrl-C, ``best.npz`` whenever the validation loss improves.  ``out_dir=None`` saves
    nothing."""

    def __init__(self, out_dir=None):
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.last_saved: tuple[Path, int] | None = None

    def save_latest(self, trainer: Trainer) -> None:
        if self.out_dir is not None:
            path = trainer.save(self.out_dir / checkpoint.LATEST)
            self.last_saved = (path, trainer.step)

    def validated(self, trainer: Trainer, improved: bool) -> None:
        self.save_latest(trainer)
        if improved and self.out_dir is not None:
            trainer.save(self.out_dir / checkpoint.BEST)

    def ensure_saved(self, trainer: Trainer) -> None:
        """A run that took no step still leaves a checkpoint behind."""
        if self.last_saved is None:
            self.save_latest(trainer)

    def kept(self) -> str:
        if self.last_saved is None:
            return "no checkpoint was saved before"
        path, step = self.last_saved
        return f"the last good checkpoint is {path} (step {step})"


# What a resumed training may change: its schedule and backend, never the model, the batches or
# the optimizer (an exact resume continues those as saved).
RESUME_OVERRIDES = (
    "lr", "lr_decay", "lr_decay_every", "clip", "max_norm", "val_every", "max_loss", "backend",
)  # fmt: skip


class Trainer:
    """Trains a CharLM on a text; ``Trainer.resume`` continues from a checkpoint exactly.

    The loop (``train``) calls two collaborators: a ``Reporter`` (log, progress bar, history
    files) and a ``CheckpointPolicy`` (which checkpoints, when).

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
    parallel : rnnfast.distributed.DataParallel or None
        Train over MPI ranks: this process takes its share of the streams of each batch (see
        ``rnnfast.distributed``); rank 0 alone logs and writes.  Every rank runs the same calls.
    """

    def __init__(
        self,
        text: str,
        config: TrainConfig | None = None,
        *,
        out_dir=None,
        data_name: str = "text",
        log: Callable[[str], None] | None = None,
        parallel: DataParallel | None = None,
        _resumed: checkpoint.Checkpoint | None = None,
    ):
        self.config = config = config or TrainConfig()
        self.vocab = _resumed.model.vocab if _resumed else Vocab.from_text(text)
        self.data = data_description(text, data_name)
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.parallel = parallel
        writer = parallel is None or parallel.rank == 0
        self.reporter = Reporter(log if writer else None, self.out_dir if writer else None)
        self.checkpoints = CheckpointPolicy(self.out_dir)
        ids = self.vocab.encode(text)
        self.train_ids, self.val_ids = split(ids, config.val_fraction)
        self.batches = Batches(self.train_ids, config.batch_size, config.seq_length)
        # this process's streams of each batch: all of them, or a rank's share
        self.streams = (
            slice(0, config.batch_size) if parallel is None else parallel.shard(config.batch_size)
        )
        if _resumed is not None:
            self.model, self.optimizer = _resumed.model, _resumed.optimizer
        else:
            self.model = CharLM(
                self.vocab,
                cell=config.cell,
                hidden_size=config.hidden_size,
                num_layers=config.num_layers,
                dtype=config.dtype,
                backend=config.backend or "c",
                seed=config.seed,
                dropout=config.dropout,
            )
            extra = {"momentum": config.momentum} if config.optimizer == "sgd" else {}
            self.optimizer = OPTIMIZERS[config.optimizer](self.model, lr=config.lr, **extra)
        self.step = 0  # steps done since the start of training
        self.epoch = 0  # epochs completed
        self.batch_index = 0  # the next batch of the current epoch
        self.state: State | None = None
        self.record = History()
        self.train_seconds = 0.0  # time spent in train_one_step since the run began
        self.best_val_loss = math.inf
        self.best_val_step = -1
        self.last_val_loss = math.nan
        self.max_loss = config.max_loss or 3 * math.log(len(self.vocab)) + 5

    @property
    def history(self) -> dict[str, list]:
        """The per-step columns: step, epoch, lr, train_loss, seconds."""
        return self.record.train

    @property
    def val_history(self) -> dict[str, list]:
        """The per-validation columns: val_step, val_loss."""
        return self.record.val

    # -- resume ----------------------------------------------------------------------------

    @classmethod
    def resume(
        cls,
        path,
        text: str,
        *,
        out_dir=None,
        data_name: str = "text",
        log: Callable[[str], None] | None = None,
        parallel: DataParallel | None = None,
        **overrides,
    ) -> Trainer:
        """Continue the training saved in checkpoint ``path`` (a file or an out directory) on
        ``text``.  ``overrides`` may change what ``RESUME_OVERRIDES`` names (the schedule and
        the backend); the model, batch shape and optimizer come from the checkpoint."""
        unknown = set(overrides) - set(RESUME_OVERRIDES)
        if unknown:
            raise ValueError(f"cannot change {sorted(unknown)} when resuming; allowed: "
                             f"{sorted(RESUME_OVERRIDES)}")  # fmt: skip
        path = checkpoint.resolve(path)
        meta, arrays = checkpoint.read(path)
        training = meta.get("training") or {}
        if "config" not in training or meta.get("optimizer") is None:
            raise checkpoint.CheckpointError(
                f"{path} holds a model without a training state: it can be sampled or "
                "evaluated, not resumed"
            )
        saved = dict(training["config"])
        saved.update({k: v for k, v in overrides.items() if v is not None})
        config = TrainConfig.from_dict(saved)
        ck = checkpoint.build(path, meta, arrays, backend=config.backend)
        missing = ck.model.vocab.unknown(text)
        if missing:
            raise ValueError(
                f"the text has {len(missing)} character(s) not in the checkpoint's "
                f"vocabulary: {char_listing(missing)}; resume on the text it was trained on"
            )
        self = cls(
            text,
            config,
            out_dir=out_dir,
            data_name=data_name,
            log=log,
            parallel=parallel,
            _resumed=ck,
        )
        if self.data["sha256"] != training.get("data", {}).get("sha256"):
            warnings.warn(
                f"the text ({self.data['chars']} characters) differs from the one "
                f"{path.name} was trained on "
                f"({training.get('data', {}).get('chars')} characters): training "
                "continues, but not as an exact resume",
                stacklevel=2,
            )
        self.step = int(training["step"])
        self.epoch = int(training["epoch"])
        self.batch_index = int(training["batch_index"])
        if self.batch_index >= self.batches.steps_per_epoch:
            self.epoch, self.batch_index = self.epoch + 1, 0
        if self.batch_index > 0:
            h, c = ck.state
            self.state = State(h[:, self.streams], None if c is None else c[:, self.streams])
        self.record = History(ck.history)
        seconds = self.history["seconds"]
        self.train_seconds = seconds[-1] if seconds and math.isfinite(seconds[-1]) else 0.0
        self.best_val_loss = float(training.get("best_val_loss", math.inf))
        self.best_val_step = int(training.get("best_val_step", -1))
        if self.val_history["val_loss"]:
            self.last_val_loss = self.val_history["val_loss"][-1]
        self.checkpoints.last_saved = (path, self.step)
        return self

    # -- one step and its guard --------------------------------------------------------------

    def lr_at(self, step: int) -> float:
        """The learning rate of step ``step`` (0-based): a pure function of the step."""
        c = self.config
        if c.lr_decay_every and c.lr_decay != 1.0:
            return c.lr * c.lr_decay ** (step // c.lr_decay_every)
        return c.lr

    def train_one_step(self) -> float:
        """One optimizer step on the next batch; returns its training loss.  Raises
        TrainingDiverged (the divergence guard) on a non-finite or exploding loss."""
        start = time.perf_counter()
        if self.batch_index == 0:
            self.state = None  # a new epoch starts from the zero state
        x, y = self.batches.batch(self.batch_index)
        self.optimizer.lr = self.lr_at(self.step)
        c = self.config
        step = (
            self.model.train_step
            if self.parallel is None
            else partial(self.parallel.train_step, self.model)
        )
        try:
            loss, state = step(x, y, self.optimizer, self.state, clip=c.clip, max_norm=c.max_norm)
        except FloatingPointError as err:
            self._diverged(f"{err}")
        loss = float(loss)
        self.train_seconds += time.perf_counter() - start
        self.record.add_step(self.step + 1, self.epoch, self.optimizer.lr, loss, self.train_seconds)
        if loss > self.max_loss:
            self._diverged(
                f"the training loss {loss:.4g} exploded (above {self.max_loss:.4g}; "
                f"a uniform guess scores {math.log(len(self.vocab)):.4g})"
            )
        self.step += 1
        self.state = state
        self.batch_index += 1
        if self.batch_index == self.batches.steps_per_epoch:
            self.epoch += 1
            self.batch_index = 0
        return loss

    def _diverged(self, why: str):
        self.reporter.write_history(self.record)
        raise TrainingDiverged(
            f"training stopped at step {self.step + 1}: {why}; "
            f"{self.checkpoints.kept()}. "
            "Try a lower learning rate or gradient clipping."
        )

    # -- the loop --------------------------------------------------------------------------

    def train(
        self,
        steps: int | None = None,
        epochs: int | None = None,
        seconds: float | None = None,
        *,
        progress: bool = False,
    ) -> str:
        """Train until ``steps`` steps or ``epochs`` epochs in all (counted from the start of
        training, so a resumed run continues to the same total) or ``seconds`` of this call.

        Validates every ``config.val_every`` steps and at the end, checkpointing to
        ``out_dir`` each time.  Ctrl-C stops after the current step and saves.  Returns why it
        stopped: "steps", "epochs", "time" or "interrupted".  Raises TrainingDiverged on a
        non-finite or exploding loss (after keeping the last good checkpoint).
        """
        if steps is None and epochs is None and seconds is None:
            raise ValueError("train: give steps, epochs or seconds")
        target = steps if steps is not None else math.inf
        if epochs is not None:
            left = (epochs - self.epoch) * self.batches.steps_per_epoch - self.batch_index
            target = min(target, self.step + max(0, left))
        by_steps = "epochs" if epochs is not None and steps is None else "steps"
        report = self.reporter
        chars_per_step = self.config.batch_size * self.config.seq_length
        start, done, train_time = time.perf_counter(), 0, 0.0  # train_time: the chars/s
        if self.parallel is not None:
            self.parallel.check_same(self._fingerprint())
        with _StopOnCtrlC(report.log) as ctrl_c:
            processes = "" if self.parallel is None else f" on {self.parallel.size} processes"
            report.log(
                f"training {self.model!r}, {self.model.num_params:,} parameters, on "
                f"{len(self.train_ids):,} characters ({self.batches.steps_per_epoch} "
                f"steps per epoch){processes}; Ctrl-C stops and saves"
            )
            report.open_bar(progress, self.step, target if steps or epochs else math.inf)
            try:
                while True:
                    if self.step >= target:
                        reason = by_steps
                        break
                    time_up = seconds is not None and time.perf_counter() - start >= seconds
                    interrupted = ctrl_c.requested
                    if self.parallel is not None:  # every rank stops after the same step
                        time_up, interrupted = self.parallel.any(time_up, interrupted)
                    if time_up or interrupted:
                        reason = "time" if time_up else "interrupted"
                        break
                    t0 = time.perf_counter()
                    loss = self.train_one_step()
                    train_time += time.perf_counter() - t0
                    done += 1
                    if self.step % self.config.val_every == 0:
                        self._validate_and_save()
                    if self.parallel is not None and self.step % self.parallel.check_every == 0:
                        self.parallel.check_in_sync(self.model.flat_params, self.step)
                    report.step_done(loss, self.last_val_loss, done * chars_per_step / train_time)
            finally:
                report.close_bar()
            self._end_of_run(reason, done)
        if done:
            report.log(
                f"{done} steps in {time.perf_counter() - start:.1f} s, {train_time:.1f} s "
                f"of them training ({done * chars_per_step / train_time:,.0f} chars/s)"
            )
        return reason

    def _end_of_run(self, reason: str, done: int) -> None:
        """The last validation and checkpoint, unless the last step just made them; after a
        Ctrl-C a checkpoint without validation (quickly)."""
        if done and self.step % self.config.val_every != 0:
            if reason == "interrupted":
                self.checkpoints.save_latest(self)
                self.reporter.write_history(self.record)
            else:
                self._validate_and_save()
        elif not done:
            self.checkpoints.ensure_saved(self)
        if reason == "interrupted":
            self.reporter.log(f"interrupted at step {self.step}; checkpoint saved")

    # -- validation, checkpoints, history ---------------------------------------------------

    def validate(self) -> float:
        """Nats per character on the validation split (NaN when it is too short)."""
        if len(self.val_ids) < 2:
            return math.nan
        return evaluate(self.model, self.val_ids, parallel=self.parallel)

    def _validate_and_save(self) -> None:
        val = self.validate()
        self.last_val_loss = val
        if not math.isnan(val):
            self.record.add_validation(self.step, val)
            self.reporter.log(
                f"step {self.step}: train loss {self.history['train_loss'][-1]:.4f}, "
                f"val loss {val:.4f} nats/char ({val / LN2:.4f} bits/char)"
            )
        improved = val < self.best_val_loss
        if improved:
            self.best_val_loss, self.best_val_step = val, self.step
        self.checkpoints.validated(self, improved)
        self.reporter.write_history(self.record)

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

    def _fingerprint(self) -> dict:
        """What must be the same on every rank of a parallel run."""
        return {
            **asdict(self.config),
            "data": self.data["sha256"],
            "vocab": self.vocab.chars,
            "step": self.step,
            "parameters": checksum(self.model.flat_params),
            "optimizer": [checksum(m) for m in self.optimizer.state_dict()["moments"].values()],
        }

    def save(self, path) -> Path:
        """Write a checkpoint of the whole training state to ``path``.  In a parallel run every
        rank calls this (the carried state is gathered from them) and rank 0 writes."""
        state = self.state
        if state is None:
            state = self.model.zero_state(self.streams.stop - self.streams.start)
        if self.parallel is not None:
            h = self.parallel.gather_streams(state.h)
            c = None if state.c is None else self.parallel.gather_streams(state.c)
            if self.parallel.rank != 0:
                return Path(path)
            state = State(h, c)
        return checkpoint.save(
            path,
            self.model,
            self.optimizer,
            state=state,
            training=self.training_meta(),
            history=self.record.arrays(),
        )


class _StopOnCtrlC:
    """While training, the first Ctrl-C sets ``requested`` (the loop stops at the end of the
    step, so a consistent state is saved); a second one interrupts at once.  Only the main
    thread can catch signals: elsewhere Ctrl-C keeps its usual meaning."""

    def __init__(self, log: Callable[[str], None]):
        self.log = log
        self.requested = False
        self._previous = None

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self.log("Ctrl-C: stopping after this step to save a checkpoint (again to quit now)")

    def __enter__(self) -> _StopOnCtrlC:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(
                signal.SIGINT,
                self._previous if self._previous is not None else signal.default_int_handler,
            )


def write_history(out_dir, history: dict, val_history: dict) -> bool:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    val = dict(zip(val_history["val_step"], val_history["val_loss"], strict=True))
    columns = [history[name] for name in ("step", "epoch", "lr", "train_loss", "seconds")]
    with open(out_dir / "history.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["step", "epoch", "lr", "train_loss", "seconds", "val_loss", "val_bpc"])
        for step, epoch, lr, loss, seconds in zip(*columns, strict=True):
            v = val.get(step)
            writer.writerow(
                [
                    step,
                    epoch,
                    repr(lr),
                    repr(loss),
                    repr(seconds),
                    "" if v is None else repr(v),
                    "" if v is None else repr(v / LN2),
                ]
            )
    doc = {
        "train": [
            {"step": s, "epoch": e, "lr": lr, "loss": loss, "seconds": seconds}
            for s, e, lr, loss, seconds in zip(*columns, strict=True)
        ],
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
