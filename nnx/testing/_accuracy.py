"""Checks of nnx.accuracy: CategoricalAccuracy and RegressionAccuracy; host boundary."""

from __future__ import annotations

import numpy as np

from backends import Backend
from nnx.accuracy import CategoricalAccuracy, RegressionAccuracy
from nnx.activations import Sigmoid, Softmax
from nnx.testing._check import Check, Output
from nnx.testing._data import (
    generator,
    labels,
    normal,
    one_hot,
    probabilities,
    put,
    representable,
)


def _count_dtype(backend: Backend) -> str:
    """Accuracies count hits in float64 where the backend has it (nnx.accuracy)."""
    return "float64" if backend.float64 else "float32"


def categorical_reference(backend: Backend, dtype: str) -> list[Output]:
    """Shares of argmax hits for integer and one-hot labels, and of thresholded outputs."""
    rng = generator(41)
    y = labels(rng, 40, 4)
    predictions = Softmax(backend).predictions(put(backend, probabilities(rng, 40, 4), dtype))
    count = _count_dtype(backend)
    outputs = [Output("predictions", predictions, "exact", dtype=None)]
    for label, targets in (
        ("int", put(backend, y)),
        ("one-hot", put(backend, one_hot(y, 4), dtype)),
    ):
        accuracy = CategoricalAccuracy(backend=backend)
        share = accuracy.calculate(predictions, targets)
        accuracy.calculate(predictions, targets)
        outputs += [
            Output(f"{label} accuracy", share, "exact", dtype=count),
            Output(f"{label} accumulated", accuracy.calculate_accumulated(), "exact", dtype=count),
        ]
    binary = Sigmoid(backend).predictions(
        put(backend, representable(rng.uniform(0.0, 1.0, (40, 3))), dtype)
    )
    targets = put(backend, rng.integers(0, 2, (40, 3)).astype(np.float64), dtype)
    share = CategoricalAccuracy(binary=True, backend=backend).calculate(binary, targets)
    return [*outputs, Output("binary accuracy", share, "exact", dtype=count)]


def regression_reference(backend: Backend, dtype: str) -> list[Output]:
    """The book's precision ``std(y) / 250`` and the share of predictions within it."""
    rng = generator(42)
    y = normal(rng, 30, 1)
    precision = float(np.std(y)) / 250
    # Far inside (0.1x) or far outside (10x) the precision: rounding cannot move a verdict.
    offsets = precision * np.where(rng.uniform(size=(30, 1)) < 0.6, 0.1, 10.0)
    predictions = put(backend, y + offsets * rng.choice([-1.0, 1.0], size=(30, 1)), dtype)
    accuracy = RegressionAccuracy(backend)
    accuracy.init(put(backend, y, dtype))
    share = accuracy.calculate(predictions, put(backend, y, dtype))
    count = _count_dtype(backend)
    return [
        # A Python float, learned once: on the backend here, to be compared like the rest.
        Output("precision", backend.asarray(accuracy.precision, backend.dtype(count)), dtype=count),
        Output("accuracy", share, "exact", dtype=count),
        Output("accumulated", accuracy.calculate_accumulated(), "exact", dtype=count),
    ]


CHECKS = (
    Check("CategoricalAccuracy", "accuracy", categorical_reference),
    Check("RegressionAccuracy", "accuracy", regression_reference),
)
