"""Checks of nnx.activations: ReLU, Softmax, Sigmoid, Linear; host boundary."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from backends import Backend
from nnx.activations import Linear, ReLU, Sigmoid, Softmax
from nnx.testing._check import Check, Output, Scenario
from nnx.testing._data import (
    away_from_zero,
    generator,
    normal,
    numeric_gradient,
    put,
    representable,
)

_ACTIVATIONS: dict[str, type[ReLU] | type[Softmax] | type[Sigmoid] | type[Linear]] = {
    "ReLU": ReLU,
    "Softmax": Softmax,
    "Sigmoid": Sigmoid,
    "Linear": Linear,
}
# Tolerance kinds of (output, dinputs): ReLU and Linear only select or copy, Softmax
# normalises by row sums, Sigmoid is elementwise.
_KINDS = {
    "ReLU": ("exact", "exact"),
    "Softmax": ("reduction", "reduction"),
    "Sigmoid": ("elementwise", "elementwise"),
    "Linear": ("exact", "exact"),
}


def _reference_inputs(rng: np.random.Generator) -> np.ndarray:
    """O(1) values with the edge cases: exact zeros (ReLU's kink), a row of large values
    (Softmax must subtract the row maximum), large magnitudes (Sigmoid saturates)."""
    inputs = normal(rng, 6, 5, scale=2.0)
    inputs[0, :2] = 0.0
    inputs[1] = representable(1000.0 + np.arange(5) / 8)
    inputs[2] = representable([-40.0, -20.0, 0.5, 20.0, 40.0])
    return inputs


def _reference(name: str) -> Scenario:
    def scenario(backend: Backend, dtype: str) -> list[Output]:
        rng = generator(21)
        inputs = _reference_inputs(rng)
        if name == "ReLU":
            inputs[1] -= 1000.0  # exercise both signs, not only the large row
        activation = _ACTIVATIONS[name](backend)
        # What forward returns, held before backward: backward's door would move a NumPy
        # output (a namespace leak) to the backend, as it does for one set by hand.
        output = activation.forward(put(backend, inputs, dtype))
        activation.backward(put(backend, normal(rng, 6, 5), dtype))
        predictions = activation.predictions(output)
        is_index = name == "Softmax"  # argmax gives integer indices
        return [
            Output("output", output, _KINDS[name][0]),
            Output("dinputs", activation.dinputs, _KINDS[name][1]),
            Output("predictions", predictions, "exact", dtype=None if is_index else "requested"),
        ]

    scenario.__doc__ = f"{name}: output, dinputs and predictions against NumPy."
    return scenario


def _gradient(name: str) -> Scenario:
    def scenario(backend: Backend, dtype: str) -> list[Output]:
        rng = generator(22)
        # Away from 0, so a step of the differences never crosses ReLU's kink.
        inputs, g = away_from_zero(rng, 4, 3), normal(rng, 4, 3)
        activation = _ACTIVATIONS[name](backend)

        def objective(x: np.ndarray) -> float:
            output = activation.forward(put(backend, x, dtype))
            return float(np.sum(backend.to_numpy(output) * g))

        expected = numeric_gradient(objective, inputs)
        activation.forward(put(backend, inputs, dtype))
        activation.backward(put(backend, g, dtype))
        return [Output("dinputs", activation.dinputs, "gradient", expected=expected)]

    scenario.__doc__ = f"{name}: dinputs against differences of sum(output * g)."
    return scenario


def _checks(make: Callable[[str], Scenario], kind: str) -> tuple[Check, ...]:
    return tuple(Check(name, "activations", make(name), kind) for name in _ACTIVATIONS)


CHECKS = _checks(_reference, "reference") + _checks(_gradient, "gradient")
