"""Data-parallel training over MPI (mpi4py), synchronous: every rank holds the whole model.

    mpiexec -n 4 rnnfast train --data input.txt        # the same flags as one process

Each rank takes its own contiguous share of the B streams of a batch (``--batch-size`` stays the
global batch), runs forward and backward on it, and the gradients are summed with one
``Allreduce`` of the flat gradient buffer (it has the parameters' layout, so there is one
message, not one per parameter; the loss follows in a one-number Allreduce).  Each rank's
gradient is weighted by its share of the batch, B_r / B: the model's loss is a mean over its
T * B_r characters, so the weighted sum is the mean over all T * B characters, the gradient of
one process running the whole batch.  Every rank then clips and updates identically;
``check_in_sync`` compares a checksum of the parameters now and then and stops with a clear
error if the ranks drifted apart.

The same steps for your own training loop (x, y: the global (T, B) batch; ``state``: this
rank's share of the carried state, (L, B_r, H))::

    from rnnfast.distributed import DataParallel

    dp = DataParallel()                      # MPI.COMM_WORLD
    loss, state = dp.train_step(model, x, y, optimizer, state, clip=5.0)

or, step by step, ``streams = dp.shard(B)``, ``model.gradients`` on ``x[:, streams]`` (with
``masks=model.dropout_masks(T, B)[:, :, streams]`` for a model with dropout),
``loss = dp.allreduce_grads(grads, loss, weight=dp.weight(B))``, then ``model.clip_grads`` and
``optimizer.step(grads)``.  A collective that waits longer than ``timeout`` seconds (a rank
died or hangs) prints which rank gave up and aborts the whole run, so nothing hangs.

A process can tell that an MPI launcher started it from the environment (``PMI_SIZE`` of MPICH
and Intel MPI, ``OMPI_COMM_WORLD_SIZE`` of Open MPI, ``PMIX_RANK`` of PMIx launchers) without
importing mpi4py: ``launched_size()``.
"""

from __future__ import annotations

import json
import math
import os
import sys
import threading
import time
import zlib
from contextlib import contextmanager

import numpy as np

INSTALL_HINT = 'pip install "rnnfast[mpi]"'
# Exit status of a rank that gives up on the others (a rank died or hangs).
EXIT_PEER_LOST = 3
DEFAULT_TIMEOUT = 600.0  # seconds a collective may wait: a checkpoint write on rank 0 included
DEFAULT_CHECK_EVERY = 100  # steps between parameter checksums

_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
_RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK", "PMIX_RANK")


class RanksOutOfSync(RuntimeError):
    """The ranks' parameters differ: they no longer train one model."""


def launched_size() -> int:
    """How many processes the MPI launcher that started this one started (1 without one),
    read from the launcher's environment; mpi4py is imported only when the environment says
    "MPI" without saying how many (a bare PMIx launch)."""
    for name in _SIZE_VARIABLES:
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    if "PMIX_RANK" in os.environ:
        return _mpi(0).COMM_WORLD.Get_size()
    return 1


def launched_rank() -> int:
    """This process's rank as the launcher's environment gives it (0 without a launcher)."""
    for name in _RANK_VARIABLES:
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 0


def _mpi(size: int):
    try:
        from mpi4py import MPI
    except ImportError:
        started = f"started by MPI with {size} processes" if size else "MPI needs mpi4py"
        raise ImportError(f"{started} but mpi4py is not installed: {INSTALL_HINT}") from None
    return MPI


def from_environment(timeout: float | None = DEFAULT_TIMEOUT) -> DataParallel | None:
    """A DataParallel over MPI.COMM_WORLD when an MPI launcher started more than one process,
    else None (mpi4py is then not imported).  ImportError with the install hint when mpi4py is
    missing."""
    size = launched_size()
    if size < 2:
        return None
    _mpi(size)
    return DataParallel(timeout=timeout)


def checksum(array: np.ndarray) -> int:
    """A cheap fingerprint of an array's bytes (Adler-32)."""
    return zlib.adler32(memoryview(np.ascontiguousarray(array)).cast("B"))


class DataParallel:
    """Synchronous data parallelism over an MPI communicator (default MPI.COMM_WORLD).

    Parameters
    ----------
    comm : mpi4py communicator or None
    timeout : float or None
        Seconds a collective may wait for the other ranks before this rank reports them lost
        and aborts the run; None waits for ever.
    check_every : int
        Steps between parameter checksums in ``Trainer`` (``check_in_sync``).
    """

    def __init__(
        self,
        comm=None,
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        check_every: int = DEFAULT_CHECK_EVERY,
    ):
        MPI = _mpi(0)
        self._MPI = MPI
        self.comm = MPI.COMM_WORLD if comm is None else comm
        self.rank = self.comm.Get_rank()
        self.size = self.comm.Get_size()
        # the ranks on this host, which share its cores
        local = self.comm.Split_type(MPI.COMM_TYPE_SHARED)
        self.local_size = local.Get_size()
        local.Free()
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout: expected a positive number of seconds, got {timeout!r}")
        self.timeout = timeout
        self.check_every = check_every
        self._waiting_since = None
        self._waiting_for = ""
        if timeout is not None and self.size > 1:
            threading.Thread(target=self._watch, name="rnnfast-mpi-watchdog", daemon=True).start()

    def __repr__(self) -> str:
        return f"DataParallel(rank {self.rank} of {self.size})"

    # -- the share of each rank ----------------------------------------------------------------

    def bounds(self, n: int, rank: int | None = None) -> tuple[int, int]:
        """The contiguous share [lo, hi) of n items that ``rank`` (default: this one) takes:
        sizes differ by at most one, earlier ranks never take more.  May be empty."""
        rank = self.rank if rank is None else rank
        return rank * n // self.size, (rank + 1) * n // self.size

    def shard(self, batch_size: int) -> slice:
        """This rank's streams of a batch of ``batch_size``; every rank needs at least one."""
        if batch_size < self.size:
            raise ValueError(
                f"{self.size} processes need a batch of at least {self.size} streams, one each; "
                f"the batch size is {batch_size}: raise --batch-size or use fewer processes"
            )
        return slice(*self.bounds(batch_size))

    def weight(self, batch_size: int) -> float:
        """B_r / B: the weight that turns this rank's mean loss into its part of the global
        mean."""
        lo, hi = self.bounds(batch_size)
        return (hi - lo) / batch_size

    # -- collectives ---------------------------------------------------------------------------

    def allreduce_grads(self, grads, loss: float, weight: float) -> float:
        """Replace ``grads`` (a Params or flat array) on every rank with the sum over the ranks
        of ``weight * grads``, and return the same sum of ``weight * loss``: with weight B_r / B
        the gradient and loss of the mean over the whole batch."""
        flat = getattr(grads, "flat", grads)
        if weight != 1.0:
            np.multiply(flat, flat.dtype.type(weight), out=flat)
        total = np.array([weight * loss], np.float64)
        with self._collective("the allreduce of the gradients"):
            self.comm.Allreduce(self._MPI.IN_PLACE, flat, op=self._MPI.SUM)
            self.comm.Allreduce(self._MPI.IN_PLACE, total, op=self._MPI.SUM)
        return float(total[0])

    def sum(self, value: float) -> float:
        """The sum of ``value`` over the ranks (float64)."""
        total = np.array([value], np.float64)
        with self._collective("a sum over the ranks"):
            self.comm.Allreduce(self._MPI.IN_PLACE, total, op=self._MPI.SUM)
        return float(total[0])

    def any(self, *flags: bool) -> tuple[bool, ...]:
        """Each flag OR-ed over the ranks: a decision every rank then takes together."""
        values = np.array(flags, np.int32)
        with self._collective("the agreement on when to stop"):
            self.comm.Allreduce(self._MPI.IN_PLACE, values, op=self._MPI.MAX)
        return tuple(bool(v) for v in values)

    def gather_streams(self, part: np.ndarray) -> np.ndarray | None:
        """The (L, B, H) array of all streams on rank 0 from each rank's (L, B_r, H) share;
        None on the other ranks."""
        with self._collective("gathering the carried state"):
            parts = self.comm.gather(np.ascontiguousarray(part), root=0)
        return None if parts is None else np.concatenate(parts, axis=1)

    def check_same(self, settings: dict) -> None:
        """ValueError on every rank, naming the first setting that differs, unless every rank
        passed the same JSON-serialisable ``settings``."""
        mine = json.dumps(settings, sort_keys=True, default=str)
        with self._collective("comparing the settings of the ranks"):
            everyone = self.comm.allgather(mine)
        for rank, theirs in enumerate(everyone):
            if theirs != everyone[0]:
                first, other = json.loads(everyone[0]), json.loads(theirs)
                key = next(
                    k for k in sorted(set(first) | set(other)) if first.get(k) != other.get(k)
                )
                raise ValueError(
                    f"the ranks were started with different settings: {key} is "
                    f"{_short(first.get(key))} on rank 0 but {_short(other.get(key))} on rank "
                    f"{rank}; start every rank with the same command and files"
                )

    def check_in_sync(self, flat_params: np.ndarray, step: int) -> None:
        """RanksOutOfSync on every rank unless all ranks hold bit-identical parameters."""
        with self._collective("comparing parameter checksums"):
            sums = self.comm.allgather(checksum(flat_params))
        differ = [rank for rank, s in enumerate(sums) if s != sums[0]]
        if differ:
            raise RanksOutOfSync(
                f"after step {step} the parameters of rank(s) {differ} differ from rank 0's: "
                "the ranks no longer train one model (a rank with another build, BLAS or "
                "thread count can round differently); the last checkpoint is from before"
            )

    def agree_on_failure(self, error: BaseException | None) -> None:
        """Collective: re-raise ``error`` on the rank that had it, and on every other rank a
        ValueError naming the first rank that failed; nothing when no rank failed."""
        message = None if error is None else " ".join(str(error).split())
        with self._collective("the start-up check of the ranks"):
            messages = self.comm.allgather(message)
        failed = [(rank, m) for rank, m in enumerate(messages) if m is not None]
        if error is not None:
            raise error
        if failed:
            rank, message = failed[0]
            raise ValueError(f"rank {rank} failed to start: {message}")

    def abort(self, status: int) -> None:
        """End every rank now: for a failure on one rank that the others would wait for."""
        self.comm.Abort(status)

    # -- the watchdog ----------------------------------------------------------------------------

    @contextmanager
    def _collective(self, what: str):
        self._waiting_for, self._waiting_since = what, time.monotonic()
        try:
            yield
        finally:
            self._waiting_since = None

    def _watch(self) -> None:
        while True:
            time.sleep(min(1.0, self.timeout / 4))
            since = self._waiting_since
            if since is not None and time.monotonic() - since > self.timeout:
                sys.stderr.write(
                    f"rnnfast: rank {self.rank} of {self.size}: no answer from the other ranks "
                    f"for {self.timeout:g} s during {self._waiting_for}: a rank died or hangs; "
                    "stopping the run (the last checkpoint is intact)\n"
                )
                sys.stderr.flush()
                try:
                    self.comm.Abort(EXIT_PEER_LOST)
                finally:
                    os._exit(EXIT_PEER_LOST)

    # -- one step for any training loop ------------------------------------------------------

    def train_step(
        self,
        model,
        x,
        y,
        optimizer,
        state=None,
        clip: float | None = 5.0,
        max_norm: float | None = None,
    ):
        """``model.train_step`` over the ranks: x, y are the whole (T, B) batch, ``state`` this
        rank's share of the carried state (None: zeros).  Returns the loss over the whole batch
        and this rank's final state.  A non-finite loss raises FloatingPointError on every rank
        and leaves the model unchanged."""
        if optimizer.model is not model:
            raise ValueError("optimizer: it was created for a different model")
        x, y = np.asarray(x), np.asarray(y)
        streams = self.shard(x.shape[1])
        # dropout: every rank draws the masks of the whole batch and applies its streams' share,
        # so the generators stay in step and the masks are those of one process
        masks = model.dropout_masks(*x.shape)[:, :, streams] if model.dropout else None
        loss, grads, state = model.gradients(x[:, streams], y[:, streams], state, masks=masks)
        loss = self.allreduce_grads(grads, loss, self.weight(x.shape[1]))
        if not math.isfinite(loss):
            raise FloatingPointError(f"training loss is {loss}: the model was not updated")
        model.clip_grads(grads, value=clip, max_norm=max_norm)
        optimizer.step(grads)
        return loss, state


def _short(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."
