"""Bad input stopped before any work, with nothing changed, and one clear error (issue 14's
first families: data, paths, files nnx cannot read, devices, the command line)."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import backends
import nnx
from nnx.cli import main
from nnx.datasets import spiral_data
from nnx.io import ModelFileError


def _model(dtype: str = "float32") -> nnx.Model:
    model = nnx.Model(seed=0)
    model.add(nnx.Dense(2, 8, seed=1, dtype=dtype))
    model.add(nnx.ReLU())
    model.add(nnx.Dense(8, 3, seed=2, dtype=dtype))
    model.add(nnx.Softmax())
    model.set(loss=nnx.CategoricalCrossentropy(), optimizer=nnx.Adam(learning_rate=0.05))
    model.finalize()
    return model


def _unchanged(model: nnx.Model, before: dict[str, np.ndarray]) -> None:
    after = {k: np.asarray(v) for k, v in model.get_state().items()}
    assert after.keys() == before.keys()
    for key in before:
        np.testing.assert_array_equal(after[key], before[key])


X, Y = spiral_data(20, 3, seed=0)


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"y": np.int64(1)}, ValueError, "got a single number"),
        ({"validation_data": (X, None)}, ValueError, "got y_val=None"),
        ({"X": X.astype(np.float64) * 1e39}, ValueError, "beyond float32's range"),
    ],
    ids=["0-d targets", "validation without targets", "beyond float32"],
)
def test_bad_data_is_refused_before_any_step(kwargs, error, words) -> None:
    model = _model()
    before = {k: np.asarray(v).copy() for k, v in model.get_state().items()}
    call = {"X": X, "y": Y, **kwargs}
    X_, y_ = call.pop("X"), call.pop("y")
    with pytest.raises(error, match=words):
        model.train(X_, y_, epochs=3, verbose=0, **call)
    _unchanged(model, before)
    assert model.optimizer.iterations == 0


def test_a_float64_model_takes_what_float32_cannot_hold() -> None:
    model = _model("float64")
    model.predict(X.astype(np.float64) * 1e39)  # finite in float64: no error


def test_checkpoint_paths_are_checked_before_training(tmp_path: Path) -> None:
    model = _model()
    before = {k: np.asarray(v).copy() for k, v in model.get_state().items()}
    with pytest.raises(IsADirectoryError, match="is a folder; name a file in it"):
        model.train(X, Y, epochs=3, verbose=0, checkpoint=tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist; create it first"):
        model.train(X, Y, epochs=3, verbose=0, checkpoint=tmp_path / "no" / "run.nnx")
    _unchanged(model, before)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_checkpoint_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o555)
    with pytest.raises(PermissionError, match="read-only or no permission"):
        _model().train(X, Y, epochs=3, verbose=0, checkpoint=folder / "run.nnx")


def test_softmax_of_one_sample_says_how() -> None:
    with pytest.raises(ValueError, match=r"Softmax\.forward: expected inputs of shape"):
        nnx.Softmax(backend="numpy").forward(np.ones(3))


def _safetensors(path: Path, dtype: str, metadata: dict[str, str] | None = None) -> None:
    """A valid safetensors file with one tensor of ``dtype`` (e.g. BF16), written by hand."""
    size = 2 * {"BF16": 2, "F32": 4}[dtype]
    header: dict[str, object] = {"t": {"dtype": dtype, "shape": [2], "data_offsets": [0, size]}}
    if metadata is not None:
        header["__metadata__"] = metadata
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"\0" * size)


def test_a_tensor_numpy_cannot_hold_is_a_model_file_error(tmp_path: Path) -> None:
    path = tmp_path / "bf16.nnx"
    _safetensors(path, "BF16")
    with pytest.raises(ModelFileError, match="dtype NumPy cannot read"):
        nnx.Model.load(path)
    with pytest.raises(ModelFileError, match="dtype NumPy cannot read"):
        _model().load_parameters(path)


def test_deeply_nested_metadata_is_a_model_file_error(tmp_path: Path) -> None:
    path = tmp_path / "nested.nnx"
    _safetensors(path, "F32", {"nnx": "[" * 100_000 + "]" * 100_000})
    with pytest.raises(ModelFileError, match="without nnx metadata"):
        nnx.Model.load(path)


@pytest.mark.parametrize("device", ["meta"])
def test_a_device_torch_cannot_compute_on_is_refused_at_selection(device: str) -> None:
    pytest.importorskip("torch")
    with pytest.raises(backends.BackendError, match="cannot compute on device='meta'"):
        backends.load("torch", device)


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["train", "--layers", "-1"], "expected --layers >= 1, got --layers -1"),
        (["train", "--hidden", "0"], "expected --hidden >= 1"),
        (["train", "--output", "no/such/folder/m.nnx"], "does not exist; create it first"),
        (["train", "--learning-rate", "inf", "--epochs", "3"], "loss became"),
        (["predict", "bf16.nnx", "--dataset", "spiral"], "dtype NumPy cannot read"),
    ],
)
def test_the_command_line_says_one_line_before_work(argv, words, tmp_path: Path) -> None:
    _safetensors(tmp_path / "bf16.nnx", "BF16")
    done = subprocess.run(
        [sys.executable, "-m", "nnx.cli", *argv],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert words in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "epoch: " not in done.stdout or "loss became" in words


def test_a_second_ctrl_c_ends_the_command_in_one_line(monkeypatch, capsys) -> None:
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr("nnx.cli._train", interrupted)
    assert main(["train"]) == 130
    assert capsys.readouterr().err.strip() == "nnx train: interrupted."
