"""Benchmark configurations and helpers shared by the pytest-benchmark suites and compare.py.

A config is (cell, V, H, layers, B, T).  mincharrnn is karpathy's min-char-rnn (RNN, H=100,
one sequence of 25); charrnn-default is char-rnn's default LSTM, and charrnn-gru the same sizes
with GRU cells (char-rnn's -model gru); mid and large are slow in the
NumPy backend and run only on request (``--large`` for pytest, ``--configs`` for compare.py).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np


class Config(NamedTuple):
    cell: str
    V: int
    H: int
    layers: int
    B: int
    T: int


CONFIGS = {
    "mincharrnn": Config("rnn", 65, 100, 1, 1, 25),
    "charrnn-default": Config("lstm", 65, 128, 2, 50, 50),
    "charrnn-gru": Config("gru", 65, 128, 2, 50, 50),
    "small-batch1": Config("lstm", 65, 256, 1, 1, 64),
    "mid": Config("lstm", 65, 512, 2, 32, 64),
    "large": Config("lstm", 65, 1024, 1, 64, 64),
}
LARGE = {"mid", "large"}  # selected only on request
DEFAULT = [name for name in CONFIGS if name not in LARGE]
# Tiny shapes for the benchmark scripts' --smoke runs (CI checks that the scripts run, in seconds).
SMOKE_CONFIGS = {
    "smoke-lstm": Config("lstm", 65, 16, 2, 4, 8),
    "smoke-gru": Config("gru", 65, 16, 2, 4, 8),
}


def vocab(V: int):
    """A Vocab of V printable characters, so ``CharLM.sample`` can return text."""
    import rnnfast

    return rnnfast.Vocab([chr(33 + i) for i in range(V)])


def batch(cfg: Config, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random ids x, y of shape (T, B)."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, cfg.V, (cfg.T + 1, cfg.B))
    return ids[:-1], ids[1:]


def forward_gemm_flops_per_char(cfg: Config) -> int:
    """FLOPs of the forward matrix products per character (one row of T*B): per layer the
    recurrent product h W_h (2 H G) and, above layer 0, the input projection x W_x (2 H G) --
    layer 0's one-hot input is a row gather, no FLOPs -- plus the output layer (2 H V).
    Training counts 3x this (forward, and the two products of backward)."""
    from rnnfast.core import GATES

    G = GATES[cfg.cell] * cfg.H
    per_layer = [2 * cfg.H * G + (2 * cfg.H * G if layer > 0 else 0) for layer in range(cfg.layers)]
    return sum(per_layer) + 2 * cfg.H * cfg.V


def num_params(cfg: Config) -> int:
    from rnnfast.core import param_shapes

    return sum(math.prod(shape) for _, shape in param_shapes(cfg.cell, cfg.V, cfg.H, cfg.layers))


def blas_info() -> list[dict]:
    """What threadpoolctl reports for every BLAS / OpenMP pool loaded in this process."""
    from threadpoolctl import threadpool_info

    keep = (
        "user_api",
        "internal_api",
        "version",
        "num_threads",
        "architecture",
        "threading_layer",
        "filepath",
    )
    return [{k: pool.get(k) for k in keep if k in pool} for pool in threadpool_info()]


def blas_summary() -> str:
    """One line: the BLAS kernels loaded (library, version, core type, threads)."""
    parts = []
    for pool in blas_info():
        if pool.get("user_api") != "blas":
            continue
        lib = pool["filepath"].rsplit("/", 1)[-1]
        parts.append(
            f"{pool['internal_api']} {pool.get('version')} "
            f"{pool.get('architecture')} x{pool['num_threads']} ({lib})"
        )
    return "; ".join(parts) or "no BLAS reported by threadpoolctl"


def bench_model(cfg: Config, backend: str):
    """The float32 CharLM every benchmark times for ``cfg``, seeded."""
    import rnnfast

    return rnnfast.CharLM(
        vocab(cfg.V), cell=cfg.cell, hidden_size=cfg.H, num_layers=cfg.layers,
        dtype=np.float32, backend=backend, seed=0,
    )  # fmt: skip
