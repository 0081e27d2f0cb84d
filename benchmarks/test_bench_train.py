"""CharLM.train_step (Adam, clip by value 5) and batch-1 sampling per config, both backends.

    PYTHONPATH=. pytest benchmarks/test_bench_train.py [--large] [--threads 1]

Until a kernel exists in C the "c" backend runs its NumPy twin (see ``extra_info``).
"""

import pytest
from bench_configs import CONFIGS, batch, bench_model
from conftest import config_params

import rnnfast

BACKENDS = ["c", "numpy"]
SAMPLE_CHARS = 200


def _median(benchmark):
    """The timed median, or None under --benchmark-disable (the code runs once, untimed)."""
    return benchmark.stats.stats.median if benchmark.stats else None


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("config", config_params(list(CONFIGS)))
def test_train_step(benchmark, record_blas, config, backend):
    cfg = CONFIGS[config]
    model = bench_model(cfg, backend)
    opt = rnnfast.Adam(model, lr=2e-3)
    x, y = batch(cfg)
    state = [model.zero_state(cfg.B)]

    def step():
        _, state[0] = model.train_step(x, y, opt, state[0], clip=5.0)

    benchmark.group = f"train_step {config} {cfg}"
    benchmark(step)
    chars = cfg.T * cfg.B
    record_blas(
        config=config,
        backend=backend,
        chars_per_call=chars,
        chars_per_s=chars / _median(benchmark) if _median(benchmark) else None,
    )


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("config", config_params(list(CONFIGS)))
def test_sample(benchmark, record_blas, config, backend):
    cfg = CONFIGS[config]
    model = bench_model(cfg, backend)
    benchmark.group = f"sample {config} {cfg} chars={SAMPLE_CHARS}"
    text = benchmark(model.sample, SAMPLE_CHARS, prime="a", temperature=0.8, seed=0)
    assert len(text) == SAMPLE_CHARS + 1
    record_blas(
        config=config,
        backend=backend,
        chars_per_call=SAMPLE_CHARS,
        chars_per_s=SAMPLE_CHARS / _median(benchmark) if _median(benchmark) else None,
    )
