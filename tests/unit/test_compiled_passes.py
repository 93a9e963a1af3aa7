"""Evaluation and prediction compiled where the training step is (``nnx._run.inference``).

On JAX, ``Model.evaluate``, ``Model.predict`` and validation during ``train`` run the model's
own passes as one compiled call a batch. They give the eager passes' figures, leave the loss's
running sums as the eager pass leaves them, and fall back to the eager pass where a part
cannot be traced.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import backends
import nnx

try:
    JAX = backends.load("jax")
except backends.BackendError as err:  # pragma: no cover - jax is a test dependency in CI
    pytest.skip(f"jax backend unavailable: {err}", allow_module_level=True)

sys.path.insert(0, str(Path(__file__).parent))
from compiled_models import X, Y  # noqa: E402
from compiled_models import model as _model  # noqa: E402


def _eager(model: nnx.Model) -> nnx.Runner:
    return nnx.Runner(model)


def _no_eager_pass(monkeypatch: Any) -> None:
    """From here on the eager passes fail: what answers is the compiled pass."""

    def refuse(*args: Any) -> None:
        raise AssertionError("the eager pass ran")

    monkeypatch.setattr(nnx.Runner, "evaluate", refuse)
    monkeypatch.setattr(nnx.Runner, "predict", refuse)


@pytest.mark.parametrize("batch_size", [None, 64, 50])  # 50: a ragged last batch
def test_evaluate_and_predict_give_the_eager_figures(batch_size: Any, monkeypatch: Any) -> None:
    model = _model(JAX)  # with Dropout: off in these passes
    model.train(X, Y, epochs=2, batch_size=32, verbose=0)
    Xd, yd = JAX.asarray(X), JAX.asarray(Y)
    expected = _eager(model).evaluate(Xd, yd, batch_size)
    eager_sums = (float(model.loss.accumulated_sum), model.loss.accumulated_count)
    eager_outputs = JAX.to_numpy(_eager(model).predict(Xd, batch_size))
    _no_eager_pass(monkeypatch)
    for _ in range(2):  # the second call runs the kept program
        loss, accuracy = model.evaluate(X, Y, batch_size=batch_size, verbose=0)
        np.testing.assert_allclose([loss, accuracy], expected, rtol=1e-6)
    # The running sums as the eager pass leaves them (arrays of the backend, the count).
    assert model.loss.accumulated_count == eager_sums[1] == len(X)
    assert float(model.loss.accumulated_sum) == pytest.approx(eager_sums[0], rel=1e-6)
    outputs = JAX.to_numpy(model.predict(X, batch_size=batch_size))
    np.testing.assert_allclose(outputs, eager_outputs, rtol=1e-6, atol=1e-7)
    assert outputs.shape == (len(X), 3)


def test_past_eight_batch_shapes_new_ones_run_eagerly() -> None:
    """A predict of every request size would compile every time: from the ninth size on the
    eager pass answers, with the same numbers."""
    model = _model(JAX)
    model.train(X, Y, epochs=1, verbose=0)
    for rows in range(1, 12):
        outputs = JAX.to_numpy(model.predict(X[:rows]))
        eager = JAX.to_numpy(_eager(model).predict(JAX.asarray(X[:rows]), None))
        np.testing.assert_allclose(outputs, eager, rtol=1e-6, atol=1e-7, err_msg=str(rows))


def test_validation_during_training_gives_the_eager_history() -> None:
    runs = []
    for compile in (False, None):
        model = _model(JAX)
        history = model.train(
            X, Y, epochs=3, batch_size=32, verbose=0, compile=compile, validation_data=(X, Y)
        )
        runs.append(history)
    for key in ("val_loss", "val_accuracy"):
        np.testing.assert_allclose(runs[1][key], runs[0][key], rtol=1e-5, err_msg=key)


class HostReading(nnx.Layer):
    """A layer that reads an array's value on the host when not training: it cannot be
    traced in the evaluation pass, which then runs eagerly."""

    def forward(self, inputs: Any, training: bool = False) -> Any:
        if not training and float(self.xp.max(inputs)) > 1e9:
            inputs = inputs * 0
        self.output = inputs
        return inputs

    def backward(self, dvalues: Any) -> Any:
        self.dinputs = dvalues
        return dvalues


def test_a_part_that_cannot_be_traced_keeps_the_passes_eager() -> None:
    with nnx.use_backend(JAX):
        model = nnx.Model(seed=0)
        model.add(nnx.Dense(2, 16, seed=1))
        model.add(HostReading())
        model.add(nnx.Dense(16, 3, seed=2))
        model.add(nnx.Softmax())
        model.set(
            loss=nnx.CategoricalCrossentropy(),
            optimizer=nnx.Adam(0.02),
            accuracy=nnx.CategoricalAccuracy(),
        )
    model.finalize()
    model.train(X, Y, epochs=2, verbose=0)  # training=True: the layer reads nothing
    expected = _eager(model).evaluate(JAX.asarray(X), JAX.asarray(Y), None)
    with pytest.warns(RuntimeWarning, match="evaluate runs eagerly on this model from now on"):
        assert model.evaluate(X, Y, verbose=0) == pytest.approx(expected, rel=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once
        assert model.evaluate(X, Y, verbose=0) == pytest.approx(expected, rel=1e-6)
    outputs = JAX.to_numpy(model.predict(X))
    np.testing.assert_allclose(outputs, JAX.to_numpy(_eager(model).predict(JAX.asarray(X), None)))


def test_an_error_of_the_data_still_says_what_is_wrong() -> None:
    model = _model(JAX)
    model.train(X, Y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="class labels"):
        model.evaluate(X, np.full(len(X), 7), verbose=0)
    assert model.evaluate(X, Y, verbose=0)[1] >= 0  # and the passes still work after it
