"""Checks of nnx.optimizers: three decayed steps of SGD, Adagrad, RMSprop, Adam on any layer;
host boundary."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from backends import Backend
from nnx.layers import Dense, Layer
from nnx.optimizers import SGD, Adagrad, Adam, Optimizer, RMSprop
from nnx.testing._check import Check, NotOffered, Output, Scenario
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


_KERNEL_STEPS = 30
# Every hyperparameter away from its default, epsilon large enough to matter (a kernel that
# dropped it would be off by ~1e-4 relative).
_KERNEL_SETTINGS: dict[str, Callable[[Backend], Optimizer]] = {
    "SGD": lambda b: SGD(0.5, decay=0.1, backend=b),
    "SGD momentum": lambda b: SGD(0.5, decay=0.1, momentum=0.7, backend=b),
    "Adagrad": lambda b: Adagrad(0.4, decay=0.1, epsilon=1e-4, backend=b),
    "RMSprop": lambda b: RMSprop(0.02, decay=0.1, epsilon=1e-5, rho=0.8, backend=b),
    # beta_2 near 1, where 1 - beta_2 computed in float32 is visibly off.
    "Adam": lambda b: Adam(0.05, decay=0.1, epsilon=1e-5, beta_1=0.8, beta_2=0.9995, backend=b),
}


def _kernel_scenario(name: str) -> Scenario:
    def scenario(backend: Backend, dtype: str) -> list[Output]:
        make = _KERNEL_SETTINGS[name]
        kernel = make(backend).kernel
        if kernel not in backend.kernels:
            raise NotOffered(f"{backend.name} offers no fused {kernel!r} kernel")
        fused = kernel_steps(backend, dtype, make(backend))
        plain = kernel_steps(backend, dtype, make(backend), fused=False)
        return [
            Output(key, fused[key], "elementwise", expected=backend.to_numpy(plain[key]))
            for key in plain
        ]

    scenario.__doc__ = f"{name}: the backend's fused kernel against the plain formulas."
    return scenario


def kernel_steps(
    backend: Backend, dtype: str, optimizer: Optimizer, fused: bool = True, steps: int = 0
) -> dict[str, Any]:
    """``steps`` (default 30) decayed steps over two seeded layers at once (one kernel call
    per step where fused): every parameter and state array, by ``layer.attribute``."""
    optimizer.fused = fused
    rng = generator(52)
    layers = [
        Dense(3, 4, seed=5, dtype=dtype, backend=backend),
        Dense(4, 2, seed=6, dtype=dtype, backend=backend),
    ]
    for layer in layers:
        layer.set_parameters(*[_draw(rng, backend, p, dtype) for p in layer.get_parameters()])
    for _ in range(steps or _KERNEL_STEPS):
        for layer in layers:
            for name, gradient in layer.parameters.items():
                setattr(layer, gradient, _draw(rng, backend, getattr(layer, name), dtype))
        optimizer.pre_update_params()
        optimizer.update_layers(layers)
        optimizer.post_update_params()
    return {
        f"{i}.{name}": getattr(layer, name)
        for i, layer in enumerate(layers)
        for name in [*layer.parameters, *optimizer.state_names(layer)]
    }


def kernel_checks() -> list[Check]:
    """One check per optimizer setting: the backend's fused kernel against the plain
    formulas on the same backend and dtype, over many steps (skipped where none is offered)."""
    return [
        Check(f"{name} kernel", "optimizers", _kernel_scenario(name), kind="kernel")
        for name in _KERNEL_SETTINGS
    ]


CHECKS = (*optimizer_checks(_dense), *kernel_checks())
