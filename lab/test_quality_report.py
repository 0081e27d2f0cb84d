"""quality_report.py reads what `rnnfast train` and quality.py write and reports what they hold:
the loss at given minutes, the first time each level is reached, and levels never reached.

    PYTHONPATH=. python -m pytest -q -p no:cacheprovider lab/test_quality_report.py
"""

import csv

import pytest
import quality_report

from rnnfast.training import TrainConfig, Trainer

TEXT = "the quick brown fox jumps over the lazy dog. " * 40


@pytest.fixture
def cli_run(tmp_path):
    config = TrainConfig(hidden_size=8, num_layers=1, batch_size=2, seq_length=8, val_every=5)
    trainer = Trainer(TEXT, config, out_dir=tmp_path / "run")
    trainer.train(steps=12)
    return tmp_path / "run", trainer


def test_rnnfast_curve_is_the_runs_validations(cli_run):
    run_dir, trainer = cli_run
    curve = quality_report.rnnfast_curve(run_dir)
    assert [loss for _, _, loss in curve] == trainer.val_history["val_loss"]
    assert [chars for _, chars, _ in curve] == [s * 16 for s in trainer.val_history["val_step"]]
    seconds = trainer.history["seconds"]
    assert [s for s, _, _ in curve] == [
        seconds[step - 1] for step in trainer.val_history["val_step"]
    ]


def test_tables_report_levels_and_minutes(tmp_path):
    torch_csv = tmp_path / "torch.csv"
    with open(torch_csv, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["seconds", "train_chars", "train_loss", "val_loss"])
        writer.writerows([[60, 1000, 2.5, 2.1], [120, 2000, 2.0, 1.75], [600, 9000, 1.6, 1.49]])
    curve = quality_report.torch_curve(torch_csv)
    assert quality_report.first_reaching(curve, 1.8) == (120, 2000)
    assert quality_report.first_reaching(curve, 1.47) is None
    assert quality_report.at_minutes(curve, 5) == (1.75, 2000)
    assert quality_report.at_minutes(curve, 0.5) is None
    text = quality_report.tables({"PyTorch": curve})
    assert "| <= 1.8 | 2.0, 0.0M |" in text
    assert "| <= 1.47 | not reached |" in text
    assert "| best | **1.490** (at 10.0 min) | 0.0M |" in text
