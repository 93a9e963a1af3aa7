"""Export to ONNX: every example's model, run by ONNX Runtime, gives what nnx gives on NumPy,
for batches of 1, 7 and 1000 from one file; what cannot be exported says why and writes
nothing; nothing trains on the inference-only onnx backend."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

import backends
import nnx
from nnx import _xp
from nnx._export import ExportError, run_exported
from nnx.cli import main
from nnx.datasets import sine_data, spiral_data

pytest.importorskip("ndonnx", reason='export needs the onnx extra: pip install -e ".[onnx]"')
pytest.importorskip("onnxruntime", reason='export needs the onnx extra: pip install -e ".[onnx]"')
import onnx  # noqa: E402  (after the skips: the extra may be missing)
import onnx.numpy_helper  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
BATCHES = (1, 7, 1000)


def _example(name: str):
    """An example script as a module (its ``build``), without running it."""
    sys.path.insert(0, str(EXAMPLES))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(EXAMPLES))


def _dropout_model(width: int = 64, backend="numpy") -> nnx.Model:
    """The spiral classifier with dropout between its layers (chapter 15)."""
    with nnx.use_backend(backend):
        model = nnx.Model(seed=0)
        model.add(nnx.Dense(2, width, seed=0))
        model.add(nnx.ReLU())
        model.add(nnx.Dropout(0.1, seed=1))
        model.add(nnx.Dense(width, 3, seed=2))
        model.add(nnx.Softmax())
        model.set(
            loss=nnx.CategoricalCrossentropy(),
            optimizer=nnx.Adam(learning_rate=0.05, decay=5e-5),
            accuracy=nnx.CategoricalAccuracy(),
        )
        model.finalize()
    return model


def _spiral(classes: int) -> tuple[np.ndarray, np.ndarray]:
    X, y = spiral_data(100, classes, seed=0)
    return X, (y.reshape(-1, 1) if classes == 2 else y)


def _generated(width: int, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """A small batch in the shape of the data set (pixels in [-1, 1]), with labels."""
    rng = np.random.default_rng(5)
    return rng.uniform(-1, 1, (256, width)), rng.integers(0, classes, 256)


# name -> (the example's model, training data); every model trains a few epochs on NumPy first,
# so the exported weights are not the initial ones.
MODELS = {
    "spiral": (lambda: _example("spiral").build(), lambda: _spiral(3)),
    "regression": (lambda: _example("regression").build(), lambda: sine_data(200)),
    "binary": (lambda: _example("binary").build(), lambda: _spiral(2)),
    "digits": (lambda: _example("digits").build(), lambda: _generated(64, 10)),
    "dropout": (_dropout_model, lambda: _spiral(3)),
    "fashion_mnist": (lambda: _example("fashion_mnist").build(784), lambda: _generated(784, 10)),
}


def _trained(name: str) -> tuple[nnx.Model, np.ndarray]:
    build, data = MODELS[name]
    with nnx.use_backend("numpy"):
        model = build()
    X, y = data()
    model.train(X, y, epochs=3, verbose=0)
    return model, X


def _samples(X: np.ndarray, n: int) -> np.ndarray:
    """``n`` rows in the data's range: the data itself, then noisy copies of it."""
    rng = np.random.default_rng(n)
    rows = X[rng.integers(0, len(X), n)]
    return rows + rng.normal(0, 0.05, rows.shape) * (n > len(X))


@pytest.mark.parametrize("name", list(MODELS))
def test_every_example_model_runs_in_onnx_runtime_as_on_numpy(name, tmp_path):
    model, X = _trained(name)
    classifier = model.loss.targets in ("classes", "binary")
    path = tmp_path / f"{name}.onnx"
    model.export(path, labels=classifier)
    for n in BATCHES:  # one file, any batch size
        samples = _samples(X, n)
        want = np.asarray(model.predict(samples))
        got = run_exported(path, samples)
        assert got["output"].shape == want.shape
        assert got["output"].dtype == np.float32
        np.testing.assert_allclose(got["output"], want, rtol=0, atol=1e-5)
        if classifier:
            labels = np.asarray(model.output_layer_activation.predictions(want))
            # Within 1e-5 of a tie (two top probabilities, or 0.5 for a sigmoid) the two may
            # break it differently; nowhere else.
            top = np.sort(want, axis=1)
            runner_up = top[:, -2] if want.shape[1] > 1 else 1.0 - top[:, -1]
            close = np.abs(top[:, -1] - runner_up) < 2e-5
            agree = (got["labels"] == labels).reshape(len(samples), -1).all(axis=1)
            assert np.all(agree | close), name


def test_float64_models_export_in_float64(tmp_path):
    X, y = spiral_data(50, 3, seed=0)
    model = nnx.Model(seed=0)
    model.add(nnx.Dense(2, 16, seed=1, dtype="float64", backend="numpy"))
    model.add(nnx.ReLU(backend="numpy"))
    model.add(nnx.Dense(16, 3, seed=2, dtype="float64", backend="numpy"))
    model.add(nnx.Softmax(backend="numpy"))
    model.set(loss=nnx.CategoricalCrossentropy(backend="numpy"))
    model.finalize()
    metadata = model.export(tmp_path / "m.onnx")
    assert metadata["input"] == {"name": "X", "shape": ["N", 2], "dtype": "float64"}
    got = run_exported(tmp_path / "m.onnx", X)["output"]
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, np.asarray(model.predict(X)), rtol=1e-12, atol=1e-15)


def test_the_file_says_what_it_holds(tmp_path):
    model, _ = _trained("dropout")
    metadata = model.export(tmp_path / "m.onnx", labels=True)
    proto = onnx.load(tmp_path / "m.onnx")
    onnx.checker.check_model(proto)
    assert [i.name for i in proto.graph.input] == ["X"]
    assert [o.name for o in proto.graph.output] == ["output", "labels"]
    assert (proto.producer_name, proto.producer_version) == ("nnx", nnx.__version__)
    stored = json.loads({p.key: p.value for p in proto.metadata_props}["nnx"])
    assert stored == metadata
    opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    assert stored["opset"] == opset
    assert stored["nnx_version"] == nnx.__version__
    assert [layer["class"] for layer in stored["layers"]] == [
        "Dense", "ReLU", "Dropout", "Dense", "Softmax"
    ]  # fmt: skip
    assert stored["layers"][2]["config"]["rate"] == 0.1
    # The batch dimension is free, the feature dimension fixed.
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert (dims[0].dim_param, dims[1].dim_value) == ("N", 2)
    # The inference graph only: its float tensors are the parameters, once each (no dropout
    # mask, no optimizer state).
    sizes = sorted(t.size for t in _float_constants(proto.graph) if t.size > 1)
    assert sizes == sorted(p.size for layer in model.get_parameters() for p in layer)


def _float_constants(graph):
    """The float32 tensors a graph holds, in its own nodes and in its branches' subgraphs."""
    for tensor in graph.initializer:
        if tensor.data_type == onnx.TensorProto.FLOAT:
            yield onnx.numpy_helper.to_array(tensor)
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t") and attribute.t.data_type == onnx.TensorProto.FLOAT:
                yield onnx.numpy_helper.to_array(attribute.t)
            if attribute.HasField("g"):
                yield from _float_constants(attribute.g)


def test_export_leaves_the_model_as_it_was(tmp_path):
    model, X = _trained("dropout")
    before = model.get_state()
    constants = dict(_xp._CONSTANTS)
    model.export(tmp_path / "m.onnx", labels=True)
    after = model.get_state()
    assert list(after) == list(before)
    for key in before:
        assert type(after[key]) is type(before[key])
        np.testing.assert_array_equal(np.asarray(after[key]), np.asarray(before[key]))
    assert _xp._CONSTANTS.keys() == constants.keys()  # the graph's constants left the cache
    model.train(*_spiral(3), epochs=1, verbose=0)  # still trains on NumPy


@pytest.mark.parametrize("name", ["array_api_strict", "torch", "jax", "dask"])
def test_a_model_on_another_backend_exports_its_own_parameters(name, tmp_path):
    try:
        backend = backends.load(name)
    except backends.BackendError as err:
        pytest.skip(str(err))
    X, y = spiral_data(50, 3, seed=0)
    model = _dropout_model(8, backend)
    model.train(X, y, epochs=2, verbose=0)  # compiled on JAX: the layers keep no step arrays
    model.export(tmp_path / "m.onnx")
    want = backend.to_numpy(model.predict(X))
    np.testing.assert_allclose(run_exported(tmp_path / "m.onnx", X)["output"], want, atol=1e-6)
    assert type(model.layers[0].weights) is backend.array_type  # still the model's own


class Scale(nnx.Layer):
    """A layer of a reader's own, written against the standard: it exports with no extra code."""

    parameters = {"scale": "dscale"}

    def __init__(self, n: int, backend=None) -> None:
        super().__init__(backend)
        self.n_inputs = self.n_outputs = n
        self.dtype = self.backend.dtype("float32")
        self.scale = self.backend.asarray(np.linspace(0.5, 2.0, n), self.dtype)

    def forward(self, inputs, training=False):
        self.inputs = inputs
        self.output = inputs * self.scale
        return self.output

    def backward(self, dvalues):
        self.dscale = self.xp.sum(dvalues * self.inputs, axis=0, keepdims=True)
        self.dinputs = dvalues * self.scale
        return self.dinputs


class HostBranch(nnx.Layer):
    """A forward pass that reads a value on the host: no graph can hold it."""

    def forward(self, inputs, training=False):
        self.output = inputs if float(self.xp.max(inputs)) > 0 else -inputs
        return self.output

    def backward(self, dvalues):
        self.dinputs = dvalues
        return dvalues

    def predictions(self, outputs):
        return outputs


def _with(layer: nnx.Layer) -> nnx.Model:
    model = nnx.Model(seed=0)
    model.add(nnx.Dense(2, 3, seed=0, backend="numpy"))
    model.add(layer)
    model.set(loss=nnx.MeanSquaredError(backend="numpy"))
    model.finalize()
    return model


def test_a_layer_of_your_own_exports_through_its_forward_code(tmp_path):
    model = _with(Scale(3, backend="numpy"))
    X = np.random.default_rng(0).normal(size=(9, 2))
    model.export(tmp_path / "m.onnx")
    got = run_exported(tmp_path / "m.onnx", X)["output"]
    np.testing.assert_allclose(got, np.asarray(model.predict(X)), atol=1e-6)


def test_a_part_that_cannot_be_exported_is_named_and_nothing_is_written(tmp_path):
    model = _with(HostBranch(backend="numpy"))
    (tmp_path / "keep.onnx").write_bytes(b"the previous file")
    with pytest.raises(ExportError, match=r"layer 1 \(HostBranch\) cannot be exported.*float"):
        model.export(tmp_path / "keep.onnx")
    assert (tmp_path / "keep.onnx").read_bytes() == b"the previous file"
    with pytest.raises(ExportError):
        model.export(tmp_path / "new.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.onnx"]  # no temporaries either


def test_unfinalized_models_missing_folders_and_wrong_labels_are_refused(tmp_path):
    model = nnx.Model()
    model.add(nnx.Dense(2, 3, backend="numpy"))
    with pytest.raises(ValueError, match="finalize"):
        model.export(tmp_path / "m.onnx")
    finished, _ = _trained("regression")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        finished.export(tmp_path / "missing" / "m.onnx")
    with pytest.raises(IsADirectoryError):
        finished.export(tmp_path)
    with pytest.raises(ValueError, match="labels=True.*MeanSquaredError"):
        finished.export(tmp_path / "m.onnx", labels=True)
    assert list(tmp_path.iterdir()) == []


def test_nothing_trains_on_the_onnx_backend():
    onnx_backend = backends.load("onnx")
    assert not onnx_backend.trains and onnx_backend.graph is not None
    model = _dropout_model(8, onnx_backend)
    X, y = spiral_data(10, 3, seed=0)
    with pytest.raises(backends.BackendError, match="inference-only.*model.export"):
        model.train(X, y, epochs=1, verbose=0)
    # Its forward pass on data computes (ndonnx carries the values of constants).
    assert model.predict(X).shape == (30, 3)


def test_symbolic_arrays_say_they_have_no_values():
    onnx_backend = backends.load("onnx")
    x = onnx_backend.graph.symbolic(("N", 2), onnx_backend.dtype("float32"))
    with pytest.raises(backends.BackendError, match="no values until the graph runs"):
        onnx_backend.to_numpy(x)


def test_run_exported_refuses_what_it_cannot_run(tmp_path):
    model, X = _trained("spiral")
    model.export(tmp_path / "m.onnx")
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        run_exported(tmp_path / "m.onnx", np.ones((3, 5)))
    (tmp_path / "text.onnx").write_text("not a graph")
    with pytest.raises(ValueError, match="not an ONNX file"):
        run_exported(tmp_path / "text.onnx", X)
    with pytest.raises(FileNotFoundError, match="no ONNX file"):
        run_exported(tmp_path / "none.onnx", X)


def test_the_command_line_exports_and_runs_the_file(tmp_path, capsys):
    model, X = _trained("spiral")
    model.save(tmp_path / "m.nnx")
    assert main(["export", str(tmp_path / "m.nnx"), str(tmp_path / "m.onnx"), "--labels"]) == 0
    assert "output, labels; ONNX opset" in capsys.readouterr().out
    np.save(tmp_path / "x.npy", X[:5])
    written = tmp_path / "labels.npy"
    argv = ["predict", str(tmp_path / "m.onnx"), "--input", str(tmp_path / "x.npy")]
    assert main([*argv, "--output", str(written)]) == 0
    lines = capsys.readouterr().out.splitlines()
    want = np.asarray(model.predict(X[:5])).argmax(axis=1)
    assert lines[:5] == [str(v) for v in want]
    np.testing.assert_array_equal(np.load(written), want)
    assert main(["predict", str(tmp_path / "m.onnx"), "--dataset", "spiral", "--limit", "1"]) == 0
    assert "(ONNX Runtime)" in capsys.readouterr().out
    assert main([*argv, "--backend", "torch"]) == 1
    assert "--backend and --device do not apply" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "m.nnx"), str(tmp_path / "no" / "m.onnx")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_nnx_conformance_backend_onnx_passes_with_its_export_row(capsys):
    assert main(["conformance", "--backend", "onnx"]) == 0
    out = capsys.readouterr().out
    assert "exported model = NumPy" in out and "inference-only" in out
    assert " 0 failed" in out and "training (" not in out  # no training rows
