"""The ``nnx`` command: info, train, predict, and one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nnx.cli import main


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
    rows = capsys.readouterr().out.split()
    assert len(rows) == 5 and all(row in {"0", "1", "2"} for row in rows)


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
