"""Model files of format 2 (written before the step and its state were redesigned) still load,
predict, evaluate, train and resume exactly as the nnx that wrote them (tests/fixtures)."""

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
from make_v2_fixtures import dropout_model, spiral_model  # noqa: E402  (the files' architectures)

EXPECTED = np.load(FIXTURES / "v2_expected.npz")
NAMES = ("v2_spiral_adam", "v2_checkpoint", "v2_dropout_checkpoint", "v2_sine_sgd")


def _header(path: Path) -> dict:
    payload = path.read_bytes()
    size = int.from_bytes(payload[:8], "little")
    return json.loads(json.loads(payload[8 : 8 + size])["__metadata__"]["nnx"])


def _state_equal(model: nnx.Model, prefix: str) -> None:
    # The state now also holds the layers' own generators (layers.<i>.random_state), which
    # format-2 checkpoints kept in their training record: the losses above check their draws.
    state = {k: v for k, v in model.get_state().items() if not k.endswith(".random_state")}
    expected = {k.removeprefix(prefix): EXPECTED[k] for k in EXPECTED.files if k.startswith(prefix)}
    assert list(state) == list(expected)
    for name, array in state.items():
        np.testing.assert_array_equal(np.asarray(array), expected[name], err_msg=name)


@pytest.mark.parametrize("name", [*NAMES, "v2_spiral_parameters"])
def test_the_fixtures_are_format_2(name):
    assert _header(FIXTURES / f"{name}.nnx")["format_version"] == 2


def test_a_format_2_model_predicts_as_before():
    X, _ = spiral_data(20, 3, seed=0)
    model = nnx.Model.load(FIXTURES / "v2_spiral_adam.nnx")
    np.testing.assert_array_equal(model.predict(X), EXPECTED["spiral_predict"])
    assert model.optimizer.iterations == 3


def test_a_format_2_checkpoint_resumes_bit_for_bit():
    X, y = spiral_data(20, 3, seed=0)
    model = spiral_model()
    history = model.train(X, y, epochs=5, verbose=0, resume=FIXTURES / "v2_checkpoint.nnx")
    np.testing.assert_array_equal(history["loss"], EXPECTED["resumed_loss"])
    _state_equal(model, "resumed.")


def test_a_format_2_dropout_checkpoint_resumes_its_draws_and_order_bit_for_bit():
    X, y = spiral_data(20, 3, seed=0)
    model = dropout_model()
    history = model.train(
        X,
        y,
        epochs=4,
        batch_size=16,
        shuffle=True,
        verbose=0,
        resume=FIXTURES / "v2_dropout_checkpoint.nnx",
    )
    np.testing.assert_array_equal(history["loss"], EXPECTED["dropout_loss"])
    _state_equal(model, "dropout.")


def test_a_format_2_regression_model_evaluates_and_trains_as_before():
    X, y = sine_data(50)
    model = nnx.Model.load(FIXTURES / "v2_sine_sgd.nnx")
    assert model.layers[0].dtype == np.float64
    np.testing.assert_array_equal(model.evaluate(X, y, verbose=0), EXPECTED["sine_evaluate"])
    model.train(X, y, epochs=2, verbose=0)
    np.testing.assert_array_equal(model.get_parameters()[0][0], EXPECTED["sine_trained_weights"])


def test_a_format_2_parameters_file_loads_into_a_model():
    model = spiral_model()
    model.load_parameters(FIXTURES / "v2_spiral_parameters.nnx")
    loaded = nnx.Model.load(FIXTURES / "v2_spiral_adam.nnx")
    for ours, theirs in zip(model.get_parameters(), loaded.get_parameters(), strict=True):
        for a, b in zip(ours, theirs, strict=True):
            np.testing.assert_array_equal(a, b)
