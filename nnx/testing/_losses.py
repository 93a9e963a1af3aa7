"""Checks of nnx.losses: the crossentropies, MSE, MAE and fused Softmax+crossentropy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from backends import Backend
from nnx.losses import (
    BinaryCrossentropy,
    CategoricalCrossentropy,
    Loss,
    MeanAbsoluteError,
    MeanSquaredError,
    SoftmaxCategoricalCrossentropy,
)
from nnx.testing._check import Check, Output, Scenario
from nnx.testing._data import (
    away_from_zero,
    generator,
    labels,
    normal,
    numeric_gradient,
    one_hot,
    probabilities,
    put,
    representable,
    scalar,
)

_SAMPLES, _CLASSES = 8, 4

# name -> (loss class, host (predictions, targets) from a generator). Targets of the
# categorical losses come twice: integer labels and one-hot rows.
_Cases = Callable[[np.random.Generator], tuple[np.ndarray, dict[str, np.ndarray]]]


def _categorical(rng: np.random.Generator) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    y = labels(rng, _SAMPLES, _CLASSES)
    return probabilities(rng, _SAMPLES, _CLASSES), {"int": y, "one-hot": one_hot(y, _CLASSES)}


def _logits(rng: np.random.Generator) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    y = labels(rng, _SAMPLES, _CLASSES)
    return normal(rng, _SAMPLES, _CLASSES, scale=2.0), {"int": y, "one-hot": one_hot(y, _CLASSES)}


def _binary(rng: np.random.Generator) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    predictions = representable(rng.uniform(0.05, 0.95, size=(_SAMPLES, 3)))
    return predictions, {"": rng.integers(0, 2, size=(_SAMPLES, 3)).astype(np.float64)}


def _regression(rng: np.random.Generator) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    predictions = normal(rng, _SAMPLES, 2)
    # Targets at least 0.1 from the predictions: MAE's kink stays out of the differences' reach.
    return predictions, {"": representable(predictions + away_from_zero(rng, _SAMPLES, 2))}


_LOSSES: dict[str, tuple[type[Loss], _Cases]] = {
    "CategoricalCrossentropy": (CategoricalCrossentropy, _categorical),
    "BinaryCrossentropy": (BinaryCrossentropy, _binary),
    "MeanSquaredError": (MeanSquaredError, _regression),
    "MeanAbsoluteError": (MeanAbsoluteError, _regression),
    "SoftmaxCategoricalCrossentropy": (SoftmaxCategoricalCrossentropy, _logits),
}


def _targets(backend: Backend, y: np.ndarray, dtype: str) -> Any:
    """Integer labels keep their dtype; float targets take the check's dtype."""
    return put(backend, y, None if y.dtype.kind == "i" else dtype)


def _prefixed(label: str, name: str) -> str:
    return f"{label} {name}" if label else name


def _reference(name: str) -> Scenario:
    cls, cases = _LOSSES[name]

    def scenario(backend: Backend, dtype: str) -> list[Output]:
        predictions, targets = cases(generator(31))
        outputs = []
        for label, y_host in targets.items():
            loss: Any = cls(backend)
            y = _targets(backend, y_host, dtype)
            inputs = put(backend, predictions, dtype)
            if isinstance(loss, SoftmaxCategoricalCrossentropy):
                value = loss.forward(inputs, y)
                per_sample = loss.output  # the probabilities; per-sample losses stay inside
                loss.backward(loss.output, y)
            else:
                per_sample = loss.forward(inputs, y)
                value = loss.calculate(inputs, y)
                loss.backward(inputs, y)
            outputs += [
                Output(
                    _prefixed(label, "sample losses" if per_sample.ndim == 1 else "output"),
                    per_sample,
                ),
                Output(_prefixed(label, "loss"), value),
                Output(_prefixed(label, "dinputs"), loss.dinputs),
            ]
        return outputs

    scenario.__doc__ = f"{name}: per-sample losses, mean loss and dinputs against NumPy."
    return scenario


def _gradient(name: str) -> Scenario:
    cls, cases = _LOSSES[name]

    def scenario(backend: Backend, dtype: str) -> list[Output]:
        predictions, targets = cases(generator(32))
        outputs = []
        for label, y_host in targets.items():
            loss: Any = cls(backend)
            y = _targets(backend, y_host, dtype)
            fused = isinstance(loss, SoftmaxCategoricalCrossentropy)

            def objective(
                p: np.ndarray, loss: Loss = loss, y: Any = y, fused: bool = fused
            ) -> float:
                inputs = put(backend, p, dtype)
                return scalar(
                    backend, loss.forward(inputs, y) if fused else loss.calculate(inputs, y)
                )

            expected = numeric_gradient(objective, predictions)
            inputs = put(backend, predictions, dtype)
            if fused:
                loss.forward(inputs, y)
            loss.backward(loss.output if fused else inputs, y)
            outputs.append(
                Output(_prefixed(label, "dinputs"), loss.dinputs, "gradient", expected=expected)
            )
        return outputs

    scenario.__doc__ = f"{name}: dinputs against differences of the mean loss."
    return scenario


CHECKS = tuple(Check(name, "losses", _reference(name)) for name in _LOSSES) + tuple(
    Check(name, "losses", _gradient(name), kind="gradient") for name in _LOSSES
)
