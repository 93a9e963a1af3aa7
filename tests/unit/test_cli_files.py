"""``nnx export`` never writes over its input nor, unasked, over a file; ``nnx summary`` reads
model files and the ONNX files nnx exported, and says so in one line for anything else."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import nnx
from nnx.cli import main


def _model_file(folder: Path) -> Path:
    model = nnx.Model(seed=0)
    model.add(nnx.Dense(2, 8, seed=1))
    model.add(nnx.ReLU())
    model.add(nnx.Dense(8, 3, seed=2))
    model.add(nnx.Softmax())
    model.set(loss=nnx.CategoricalCrossentropy(), optimizer=nnx.Adam(),
              accuracy=nnx.CategoricalAccuracy())  # fmt: skip
    model.finalize()
    path = folder / "m.nnx"
    model.save(path)
    return path


@pytest.fixture
def onnx_ready():
    for package in ("onnx", "ndonnx", "onnxruntime"):
        pytest.importorskip(package)


@pytest.mark.parametrize("how", ["same", "relative", "link"])
def test_export_refuses_to_write_over_its_input(how: str, tmp_path: Path, monkeypatch, capsys):
    source = _model_file(tmp_path)
    before = source.read_bytes()
    monkeypatch.chdir(tmp_path)
    target = {"same": str(source), "relative": "./m.nnx", "link": "link.onnx"}[how]
    if how == "link":
        os.symlink(source, tmp_path / "link.onnx")
    assert main(["export", str(source), target, "--overwrite"]) == 1
    err = capsys.readouterr().err
    assert f"{target} is the model file being read" in err and "name another file" in err
    assert source.read_bytes() == before


def test_export_refuses_an_existing_file_unless_asked(tmp_path: Path, capsys, onnx_ready):
    source, target = _model_file(tmp_path), tmp_path / "m.onnx"
    target.write_bytes(b"keep me")
    assert main(["export", str(source), str(target)]) == 1
    err = capsys.readouterr().err
    assert f"{target}: the file exists" in err and "--overwrite" in err
    assert target.read_bytes() == b"keep me"
    assert main(["export", str(source), str(target), "--overwrite", "--labels"]) == 0
    assert "-> output, labels" in capsys.readouterr().out


def test_summary_of_an_exported_onnx_file(tmp_path: Path, capsys, onnx_ready):
    source, target = _model_file(tmp_path), tmp_path / "m.onnx"
    assert main(["export", str(source), str(target), "--labels"]) == 0
    capsys.readouterr()
    assert main(["summary", str(target)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{target}: ONNX file written by nnx {nnx.__version__}, ONNX opset")
    assert out[1:4] == ["input: X (N, 2) float32", "outputs: output, labels", "#  layer"]
    assert out[4:8] == ["0  Dense(n_inputs=2, n_neurons=8)", "1  ReLU",
                        "2  Dense(n_inputs=8, n_neurons=3)", "3  Softmax"]  # fmt: skip
    stored = int(out[8].split(":")[1].split()[0].replace(",", ""))
    assert stored >= 2 * 8 + 8 + 8 * 3 + 3  # the parameters, and a few constants


def test_summary_of_a_file_that_is_neither(tmp_path: Path, capsys, onnx_ready):
    import onnx
    from onnx import TensorProto, helper

    text = tmp_path / "notes.onnx"
    text.write_text("not a model at all")
    foreign = tmp_path / "foreign.onnx"
    X = helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 2])
    Y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 2])
    graph = helper.make_graph([helper.make_node("Relu", ["X"], ["Y"])], "g", [X], [Y])
    onnx.save(helper.make_model(graph), foreign)
    for path in (text, foreign):
        assert main(["summary", str(path)]) == 1
        err = capsys.readouterr().err.strip()
        assert err == (
            f"nnx summary: {path}: neither an nnx model file (written by nnx train or "
            "model.save) nor an ONNX file written by nnx export; expected one of these."
        )


def test_summary_of_a_missing_or_damaged_model_file(tmp_path: Path, capsys):
    assert main(["summary", str(tmp_path / "missing.nnx")]) == 1
    assert "missing.nnx" in capsys.readouterr().err
    damaged = tmp_path / "damaged.nnx"
    damaged.write_bytes(_model_file(tmp_path).read_bytes()[:40])
    assert main(["summary", str(damaged)]) == 1
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
