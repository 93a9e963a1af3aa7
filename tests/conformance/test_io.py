"""Conformance of nnx.io: a model file written on one backend loads on any other, exactly.

Parameters and optimizer state travel through the file as the bits they were on the writing
backend, so the round trip is compared exactly, not within a tolerance.
"""

from __future__ import annotations

from pathlib import Path

import array_api_compat
import numpy as np
import pytest

import backends
import nnx
from backends import Backend
from nnx.datasets import spiral_data
from nnx.testing import DTYPES

_STATE = ("weights", "biases", "weight_momentums", "weight_cache", "bias_momentums", "bias_cache")


def _trained(backend: Backend, dtype: str) -> nnx.Model:
    X, y = spiral_data(20, 3, seed=0)
    with nnx.use_backend(backend):
        model = nnx.Model(seed=0)
        model.add(nnx.Dense(2, 8, seed=1, dtype=dtype, weight_regularizer_l2=1e-3))
        model.add(nnx.ReLU())
        model.add(nnx.Dense(8, 3, seed=2, dtype=dtype))
        model.add(nnx.Softmax())
        model.set(
            loss=nnx.CategoricalCrossentropy(),
            optimizer=nnx.Adam(learning_rate=0.01),
            accuracy=nnx.CategoricalAccuracy(),
        )
        model.finalize()
    model.train(X, y, epochs=2, verbose=0)
    return model


def _state(model: nnx.Model) -> list[np.ndarray]:
    return [
        model.backend.to_numpy(getattr(layer, name))
        for layer in model.trainable_layers
        for name in _STATE
    ]


@pytest.mark.parametrize("dtype", DTYPES)
def test_model_file_round_trips_exactly(backend: Backend, dtype: str, tmp_path: Path) -> None:
    if dtype == "float64" and not backend.float64:
        pytest.skip(f"{backend.name} on {backend.device} has no float64{backend.float64_hint}")
    written = _trained(backend, dtype)
    written.save(tmp_path / "from_backend.nnx")
    on_numpy = nnx.Model.load(tmp_path / "from_backend.nnx", backend=backends.load("numpy"))
    for got, expected in zip(_state(on_numpy), _state(written), strict=True):
        np.testing.assert_array_equal(got, expected)
        assert got.dtype == np.dtype(dtype)

    on_numpy.save(tmp_path / "from_numpy.nnx")
    back = nnx.Model.load(tmp_path / "from_numpy.nnx", backend=backend)
    for got, expected in zip(_state(back), _state(written), strict=True):
        np.testing.assert_array_equal(got, expected)
    weights = back.trainable_layers[0].weights
    assert array_api_compat.array_namespace(weights) is array_api_compat.array_namespace(
        written.trainable_layers[0].weights
    )
    assert array_api_compat.device(weights) == backend.device
    assert back.optimizer.iterations == written.optimizer.iterations == 2
