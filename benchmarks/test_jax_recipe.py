"""The JAX column of compare.py computes what the PyTorch column computes: in float64, from the
same weights and batch, loss, final state and gradients agree to 1e-9 relative, and so do the
weights after a few clipped Adam steps.  Skipped when jax or torch is not installed.

    PYTHONPATH=. python -m pytest -q -p no:cacheprovider benchmarks/test_jax_recipe.py
"""

import numpy as np
import pytest
from bench_configs import CONFIGS, Config, batch

jax = pytest.importorskip("jax")
torch = pytest.importorskip("torch")

import jax_recipe  # noqa: E402
from compare import TorchRunner  # noqa: E402

import rnnfast  # noqa: E402

RTOL, ATOL = 1e-9, 1e-12  # float64, two implementations summing in different orders

SHAPES = {
    "mincharrnn": CONFIGS["mincharrnn"],
    "rnn-2layer-batch": Config("rnn", 11, 7, 2, 3, 5),
    "lstm-2layer-batch": Config("lstm", 11, 7, 2, 3, 5),
    "lstm-batch1": Config("lstm", 5, 4, 1, 1, 6),
}


@pytest.fixture(autouse=True)
def _x64():
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", False)


def _torch_runner(cfg: Config) -> TorchRunner:
    return TorchRunner(cfg, dtype=torch.float64)


def _params_of(runner: TorchRunner) -> dict:
    """The torch weights in rnnfast's layout (float64 arrays)."""
    model = rnnfast.CharLM.from_torch(runner.rnn, runner.head)
    return {name: np.array(a) for name, a in model.params.items()}


def _grads_of(runner: TorchRunner) -> dict:
    """The torch gradients in rnnfast's layout (the merged bias gets bias_ih's gradient, which
    is bias_hh's up to rounding)."""
    rnn, head = runner.rnn, runner.head
    grads = {"W_y": head.weight.grad.numpy().T, "b_y": head.bias.grad.numpy()}
    for layer in range(runner.cfg.layers):
        bias_ih = getattr(rnn, f"bias_ih_l{layer}").grad.numpy()
        _close(bias_ih, getattr(rnn, f"bias_hh_l{layer}").grad.numpy(), "bias_ih vs bias_hh")
        grads[f"W_x.{layer}"] = getattr(rnn, f"weight_ih_l{layer}").grad.numpy().T
        grads[f"W_h.{layer}"] = getattr(rnn, f"weight_hh_l{layer}").grad.numpy().T
        grads[f"b.{layer}"] = bias_ih
    return grads


def _random_state(cfg: Config, rng) -> tuple:
    shape = (cfg.layers, cfg.B, cfg.H)
    parts = 2 if cfg.cell == "lstm" else 1
    return tuple(rng.uniform(-0.9, 0.9, shape) for _ in range(parts))


def _jax_loss_and_grads(cfg: Config, params: dict, state: tuple):
    x, y = (a.astype(np.int32) for a in batch(cfg))
    return jax_recipe.loss_and_grads(params, x, y, state, cell=cfg.cell, layers=cfg.layers)


def _close(actual, expected, what: str):
    np.testing.assert_allclose(np.asarray(actual), expected, rtol=RTOL, atol=ATOL, err_msg=what)


@pytest.mark.parametrize("name", SHAPES)
def test_loss_state_and_grads_match_torch(name):
    cfg = SHAPES[name]
    runner = _torch_runner(cfg)
    state = _random_state(cfg, np.random.default_rng(1))
    torch_state = tuple(map(torch.from_numpy, state))
    runner.state = torch_state if cfg.cell == "lstm" else torch_state[0]
    params = _params_of(runner)

    loss, final = runner.loss()
    loss.backward()
    (jax_loss, jax_final), jax_grads = _jax_loss_and_grads(cfg, params, state)

    _close(jax_loss, loss.item(), "loss")
    torch_final = final if cfg.cell == "lstm" else (final,)
    for part, (a, b) in enumerate(zip(jax_final, torch_final, strict=True)):
        _close(a, b.detach().numpy(), f"final state part {part}")
    expected = _grads_of(runner)
    assert set(jax_grads) == set(expected)
    for key, g in expected.items():
        _close(jax_grads[key], g, f"gradient of {key}")


def test_comparison_detects_a_perturbed_weight():
    cfg = SHAPES["lstm-2layer-batch"]
    runner = _torch_runner(cfg)
    params = _params_of(runner)
    params["W_h.1"][2, 3] += 1e-6
    runner.loss()[0].backward()
    state = tuple(np.zeros((cfg.layers, cfg.B, cfg.H)) for _ in range(2))
    _, jax_grads = _jax_loss_and_grads(cfg, params, state)
    with pytest.raises(AssertionError):
        _close(jax_grads["W_h.1"], _grads_of(runner)["W_h.1"], "gradient of W_h.1")


def _merge_torch_biases(runner: TorchRunner) -> None:
    """Fold bias_hh into bias_ih and freeze it at zero: the recipe has one bias per layer, and
    Adam moving two torch biases would move their sum twice as far."""
    with torch.no_grad():
        for layer in range(runner.cfg.layers):
            bias_ih = getattr(runner.rnn, f"bias_ih_l{layer}")
            bias_hh = getattr(runner.rnn, f"bias_hh_l{layer}")
            bias_ih += bias_hh
            bias_hh.zero_()
            bias_hh.requires_grad_(False)


@pytest.mark.parametrize("name", SHAPES)
def test_adam_steps_match_torch(name):
    cfg = SHAPES[name]
    runner = _torch_runner(cfg)
    _merge_torch_biases(runner)
    model = jax_recipe.JaxModel(_params_of(runner), cfg.cell, cfg.layers, cfg.B, 1)
    x, y = (a.astype(np.int32) for a in batch(cfg))
    for _ in range(3):  # bias correction changes with the step; the state is carried
        runner.train(1)
        model.train_step(x, y)
    after = _params_of(runner)
    for key, p in after.items():
        _close(model.params[key], p, f"{key} after 3 Adam steps")


def test_sampling_draws_from_the_softmax():
    """With W_y = 0 every character is drawn from softmax(b_y): frequencies over 40 chunks of
    100 lie within 5 standard deviations of the probabilities."""
    cfg = Config("lstm", 4, 8, 2, 1, 1)
    params = _params_of(_torch_runner(cfg))
    probs = np.array([0.1, 0.2, 0.3, 0.4])
    params["W_y"][...] = 0
    params["b_y"][...] = np.log(probs)
    model = jax_recipe.JaxModel(params, cfg.cell, cfg.layers, cfg.B, 100)
    ids = np.concatenate([np.asarray(model.sample(seed)) for seed in range(40)])
    assert ids.shape == (4000,)
    freq = np.bincount(ids, minlength=4) / ids.size
    sigma = np.sqrt(probs * (1 - probs) / ids.size)
    assert np.all(np.abs(freq - probs) < 5 * sigma), freq
