"""The Trainer: exact resume for every optimizer, epochs, the learning-rate schedule, validation
and divergence."""

import math

import numpy as np
import pytest

from rnnfast import CharLM, Vocab, checkpoint
from rnnfast.training import History, TrainConfig, Trainer, TrainingDiverged, evaluate

# 300 characters: 270 to train on, 8 steps per epoch at B=4, T=8, so a run of 24 steps crosses
# two epoch boundaries (where the carried state resets) and a resume at step 10 lands mid-epoch
TEXT = ("the quick brown fox jumps over the lazy dog; " * 7)[:300]


def tiny(**kw) -> TrainConfig:
    base = dict(
        hidden_size=16,
        num_layers=2,
        batch_size=4,
        seq_length=8,
        val_every=5,
        lr_decay=0.9,
        lr_decay_every=7,
        seed=3,
    )
    base.update(kw)
    return TrainConfig(**base)


OPTIMIZER_CASES = [
    pytest.param(dict(optimizer="sgd", momentum=0.9, cell="rnn"), id="sgd-momentum-rnn"),
    pytest.param(dict(optimizer="adagrad"), id="adagrad"),
    pytest.param(dict(optimizer="rmsprop"), id="rmsprop"),
    pytest.param(dict(optimizer="adam"), id="adam"),
    pytest.param(dict(optimizer="adam", dtype="float64", max_norm=1.0), id="adam-f64-maxnorm"),
    pytest.param(dict(optimizer="adam", dropout=0.3), id="adam-dropout"),
    pytest.param(dict(optimizer="rmsprop", cell="rnn", dropout=0.5), id="rmsprop-dropout-rnn"),
]


def assert_same_run(a: Trainer, b: Trainer):
    np.testing.assert_array_equal(a.model.flat_params, b.model.flat_params)
    timed = ("seconds",)  # wall time: the one column two identical runs do not share
    assert {k: v for k, v in a.history.items() if k not in timed} == {
        k: v for k, v in b.history.items() if k not in timed
    }
    for run in (a, b):  # cumulative training time, carried across a resume
        assert np.all(np.diff(run.history["seconds"]) > 0) and run.history["seconds"][0] > 0
    assert a.val_history == b.val_history
    assert (a.step, a.epoch, a.batch_index) == (b.step, b.epoch, b.batch_index)
    sa, sb = a.optimizer.state_dict(), b.optimizer.state_dict()
    assert sa["step_count"] == sb["step_count"] and sa["hyperparameters"] == sb["hyperparameters"]
    for name in sa["moments"]:
        np.testing.assert_array_equal(sa["moments"][name], sb["moments"][name])


@pytest.mark.parametrize("kw", OPTIMIZER_CASES)
def test_resume_is_bit_exact(tmp_path, kw):
    N, k = 24, 10
    straight = Trainer(TEXT, tiny(**kw))
    straight.train(steps=N)
    assert straight.epoch == 3 and straight.batches.steps_per_epoch == 8

    first = Trainer(TEXT, tiny(**kw))
    first.train(steps=k)
    first.save(tmp_path / "ck.npz")
    resumed = Trainer.resume(tmp_path / "ck.npz", TEXT)
    assert resumed.step == k and resumed.batch_index == k % 8
    resumed.train(steps=N)  # steps count from the start of training: N - k more
    assert resumed.step == N
    assert len(resumed.history["train_loss"]) == N
    assert_same_run(straight, resumed)


def test_resume_without_the_carried_state_differs(tmp_path):
    """Negative control: the comparison above notices a state that was not restored."""
    N, k = 16, 10
    straight = Trainer(TEXT, tiny())
    straight.train(steps=N)
    first = Trainer(TEXT, tiny())
    first.train(steps=k)
    first.save(tmp_path / "ck.npz")
    resumed = Trainer.resume(tmp_path / "ck.npz", TEXT)
    resumed.state = None
    resumed.train(steps=N)
    assert not np.array_equal(straight.model.flat_params, resumed.model.flat_params)


def test_resume_without_the_mask_generator_differs(tmp_path):
    """Negative control for dropout: the same comparison notices a mask generator that starts
    again from its seed instead of where the first run stopped."""
    N, k = 16, 10
    straight = Trainer(TEXT, tiny(dropout=0.3))
    straight.train(steps=N)
    first = Trainer(TEXT, tiny(dropout=0.3))
    first.train(steps=k)
    first.save(tmp_path / "ck.npz")
    resumed = Trainer.resume(tmp_path / "ck.npz", TEXT)
    resumed.model.generator = Trainer(TEXT, tiny(dropout=0.3)).model.generator
    resumed.train(steps=N)
    assert not np.array_equal(straight.model.flat_params, resumed.model.flat_params)


def test_resume_through_out_dir_and_later_epochs(tmp_path):
    first = Trainer(TEXT, tiny(), out_dir=tmp_path)
    assert first.train(steps=10) == "steps"
    assert (tmp_path / "latest.npz").exists() and (tmp_path / "best.npz").exists()
    resumed = Trainer.resume(tmp_path, TEXT, out_dir=tmp_path)
    assert resumed.train(epochs=2) == "epochs"
    assert (resumed.step, resumed.epoch, resumed.batch_index) == (16, 2, 0)
    straight = Trainer(TEXT, tiny())
    straight.train(epochs=2)
    # the first run also validated at its end (step 10, a multiple of val_every): same history
    assert_same_run(straight, resumed)


def test_state_resets_at_each_epoch():
    trainer = Trainer(TEXT, tiny())
    seen = []
    original = trainer.model.train_step

    def spy(x, y, optimizer, state=None, **kw):
        seen.append(state is None)
        return original(x, y, optimizer, state, **kw)

    trainer.model.train_step = spy
    trainer.train(steps=18)
    assert [i for i, fresh in enumerate(seen) if fresh] == [0, 8, 16]


def test_learning_rate_schedule():
    trainer = Trainer(TEXT, tiny(lr=0.01, lr_decay=0.5, lr_decay_every=3))
    assert [trainer.lr_at(s) for s in (0, 2, 3, 6)] == [0.01, 0.01, 0.005, 0.0025]
    trainer.train(steps=7)
    assert trainer.history["lr"] == [0.01] * 3 + [0.005] * 3 + [0.0025]


def test_train_needs_a_stopping_rule_and_stops_on_time():
    trainer = Trainer(TEXT, tiny())
    with pytest.raises(ValueError, match="steps, epochs or seconds"):
        trainer.train()
    assert trainer.train(seconds=0.05) == "time"
    assert trainer.step >= 1


def test_validation_and_history_files(tmp_path):
    trainer = Trainer(TEXT, tiny(val_every=4), out_dir=tmp_path)
    trainer.train(steps=9)
    assert trainer.val_history["val_step"] == [4, 8, 9]  # every 4 steps and at the end
    assert all(math.isfinite(v) for v in trainer.val_history["val_loss"])
    csv_lines = (tmp_path / "history.csv").read_text().splitlines()
    assert csv_lines[0] == "step,epoch,lr,train_loss,seconds,val_loss,val_bpc"
    assert len(csv_lines) == 10
    ck = checkpoint.load(tmp_path / "best.npz")
    assert ck.training["best_val_loss"] == min(trainer.val_history["val_loss"])


def test_evaluate_carries_the_state_across_windows():
    """Windows of 7 with the state carried score exactly what one pass over the text does."""
    vocab = Vocab.from_text(TEXT)
    model = CharLM(vocab, hidden_size=8, num_layers=2, dtype=np.float64, seed=0)
    ids = vocab.encode(TEXT[:100])
    whole, _ = model.loss(ids[:-1, None], ids[1:, None])
    assert evaluate(model, ids, batch_size=1, seq_length=7) == pytest.approx(whole, rel=1e-12)
    # 3 streams of 33 predictions: every one of the 99 counted once
    assert math.isfinite(evaluate(model, ids, batch_size=3, seq_length=5))
    with pytest.raises(ValueError, match="at least 2 characters"):
        evaluate(model, ids[:1])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflow that makes it diverge
def test_divergence_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    trainer = Trainer(TEXT, tiny(optimizer="sgd", lr=0.05, val_every=3), out_dir=tmp_path)
    trainer.train(steps=6)
    good = checkpoint.load(tmp_path).model.flat_params.copy()
    trainer.config.lr = 1e4  # now blow it up
    with pytest.raises(
        TrainingDiverged,
        match=r"training stopped at step \d+: .*last good "
        r"checkpoint .*latest.npz \(step 6\)",
    ):
        trainer.train(steps=30)
    kept = checkpoint.load(tmp_path)
    assert kept.step == 6
    np.testing.assert_array_equal(kept.model.flat_params, good)


def test_non_finite_loss_is_divergence():
    trainer = Trainer(TEXT, tiny())
    trainer.model.flat_params[0] = np.nan
    with pytest.raises(TrainingDiverged, match="loss is nan"):
        trainer.train(steps=3)


def test_resume_refuses_changes_and_other_text(tmp_path):
    trainer = Trainer(TEXT, tiny())
    trainer.train(steps=2)
    trainer.save(tmp_path / "ck.npz")
    with pytest.raises(ValueError, match="cannot change"):
        Trainer.resume(tmp_path / "ck.npz", TEXT, hidden_size=32)
    with pytest.raises(ValueError, match="not in the checkpoint's vocabulary: 'Z'"):
        Trainer.resume(tmp_path / "ck.npz", TEXT + "Z")
    with pytest.warns(UserWarning, match="differs"):
        Trainer.resume(tmp_path / "ck.npz", TEXT[::-1])


def test_bad_settings_are_value_errors():
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(optimizer="lbfgs")
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match=r"momentum: expected a number in \[0, 1\)"):
        TrainConfig(optimizer="sgd", momentum=1.0)
    with pytest.raises(ValueError, match=r"dropout: expected a finite number in \[0, 1\)"):
        TrainConfig(dropout=1.0)
    with pytest.raises(ValueError, match="shorter than one batch"):
        Trainer("tiny text", tiny())


def test_resume_builds_the_model_once_with_the_chosen_backend(tmp_path, monkeypatch):
    trainer = Trainer(TEXT, tiny())
    trainer.train(steps=2)
    trainer.save(tmp_path / "ck.npz")
    built = []
    init = CharLM.__init__

    def counting_init(self, *args, **kwargs):
        built.append(kwargs.get("backend"))
        init(self, *args, **kwargs)

    monkeypatch.setattr(CharLM, "__init__", counting_init)
    resumed = Trainer.resume(tmp_path / "ck.npz", TEXT, backend="numpy")
    assert built == ["numpy"]
    assert resumed.model.backend == "numpy" and resumed.optimizer.model is resumed.model
    np.testing.assert_array_equal(resumed.model.flat_params, trainer.model.flat_params)


def test_history_from_a_checkpoint_without_seconds_reads_them_as_nan():
    """Checkpoints written before the training-time column still load: their steps have no
    time, and a resumed run's clock starts again from zero."""
    old = {"step": np.array([1, 2]), "epoch": np.array([0, 0]), "lr": np.array([0.1, 0.1]),
           "train_loss": np.array([4.0, 3.5])}  # fmt: skip
    record = History(old)
    assert record.train["train_loss"] == [4.0, 3.5]
    assert all(math.isnan(s) for s in record.train["seconds"]) and len(record.train["seconds"]) == 2
