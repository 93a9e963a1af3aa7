"""Checks of nnx.layers: any layer through its declarations (Dense, with L1/L2 penalties, among
them), and Dropout; host boundary."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from backends import Backend
from nnx.layers import Dense, Dropout, Layer
from nnx.losses import Loss
from nnx.testing._check import Check, Output, Scenario
from nnx.testing._data import generator, normal, numeric_gradient, put, scalar

_DROP_RATE, _DROP_SEED = 0.3, 7


def _dense(n_inputs: int, n_neurons: int, dtype: str, backend: Backend) -> Dense:
    """A Dense layer with every penalty on, with different strengths, so a swapped or missing
    term shows."""
    return Dense(
        n_inputs,
        n_neurons,
        weight_regularizer_l1=1e-2,
        weight_regularizer_l2=2e-2,
        bias_regularizer_l1=3e-2,
        bias_regularizer_l2=4e-2,
        seed=3,
        dtype=dtype,
        backend=backend,
    )


LayerFactory = Callable[[Backend, str], Layer]


def layer_checks(component: str, make: LayerFactory, n_inputs: int | None = None) -> list[Check]:
    """A reference check and a gradient check for the layer ``make(backend, dtype)`` builds.

    Written against the layer's declarations only (``parameters``, its regularizers), so they
    serve any layer, nnx's or yours: the initial parameters of a seeded layer bit for bit, then
    forward, backward, every parameter gradient and the penalty on O(1) parameters against
    NumPy in float64; and the same gradients against central differences of
    ``sum(output * g) + penalty``.

    Parameters
    ----------
    component : str
        The name the checks report.
    make : callable ``(backend, dtype) -> Layer``
        Builds the layer, seeded, on ``backend`` in ``dtype`` (``"float32"``/``"float64"``).
    n_inputs : int, optional
        The width of the inputs; defaults to the layer's ``n_inputs``.
    """
    return [
        Check(component, "layers", _reference(make, n_inputs)),
        Check(component, "layers", _gradient(make, n_inputs), kind="gradient"),
    ]


def _width(layer: Layer, n_inputs: int | None) -> int:
    width = n_inputs if n_inputs is not None else layer.n_inputs
    if width is None:
        raise ValueError(f"layer_checks: pass n_inputs for {type(layer).__name__}.")
    return width


def _penalty(backend: Backend, layer: Layer) -> float:
    penalty = Loss(backend).regularization_loss(layer)
    return float(penalty) if isinstance(penalty, float) else scalar(backend, penalty)


def _reference(make: LayerFactory, n_inputs: int | None) -> Scenario:
    def scenario(backend: Backend, dtype: str) -> list[Output]:
        rng = generator(11)
        layer = make(backend, dtype)
        initial = [
            Output(f"initial {name}", array, kind="exact")
            for name, array in zip(layer.parameters, layer.get_parameters(), strict=True)
        ]
        # O(1) parameters, so the penalties and their gradients are not trivially small.
        layer.set_parameters(*[_draw(rng, backend, p, dtype) for p in layer.get_parameters()])
        # Forward's own result, held before backward's door could move a leaked NumPy output.
        output = layer.forward(put(backend, normal(rng, 8, _width(layer, n_inputs)), dtype))
        layer.backward(_draw(rng, backend, output, dtype))
        gradients = [Output(name, getattr(layer, name)) for name in layer.parameters.values()]
        outputs = [*initial, Output("output", output), Output("dinputs", layer.dinputs)]
        if layer.penalties():
            penalty = Loss(backend).regularization_loss(layer)
            outputs.append(Output("regularization_loss", penalty))
        return outputs + gradients

    return scenario


def _gradient(make: LayerFactory, n_inputs: int | None) -> Scenario:
    def scenario(backend: Backend, dtype: str) -> list[Output]:
        rng = generator(12)
        layer = make(backend, dtype)
        shapes = [tuple(p.shape) for p in layer.get_parameters()]
        values = [normal(rng, *shape) for shape in shapes]
        inputs = normal(rng, 4, _width(layer, n_inputs))
        layer.set_parameters(*values)
        g = normal(rng, *tuple(layer.forward(put(backend, inputs, dtype)).shape))

        def objective(parameters: list[np.ndarray], x: np.ndarray) -> float:
            layer.set_parameters(*parameters)
            output = backend.to_numpy(layer.forward(put(backend, x, dtype)))
            return float(np.sum(output * g)) + _penalty(backend, layer)

        def varying(i: int) -> Callable[[np.ndarray], float]:
            return lambda v: objective([*values[:i], v, *values[i + 1 :]], inputs)

        layer.set_parameters(*values)
        layer.forward(put(backend, inputs, dtype))
        layer.backward(put(backend, g, dtype))
        outputs = [
            Output(
                "dinputs",
                layer.dinputs,
                "gradient",
                expected=numeric_gradient(lambda x: objective(values, x), inputs),
            )
        ]
        for i, gradient in enumerate(layer.parameters.values()):
            analytic = getattr(layer, gradient)
            numeric = numeric_gradient(varying(i), values[i])
            outputs.append(Output(gradient, analytic, "gradient", expected=numeric))
        return outputs

    return scenario


def _draw(rng: np.random.Generator, backend: Backend, like: Any, dtype: str) -> Any:
    """Standard normal values shaped like the array ``like``, on ``backend``."""
    return put(backend, normal(rng, *tuple(like.shape)), dtype)


def dropout_reference(backend: Backend, dtype: str) -> list[Output]:
    """The same seed draws the same mask on every backend; inference passes inputs through."""
    rng = generator(13)
    inputs = put(backend, normal(rng, 6, 5), dtype)
    layer = Dropout(_DROP_RATE, seed=_DROP_SEED, backend=backend)
    output = layer.forward(inputs, training=True)
    layer.backward(put(backend, normal(rng, 6, 5), dtype))
    outputs = [
        Output("binary_mask", layer.binary_mask, kind="exact"),
        Output("output", output, kind="elementwise"),
        Output("dinputs", layer.dinputs, kind="elementwise"),
    ]
    inference = Dropout(_DROP_RATE, seed=_DROP_SEED, backend=backend).forward(inputs)
    return [*outputs, Output("inference output", inference, kind="exact")]


def dropout_gradient(backend: Backend, dtype: str) -> list[Output]:
    """dinputs against differences of ``sum(output * g)`` with the mask of a fixed seed."""
    rng = generator(14)
    inputs, g = normal(rng, 4, 3), normal(rng, 4, 3)

    def objective(x: np.ndarray) -> float:
        layer = Dropout(_DROP_RATE, seed=_DROP_SEED, backend=backend)
        output = layer.forward(put(backend, x, dtype), training=True)
        return float(np.sum(backend.to_numpy(output) * g))

    layer = Dropout(_DROP_RATE, seed=_DROP_SEED, backend=backend)
    layer.forward(put(backend, inputs, dtype), training=True)
    layer.backward(put(backend, g, dtype))
    return [
        Output("dinputs", layer.dinputs, "gradient", expected=numeric_gradient(objective, inputs))
    ]


CHECKS = (
    *layer_checks("Dense", lambda backend, dtype: _dense(5, 4, dtype, backend)),
    Check("Dropout", "layers", dropout_reference),
    Check("Dropout", "layers", dropout_gradient, kind="gradient"),
)
