"""Each kernel, C and NumPy side by side: one benchmark group per kernel and config shape.

    PYTHONPATH=. pytest benchmarks/test_bench_kernels.py [--large] [--threads 1]
        [--benchmark-group-by=group] [--benchmark-columns=median,ops]

Run with ``--threads 1`` to compare kernels: at 2 threads, alternating NumPy's and SciPy's
OpenBLAS pools costs milliseconds per switch (DESIGN.md), which swamps small kernels.
Shapes come from the configs: optimizer passes over the model's flat parameter buffer, the
output layer and the loss over the T*B rows of one training step.
"""

import numpy as np
import pytest
from bench_configs import CONFIGS, batch, num_params
from conftest import config_params

from rnnfast.backends import kernels

BACKENDS = ["c", "numpy"]
FLAT = [
    "sgd_update",
    "adagrad_update",
    "rmsprop_update",
    "adam_update",
    "clip_by_value",
    "global_norm",
    "scale",
]
LAYER = ["linear_forward", "linear_backward", "softmax_xent"]


def _flat_call(ops, name, n, rng, dtype=np.float32):
    p = rng.standard_normal(n).astype(dtype)
    g = (rng.standard_normal(n) * 0.1).astype(dtype)
    m1 = np.zeros(n, dtype)
    m2 = np.zeros(n, dtype)
    fn = getattr(ops, name)
    calls = {
        "sgd_update": lambda: fn(p, g, m1, 0.1, 0.9),
        "adagrad_update": lambda: fn(p, g, m1, 0.1, 1e-8),
        "rmsprop_update": lambda: fn(p, g, m1, 2e-3, 0.95, 1e-8),
        "adam_update": lambda: fn(p, g, m1, m2, 2e-3, 0.9, 0.999, 1e-8, 10),
        "clip_by_value": lambda: fn(g, 5.0),
        "global_norm": lambda: fn(g),
        "scale": lambda: fn(g, 1.0),  # 1.0: repeated calls must not decay into subnormals
    }
    return calls[name], {"n": n}


def _layer_call(ops, name, cfg, rng, dtype=np.float32):
    N, H, V = cfg.T * cfg.B, cfg.H, cfg.V
    X = rng.standard_normal((N, H)).astype(dtype)
    W = (rng.standard_normal((H, V)) / np.sqrt(H)).astype(dtype)
    b = np.zeros(V, dtype)
    out = np.empty((N, V), dtype)
    dX, dW, db = np.empty((N, H), dtype), np.zeros((H, V), dtype), np.zeros(V, dtype)
    _, y = batch(cfg)
    y = np.ascontiguousarray(y.reshape(-1))
    ops.linear_forward(out, X, W, b)
    fn = getattr(ops, name)
    dlogits = np.empty_like(out)
    calls = {
        "linear_forward": lambda: fn(out, X, W, b),
        "linear_backward": lambda: fn(dX, dW, db, out, X, W),
        "softmax_xent": lambda: fn(dlogits, out, y),
    }
    return calls[name], {"N": N, "I": H, "O": V}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kernel", FLAT + LAYER)
@pytest.mark.parametrize("config", config_params(list(CONFIGS)))
def test_kernel(benchmark, record_blas, config, kernel, backend):
    cfg = CONFIGS[config]
    ops = kernels(backend)
    rng = np.random.default_rng(0)
    if kernel in FLAT:
        call, shape = _flat_call(ops, kernel, num_params(cfg), rng)
    else:
        call, shape = _layer_call(ops, kernel, cfg, rng)
    benchmark.group = f"{kernel} {config} " + " ".join(f"{k}={v}" for k, v in shape.items())
    benchmark(call)
    impl = getattr(ops, kernel).__module__
    record_blas(config=config, kernel=kernel, backend=backend, implementation=impl, **shape)
