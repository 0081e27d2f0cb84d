"""One model shared by many Python threads: every call that does not train returns, bit for bit,
what the same call returns alone; training from several threads runs one step at a time."""

import threading

import numpy as np
import pytest

import rnnfast
from rnnfast import cs231n, layers
from rnnfast.training import evaluate

THREADS, ROUNDS = 8, 4
V, H = 11, 48


def model_calls(model, rng):
    """Named zero-argument calls of every non-training method, with inputs of several shapes
    (two calls of one shape share the model's workspaces if anything does)."""
    calls = {}
    for T, B in [(24, 8), (24, 8), (1, 1), (17, 5)]:
        x, y = rng.integers(0, V, (2, T, B))
        state = model.zero_state(B)
        state.h[...] = rng.uniform(-0.5, 0.5, state.h.shape)
        tag = f"{T}x{B}-{len(calls)}"
        calls[f"loss {tag}"] = lambda x=x, y=y, s=state: model.loss(x, y, s)
        calls[f"loss_and_grads {tag}"] = lambda x=x, y=y, s=state: model.loss_and_grads(
            x, y, s, state_grad=True
        )
        calls[f"forward {tag}"] = lambda x=x, s=state: model.forward(x, s)
        calls[f"step {tag}"] = lambda x=x, s=state: model.step(x[0], s)
    ids = rng.integers(0, V, 200)
    calls["sample"] = lambda: model.sample(60, prime="abc", temperature=0.9, seed=3)
    calls["sampler"] = lambda: model.sampler(ids[:4]).draw(np.full((9, 4), 0.4))
    calls["evaluate"] = lambda: evaluate(model, ids, batch_size=4, seq_length=8)
    return calls


def layer_calls(rng):
    lstm = layers.LSTM(6, 9, num_layers=2, seed=1)
    x = rng.standard_normal((5, 3, 6)).astype(np.float32)
    dout = rng.standard_normal((5, 3, 9)).astype(np.float32)

    def layer_forward_backward():
        out, state, cache = lstm.forward(x)
        return out.copy(), state, lstm.backward(dout, cache)

    Wx, Wh, b = (rng.standard_normal(s) for s in [(6, 36), (9, 36), (36,)])
    h0, xb = rng.standard_normal((3, 9)), rng.standard_normal((3, 5, 6))

    def cs231n_lstm():
        h, cache = cs231n.lstm_forward(xb, h0, Wx, Wh, b)
        return h, cs231n.lstm_backward(np.ones_like(h), cache)

    return {"layers.LSTM": layer_forward_backward, "cs231n.lstm": cs231n_lstm}


def flatten(result):
    """Every array and number in a result (tuples, States, Params), in order."""
    if isinstance(result, np.ndarray):
        return [result]
    if isinstance(result, (int, float, str, np.floating)):
        return [np.asarray(result)]
    if result is None:
        return []
    if hasattr(result, "flat") and hasattr(result, "items"):  # Params
        return [result.flat]
    return [a for part in result for a in flatten(part)]


def run_together(calls, threads=THREADS, rounds=ROUNDS):
    """Every call from every thread, ``rounds`` times each in a thread's own order, all threads
    started at once; returns {(thread, round, name): result}."""
    results, errors = {}, []
    barrier = threading.Barrier(threads)
    names = list(calls)

    def worker(k):
        order = np.random.default_rng(k).permutation(len(names))
        barrier.wait()
        try:
            for r in range(rounds):
                for i in order:
                    results[k, r, names[i]] = calls[names[i]]()
        except BaseException as error:  # noqa: BLE001 (reported by the test)
            errors.append(error)

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert not errors, errors
    return results


def mismatches(calls, results):
    """Names of the results that differ in any bit from the same call made alone."""
    alone = {name: flatten(call()) for name, call in calls.items()}
    wrong = set()
    for (_, _, name), result in results.items():
        got = flatten(result)
        if len(got) != len(alone[name]) or any(
            not np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
            for a, b in zip(got, alone[name], strict=True)
        ):
            wrong.add(name)
    return wrong


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_every_non_training_call_from_8_threads_is_the_lone_call(cell):
    rng = np.random.default_rng(0)
    model = rnnfast.CharLM(rnnfast.Vocab("abcdefghijk"), cell=cell, hidden_size=H, seed=2)
    calls = {**model_calls(model, rng), **layer_calls(rng)}
    assert mismatches(calls, run_together(calls)) == set()


def test_the_comparison_catches_calls_that_share_a_workspace(monkeypatch):
    """Negative control: with every call handed the same workspace (the model before it kept
    one per call), the concurrent results differ from the lone ones."""
    rng = np.random.default_rng(1)
    model = rnnfast.CharLM(rnnfast.Vocab("abcdefghijk"), hidden_size=64, seed=2)
    shared = {}

    class Shared:
        def __init__(self, T, B):
            self.ws = shared.setdefault((T, B), model._new_workspace(T, B))

        def __enter__(self):
            return self.ws

        def __exit__(self, *exc):
            return False

    batches = [rng.integers(0, V, (40, 16)) for _ in range(4)]
    calls = {f"loss {k}": (lambda x=x: model.loss(x, x)) for k, x in enumerate(batches)}
    monkeypatch.setattr(model, "_borrowed", Shared)
    assert mismatches(calls, run_together(calls, rounds=20)) != set()


def test_training_from_two_threads_runs_one_step_at_a_time():
    """Two threads, 10 steps each on the same batch: the model and optimizer end as after 20
    steps in one thread (the steps commute only as whole steps: same batch, no carried state)."""
    rng = np.random.default_rng(3)
    x, y = rng.integers(0, V, (2, 24, 8))
    models = [rnnfast.CharLM(V, hidden_size=H, seed=4) for _ in range(2)]
    optimizers = [rnnfast.Adagrad(m, lr=0.1) for m in models]
    for _ in range(20):
        models[0].train_step(x, y, optimizers[0])
    calls = {"train": lambda: models[1].train_step(x, y, optimizers[1])}
    run_together(calls, threads=2, rounds=10)
    assert optimizers[1].step_count == 20
    np.testing.assert_array_equal(models[1].flat_params, models[0].flat_params)
    np.testing.assert_array_equal(
        optimizers[1].state_dict()["moments"]["memory"],
        optimizers[0].state_dict()["moments"]["memory"],
    )
