"""Extreme logits (+-1e4) give finite probabilities, losses and gradients on every backend."""

from __future__ import annotations

import numpy as np
import pytest

import nnx
from backends import Backend
from nnx.testing import DTYPES

LOGITS = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, -1e4], [0.0, 0.0, 1e4]])
LABELS = np.array([1, 0, 2, 0])  # the true class is given almost no probability in rows 0 and 3


def _finite(backend: Backend, *arrays) -> None:
    for array in arrays:
        host = np.asarray(backend.to_numpy(backend.xp.asarray(array)))
        assert np.all(np.isfinite(host)), host


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_and_crossentropy_stay_finite(backend: Backend, dtype: str) -> None:
    if dtype == "float64" and not backend.float64:
        pytest.skip(f"{backend.name} on {backend.device} has no float64{backend.float64_hint}")
    logits = backend.asarray(LOGITS, backend.dtype(dtype))
    softmax = nnx.Softmax(backend)
    probabilities = softmax.forward(logits)
    np.testing.assert_allclose(backend.to_numpy(backend.xp.sum(probabilities, axis=1)), 1, 1e-6)
    fused = nnx.SoftmaxCategoricalCrossentropy(backend)
    loss = fused.forward(logits, LABELS)
    separate = nnx.CategoricalCrossentropy(backend)
    # The book clips probabilities to [1e-7, 1 - 1e-7]: the worst loss is -log(1e-7) ~ 16.1.
    assert float(separate.calculate(probabilities, LABELS)) <= 16.2
    _finite(backend, probabilities, loss, fused.backward(fused.output, LABELS))
    _finite(backend, separate.backward(probabilities, LABELS), softmax.backward(probabilities))


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_and_binary_crossentropy_stay_finite(backend: Backend, dtype: str) -> None:
    if dtype == "float64" and not backend.float64:
        pytest.skip(f"{backend.name} on {backend.device} has no float64{backend.float64_hint}")
    logits = backend.asarray(LOGITS, backend.dtype(dtype))
    targets = backend.asarray((LOGITS < 0).astype(float), backend.dtype(dtype))  # all wrong
    sigmoid = nnx.Sigmoid(backend)
    outputs = sigmoid.forward(logits)
    loss = nnx.BinaryCrossentropy(backend)
    _finite(backend, outputs, loss.calculate(outputs, targets), loss.backward(outputs, targets))
    _finite(backend, sigmoid.backward(loss.dinputs))
