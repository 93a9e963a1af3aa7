"""Optimizers: the book's SGD (with momentum), Adagrad, RMSprop and Adam.

Each keeps the book's protocol: ``pre_update_params()``, ``update_params(layer)`` for every
trainable layer, ``post_update_params()``. Per-parameter state (momentums, caches) lives on
the layer, under the book's names, on the layer's backend.
"""

from __future__ import annotations

from typing import Any

from backends import Backend
from nnx._xp import Component, real_number
from nnx.layers import Layer, add_into

__all__ = ["OPTIMIZER_STATE", "Optimizer", "SGD", "Adagrad", "RMSprop", "Adam"]

# Every name an optimizer may keep state under on a layer (the book's names).
OPTIMIZER_STATE = ("weight_momentums", "bias_momentums", "weight_cache", "bias_cache")


class Optimizer(Component):
    """Base: learning rate with the book's 1/t decay, and the iteration counter."""

    _STATE: tuple[str, ...] = ()

    def __init__(
        self,
        learning_rate: float,
        decay: float = 0.0,
        backend: Backend | str | None = None,
        **hyper: float,
    ) -> None:
        super().__init__(backend)
        for name, value in {"learning_rate": learning_rate, "decay": decay, **hyper}.items():
            number = real_number(value)
            if number is None or not number >= 0:
                raise ValueError(
                    f"{type(self).__name__}: expected {name} >= 0, got {name}={value!r}."
                )
        self.learning_rate = float(learning_rate)
        self.current_learning_rate = float(learning_rate)
        self.decay = float(decay)
        self.iterations = 0

    def pre_update_params(self) -> None:
        if self.decay:
            self.current_learning_rate = self.learning_rate * (
                1.0 / (1.0 + self.decay * self.iterations)
            )

    def update_params(self, layer: Layer) -> None:
        raise NotImplementedError

    def post_update_params(self) -> None:
        self.iterations += 1

    def _zeros_state(self, layer: Any) -> None:
        """Create the missing state arrays of ``layer`` as zeros like its parameters."""
        for name in self._STATE:
            if not hasattr(layer, name):
                like = layer.weights if name.startswith("weight") else layer.biases
                setattr(layer, name, self.xp.zeros_like(like))

    def _step_by_cache(self, layer: Any) -> None:
        """Adagrad's and RMSprop's step: ``w -= lr * dw / (sqrt(cache) + epsilon)``."""
        xp, backend = self.xp, self.backend
        lr, eps = self.current_learning_rate, self.epsilon  # type: ignore[attr-defined]
        weight_denominator = add_into(backend, xp.sqrt(layer.weight_cache), eps)
        bias_denominator = add_into(backend, xp.sqrt(layer.bias_cache), eps)
        layer.weights = add_into(backend, layer.weights, -lr * layer.dweights / weight_denominator)
        layer.biases = add_into(backend, layer.biases, -lr * layer.dbiases / bias_denominator)

    def config(self) -> dict[str, Any]:
        """Hyperparameters that rebuild this optimizer (for model files)."""
        return {"learning_rate": self.learning_rate, "decay": self.decay}


class SGD(Optimizer):
    """Stochastic gradient descent: ``w -= lr * dw``; with momentum,
    ``m = momentum * m - lr * dw`` and ``w += m``."""

    def __init__(
        self,
        learning_rate: float = 1.0,
        decay: float = 0.0,
        momentum: float = 0.0,
        *,
        backend: Backend | str | None = None,
    ) -> None:
        super().__init__(learning_rate, decay, backend, momentum=momentum)
        self.momentum = float(momentum)
        self._STATE = ("weight_momentums", "bias_momentums") if momentum else ()

    def update_params(self, layer: Any) -> None:
        lr, backend = self.current_learning_rate, self.backend
        if self.momentum:
            self._zeros_state(layer)
            # m = momentum * m - lr * dw, updated in place where the backend allows it.
            layer.weight_momentums = add_into(
                backend, layer.weight_momentums, -lr * layer.dweights, self.momentum
            )
            layer.bias_momentums = add_into(
                backend, layer.bias_momentums, -lr * layer.dbiases, self.momentum
            )
            weight_updates, bias_updates = layer.weight_momentums, layer.bias_momentums
        else:
            weight_updates, bias_updates = -lr * layer.dweights, -lr * layer.dbiases
        layer.weights = add_into(backend, layer.weights, weight_updates)
        layer.biases = add_into(backend, layer.biases, bias_updates)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "momentum": self.momentum}


class Adagrad(Optimizer):
    """Adaptive gradient: ``cache += dw^2``, ``w -= lr * dw / (sqrt(cache) + epsilon)``."""

    _STATE = ("weight_cache", "bias_cache")

    def __init__(
        self,
        learning_rate: float = 1.0,
        decay: float = 0.0,
        epsilon: float = 1e-7,
        *,
        backend: Backend | str | None = None,
    ) -> None:
        super().__init__(learning_rate, decay, backend, epsilon=epsilon)
        self.epsilon = float(epsilon)

    def update_params(self, layer: Any) -> None:
        self._zeros_state(layer)
        backend = self.backend
        layer.weight_cache = add_into(backend, layer.weight_cache, layer.dweights**2)
        layer.bias_cache = add_into(backend, layer.bias_cache, layer.dbiases**2)
        self._step_by_cache(layer)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "epsilon": self.epsilon}


class RMSprop(Optimizer):
    """Root mean square propagation: ``cache = rho * cache + (1 - rho) * dw^2``."""

    _STATE = ("weight_cache", "bias_cache")

    def __init__(
        self,
        learning_rate: float = 0.001,
        decay: float = 0.0,
        epsilon: float = 1e-7,
        rho: float = 0.9,
        *,
        backend: Backend | str | None = None,
    ) -> None:
        super().__init__(learning_rate, decay, backend, epsilon=epsilon, rho=rho)
        _check_fraction(self, "rho", rho)
        self.epsilon, self.rho = float(epsilon), float(rho)

    def update_params(self, layer: Any) -> None:
        self._zeros_state(layer)
        backend, rho = self.backend, self.rho
        # cache = rho * cache + (1 - rho) * dw^2
        weight_squares, bias_squares = layer.dweights**2, layer.dbiases**2
        layer.weight_cache = add_into(backend, layer.weight_cache, (1 - rho) * weight_squares, rho)
        layer.bias_cache = add_into(backend, layer.bias_cache, (1 - rho) * bias_squares, rho)
        self._step_by_cache(layer)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "epsilon": self.epsilon, "rho": self.rho}


class Adam(Optimizer):
    """Adaptive momentum: RMSprop's cache plus momentum, both bias-corrected by step."""

    _STATE = OPTIMIZER_STATE

    def __init__(
        self,
        learning_rate: float = 0.001,
        decay: float = 0.0,
        epsilon: float = 1e-7,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        *,
        backend: Backend | str | None = None,
    ) -> None:
        super().__init__(
            learning_rate, decay, backend, epsilon=epsilon, beta_1=beta_1, beta_2=beta_2
        )
        _check_fraction(self, "beta_1", beta_1)
        _check_fraction(self, "beta_2", beta_2)
        self.epsilon, self.beta_1, self.beta_2 = float(epsilon), float(beta_1), float(beta_2)

    def update_params(self, layer: Any) -> None:
        self._zeros_state(layer)
        xp, backend, lr, eps = self.xp, self.backend, self.current_learning_rate, self.epsilon
        b1, b2, step = self.beta_1, self.beta_2, self.iterations + 1
        for param, grad, momentums, cache in (
            ("weights", layer.dweights, "weight_momentums", "weight_cache"),
            ("biases", layer.dbiases, "bias_momentums", "bias_cache"),
        ):
            # m = b1 * m + (1 - b1) * dw and cache = b2 * cache + (1 - b2) * dw^2, in place.
            m = add_into(backend, getattr(layer, momentums), (1 - b1) * grad, b1)
            c = add_into(backend, getattr(layer, cache), (1 - b2) * grad**2, b2)
            # Early steps average over few gradients; dividing by (1 - beta^step) corrects
            # the bias. w -= lr * m_hat / (sqrt(c_hat) + eps), the sum into a fresh array.
            m_hat, c_hat = m / (1 - b1**step), c / (1 - b2**step)
            denominator = add_into(backend, xp.sqrt(c_hat), eps)
            setattr(layer, momentums, m)
            setattr(layer, cache, c)
            step_size = -lr * m_hat / denominator
            setattr(layer, param, add_into(backend, getattr(layer, param), step_size))

    def config(self) -> dict[str, Any]:
        return {
            **super().config(),
            "epsilon": self.epsilon,
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
        }


def _check_fraction(optimizer: Optimizer, name: str, value: float) -> None:
    if not 0 <= value < 1:
        raise ValueError(
            f"{type(optimizer).__name__}: expected {name} in [0, 1), got {name}={value!r}."
        )
