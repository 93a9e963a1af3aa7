"""Optimizers: the book's SGD (with momentum), Adagrad, RMSprop and Adam.

Each keeps the book's protocol: ``pre_update_params()``, ``update_params(layer)`` for every
trainable layer, ``post_update_params()``. An optimizer updates whatever parameters a layer
declares (``layer.parameters``) and declares the state it keeps per parameter
(``state_kinds``); that state lives on the layer under the book's names (``weight_momentums``,
``bias_cache``: ``layer.state_name(parameter, kind)``), on the layer's backend.
"""

from __future__ import annotations

import math
from typing import Any

from backends import Backend
from nnx._xp import Array, Component, real_number
from nnx.layers import Layer, add_into

__all__ = ["Optimizer", "SGD", "Adagrad", "RMSprop", "Adam"]


class Optimizer(Component):
    """Base: learning rate with the book's 1/t decay, and the iteration counter."""

    # The state kept per parameter, by kind ("momentums", "cache"), on the layer.
    state_kinds: tuple[str, ...] = ()

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
        self._workspace: dict[tuple[Any, ...], Array] = {}

    def pre_update_params(self) -> None:
        if self.decay:
            self.current_learning_rate = self.learning_rate * (
                1.0 / (1.0 + self.decay * self.iterations)
            )

    def restore_iterations(self, iterations: int) -> None:
        """Continue after ``iterations`` steps (checkpoints, model files): the counter and the
        learning rate the last of those steps used, computed as ``pre_update_params`` does."""
        self.iterations = iterations
        self.current_learning_rate = self.learning_rate
        if self.decay and iterations > 0:
            self.iterations -= 1
            self.pre_update_params()
            self.iterations = iterations

    def state_names(self, layer: Layer) -> list[str]:
        """The attributes this optimizer keeps on ``layer`` (``weight_momentums``, ...)."""
        return [
            layer.state_name(parameter, kind)
            for parameter in layer.parameters
            for kind in self.state_kinds
        ]

    def update_params(self, layer: Layer) -> None:
        raise NotImplementedError

    def post_update_params(self) -> None:
        self.iterations += 1

    def _zeros_state(self, layer: Layer) -> None:
        """Create the missing state arrays of ``layer`` as zeros like their parameters."""
        for parameter in layer.parameters:
            for kind in self.state_kinds:
                name = layer.state_name(parameter, kind)
                if not hasattr(layer, name):
                    setattr(layer, name, self.xp.zeros_like(getattr(layer, parameter)))

    # Every update below is the book's formula, built from three pieces. Where the backend's
    # arrays are mutable, the temporaries those pieces need are written into one work array
    # per parameter shape, kept between steps, instead of into fresh arrays: faster although
    # it makes more passes (benchmarks/RESULTS.md), because each fresh array is memory that
    # has left the cache since its last use, and the work array stays in it. Elsewhere each
    # piece is a new array. One optimizer updates one layer at a time: two threads must not
    # share it (nor could they share its iteration count).
    def _work(self, like: Array) -> Array | None:
        """This optimizer's work array shaped like ``like``, or None on immutable backends."""
        if not self.backend.mutable:
            return None
        key = (tuple(like.shape), like.dtype)
        work = self._workspace.get(key)
        if work is None:
            work = self._workspace[key] = self.xp.empty_like(like)
        return work

    def _scaled(self, work: Array | None, values: Array, scale: float) -> Array:
        """``scale * values``."""
        if work is None:
            return scale * values
        work[...] = values
        work *= scale
        return work

    def _squares(self, work: Array | None, values: Array, scale: float = 1.0) -> Array:
        """``scale * values**2``."""
        if work is None:
            return values**2 if scale == 1.0 else scale * values**2
        work[...] = values
        work **= 2  # one pass over one array (NumPy's square kernel), where *= values reads two
        if scale != 1.0:
            work *= scale
        return work

    def _adaptive_step(
        self, work: Array | None, update: Array, cache: Array, lr: float, cache_scale: float = 1.0
    ) -> Array:
        """``-lr * update / (sqrt(cache_scale * cache) + epsilon)``: Adagrad, RMSprop, Adam."""
        eps = self.epsilon  # type: ignore[attr-defined]
        if work is None:
            scaled_cache = cache if cache_scale == 1.0 else cache_scale * cache
            return -lr * update / (self.xp.sqrt(scaled_cache) + eps)
        # sqrt(s * c) + eps = sqrt(s) * (sqrt(c) + eps / sqrt(s)): the factor joins -lr and
        # the pass that would scale the cache is saved.
        root = math.sqrt(cache_scale)
        work[...] = cache
        work **= 0.5  # sqrt: NumPy and torch take their square-root kernel for 0.5
        work += eps / root
        work **= -1  # 1 / (...), so the division can be a product into the work array
        work *= update
        work *= -lr / root
        return work

    def _update_by_cache(self, layer: Layer, rho: float | None) -> None:
        """Adagrad's (``rho`` None: ``cache += dw^2``) and RMSprop's (``cache = rho * cache +
        (1 - rho) * dw^2``) update, then ``w += -lr * dw / (sqrt(cache) + epsilon)``."""
        self._zeros_state(layer)
        lr, backend = self.current_learning_rate, self.backend
        for param, grad in layer.parameters.items():
            cache_name = layer.state_name(param, "cache")
            dw = getattr(layer, grad)
            work = self._work(dw)
            squares = self._squares(work, dw, 1.0 if rho is None else 1 - rho)
            cache = add_into(backend, getattr(layer, cache_name), squares, rho)
            setattr(layer, cache_name, cache)
            step = self._adaptive_step(work, dw, cache, lr)
            setattr(layer, param, add_into(backend, getattr(layer, param), step))

    def _move_to(self, backend: Backend) -> None:
        self._workspace = {}  # work arrays are rebuilt on the new backend when first needed
        super()._move_to(backend)

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
        self.state_kinds = ("momentums",) if momentum else ()

    def update_params(self, layer: Layer) -> None:
        self._zeros_state(layer)
        lr, backend = self.current_learning_rate, self.backend
        for param, grad in layer.parameters.items():
            momentums = layer.state_name(param, "momentums")
            dw = getattr(layer, grad)
            update = self._scaled(self._work(dw), dw, -lr)  # -lr * dw
            if self.momentum:
                # m = momentum * m - lr * dw, and the step is m
                update = add_into(backend, getattr(layer, momentums), update, self.momentum)
                setattr(layer, momentums, update)
            setattr(layer, param, add_into(backend, getattr(layer, param), update))

    def config(self) -> dict[str, Any]:
        return {**super().config(), "momentum": self.momentum}


class Adagrad(Optimizer):
    """Adaptive gradient: ``cache += dw^2``, ``w -= lr * dw / (sqrt(cache) + epsilon)``."""

    state_kinds = ("cache",)

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

    def update_params(self, layer: Layer) -> None:
        self._update_by_cache(layer, None)  # cache += dw^2

    def config(self) -> dict[str, Any]:
        return {**super().config(), "epsilon": self.epsilon}


class RMSprop(Optimizer):
    """Root mean square propagation: ``cache = rho * cache + (1 - rho) * dw^2``."""

    state_kinds = ("cache",)

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

    def update_params(self, layer: Layer) -> None:
        self._update_by_cache(layer, self.rho)  # cache = rho * cache + (1 - rho) * dw^2

    def config(self) -> dict[str, Any]:
        return {**super().config(), "epsilon": self.epsilon, "rho": self.rho}


class Adam(Optimizer):
    """Adaptive momentum: RMSprop's cache plus momentum, both bias-corrected by step."""

    state_kinds = ("momentums", "cache")

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

    def update_params(self, layer: Layer) -> None:
        self._zeros_state(layer)
        lr, backend, b1, b2 = self.current_learning_rate, self.backend, self.beta_1, self.beta_2
        step = self.iterations + 1
        for param, grad in layer.parameters.items():
            momentums_name = layer.state_name(param, "momentums")
            cache_name = layer.state_name(param, "cache")
            dw = getattr(layer, grad)
            work = self._work(dw)
            # m = b1 * m + (1 - b1) * dw and cache = b2 * cache + (1 - b2) * dw^2
            momentums = add_into(
                backend, getattr(layer, momentums_name), self._scaled(work, dw, 1 - b1), b1
            )
            setattr(layer, momentums_name, momentums)
            squares = self._squares(work, dw, 1 - b2)
            cache = add_into(backend, getattr(layer, cache_name), squares, b2)
            setattr(layer, cache_name, cache)
            # Early steps average over few gradients; dividing by (1 - beta^step) corrects the
            # bias: m_hat = m / (1 - b1^step), cache_hat = cache / (1 - b2^step), and
            # w += -lr * m_hat / (sqrt(cache_hat) + eps), with both divisions folded into
            # the scalars (lr / (1 - b1^step) and the factor on the cache).
            update = self._adaptive_step(
                work, momentums, cache, lr / (1 - b1**step), 1 / (1 - b2**step)
            )
            setattr(layer, param, add_into(backend, getattr(layer, param), update))

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
