"""The command line, mostly in-process through ``rnnfast.__main__.main`` (works installed or from
a source tree); Ctrl-C runs a real subprocess."""

import json
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import subprocess_env

from rnnfast import checkpoint
from rnnfast.__main__ import main
from rnnfast.training import TrainConfig, Trainer

TEXT = ("def f(x):\n    return x + 1  # add one\n\nclass A:\n    pass\n" * 60)[:3000]
TINY = [
    "--hidden-size",
    "16",
    "--num-layers",
    "1",
    "--batch-size",
    "4",
    "--seq-length",
    "8",
]
BACKENDS = ["c", "numpy"]


@pytest.fixture
def data(tmp_path) -> Path:
    path = tmp_path / "input.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def train(tmp_path, data, *extra, out="run", steps="20", backend="numpy"):
    return main(
        [
            "train",
            "--data",
            str(data),
            *TINY,
            "--backend",
            backend,
            "--steps",
            steps,
            "--val-every",
            "10",
            "--out",
            str(tmp_path / out),
            "--sample-length",
            "0",
            *extra,
        ]
    )


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def trained(tmp_path, data, capsys, backend) -> Path:
    assert train(tmp_path, data, backend=backend) == 0
    capsys.readouterr()
    return tmp_path / "run"


def test_train_writes_checkpoints_history_and_a_sample(tmp_path, data, capsys, backend):
    assert train(tmp_path, data, "--sample-length", "30", "--seed", "5", backend=backend) == 0
    out, err = capsys.readouterr()
    run = tmp_path / "run"
    assert {"latest.npz", "best.npz", "history.csv", "history.json"} <= {
        p.name for p in run.iterdir()
    }
    assert "val loss" in err and "bits/char" in err
    if not (run / "loss.png").exists():
        assert 'pip install "rnnfast[plot]"' in err
    assert len(out) == 31 and out.endswith("\n")  # the sample, alone on stdout
    history = json.loads((run / "history.json").read_text())
    assert [v["step"] for v in history["val"]] == [10, 20] and len(history["train"]) == 20


def sample(capsys, *args):
    code = main(["sample", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_sample_same_seed_same_text(trained, capsys):
    code, first, _ = sample(capsys, trained, "--seed", 7, "--length", 300, "--prime", "def ")
    assert code == 0 and first.startswith("def ") and len(first) == 4 + 300 + 1
    assert sample(capsys, trained, "--seed", 7, "--length", 300, "--prime", "def ")[1] == first
    assert sample(capsys, trained, "--seed", 8, "--length", 300, "--prime", "def ")[1] != first
    # the same text as the Python API writes, from the checkpoint file itself
    model = checkpoint.load(trained / "latest.npz").model
    assert first == model.sample(300, prime="def ", seed=7) + "\n"


def test_sample_options(trained, tmp_path, capsys):
    prime = tmp_path / "prime.txt"
    prime.write_text("class ", encoding="utf-8")
    code, out, _ = sample(
        capsys,
        trained / "latest",
        "--prime-file",
        prime,
        "--length",
        20,
        "--argmax",
        "--num-samples",
        2,
        "--dtype",
        "float64",
    )
    assert code == 0 and out.count("class ") == 2
    options = ["--top-k", 3, "--temperature", 0.5, "--length", 50]
    code, out, _ = sample(capsys, trained, *options, "--seed", 1, "--num-samples", 2)
    assert code == 0
    # sample i uses seed + i; a blank line between samples
    one = sample(capsys, trained, *options, "--seed", 1)[1]
    two = sample(capsys, trained, *options, "--seed", 2)[1]
    assert out == one + "\n" + two and one != two


def test_sample_top_p(trained, capsys):
    options = ["--top-p", 0.7, "--top-k", 10, "--seed", 3, "--length", 80, "--prime", "def "]
    code, out, _ = sample(capsys, trained, *options)
    model = checkpoint.load(trained / "latest.npz").model
    assert code == 0 and out == model.sample(80, prime="def ", top_p=0.7, top_k=10, seed=3) + "\n"
    for bad in ("0", "1.5", "nan", "x"):
        with pytest.raises(SystemExit) as exc:
            main(["sample", str(trained), "--top-p", bad])
        assert exc.value.code == 2
        assert "--top-p: expected a number in (0, 1]" in capsys.readouterr().err


def test_sample_beam_prints_the_continuations_and_logprobs(trained, capsys):
    code, out, _ = sample(capsys, trained, "--prime", "def ", "--beam", 3, "--length", 6)
    model = checkpoint.load(trained / "latest.npz").model
    lines = out.splitlines()
    assert code == 0 and len(lines) == 3
    for line, (text, logprob) in zip(lines, model.beam_search(6, "def ", 3), strict=True):
        printed, quoted = line.split("\t")
        assert json.loads(quoted) == text and float(printed) == pytest.approx(logprob, abs=1e-6)
    code, out, err = sample(capsys, trained, "--beam", 2, "--top-k", 3, "--temperature", 1)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "--beam searches, it does not draw: drop --temperature, --top-k" in err
    with pytest.raises(SystemExit) as exc:
        main(["sample", str(trained), "--beam", "0"])
    assert exc.value.code == 2 and "positive integer" in capsys.readouterr().err


def test_unknown_prime_character_is_a_clear_error(trained, capsys):
    code, out, err = sample(capsys, trained, "--prime", "déf", "--length", 5)
    assert code == 2 and out == ""
    assert "'é'" in err and "--skip-unknown" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_skip_unknown_drops_with_a_warning(trained, capsys):
    code, out, err = sample(
        capsys, trained, "--prime", "déf", "--length", 5, "--seed", 0, "--skip-unknown"
    )
    assert code == 0 and out.startswith("df") and len(out) == 2 + 5 + 1
    assert "warning" in err and "'é'" in err


def test_resume_counts_steps_from_the_start_and_is_exact(tmp_path, data, trained, capsys, backend):
    assert main(["train", "--resume", str(trained), "--steps", "40", "--sample-length", "0"]) == 0
    assert "resuming" in capsys.readouterr().err
    resumed = checkpoint.load(trained)
    assert resumed.step == 40 and len(resumed.history["train_loss"]) == 40
    assert resumed.training["config"]["backend"] == backend
    assert train(tmp_path, data, out="straight", steps="40", backend=backend) == 0
    straight = checkpoint.load(tmp_path / "straight")
    np.testing.assert_array_equal(resumed.model.flat_params, straight.model.flat_params)
    for column in ("train_loss", "val_loss", "val_step", "lr"):
        np.testing.assert_array_equal(resumed.history[column], straight.history[column])
    # nothing left to do is not an error
    assert main(["train", "--resume", str(trained), "--steps", "40"]) == 0
    assert "nothing to do" in capsys.readouterr().err


def test_gru_trains_resumes_exactly_and_samples(tmp_path, data, capsys):
    assert train(tmp_path, data, "--cell", "gru", out="gru") == 0
    run = tmp_path / "gru"
    assert main(["train", "--resume", str(run), "--steps", "40", "--sample-length", "0"]) == 0
    assert train(tmp_path, data, "--cell", "gru", out="straight", steps="40") == 0
    resumed = checkpoint.load(run)
    assert resumed.model.cell == "gru" and resumed.state.c is None and resumed.step == 40
    straight = checkpoint.load(tmp_path / "straight")
    np.testing.assert_array_equal(resumed.model.flat_params, straight.model.flat_params)
    capsys.readouterr()
    code, out, _ = sample(capsys, run, "--seed", 3, "--length", 50)
    assert code == 0 and out == resumed.model.sample(50, seed=3) + "\n"
    code, out, _ = sample(capsys, run, "--seed", 4, "--length", 50)
    assert code == 0 and out != resumed.model.sample(50, seed=3) + "\n"


def test_resume_refuses_a_different_model(trained, capsys):
    code = main(["train", "--resume", str(trained), "--hidden-size", "32", "--steps", "30"])
    err = capsys.readouterr().err
    assert code == 2 and "--hidden-size 32 differs from the checkpoint's 16" in err


def test_momentum_and_max_norm_reach_the_trainer(tmp_path, data, backend):
    """The CLI run equals the Python API's with the same settings, and differs without them."""
    flags = ["--optimizer", "sgd", "--lr", "0.5", "--momentum", "0.5", "--max-norm", "0.3"]
    assert train(tmp_path, data, *flags, backend=backend) == 0
    ck = checkpoint.load(tmp_path / "run")
    assert ck.training["config"]["momentum"] == 0.5 and ck.training["config"]["max_norm"] == 0.3
    assert ck.optimizer.momentum == 0.5
    config = TrainConfig(
        hidden_size=16, num_layers=1, batch_size=4, seq_length=8, optimizer="sgd", lr=0.5,
        momentum=0.5, max_norm=0.3, val_every=10, backend=backend,
    )  # fmt: skip
    api = Trainer(TEXT, config)
    api.train(steps=20)
    np.testing.assert_array_equal(ck.model.flat_params, api.model.flat_params)
    for changed in (dict(momentum=0.9), dict(max_norm=None)):
        other = Trainer(TEXT, replace(config, **changed))
        other.train(steps=20)
        assert not np.allclose(other.model.flat_params, api.model.flat_params), changed


def test_momentum_needs_sgd_and_resume_keeps_it(tmp_path, data, trained, capsys):
    assert train(tmp_path, data, "--momentum", "0.5", out="adam") == 2
    err = capsys.readouterr().err
    assert "--momentum applies to --optimizer sgd" in err and len(err.strip().splitlines()) == 1
    code = main(["train", "--resume", str(trained), "--momentum", "0.5", "--steps", "30"])
    assert code == 2 and "--momentum 0.5 differs" in capsys.readouterr().err
    assert main(["train", "--resume", str(trained), "--max-norm", "0.1", "--steps", "22"]) == 0
    assert checkpoint.load(trained).training["config"]["max_norm"] == 0.1


def test_existing_run_needs_resume_or_overwrite(tmp_path, data, trained, capsys):
    assert train(tmp_path, data) == 2
    assert "--resume" in capsys.readouterr().err
    assert train(tmp_path, data, "--overwrite", steps="3") == 0


def test_eval_matches_the_validation_loss(trained, tmp_path, data, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the checkpoint names its data by the path given: relative
    assert main(["eval", str(trained)]) == 0
    out = capsys.readouterr().out
    val = checkpoint.load(trained).history["val_loss"][-1]
    assert out.startswith(f"{val:.4f} nats/char  {val / np.log(2):.4f} bits/char")
    assert main(["eval", str(trained / "best.npz"), "--data", str(data)]) == 0
    assert "nats/char" in capsys.readouterr().out


def test_eval_without_the_training_text(tmp_path, data, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert (
        main(
            [
                "train",
                "--data",
                "input.txt",
                *TINY,
                "--steps",
                "2",
                "--out",
                "run",
                "--sample-length",
                "0",
            ]
        )
        == 0
    )
    data.unlink()
    capsys.readouterr()
    assert main(["eval", "run"]) == 2
    assert "'input.txt', which is not here; pass --data" in capsys.readouterr().err


def test_info(trained, capsys):
    assert main(["info", str(trained)]) == 0
    out = capsys.readouterr().out
    for expected in (
        "format version 1",
        "lstm, hidden_size 16",
        "vocabulary",
        "step 20",
        "val loss",
        "Adam(",
    ):
        assert expected in out
    assert main(["info", str(trained), "--json"]) == 0
    meta = json.loads(capsys.readouterr().out)
    assert meta["training"]["step"] == 20 and meta["format_version"] == 1


def test_builtin_corpus_trains(tmp_path, capsys):
    code = main(
        [
            "train",
            "--hidden-size",
            "8",
            "--num-layers",
            "1",
            "--batch-size",
            "2",
            "--seq-length",
            "8",
            "--steps",
            "3",
            "--out",
            str(tmp_path / "b"),
            "--sample-length",
            "20",
            "--threads",
            "1",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0 and len(out) == 21
    ck = checkpoint.load(tmp_path / "b")
    assert ck.training["data"]["name"] == "builtin" and ck.step == 3


@pytest.mark.parametrize(
    "args, message",
    [
        (["sample", "{tmp}/none"], "no checkpoint at"),
        (["info", "{data}"], "not an rnnfast checkpoint"),
        (["eval", "{tmp}"], "no checkpoint at"),
        (["train", "--data", "{tmp}/missing.txt", "--steps", "1"], "no such text file"),
        (
            [
                "train",
                "--data",
                "{data}",
                "--batch-size",
                "500",
                "--seq-length",
                "50",
                "--steps",
                "1",
                "--out",
                "{tmp}/x",
            ],
            "shorter than one batch",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, data, capsys, args, message):
    args = [a.format(tmp=tmp_path, data=data) for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_damaged_checkpoint_is_exit_2(trained, capsys):
    path = trained / "latest.npz"
    path.write_bytes(path.read_bytes()[:1000])
    assert main(["sample", str(trained)]) == 2
    assert "truncated or corrupted" in capsys.readouterr().err


def test_argument_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--steps", "3", "--epochs", "2"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["train", "--hidden-size", "0"])
    assert exc.value.code == 2
    assert "positive integer" in capsys.readouterr().err
    for bad in ("1", "-0.1", "nan"):
        with pytest.raises(SystemExit) as exc:
            main(["train", "--optimizer", "sgd", "--momentum", bad])
        assert exc.value.code == 2
        assert "a number in [0, 1)" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_divergence_exits_1_with_a_message(tmp_path, data, capsys):
    assert train(tmp_path, data, "--optimizer", "sgd", "--lr", "1000", steps="50") == 1
    err = capsys.readouterr().err
    assert "training stopped at step" in err and "exploded" in err and "lower learning rate" in err


# -- a real process --------------------------------------------------------------------------


def test_ctrl_c_saves_a_checkpoint_and_exits(tmp_path, data):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rnnfast",
            "train",
            "--data",
            str(data),
            *TINY,
            "--steps",
            "1000000",
            "--val-every",
            "100000",
            "--out",
            str(out),
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
        cwd=tmp_path,
    )
    try:
        for line in proc.stderr:  # the handler is in place once training announces itself
            if line.startswith("training "):
                break
        else:
            pytest.fail(f"training did not start: exit status {proc.wait()}")
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "checkpoint saved" in stderr
    ck = checkpoint.load(out)
    assert ck.step > 0 and len(ck.history["train_loss"]) == ck.step
    assert stdout == ""  # no sample after an interrupt
