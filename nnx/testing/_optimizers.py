"""Checks of nnx.optimizers: three decayed steps of SGD, Adagrad, RMSprop, Adam on any layer;
host boundary."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from backends import Backend
from nnx.layers import Dense, Layer
from nnx.optimizers import SGD, Adagrad, Adam, Optimizer, RMSprop
from nnx.testing._check import Check, Output, Scenario
from nnx.testing._data import generator, normal, put

_STEPS = 3

# Decay strong enough to change the learning rate visibly within three steps. SGD runs twice:
# plain and with momentum.
_OPTIMIZERS: dict[str, dict[str, Callable[[Backend], Optimizer]]] = {
    "SGD": {
        "plain": lambda b: SGD(0.5, decay=0.1, backend=b),
        "momentum": lambda b: SGD(0.5, decay=0.1, momentum=0.9, backend=b),
    },
    "Adagrad": {"": lambda b: Adagrad(0.5, decay=0.1, backend=b)},
    "RMSprop": {"": lambda b: RMSprop(0.02, decay=0.1, rho=0.9, backend=b)},
    "Adam": {"": lambda b: Adam(0.05, decay=0.1, backend=b)},
}
LayerFactory = Callable[[Backend, str], Layer]


def _steps(
    backend: Backend, dtype: str, make: LayerFactory, optimizer: Optimizer, label: str
) -> list[Output]:
    """Three steps of ``optimizer`` on a layer with seeded O(1) parameters and gradients."""
    rng = generator(51)
    layer = make(backend, dtype)
    layer.set_parameters(*[_draw(rng, backend, p, dtype) for p in layer.get_parameters()])
    for _ in range(_STEPS):
        # Gradients set directly: the optimizer is checked alone, not the layer's backward.
        for name, gradient in layer.parameters.items():
            setattr(layer, gradient, _draw(rng, backend, getattr(layer, name), dtype))
        optimizer.pre_update_params()
        optimizer.update_params(layer)
        optimizer.post_update_params()
    names = [*layer.parameters, *optimizer.state_names(layer)]
    prefix = f"{label} " if label else ""
    return [Output(prefix + n, getattr(layer, n), "elementwise") for n in names]


def _draw(rng: Any, backend: Backend, like: Any, dtype: str) -> Any:
    return put(backend, normal(rng, *tuple(like.shape)), dtype)


def _scenario(name: str, make: LayerFactory) -> Scenario:
    def scenario(backend: Backend, dtype: str) -> list[Output]:
        outputs = []
        for label, optimizer in _OPTIMIZERS[name].items():
            outputs += _steps(backend, dtype, make, optimizer(backend), label)
        return outputs

    scenario.__doc__ = f"{name}: parameters and state after {_STEPS} decayed steps, against NumPy."
    return scenario


def optimizer_checks(make: LayerFactory, layer_name: str = "") -> list[Check]:
    """One check per optimizer (SGD plain and with momentum, Adagrad, RMSprop, Adam): three
    decayed steps on the layer ``make(backend, dtype)`` builds, its parameters and every state
    array the optimizer keeps, against NumPy in float64. Any layer serves: they read its
    declarations. ``layer_name`` goes into the checks' names (``"Adam on Scale"``)."""
    suffix = f" on {layer_name}" if layer_name else ""
    return [Check(name + suffix, "optimizers", _scenario(name, make)) for name in _OPTIMIZERS]


def _dense(backend: Backend, dtype: str) -> Layer:
    return Dense(3, 4, seed=5, dtype=dtype, backend=backend)


CHECKS = tuple(optimizer_checks(_dense))
