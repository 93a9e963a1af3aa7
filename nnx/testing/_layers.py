"""Checks of nnx.layers: Dense (with L1/L2 penalties) and Dropout; host boundary."""

from __future__ import annotations

import numpy as np

from backends import Backend
from nnx.layers import Dense, Dropout
from nnx.losses import Loss
from nnx.testing._check import Check, Output
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


def dense_reference(backend: Backend, dtype: str) -> list[Output]:
    """Seeded initial weights, then forward, backward and the penalty on O(1) parameters."""
    rng = generator(11)
    layer = _dense(5, 4, dtype, backend)
    initial = Output("initial weights", layer.weights, kind="exact")
    # Non-zero biases, so the bias penalties and their gradients are not trivially zero.
    layer.set_parameters(
        put(backend, normal(rng, 5, 4), dtype), put(backend, normal(rng, 1, 4), dtype)
    )
    layer.forward(put(backend, normal(rng, 8, 5), dtype))
    layer.backward(put(backend, normal(rng, 8, 4), dtype))
    penalty = Loss(backend).regularization_loss(layer)
    return [
        initial,
        Output("output", layer.output),
        Output("dinputs", layer.dinputs),
        Output("dweights", layer.dweights),
        Output("dbiases", layer.dbiases),
        Output("regularization_loss", penalty),
    ]


def dense_gradient(backend: Backend, dtype: str) -> list[Output]:
    """dinputs, dweights, dbiases against differences of ``sum(output * g) + penalty``."""
    rng = generator(12)
    weights, biases = normal(rng, 3, 2), normal(rng, 1, 2)
    inputs, g = normal(rng, 4, 3), normal(rng, 4, 2)
    layer = _dense(3, 2, dtype, backend)
    loss = Loss(backend)

    def objective(w: np.ndarray, b: np.ndarray, x: np.ndarray) -> float:
        layer.set_parameters(w, b)
        output = backend.to_numpy(layer.forward(put(backend, x, dtype)))
        return float(np.sum(output * g)) + scalar(backend, loss.regularization_loss(layer))

    layer.set_parameters(weights, biases)
    layer.forward(put(backend, inputs, dtype))
    layer.backward(put(backend, g, dtype))
    analytic = layer.dinputs, layer.dweights, layer.dbiases
    numeric = (
        numeric_gradient(lambda x: objective(weights, biases, x), inputs),
        numeric_gradient(lambda w: objective(w, biases, inputs), weights),
        numeric_gradient(lambda b: objective(weights, b, inputs), biases),
    )
    names = ("dinputs", "dweights", "dbiases")
    return [
        Output(n, a, "gradient", expected=e)
        for n, a, e in zip(names, analytic, numeric, strict=True)
    ]


def dropout_reference(backend: Backend, dtype: str) -> list[Output]:
    """The same seed draws the same mask on every backend; inference passes inputs through."""
    rng = generator(13)
    inputs = put(backend, normal(rng, 6, 5), dtype)
    layer = Dropout(_DROP_RATE, seed=_DROP_SEED, backend=backend)
    layer.forward(inputs, training=True)
    layer.backward(put(backend, normal(rng, 6, 5), dtype))
    outputs = [
        Output("binary_mask", layer.binary_mask, kind="exact"),
        Output("output", layer.output, kind="elementwise"),
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
    Check("Dense", "layers", dense_reference),
    Check("Dropout", "layers", dropout_reference),
    Check("Dense", "layers", dense_gradient, kind="gradient"),
    Check("Dropout", "layers", dropout_gradient, kind="gradient"),
)
