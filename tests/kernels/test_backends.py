"""The C backend against the NumPy reference on whole models: losses, gradients, training runs
and sampled text, over the public API a user switches with one argument."""

import threading

import numpy as np
import pytest
from conftest import assert_as_accurate, assert_close, fit_chunk, subprocess_env

import rnnfast
from rnnfast import reference
from rnnfast.core import GATES

MODELS = [  # cell, V, H, layers, T, B
    ("rnn", 65, 100, 1, 25, 1),
    ("rnn", 2, 7, 3, 1, 1),
    ("lstm", 65, 32, 2, 20, 5),
    ("lstm", 11, 13, 3, 7, 4),
    ("lstm", 5, 1, 1, 3, 2),
    ("gru", 65, 32, 2, 20, 5),
    ("gru", 2, 7, 3, 1, 1),
    ("gru", 11, 13, 1, 7, 4),
]


def pair(cell, V, H, layers, dtype, seed=0):
    kwargs = {"cell": cell, "hidden_size": H, "num_layers": layers, "dtype": dtype, "seed": seed}
    return rnnfast.CharLM(V, backend="c", **kwargs), reference.CharLM(V, **kwargs)


def random_state(model, B, rng):
    state = model.zero_state(B)
    state.h[...] = rng.uniform(-0.9, 0.9, state.h.shape)
    if state.c is not None:
        state.c[...] = rng.normal(0, 1, state.c.shape)
    return state


@pytest.mark.parametrize("cell, V, H, layers, T, B", MODELS)
@pytest.mark.parametrize("initial", ["zero", "given"])
@pytest.mark.usefixtures("kernel_path")
def test_loss_gradients_and_state_match(cell, V, H, layers, T, B, initial, dtype, rng):
    fit_chunk(B, GATES[cell] * H, dtype)
    c_model, np_model = pair(cell, V, H, layers, dtype)
    x, y = rng.integers(0, V, (2, T, B))
    state = None if initial == "zero" else random_state(c_model, B, rng)
    c_out = c_model.loss_and_grads(x, y, state, state_grad=True)
    np_out = np_model.loss_and_grads(x, y, state, state_grad=True)
    assert_close(c_out[0], np_out[0], dtype, "loss")
    for name in np_out[1]:
        assert_close(c_out[1][name], np_out[1][name], dtype, name)
    for part in ("h", "c"):
        if getattr(np_out[2], part) is not None:
            assert_close(getattr(c_out[2], part), getattr(np_out[2], part), dtype, part)
            assert_close(getattr(c_out[3], part), getattr(np_out[3], part), dtype, "d" + part)


def test_negative_control_a_perturbed_weight_fails(dtype, rng):
    c_model, np_model = pair("lstm", 11, 13, 2, dtype)
    x, y = rng.integers(0, 11, (2, 7, 4))
    np_model.params["W_h.1"][3, 5] += 0.05
    _, c_grads, _ = c_model.loss_and_grads(x, y)
    _, np_grads, _ = np_model.loss_and_grads(x, y)
    with pytest.raises(AssertionError):
        assert_close(c_grads.flat, np_grads.flat, dtype)


def train_run(model, optimizer, batches, steps=60):
    lr = 0.1 if optimizer in ("SGD", "Adagrad") else 3e-3
    opt = getattr(rnnfast, optimizer)(model, lr=lr)
    state, losses = None, []
    for step in range(steps):
        x, y = batches.batch(step % len(batches))
        loss, state = model.train_step(x, y, opt, state)
        losses.append(loss)
    return np.array(losses), model.flat_params


@pytest.mark.parametrize(
    "optimizer, cell", [("SGD", "lstm"), ("Adagrad", "lstm"), ("RMSProp", "lstm"),
                        ("Adam", "lstm"), ("Adam", "gru")],
)  # fmt: skip
def test_training_runs_stay_close_over_many_steps(optimizer, cell, dtype):
    """Same data, same start, 60 train_steps on each backend.  float64 runs agree to the table;
    in float32 the rounding of 60 updates compounds, so the C run must stay as close to the
    float64 run as the float32 reference run does (conftest.assert_as_accurate)."""
    text = "to be, or not to be, that is the question: " * 30
    vocab = rnnfast.Vocab.from_text(text)
    batches = rnnfast.Batches(vocab.encode(text), batch_size=4, seq_length=12)
    c_model, np_model = pair(cell, vocab, 24, 2, dtype)
    c_losses, c_params = train_run(c_model, optimizer, batches)
    np_losses, np_params = train_run(np_model, optimizer, batches)
    assert np.mean(c_losses[-5:]) < c_losses[0]
    if np.dtype(dtype) == np.float64:
        assert_close(c_losses, np_losses, dtype, "losses")
        assert_close(c_params, np_params, dtype, "parameters")
        return
    exact = reference.CharLM(vocab, cell, hidden_size=24, num_layers=2, dtype=np.float64, seed=0)
    exact_losses, exact_params = train_run(exact, optimizer, batches)
    assert_as_accurate(c_losses, np_losses, exact_losses, "losses")
    assert_as_accurate(c_params, np_params, exact_params, "parameters")


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_sampled_text_is_identical(cell, dtype):
    vocab = rnnfast.Vocab.from_text("abcdefghij ,.")
    c_model, np_model = pair(cell, vocab, 16, 2, dtype, seed=3)
    for kwargs in ({}, {"temperature": 0.7}, {"top_k": 3}, {"argmax": True},
                   {"num_samples": 4, "temperature": 1.3}):  # fmt: skip
        a = c_model.sample(300, prime="abc", seed=11, **kwargs)
        b = np_model.sample(300, prime="abc", seed=11, **kwargs)
        assert a == b, kwargs


def test_two_threads_give_the_results_of_running_one_after_the_other():
    """The C calls release the GIL; two models trained at once in two threads end exactly where
    they end when trained in turn (nothing is shared between models)."""
    vocab = rnnfast.Vocab.from_text("the cat sat on the mat. " * 20)
    ids = vocab.encode("the cat sat on the mat. " * 20)
    batches = rnnfast.Batches(ids, batch_size=4, seq_length=10)

    def train(model, results, key):
        opt = rnnfast.Adam(model, lr=1e-2)
        state, losses = None, []
        for step in range(40):
            x, y = batches.batch(step % len(batches))
            loss, state = model.train_step(x, y, opt, state)
            losses.append(loss)
        results[key] = (losses, model.flat_params.copy())

    def fresh(seed):
        return rnnfast.CharLM(vocab, hidden_size=24, num_layers=2, backend="c", seed=seed)

    sequential, parallel = {}, {}
    for seed in (1, 2):
        train(fresh(seed), sequential, seed)
    threads = [threading.Thread(target=train, args=(fresh(s), parallel, s)) for s in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for seed in (1, 2):
        assert parallel[seed][0] == sequential[seed][0]
        np.testing.assert_array_equal(parallel[seed][1], sequential[seed][1])


def test_thread_limits_set_after_import_reach_the_kernels_blas(tmp_path):
    """`import rnnfast` loads SciPy's OpenBLAS, so a threadpool_limits entered afterwards holds
    every BLAS pool that a training step uses (a fresh process: nothing loaded before)."""
    import subprocess
    import sys

    code = (
        "import rnnfast\n"
        "from threadpoolctl import threadpool_info, threadpool_limits\n"
        "with threadpool_limits(1):\n"
        "    model = rnnfast.CharLM(5, hidden_size=4, num_layers=1)\n"
        "    model.loss([[0], [1]], [[1], [2]])\n"
        "    pools = [i for i in threadpool_info() if i['user_api'] == 'blas']\n"
        "print(len(pools), max(i['num_threads'] for i in pools))\n"
    )
    # cwd: `python -c` puts it first on sys.path, and the checkout's root holds the unbuilt source
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=tmp_path, env=subprocess_env())  # fmt: skip
    count, most_threads = map(int, out.stdout.split())
    assert count >= 2  # NumPy's OpenBLAS and SciPy's
    assert most_threads == 1
