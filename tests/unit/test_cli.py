"""The ``nnx`` command's train and predict: per-data-set settings that train, held-out scores,
checks before any output, and one-line errors."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nnx
from nnx import _cli_data
from nnx.cli import main


def _held_out(out: str) -> tuple[float, float, int]:
    found = re.search(r"^held-out: accuracy ([\d.]+), loss ([\d.e+-]+) on (\d+) rows$", out, re.M)
    assert found is not None, out
    return float(found[1]), float(found[2]), int(found[3])


def test_train_reports_the_held_out_rows_and_predict_scores_them(tmp_path: Path, capsys):
    model_file = tmp_path / "spiral.nnx"
    argv = ["train", "--epochs", "30", "--print-every", "10", "-o", str(model_file)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("training on numpy (cpu): spiral, 300 rows (300 more held out)\n")
    assert "epoch: 30, acc: " in out and "final accuracy" in out
    accuracy, loss, rows = _held_out(out)
    X_test, y_test = _cli_data.load("spiral", "test")
    want_loss, want_accuracy = nnx.Model.load(model_file).evaluate(X_test, y_test, verbose=0)
    assert (rows, f"{accuracy:.3f}", f"{loss:.3f}") == (300, f"{want_accuracy:.3f}",
                                                         f"{want_loss:.3f}")  # fmt: skip
    # predict scores the held-out rows by default, on any backend, and says so.
    argv = ["predict", str(model_file), "--dataset", "spiral", "--limit", "5"]
    assert main([*argv, "--backend", "array_api_strict"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 7 and all(row in {"0", "1", "2"} for row in lines[:5])
    assert lines[5] == "(the first 5 of 300 rows; --limit 0 prints all)"
    assert lines[6] == (f"spiral, held-out rows: accuracy {accuracy:.3f}, loss {loss:.3f} "
                        "on 300 rows")  # fmt: skip
    # --split train: the rows it was trained on.
    X, y = _cli_data.load("spiral", "train")
    train_loss, train_accuracy = nnx.Model.load(model_file).evaluate(X, y, verbose=0)
    assert main([*argv, "--split", "train"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"spiral, training rows: accuracy {train_accuracy:.3f}, loss {train_loss:.3f} on 300 rows"
    )


@pytest.mark.parametrize("name", _cli_data.DATASETS)
def test_every_data_set_keeps_rows_out_of_training(name: str):
    if name == "digits":
        pytest.importorskip("sklearn")
    X, y = _cli_data.load(name, "train")
    X_test, y_test = _cli_data.load(name, "test")
    assert len(X_test) == len(y_test) > 0 and X.shape[1:] == X_test.shape[1:]
    trained = {row.tobytes() for row in X}
    shared = [row for row in X_test if row.tobytes() in trained]
    assert not np.any(shared)  # none, but the spirals' centre (0, 0), where every arm starts
    if name == "digits":
        assert (len(X), len(X_test)) == (1438, 359)  # a fixed 20% of the 1797 images
    # Fixed rows: the same on every call (predict scores what train held out).
    again = _cli_data.load(name, "test")[0]
    np.testing.assert_array_equal(again, X_test)


def test_sine_learns_the_curve(tmp_path: Path, capsys):
    # It used to collapse to one constant (accuracy 0.013): the data set's own settings
    # (two hidden layers, Linear output, MSE, Adam 0.005) learn it in a quarter of its epochs.
    argv = ["train", "--dataset", "sine", "--epochs", "1000", "--print-every", "1000"]
    assert main([*argv, "-o", str(tmp_path / "sine.nnx")]) == 0
    accuracy, loss, rows = _held_out(capsys.readouterr().out)
    assert rows == 200 and loss < 1e-3 and accuracy > 0.3  # sin's variance is 0.5


def test_a_deeper_network_trains_with_sgd(tmp_path: Path, capsys):
    # With the book's settings (rate 1.0, 0.01 x normal weights) it stayed at 0.417.
    argv = ["train", "--layers", "3", "--hidden", "32", "--optimizer", "sgd", "--epochs", "300"]
    assert main([*argv, "--print-every", "300", "-o", str(tmp_path / "m.nnx")]) == 0
    accuracy, _, _ = _held_out(capsys.readouterr().out)
    assert accuracy > 0.5


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--batch-size", "0"], "argument --batch-size: expected --batch-size >= 1, got"),
        (["--epochs", "0"], "expected --epochs >= 1, got --epochs 0"),
        (["--epochs", "many"], "expected --epochs as a whole number >= 1, got --epochs many"),
        (["--print-every", "0"], "expected --print-every >= 1"),
        (["--learning-rate", "0"], "expected --learning-rate as a finite number > 0"),
        (["--decay", "-1"], "expected --decay as a finite number >= 0"),
        (["--momentum", "nan"], "expected --momentum as a finite number >= 0"),
        (["--momentum", "0.5"], "--momentum applies to --optimizer sgd, got --optimizer adam"),
        (["--seed", "-1"], "expected --seed >= 0"),
        (["--compile"], "--compile: the numpy backend cannot compile its step"),
    ],
)
def test_train_checks_every_option_before_printing(argv, words, tmp_path: Path, capsys):
    output = ["-o", str(tmp_path / "m.nnx")]
    try:
        code = main(["train", *argv, *output])
    except SystemExit as stop:  # argparse's checks end the program, with status 1
        code = stop.code
    captured = capsys.readouterr()
    assert code == 1 and captured.out == ""
    assert words in captured.err and len(captured.err.strip().splitlines()) == 1
    assert "batch_size" not in captured.err and not (tmp_path / "m.nnx").exists()


def test_train_compiles_on_torch_when_asked(tmp_path: Path, capsys):
    """torch trains eagerly unless --compile: then torch.compile compiles the step."""
    pytest.importorskip("torch", reason='torch is not installed; pip install -e ".[torch]"')
    argv = ["train", "--backend", "torch", "--epochs", "3", "-o", str(tmp_path / "m.nnx")]
    code = main([*argv, "--compile"])
    captured = capsys.readouterr()
    if code and "C++ compiler" in captured.err:
        pytest.skip(captured.err.strip())
    assert code == 0, captured.err
    assert "final accuracy" in captured.out and nnx.Model.load(tmp_path / "m.nnx").layers


def test_train_refuses_to_overwrite_before_training(tmp_path: Path, capsys):
    model_file = tmp_path / "model.nnx"
    model_file.write_bytes(b"keep me")
    assert main(["train", "--epochs", "2", "-o", str(model_file)]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and model_file.read_bytes() == b"keep me"
    assert f"--output {model_file}: the file exists" in captured.err
    assert "pass --overwrite" in captured.err
    assert main(["train", "--epochs", "2", "-o", str(model_file), "--overwrite"]) == 0
    assert nnx.Model.load(model_file).layers[0].n_inputs == 2


def test_predict_output_is_not_overwritten_either(tmp_path: Path, spiral_model: Path, capsys):
    written = tmp_path / "p.npy"
    written.write_bytes(b"keep me")
    argv = ["predict", str(spiral_model), "--dataset", "spiral", "-o", str(written)]
    assert main(argv) == 1 and written.read_bytes() == b"keep me"
    assert "--overwrite" in capsys.readouterr().err
    assert main([*argv, "--overwrite"]) == 0
    assert np.load(written).shape == (300,)


def test_device_advice_names_the_option_typed(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.delenv("NNX_DEVICE", raising=False)
    argv = ["train", "--epochs", "1", "-o", str(tmp_path / "m.nnx")]
    assert main([*argv, "--device", "cuda:1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("nnx train: --device cuda:1: numpy runs on the CPU only")
    assert "leave out --device" in err and "NNX_DEVICE" not in err
    # The variable's own path keeps the variable's advice.
    monkeypatch.setenv("NNX_DEVICE", "cuda:1")
    assert main(argv) == 1
    assert "unset NNX_DEVICE" in capsys.readouterr().err
    monkeypatch.delenv("NNX_DEVICE")
    assert main([*argv, "--backend", "nosuch"]) == 1
    err = capsys.readouterr().err
    assert "--backend nosuch: unknown backend; expected one of numpy" in err
    assert "--plugin MODULE" in err


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
    assert lines[301].startswith("spiral, held-out rows: accuracy ")
    saved = np.load(written, allow_pickle=False)
    assert saved.shape == (300,) and saved.tolist() == [int(v) for v in lines[:300]]


def test_predict_on_samples_without_labels_prints_no_accuracy(spiral_model: Path, tmp_path, capsys):
    samples = tmp_path / "x.npy"
    np.save(samples, np.zeros((12, 2), dtype=np.float32))
    capsys.readouterr()
    assert main(["predict", str(spiral_model), "--input", str(samples)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[10:] == ["(the first 10 of 12 rows; --limit 0 prints all)"]
    assert main(["predict", str(spiral_model), "--input", str(samples), "--split", "test"]) == 1
    assert "--split test picks rows of a bundled data set" in capsys.readouterr().err


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
        (["train", "--backend", "nosuch", "--epochs", "1"], "--backend nosuch: unknown backend"),
        (["predict", "missing.nnx", "--dataset", "spiral"], "missing.nnx"),
        (["train", "--epochs", "0"], "expected --epochs >= 1"),
        (["predict", "m.nnx", "--dataset", "spiral", "--limit", "-1"], "expected --limit >= 0"),
        (["train", "--plugin", "no_such_plugin"], "--plugin no_such_plugin: importing it failed"),
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
    assert done.returncode == 1 and done.stdout == ""
    assert "Traceback" not in done.stderr and words in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
