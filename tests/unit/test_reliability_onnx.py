"""The front door of ONNX files (``nnx predict FILE.onnx`` -> ``run_exported``): hostile files,
built here with onnx.helper, are refused before ONNX Runtime reads them, each with one clear
error; files nnx exported still run."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

import nnx
from nnx._export import run_exported
from nnx._onnx_door import ALLOWED_OPS
from nnx.cli import main
from nnx.io import ModelFileError

pytest.importorskip("ndonnx", reason='export needs the onnx extra: pip install -e ".[onnx]"')
pytest.importorskip("onnxruntime", reason='export needs the onnx extra: pip install -e ".[onnx]"')
import onnx  # noqa: E402  (after the skips: the extra may be missing)
from onnx import helper  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from onnx_files import (  # noqa: E402  (after the skips: the extra may be missing)
    FLOAT,
    SECRET,
    X,
    _adds,
    _external,
    _metadata,
    _write,
)


@pytest.mark.parametrize("where", ["relative", "absolute", "dotdot", "symlink"])
def test_external_data_is_refused_wherever_it_points(where, tmp_path, monkeypatch) -> None:
    home, models = tmp_path / "home", tmp_path / "models"
    (home / ".ssh").mkdir(parents=True)
    models.mkdir()
    (home / ".ssh" / "id_rsa").write_bytes(SECRET)
    (models / "link").symlink_to(home / ".ssh" / "id_rsa")
    monkeypatch.chdir(home)  # ONNX Runtime resolves a plain relative name against this
    location = {
        "relative": ".ssh/id_rsa",
        "absolute": str(home / ".ssh" / "id_rsa"),
        "dotdot": "../home/.ssh/id_rsa",
        "symlink": "link",
    }[where]
    tensor = _external("w", location)
    path = _write(models / "m.onnx", _adds(tensor), initializers=[tensor])
    with pytest.raises(ModelFileError, match=rf"tensor 'w' is stored outside the file.*{location}"):
        run_exported(path, X)


def test_the_relative_external_data_attack_is_real_without_the_door(tmp_path, monkeypatch):
    """What the door stops: ONNX Runtime itself hands the secret back as a 'prediction' (this
    release when it does not fold constants first; others in their default settings)."""
    import onnxruntime

    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "id_rsa").write_bytes(SECRET)
    monkeypatch.chdir(tmp_path)
    tensor = _external("w", ".ssh/id_rsa")
    path = _write(tmp_path / "m.onnx", _adds(tensor), initializers=[tensor])
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = onnxruntime.InferenceSession(path.read_bytes(), options)
    leaked = session.run(None, {"X": X * 0})[0]
    assert leaked[0].tobytes() == SECRET
    with pytest.raises(ModelFileError, match="external data"):
        run_exported(path, X)


def test_external_data_inside_a_constant_of_a_branch_is_refused(tmp_path) -> None:
    constant = helper.make_node("Constant", [], ["w"], value=_external("w", "/etc/passwd"))
    branch = helper.make_graph(
        [constant], "b", [], [helper.make_tensor_value_info("w", FLOAT, [1, 2])]
    )
    nodes = [
        helper.make_node("Constant", [], ["c"], value=helper.make_tensor("c", 9, [], [True])),
        helper.make_node("If", ["c"], ["w2"], then_branch=branch, else_branch=branch),
        helper.make_node("Add", ["X", "w2"], ["output"]),
    ]
    with pytest.raises(ModelFileError, match="external data, location='/etc/passwd'"):
        run_exported(_write(tmp_path / "m.onnx", nodes), X)


def test_metadata_that_claims_more_parameters_than_its_layers_is_refused(tmp_path) -> None:
    path = _write(tmp_path / "m.onnx", [helper.make_node("Identity", ["X"], ["output"])],
                  metadata=_metadata(parameters=10**9))  # fmt: skip
    with pytest.raises(ModelFileError, match="parameters=1000000000, but its layers account for 6"):
        run_exported(path, X)


IDENTITY = [helper.make_node("Identity", ["X"], ["output"])]
OUT = [helper.make_tensor_value_info("out", FLOAT, ["N", 2])]
AS_FLOAT64 = _metadata(input={"name": "X", "shape": ["N", 2], "dtype": "float64"})


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"metadata": False}, "no nnx metadata"),
        ({"metadata": {"format": "other"}}, "not nnx's JSON"),
        ({"inputs": [helper.make_tensor_value_info("X", FLOAT, [5, 2])]}, "free batch size"),
        ({"inputs": [helper.make_tensor_value_info("input", FLOAT, ["N", 2])]}, "named 'X'"),
        ({"outputs": OUT}, r"got outputs=\['out'\]"),
        ({"metadata": AS_FLOAT64}, "metadata says input"),
        ({"metadata": _metadata(layers=[])}, "lists no layers"),
    ],
    ids=["no metadata", "foreign metadata", "fixed batch", "input name", "output name",
         "dtype lie", "no layers"],
)  # fmt: skip
def test_files_that_export_did_not_write_are_refused(kwargs, words, tmp_path) -> None:
    nodes = kwargs.pop("nodes", IDENTITY)
    if "inputs" in kwargs and kwargs["inputs"][0].name == "input":
        nodes = [helper.make_node("Identity", ["input"], ["output"])]
    if "outputs" in kwargs:
        nodes = [helper.make_node("Identity", ["X"], ["out"])]
    with pytest.raises(ModelFileError, match=words):
        run_exported(_write(tmp_path / "m.onnx", nodes, **kwargs), X)


def test_custom_operator_domains_are_refused(tmp_path) -> None:
    nodes = [helper.make_node("Steal", ["X"], ["output"], domain="com.evil", name="n")]
    with pytest.raises(ModelFileError, match="imports the operator domain 'com.evil'"):
        run_exported(_write(tmp_path / "m.onnx", nodes, opsets=[("", 21), ("com.evil", 1)]), X)
    with pytest.raises(ModelFileError, match="node 'n' uses the custom domain 'com.evil'"):
        run_exported(_write(tmp_path / "n.onnx", nodes), X)


def test_a_graph_runtime_cannot_run_is_one_error_not_a_traceback(tmp_path) -> None:
    nodes = [helper.make_node("MatMul", ["X", "X"], ["output"])]  # (N, 2) @ (N, 2)
    with pytest.raises(ModelFileError, match="ONNX Runtime could not run it"):
        run_exported(_write(tmp_path / "m.onnx", nodes), X)


# -- files nnx exported ----------------------------------------------------------------------


def _exported(tmp_path: Path, labels: bool = True) -> tuple[nnx.Model, Path]:
    with nnx.use_backend("numpy"):
        model = nnx.Model(seed=0)
        for layer in (nnx.Dense(2, 8, seed=1), nnx.ReLU(), nnx.Dense(8, 3, seed=2), nnx.Softmax()):
            model.add(layer)
        model.set(loss=nnx.CategoricalCrossentropy())
        model.finalize()
    path = tmp_path / "m.onnx"
    model.export(path, labels=labels)
    return model, path


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_are_refused_as_the_nnx_path_refuses_them(bad, tmp_path) -> None:
    model, path = _exported(tmp_path)
    samples = np.ones((4, 2))
    samples[2, 1] = bad
    with pytest.raises(ValueError, match="X contains NaN or infinity") as onnx_error:
        run_exported(path, samples)
    with pytest.raises(ValueError, match="X contains NaN or infinity"):
        model.predict(samples)
    assert str(path) in str(onnx_error.value)


def test_samples_beyond_float32_and_masked_samples_are_refused(tmp_path) -> None:
    _, path = _exported(tmp_path)
    with pytest.raises(ValueError, match="beyond float32's range"):
        run_exported(path, np.full((2, 2), 1e39))
    with pytest.raises(TypeError, match="masked"):
        run_exported(path, np.ma.masked_array(np.ones((2, 2)), mask=[[0, 1], [0, 0]]))


def test_an_exported_file_still_runs_and_a_tampered_one_does_not(tmp_path) -> None:
    model, path = _exported(tmp_path)
    samples = np.random.default_rng(0).normal(size=(5, 2))
    got = run_exported(path, samples)
    np.testing.assert_allclose(got["output"], np.asarray(model.predict(samples)), atol=1e-6)
    assert list(got) == ["output", "labels"]
    proto = onnx.load(path)
    proto.graph.node[0].op_type = "Loop"  # one node swapped, metadata intact
    path.write_bytes(proto.SerializeToString())
    with pytest.raises(ModelFileError, match="is a Loop"):
        run_exported(path, samples)


def _ops(graph) -> set[str]:
    found = set()
    for node in graph.node:
        found.add(node.op_type)
        for attribute in node.attribute:
            if attribute.HasField("g"):
                found |= _ops(attribute.g)
    return found


def test_the_allowed_operators_are_what_export_emits(tmp_path) -> None:
    """Every layer type, binary/regression/classifier models, labels on and off, both dtypes."""
    emitted: set[str] = set()
    cases = [
        ([nnx.Dense(2, 4), nnx.ReLU(), nnx.Dropout(0.2), nnx.Dense(4, 3), nnx.Softmax()],
         nnx.CategoricalCrossentropy(), (False, True)),
        ([nnx.Dense(2, 4), nnx.ReLU(), nnx.Dense(4, 1), nnx.Sigmoid()],
         nnx.BinaryCrossentropy(), (False, True)),
        ([nnx.Dense(2, 4), nnx.ReLU(), nnx.Dense(4, 1), nnx.Linear()],
         nnx.MeanSquaredError(), (False,)),
        ([nnx.Dense(2, 3, dtype="float64"), nnx.Softmax()], nnx.CategoricalCrossentropy(),
         (False, True)),
    ]  # fmt: skip
    for layers, loss, labels in cases:
        model = nnx.Model(seed=0)
        for layer in layers:
            model.add(layer)
        model.set(loss=loss)
        model.finalize()
        for with_labels in labels:
            path = tmp_path / f"m{len(emitted)}.onnx"
            model.export(path, labels=with_labels)
            emitted |= _ops(onnx.load(path).graph)
            run_exported(path, np.ones((2, 2)))  # and the door lets each through
    assert emitted == ALLOWED_OPS


def test_the_command_line_says_one_line_for_a_hostile_file(tmp_path, capsys) -> None:
    tensor = _external("w", str(tmp_path / "secret"))
    (tmp_path / "secret").write_bytes(SECRET)
    path = _write(tmp_path / "m.onnx", _adds(tensor), initializers=[tensor])
    np.save(tmp_path / "x.npy", X)
    assert main(["predict", str(path), "--input", str(tmp_path / "x.npy")]) == 1
    captured = capsys.readouterr()
    assert "stored outside the file" in captured.err and not captured.out
    assert len(captured.err.strip().splitlines()) == 1
    assert os.fspath(SECRET) not in captured.err.encode()


@pytest.mark.parametrize(
    "layers",
    [[{"class": ["Dense"], "config": {}}], [{"class": "Dense", "config": {"n_inputs": "x"}}],
     "Dense", [None]],
)  # fmt: skip
def test_malformed_layer_metadata_is_one_error(layers, tmp_path) -> None:
    path = _write(tmp_path / "m.onnx", IDENTITY, metadata=_metadata(layers=layers))
    with pytest.raises(ModelFileError, match="refused before running it"):
        run_exported(path, X)


def test_deeply_nested_or_huge_metadata_is_one_error(tmp_path) -> None:
    for text in (
        "[" * 100_000 + "]" * 100_000,
        json.dumps({"format": "nnx-onnx", "x": "a" * 2_000_000}),
    ):
        graph = helper.make_graph(
            IDENTITY,
            "g",
            [helper.make_tensor_value_info("X", FLOAT, ["N", 2])],
            [helper.make_tensor_value_info("output", FLOAT, ["N", 2])],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
        entry = model.metadata_props.add()
        entry.key, entry.value = "nnx", text
        (tmp_path / "m.onnx").write_bytes(model.SerializeToString())
        with pytest.raises(ModelFileError, match="not nnx's JSON"):
            run_exported(tmp_path / "m.onnx", X)
