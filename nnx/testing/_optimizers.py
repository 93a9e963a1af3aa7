"""Checks of nnx.optimizers: three decayed steps of SGD, Adagrad, RMSprop, Adam; host boundary."""

from __future__ import annotations

from collections.abc import Callable

from backends import Backend
from nnx.layers import Dense
from nnx.optimizers import OPTIMIZER_STATE, SGD, Adagrad, Adam, Optimizer, RMSprop
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
_STATE = OPTIMIZER_STATE


def _steps(backend: Backend, dtype: str, optimizer: Optimizer, label: str) -> list[Output]:
    """Three steps of ``optimizer`` on a Dense layer with seeded O(1) parameters and gradients."""
    rng = generator(51)
    layer = Dense(3, 4, seed=5, dtype=dtype, backend=backend)
    layer.set_parameters(
        put(backend, normal(rng, 3, 4), dtype), put(backend, normal(rng, 1, 4), dtype)
    )
    for _ in range(_STEPS):
        # Gradients set directly: the optimizer is checked alone, not Dense.backward.
        layer.dweights = put(backend, normal(rng, 3, 4), dtype)
        layer.dbiases = put(backend, normal(rng, 1, 4), dtype)
        optimizer.pre_update_params()
        optimizer.update_params(layer)
        optimizer.post_update_params()
    names = ("weights", "biases", *[n for n in _STATE if hasattr(layer, n)])
    prefix = f"{label} " if label else ""
    return [Output(prefix + n, getattr(layer, n), "elementwise") for n in names]


def _scenario(name: str) -> Scenario:
    def scenario(backend: Backend, dtype: str) -> list[Output]:
        outputs = []
        for label, make in _OPTIMIZERS[name].items():
            outputs += _steps(backend, dtype, make(backend), label)
        return outputs

    scenario.__doc__ = f"{name}: parameters and state after {_STEPS} decayed steps, against NumPy."
    return scenario


CHECKS = tuple(Check(name, "optimizers", _scenario(name)) for name in _OPTIMIZERS)
