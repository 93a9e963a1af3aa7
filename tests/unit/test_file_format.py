"""Model files of format 1 (written before parts declared their state) still load, predict,
evaluate, train and resume exactly as the nnx that wrote them did (tests/fixtures)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import nnx
from nnx.datasets import sine_data, spiral_data

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
sys.path.insert(0, str(FIXTURES))
from make_v1_fixtures import spiral_model  # noqa: E402  (the architecture of the old files)

EXPECTED = np.load(FIXTURES / "v1_expected.npz")


def _header(path: Path) -> dict:
    payload = path.read_bytes()
    size = int.from_bytes(payload[:8], "little")
    return json.loads(json.loads(payload[8 : 8 + size])["__metadata__"]["nnx"])


def test_the_fixtures_are_format_1():
    for name in ("v1_spiral_adam", "v1_checkpoint", "v1_sine_sgd", "v1_spiral_parameters"):
        assert _header(FIXTURES / f"{name}.nnx")["format_version"] == 1


def test_a_format_1_model_predicts_as_before():
    X, _ = spiral_data(20, 3, seed=0)
    model = nnx.Model.load(FIXTURES / "v1_spiral_adam.nnx")
    np.testing.assert_array_equal(model.predict(X), EXPECTED["spiral_predict"])
    assert model.optimizer.iterations == 3
    assert model.optimizer.current_learning_rate == pytest.approx(0.01 / (1 + 1e-3 * 2), rel=0)


def test_a_format_1_checkpoint_resumes_as_before():
    X, y = spiral_data(20, 3, seed=0)
    model = spiral_model()
    history = model.train(X, y, epochs=5, verbose=0, resume=FIXTURES / "v1_checkpoint.nnx")
    # The three recorded epochs come from the file, bit for bit. Adam has since gone back to
    # the book's formulas (the old nnx folded the bias corrections into two scalars), so the
    # two new epochs agree with the old nnx's to float32 rounding, not to the bit.
    np.testing.assert_array_equal(history["loss"][:3], EXPECTED["resumed_loss"][:3])
    np.testing.assert_allclose(history["loss"], EXPECTED["resumed_loss"], rtol=1e-6)
    for i, (weights, biases) in enumerate(model.get_parameters()):
        np.testing.assert_allclose(weights, EXPECTED[f"resumed_{i}_weights"], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(biases, EXPECTED[f"resumed_{i}_biases"], rtol=1e-5, atol=1e-7)


def test_a_format_1_regression_model_keeps_its_precision_and_momentums():
    X, y = sine_data(50)
    model = nnx.Model.load(FIXTURES / "v1_sine_sgd.nnx")
    assert model.layers[0].dtype == np.float64
    assert model.accuracy.precision == pytest.approx(float(np.std(y)) / 250, rel=1e-6)
    np.testing.assert_array_equal(model.evaluate(X, y, verbose=0), EXPECTED["sine_evaluate"])
    model.train(X, y, epochs=2, verbose=0)  # momentums from the file: the old run's next steps
    np.testing.assert_array_equal(model.get_parameters()[0][0], EXPECTED["sine_trained_weights"])


def test_a_format_1_parameters_file_loads_into_a_model():
    model = spiral_model()
    model.load_parameters(FIXTURES / "v1_spiral_parameters.nnx")
    loaded = nnx.Model.load(FIXTURES / "v1_spiral_adam.nnx")
    for ours, theirs in zip(model.get_parameters(), loaded.get_parameters(), strict=True):
        for a, b in zip(ours, theirs, strict=True):
            np.testing.assert_array_equal(a, b)


def test_new_files_are_format_2_with_the_state_as_tensors(tmp_path):
    model = nnx.Model.load(FIXTURES / "v1_spiral_adam.nnx")
    model.save(tmp_path / "new.nnx")
    header = _header(tmp_path / "new.nnx")
    assert header["format_version"] == 2
    assert header["tensors"] == list(model.get_state())
    assert header["layers"][0]["config"]["dtype"] == "float32"
    assert "state" not in header["optimizer"]
    again = nnx.Model.load(tmp_path / "new.nnx")
    assert again.optimizer.iterations == 3
    X, _ = spiral_data(20, 3, seed=0)
    np.testing.assert_array_equal(again.predict(X), EXPECTED["spiral_predict"])


def test_a_tampered_format_1_counter_is_refused(tmp_path):
    payload = (FIXTURES / "v1_spiral_adam.nnx").read_bytes()
    size = int.from_bytes(payload[:8], "little")
    header = json.loads(payload[8 : 8 + size])
    spec = json.loads(header["__metadata__"]["nnx"])
    spec["optimizer"]["state"]["iterations"] = 2.5
    header["__metadata__"]["nnx"] = json.dumps(spec)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    (tmp_path / "bad.nnx").write_bytes(len(raw).to_bytes(8, "little") + raw + payload[8 + size :])
    with pytest.raises(nnx.ModelFileError, match="format-1 model file.*iterations=2.5"):
        nnx.Model.load(tmp_path / "bad.nnx")


def test_an_integer_tensor_is_refused_before_anything_changes(tmp_path):
    import safetensors.numpy

    model = nnx.Model.load(FIXTURES / "v1_spiral_adam.nnx")
    model.save(tmp_path / "m.nnx")
    tensors = safetensors.numpy.load_file(tmp_path / "m.nnx")
    metadata = {"nnx": json.dumps(_header(tmp_path / "m.nnx"))}
    tensors["layers.3.biases"] = tensors["layers.3.biases"].astype(np.int32)
    safetensors.numpy.save_file(tensors, tmp_path / "int.nnx", metadata=metadata)
    before = [np.array(a) for pair in model.get_parameters() for a in pair]
    with pytest.raises(nnx.ModelFileError, match=r"int\.nnx.*biases as real floats.*int32"):
        model.load_parameters(tmp_path / "int.nnx")
    after = [a for pair in model.get_parameters() for a in pair]
    for old, new in zip(before, after, strict=True):
        np.testing.assert_array_equal(old, new)
    with pytest.raises(nnx.ModelFileError, match="real floats"):
        nnx.Model.load(tmp_path / "int.nnx")
