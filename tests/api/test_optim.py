"""Each optimizer's first steps against the update written out by hand, on both backends."""

import numpy as np
import pytest

import rnnfast
from rnnfast.backends import BACKENDS


def tiny_model(backend, dtype=np.float64):
    return rnnfast.CharLM(
        3, cell="rnn", hidden_size=2, num_layers=1, dtype=dtype, backend=backend, seed=0
    )


def grads_sequence(model, steps, seed=1):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=model.num_params).astype(model.dtype) for _ in range(steps)]


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


def run(model, optimizer, grads):
    start = model.flat_params.copy()
    for g in grads:
        optimizer.step(g)
    return start, model.flat_params.copy()


def test_sgd(backend):
    model = tiny_model(backend)
    g = grads_sequence(model, 2)
    p0, p = run(model, rnnfast.SGD(model, lr=0.1), g)
    np.testing.assert_allclose(p, p0 - 0.1 * g[0] - 0.1 * g[1], rtol=1e-12)


def test_sgd_momentum(backend):
    model = tiny_model(backend)
    g = grads_sequence(model, 2)
    p0, p = run(model, rnnfast.SGD(model, lr=0.1, momentum=0.9), g)
    v1 = g[0]
    v2 = 0.9 * v1 + g[1]
    np.testing.assert_allclose(p, p0 - 0.1 * v1 - 0.1 * v2, rtol=1e-12)


def test_adagrad_is_min_char_rnns(backend):
    model = tiny_model(backend)
    g = grads_sequence(model, 2)
    p0, p = run(model, rnnfast.Adagrad(model, lr=0.1), g)
    mem1 = g[0] ** 2
    mem2 = mem1 + g[1] ** 2
    expected = p0 - 0.1 * g[0] / np.sqrt(mem1 + 1e-8) - 0.1 * g[1] / np.sqrt(mem2 + 1e-8)
    np.testing.assert_allclose(p, expected, rtol=1e-12)


def test_rmsprop_is_char_rnns(backend):
    model = tiny_model(backend)
    g = grads_sequence(model, 2)
    p0, p = run(model, rnnfast.RMSProp(model, lr=2e-3, alpha=0.95), g)
    ms1 = 0.05 * g[0] ** 2
    ms2 = 0.95 * ms1 + 0.05 * g[1] ** 2
    expected = p0 - 2e-3 * g[0] / (np.sqrt(ms1) + 1e-8) - 2e-3 * g[1] / (np.sqrt(ms2) + 1e-8)
    np.testing.assert_allclose(p, expected, rtol=1e-12)


def test_adam_with_bias_correction(backend):
    model = tiny_model(backend)
    g = grads_sequence(model, 2)
    p0, p = run(model, rnnfast.Adam(model, lr=1e-2), g)
    expected = p0.copy()
    m = np.zeros_like(p0)
    v = np.zeros_like(p0)
    for t, gt in enumerate(g, start=1):
        m = 0.9 * m + 0.1 * gt
        v = 0.999 * v + 0.001 * gt**2
        expected -= 1e-2 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    np.testing.assert_allclose(p, expected, rtol=1e-12)


def test_first_adam_step_moves_every_parameter_by_lr(backend):
    """A known property: Adam's first step is lr * sign(g) (up to eps)."""
    model = tiny_model(backend)
    g = grads_sequence(model, 1)
    p0, p = run(model, rnnfast.Adam(model, lr=1e-3), g)
    np.testing.assert_allclose(p0 - p, 1e-3 * np.sign(g[0]), rtol=1e-4)


def test_negative_control_hand_step_detects_a_wrong_learning_rate(backend):
    model = tiny_model(backend)
    g = grads_sequence(model, 1)
    p0, p = run(model, rnnfast.SGD(model, lr=0.1), g)
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(p, p0 - 0.1001 * g[0], rtol=1e-12)


def test_clip_by_value_and_by_norm(backend):
    model = tiny_model(backend)
    grads = model.zeros_like_params()
    grads.flat[:3] = [10.0, -10.0, 0.5]
    model.clip_grads(grads, value=1.0)
    np.testing.assert_array_equal(grads.flat[:3], [1.0, -1.0, 0.5])
    norm = model.clip_grads(grads, max_norm=0.5)
    assert norm == pytest.approx(1.5)
    assert np.linalg.norm(grads.flat) == pytest.approx(0.5, rel=1e-5)


@pytest.mark.parametrize("kwargs", [{"lr": 0}, {"lr": -1}, {"lr": float("nan")}, {"lr": "a"}])
def test_bad_hyperparameters_are_rejected(kwargs):
    with pytest.raises(ValueError, match="lr"):
        rnnfast.Adam(tiny_model("numpy"), **kwargs)


def test_grads_of_the_wrong_size_are_rejected():
    model = tiny_model("numpy")
    with pytest.raises(ValueError, match="grads"):
        rnnfast.SGD(model).step(np.zeros(3))


def test_state_dict_round_trip_continues_identically():
    model_a, model_b = tiny_model("numpy"), tiny_model("numpy")
    g = grads_sequence(model_a, 4)
    opt_a = rnnfast.Adam(model_a, lr=1e-2)
    for gt in g:
        opt_a.step(gt)
    opt_b = rnnfast.Adam(model_b, lr=1e-2)
    for gt in g[:2]:
        opt_b.step(gt)
    opt_c = rnnfast.Adam(model_b, lr=5.0)
    opt_c.load_state_dict(opt_b.state_dict())
    for gt in g[2:]:
        opt_c.step(gt)
    np.testing.assert_array_equal(model_a.flat_params, model_b.flat_params)
