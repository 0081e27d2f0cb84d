"""Checkpoint files: round trip, dtype conversion, atomic writes, and clear errors for files that
are truncated, corrupted, foreign or too new."""

import json
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import subprocess_env

from rnnfast import CharLM, Vocab, checkpoint
from rnnfast.checkpoint import CheckpointError
from rnnfast.optim import OPTIMIZERS

TEXT = "hello, checkpoint world! 0123456789\n"


def make(cell="lstm", dtype=np.float32, optimizer="adam", H=16):
    model = CharLM(
        Vocab.from_text(TEXT), cell=cell, hidden_size=H, num_layers=2, dtype=dtype, seed=1
    )
    kw = {"momentum": 0.9} if optimizer == "sgd" else {}
    opt = OPTIMIZERS[optimizer](model, **kw)
    ids = model.vocab.encode(TEXT)
    x, y = ids[:-1].reshape(5, 7), ids[1:].reshape(5, 7)
    _, state = model.train_step(x, y, opt)
    _, state = model.train_step(x, y, opt, state)
    return model, opt, state


def saved(tmp_path, **kw) -> Path:
    model, opt, state = make(**kw)
    return checkpoint.save(
        tmp_path / "ck.npz",
        model,
        opt,
        state=state,
        training={"step": 2, "note": "ü"},
        history={"train_loss": np.array([4.0, 3.5])},
    )


@pytest.mark.parametrize("optimizer", ["sgd", "adagrad", "rmsprop", "adam"])
@pytest.mark.parametrize("cell", ["lstm", "rnn", "gru"])
def test_round_trip(tmp_path, cell, optimizer):
    model, opt, state = make(cell=cell, optimizer=optimizer)
    path = checkpoint.save(
        tmp_path / "sub" / "ck.npz",
        model,
        opt,
        state=state,
        training={"step": 2},
        history={"train_loss": np.array([4.0, 3.5])},
    )
    ck = checkpoint.load(path)
    np.testing.assert_array_equal(ck.model.flat_params, model.flat_params)
    assert ck.model.flat_params.dtype == np.float32
    assert ck.model.vocab == model.vocab and ck.model.cell == cell
    a, b = opt.state_dict(), ck.optimizer.state_dict()
    assert (a["name"], a["step_count"], a["hyperparameters"]) == (
        b["name"],
        b["step_count"],
        b["hyperparameters"],
    )
    for name in a["moments"]:
        np.testing.assert_array_equal(a["moments"][name], b["moments"][name])
    np.testing.assert_array_equal(ck.state.h, state.h)
    if cell == "lstm":
        np.testing.assert_array_equal(ck.state.c, state.c)
    else:
        assert ck.state.c is None
    assert ck.training == {"step": 2} and ck.step == 2
    np.testing.assert_array_equal(ck.history["train_loss"], [4.0, 3.5])


def test_file_holds_no_pickle_and_no_absolute_path(tmp_path):
    path = saved(tmp_path)
    with np.load(path, allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files}
    assert all(a.dtype != object for a in arrays.values())
    meta = json.loads(arrays["meta.json"].tobytes())
    assert meta["format"] == "rnnfast-checkpoint" and meta["format_version"] == 1
    assert str(tmp_path) not in json.dumps(meta)
    assert meta["training"]["note"] == "ü"


@pytest.mark.parametrize(
    "saved_dtype, load_dtype", [(np.float64, np.float32), (np.float32, np.float64)]
)
def test_load_converts_dtype(tmp_path, saved_dtype, load_dtype):
    path = saved(tmp_path, dtype=saved_dtype)
    original = checkpoint.load(path)
    ck = checkpoint.load(path, dtype=load_dtype)
    assert ck.model.dtype == load_dtype and ck.optimizer._moments["m"].dtype == load_dtype
    np.testing.assert_array_equal(
        ck.model.flat_params, original.model.flat_params.astype(load_dtype)
    )
    assert ck.state.h.dtype == load_dtype
    text = ck.model.sample(20, prime="hel", seed=0)
    assert text.startswith("hel") and len(text) == 23


def test_directory_and_name_without_suffix_resolve(tmp_path):
    model, opt, state = make()
    checkpoint.save(tmp_path / "latest.npz", model, opt, state=state)
    for spelling in (tmp_path, tmp_path / "latest", tmp_path / "latest.npz"):
        assert checkpoint.load(spelling).path == tmp_path / "latest.npz"


# -- damaged and foreign files: each a CheckpointError (a ValueError) that names the problem ----


def damaged(tmp_path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9, 0.999])
def test_truncated(tmp_path, fraction):
    data = saved(tmp_path).read_bytes()
    path = damaged(tmp_path, "cut.npz", data[: int(len(data) * fraction)])
    with pytest.raises(CheckpointError, match="cut.npz is truncated or corrupted"):
        checkpoint.load(path)


def test_corrupted_byte_in_the_parameters(tmp_path):
    path = saved(tmp_path)
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("params.npy")
    data = bytearray(path.read_bytes())
    data[info.header_offset + 200 + info.file_size // 2] ^= 0xFF  # inside the params array
    path = damaged(tmp_path, "flip.npz", bytes(data))
    with pytest.raises(CheckpointError, match="flip.npz is corrupted: entry 'params'"):
        checkpoint.load(path)


def test_corrupted_metadata(tmp_path):
    model, opt, _ = make()
    path = checkpoint.save(tmp_path / "ck.npz", model, opt)
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    arrays["meta.json"] = np.frombuffer(b"{not json", np.uint8)
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(CheckpointError, match="bad.npz is corrupted: its metadata is not valid"):
        checkpoint.load(tmp_path / "bad.npz")


def test_empty_file(tmp_path):
    with pytest.raises(CheckpointError, match="is empty"):
        checkpoint.load(damaged(tmp_path, "empty.npz", b""))


def test_text_file(tmp_path):
    with pytest.raises(
        CheckpointError,
        match="notes.txt is not an rnnfast checkpoint "
        r"\(not a .npz archive\)",
    ):
        checkpoint.load(damaged(tmp_path, "notes.txt", b"just some text\n"))


def test_foreign_npz_and_npy(tmp_path):
    np.savez(tmp_path / "other.npz", weights=np.zeros(3))
    with pytest.raises(
        CheckpointError, match="other.npz is a .npz archive but not an rnnfast checkpoint"
    ):
        checkpoint.load(tmp_path / "other.npz")
    np.save(tmp_path / "array.npy", np.zeros(3))
    with pytest.raises(CheckpointError, match="a single .npy array"):
        checkpoint.load(tmp_path / "array.npy")


def rewrite_meta(path: Path, **changes) -> Path:
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    meta = json.loads(arrays["meta.json"].tobytes())
    meta.update(changes)
    arrays["meta.json"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    out = path.with_name("edited.npz")
    np.savez(out, **arrays)
    return out


def test_newer_format_version(tmp_path):
    path = rewrite_meta(saved(tmp_path), format_version=99)
    with pytest.raises(CheckpointError, match="format version 99, newer than .* upgrade rnnfast"):
        checkpoint.load(path)


def test_other_format_name(tmp_path):
    path = rewrite_meta(saved(tmp_path), format="someone-else")
    with pytest.raises(CheckpointError, match="not an rnnfast checkpoint .*'someone-else'"):
        checkpoint.load(path)


def test_inconsistent_shapes(tmp_path):
    path = saved(tmp_path)
    with np.load(path) as archive:
        meta = json.loads(archive["meta.json"].tobytes())
    meta["model"]["hidden_size"] = 17
    path = rewrite_meta(path, model=meta["model"])
    with pytest.raises(CheckpointError, match="is inconsistent: params has shape"):
        checkpoint.load(path)


def test_missing(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        checkpoint.load(tmp_path / "nothing.npz")
    with pytest.raises(CheckpointError, match="no checkpoint at .*latest.npz"):
        checkpoint.load(tmp_path)  # a directory without latest.npz


# -- atomic writes -----------------------------------------------------------------------------

WRITER = """
import os, sys, time
import numpy as np
from rnnfast import Adam, CharLM, Vocab, checkpoint

path, mode = sys.argv[1], sys.argv[2]
model = CharLM(Vocab.from_text("abcdefgh"), hidden_size=192, num_layers=2, seed=0)
opt = Adam(model)
real_fsync = os.fsync
i = 0
while True:
    model.flat_params[0] = i  # each version is told apart by its first parameter
    checkpoint.save(path, model, opt, training={"i": i})
    if i == 0:
        if mode == "hang":  # from now on every save stops between its write and its rename
            def fsync(fd):
                if os.path.isfile(f"/proc/self/fd/{fd}"):
                    print("mid-save", flush=True)
                    time.sleep(60)
                real_fsync(fd)
            os.fsync = fsync
        print("saved", flush=True)
    i += 1
"""


def run_writer_and_kill(tmp_path, mode: str, wait_for: str, delay: float) -> Path:
    path = tmp_path / "ck.npz"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), mode],
        stdout=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
        cwd=tmp_path,
    )
    try:
        for line in proc.stdout:
            if line.strip() == wait_for:
                break
        else:
            pytest.fail(f"the writer exited early with status {proc.wait()}")
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    return path


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs /proc")
def test_kill_between_write_and_rename_keeps_the_previous_checkpoint(tmp_path):
    path = run_writer_and_kill(tmp_path, "hang", "mid-save", 0.0)
    leftovers = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert leftovers, "the writer was not killed inside a save"
    ck = checkpoint.load(path)
    assert ck.training["i"] == 0 and ck.model.flat_params[0] == 0


@pytest.mark.parametrize("delay", [0.05, 0.2, 0.4])
def test_kill_at_random_moments_leaves_a_loadable_checkpoint(tmp_path, delay):
    path = run_writer_and_kill(tmp_path, "loop", "saved", delay)
    ck = checkpoint.load(path)
    assert ck.model.flat_params[0] == ck.training["i"]


def test_failed_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    model, opt, state = make()
    checkpoint.save(tmp_path / "ck.npz", model, opt)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save(tmp_path / "ck.npz", model, opt)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.npz"]
    checkpoint.load(tmp_path / "ck.npz")


@pytest.mark.parametrize(
    "cell, dropout, version", [("lstm", 0.0, 1), ("rnn", 0.0, 1), ("gru", 0.0, 2), ("lstm", 0.3, 2)]
)
def test_format_version_is_the_lowest_that_holds_the_model(tmp_path, cell, dropout, version):
    """An older rnnfast (format 1) refuses a GRU or a dropout model rather than misread it."""
    model = CharLM(Vocab.from_text(TEXT), cell=cell, hidden_size=8, dropout=dropout, seed=1)
    path = checkpoint.save(tmp_path / "ck.npz", model)
    with np.load(path, allow_pickle=False) as archive:
        assert json.loads(archive["meta.json"].tobytes())["format_version"] == version
    loaded = checkpoint.load(path).model
    assert (loaded.cell, loaded.dropout) == (cell, dropout)
