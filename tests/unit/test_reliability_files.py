"""Files: a temporary is never more readable than the file it replaces, and values the model's
dtype cannot hold are refused at load, naming the tensor."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import safetensors
import safetensors.numpy

import nnx
import nnx._file
from nnx.io import ModelFileError


def _model(dtype: str = "float32") -> nnx.Model:
    with nnx.use_backend("numpy"):
        model = nnx.Model(seed=0)
        model.add(nnx.Dense(2, 4, seed=1, dtype=dtype))
        model.add(nnx.ReLU())
        model.add(nnx.Dense(4, 3, seed=2, dtype=dtype))
        model.add(nnx.Softmax())
        model.set(loss=nnx.CategoricalCrossentropy(), optimizer=nnx.Adam())
        model.finalize()
    return model


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _modes_while_writing(monkeypatch) -> list[int]:
    """The temporary's permissions at the moment its bytes are written."""
    seen: list[int] = []
    write_all = nnx._file._write_all

    def spy(file, payload):
        seen.append(os.stat(file.fileno()).st_mode & 0o777)
        write_all(file, payload)

    monkeypatch.setattr(nnx._file, "_write_all", spy)
    return seen


def _writers(tmp_path: Path):
    pytest.importorskip("ndonnx", reason="export needs the onnx extra")
    model = _model()
    return {
        "save": (tmp_path / "m.nnx", model.save),
        "save_parameters": (tmp_path / "p.nnx", model.save_parameters),
        "export": (tmp_path / "m.onnx", model.export),
    }


@pytest.mark.parametrize("writer", ["save", "save_parameters", "export"])
@pytest.mark.parametrize("mode", [0o640, 0o600, 0o444])
def test_the_temporary_has_the_targets_permissions_from_its_first_byte(
    writer, mode, tmp_path, monkeypatch, umask_022
) -> None:
    path, write = _writers(tmp_path)[writer]
    write(path)
    path.chmod(mode)
    seen = _modes_while_writing(monkeypatch)
    write(path)
    assert seen == [mode]  # was 0644 (the umask's default) until the rename
    assert path.stat().st_mode & 0o777 == mode


@pytest.mark.parametrize("writer", ["save", "export"])
def test_a_new_file_takes_the_umask_default_and_a_wide_target_stays_wide(
    writer, tmp_path, monkeypatch, umask_022
) -> None:
    path, write = _writers(tmp_path)[writer]
    seen = _modes_while_writing(monkeypatch)
    write(path)
    assert path.stat().st_mode & 0o777 == 0o644
    path.chmod(0o666)
    write(path)
    # While written: the umask may narrow it, never widen; afterwards, the target's own.
    assert seen == [0o644, 0o644]
    assert path.stat().st_mode & 0o777 == 0o666


def _rewrite(path: Path, change) -> None:
    """Change the tensors or header of a model file, as someone editing it would."""
    tensors = safetensors.numpy.load_file(str(path))
    with safetensors.safe_open(str(path), "numpy") as file:
        metadata = file.metadata()
    spec = json.loads(metadata["nnx"])
    change(tensors, spec)
    safetensors.numpy.save_file(tensors, str(path), metadata={"nnx": json.dumps(spec)})


def _huge(tensors, spec) -> None:
    tensors["layers.2.weights"] = np.full((4, 3), 1e300)


def test_float64_values_beyond_float32_do_not_load_into_a_float32_model(tmp_path) -> None:
    path = tmp_path / "m.nnx"
    _model("float64").save_parameters(path)
    _rewrite(path, _huge)
    model = _model("float32")
    before = {k: np.asarray(v).copy() for k, v in model.get_state().items()}
    with pytest.raises(ModelFileError, match=r"layers\.2\.weights holds values up to 1e\+300, "
                                             r"beyond the range of float32.*layer 2"):  # fmt: skip
        model.load_parameters(path)
    after = model.get_state()
    assert all(np.array_equal(np.asarray(after[k]), before[k]) for k in before)
    # A float64 model takes them as they are.
    wide = _model("float64")
    wide.load_parameters(path)
    assert float(np.asarray(wide.layers[2].weights).max()) == 1e300


def test_a_file_whose_header_says_float32_over_float64_values_is_refused(tmp_path) -> None:
    path = tmp_path / "m.nnx"
    _model("float64").save(path)

    def lie(tensors, spec):
        _huge(tensors, spec)
        for entry in spec["layers"]:
            if "dtype" in entry["config"]:
                entry["config"]["dtype"] = "float32"

    _rewrite(path, lie)
    with pytest.raises(ModelFileError, match=r"layers\.2\.weights holds values up to 1e\+300"):
        nnx.Model.load(path)


def test_optimizer_state_beyond_the_range_is_refused_too(tmp_path) -> None:
    model = _model("float64")
    model.train(np.ones((4, 2)), np.array([0, 1, 2, 0]), epochs=1, verbose=0)
    path = tmp_path / "m.nnx"
    model.save(path)

    def lie(tensors, spec):
        tensors["layers.0.weight_cache"] = np.full_like(tensors["layers.0.weight_cache"], 1e300)
        for entry in spec["layers"]:
            if "dtype" in entry["config"]:
                entry["config"]["dtype"] = "float32"

    _rewrite(path, lie)
    with pytest.raises(ModelFileError, match=r"layers\.0\.weight_cache holds values up to"):
        nnx.Model.load(path)
