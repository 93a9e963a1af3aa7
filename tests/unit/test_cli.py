"""The ``nnx`` command: info, train, predict, summary, and one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nnx
from nnx.cli import main
from nnx.datasets import spiral_data


def test_info_lists_every_backend_with_the_reason(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:4] == ["backend", "usable", "version", "device"]
    rows = {line.split()[0]: line for line in out[1:]}
    assert {"numpy", "array_api_strict", "torch", "cupy"} <= set(rows)
    assert rows["numpy"].split()[1] == "yes"
    if "cupy" in rows and rows["cupy"].split()[1] == "no":
        assert "no CUDA device" in rows["cupy"] or "not installed" in rows["cupy"]


def test_train_then_predict_on_another_backend(tmp_path: Path, capsys):
    model_file = tmp_path / "spiral.nnx"
    code = main(
        [
            "train",
            "--dataset",
            "spiral",
            "--epochs",
            "30",
            "--print-every",
            "10",
            "--output",
            str(model_file),
        ]
    )
    assert code == 0 and model_file.exists()
    out = capsys.readouterr().out
    assert "epoch: 30, acc: " in out and "final accuracy" in out
    assert (
        main(
            [
                "predict",
                str(model_file),
                "--dataset",
                "spiral",
                "--limit",
                "5",
                "--backend",
                "array_api_strict",
            ]
        )
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 7 and all(row in {"0", "1", "2"} for row in lines[:5])
    assert lines[5] == "(the first 5 of 300 rows; --limit 0 prints all)"
    # The labels of a bundled data set are known: the accuracy and loss of these rows.
    X, y = spiral_data(100, 3, seed=0)
    loss, accuracy = nnx.Model.load(model_file).evaluate(X, y, verbose=0)
    assert lines[6] == f"spiral: accuracy {accuracy:.3f}, loss {loss:.3f} on 300 rows"


@pytest.fixture(scope="module")
def spiral_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "spiral.nnx"
    assert main(["train", "--epochs", "20", "--print-every", "20", "--output", str(path)]) == 0
    return path


def test_predict_limit_0_prints_every_row_and_output_writes_them(
    spiral_model: Path, tmp_path: Path, capsys
):
    capsys.readouterr()
    written = tmp_path / "predictions.npy"
    assert main(["predict", str(spiral_model), "--dataset", "spiral", "--limit", "0",
                 "--output", str(written)]) == 0  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 300 + 2 and not any(line.startswith("(the first") for line in lines)
    assert lines[300] == f"wrote all 300 rows to {written}"
    assert lines[301].startswith("spiral: accuracy ")
    saved = np.load(written, allow_pickle=False)
    assert saved.shape == (300,) and saved.tolist() == [int(v) for v in lines[:300]]


def test_predict_on_samples_without_labels_prints_no_accuracy(spiral_model: Path, tmp_path, capsys):
    samples = tmp_path / "x.npy"
    np.save(samples, np.zeros((12, 2), dtype=np.float32))
    capsys.readouterr()
    assert main(["predict", str(spiral_model), "--input", str(samples)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[10:] == ["(the first 10 of 12 rows; --limit 0 prints all)"]


def test_summary_of_a_model_file(spiral_model: Path, capsys):
    capsys.readouterr()
    assert main(["summary", str(spiral_model), "--backend", "array_api_strict"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["#", "layer", "output", "shape", "parameters", "trainable"]
    assert out[2].split()[-3:] == ["64)", "192", "yes"]
    assert "parameters: 387 (387 trainable)" in out
    assert "trained: 20 optimizer steps" in out
    assert any(line.startswith("backend: array_api_strict on") for line in out)


def test_predict_reads_an_npy_file(tmp_path: Path, capsys):
    model_file = tmp_path / "sine.nnx"
    assert main(["train", "--dataset", "sine", "--epochs", "5", "--output", str(model_file)]) == 0
    samples = tmp_path / "x.npy"
    np.save(samples, np.linspace(0, 1, 4, dtype=np.float32).reshape(-1, 1))
    capsys.readouterr()
    assert main(["predict", str(model_file), "--input", str(samples), "--limit", "0"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 4


@pytest.mark.parametrize(
    "argv, words",
    [
        (["train", "--backend", "nosuch", "--epochs", "1"], "Unknown backend 'nosuch'"),
        (["predict", "missing.nnx", "--dataset", "spiral"], "missing.nnx"),
        (["train", "--epochs", "0"], "epochs"),
        (["predict", "m.nnx", "--dataset", "spiral", "--limit", "-1"], "expected --limit >= 0"),
    ],
)
def test_errors_are_one_line(argv, words, tmp_path: Path):
    done = subprocess.run(
        [sys.executable, "-m", "nnx.cli", *argv],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and words in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
