"""Optimizers: the book's SGD (with momentum), Adagrad, RMSprop and Adam.

The book's protocol: ``pre_update_params()``, ``update_params(layer)`` for every trainable
layer, ``post_update_params()``. Each ``update`` is chapter 10's formulas for one parameter,
written once where the book writes them for ``weights`` and again for ``biases``: it serves any
parameter a layer declares. The state kept (``state_kinds``) lives on the layer under the
book's names (``weight_momentums``, ``bias_cache``).

This plain form is the reference, on every backend. A backend may offer a fused kernel for the
same update over many arrays at once (``Backend.kernels``, see ``backends/kernels.py``): then
``update_params`` and ``Model`` hand it every array, unless ``fused=False``. The conformance
suite checks each kernel against the plain form.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from backends import Backend
from nnx._checks import check_fraction, real_number
from nnx._component import Component
from nnx._fused import kernel_for, run_kernel
from nnx._xp import Array
from nnx.layers import Layer

__all__ = ["Optimizer", "SGD", "Adagrad", "RMSprop", "Adam"]


class Optimizer(Component):
    """Base: learning rate with the book's 1/t decay, the iteration counter, state on layers.

    Parameters
    ----------
    learning_rate, decay : float
        ``current_learning_rate = learning_rate / (1 + decay * iterations)``.
    fused : bool
        Use the backend's fused kernel for this update where it offers one (same formulas,
        rounded in another order); ``False`` always runs the plain form below.
    """

    # The state kept per parameter, by kind ("momentums", "cache"), on the layer.
    state_kinds: tuple[str, ...] = ()
    # The name of the fused update a backend may offer for this optimizer.
    kernel = ""
    # What pre_update_params works out from the step counter, once per step, for the formulas
    # to read: a runner that compiles the step hands them in as numbers of that step.
    step_factors: tuple[str, ...] = ("current_learning_rate",)

    def __init__(
        self,
        learning_rate: float,
        decay: float = 0.0,
        backend: Backend | str | None = None,
        fused: bool = True,
        **hyper: float,
    ) -> None:
        super().__init__(backend)
        for name, value in {"learning_rate": learning_rate, "decay": decay, **hyper}.items():
            number = real_number(value)
            if number is None or not 0 <= number < math.inf:
                raise ValueError(
                    f"{type(self).__name__}: expected {name} as a finite number >= 0, got "
                    f"{name}={value!r}."
                )
        self.learning_rate = float(learning_rate)
        self.current_learning_rate = float(learning_rate)
        self.decay = float(decay)
        self.iterations = 0
        self.fused = bool(fused)
        self._hyper = tuple(hyper)  # the subclass's own: epsilon, rho, beta_1, ...

    def pre_update_params(self) -> None:
        if self.decay:
            self.current_learning_rate = self.learning_rate * (
                1.0 / (1.0 + self.decay * self.iterations)
            )

    def update_params(self, layer: Layer) -> None:
        """Update every parameter of ``layer`` from its gradient.

        Parameters or gradients set by hand as host data (NumPy arrays, lists) move to the
        layer's backend first, as at every method that takes arrays.
        """
        layer.arrive_all(layer.parameters_and_gradients, f"{type(self).__name__}.update_params")
        self.update_layers([layer])

    def post_update_params(self) -> None:
        self.iterations += 1

    def update(self, layer: Layer, name: str, dparams: Array) -> None:
        """The book's update of the parameter ``name`` of ``layer``, from its gradient (an
        array of the layer's backend; ``update_params`` brings host data over first)."""
        raise NotImplementedError

    # -- the state on the layer, and the fused path ------------------------------------------
    def update_layers(self, layers: Sequence[Layer]) -> None:
        """Update every parameter of ``layers``: one fused kernel call for all of them where
        the backend offers one, else the plain ``update`` of each."""
        kernel = kernel_for(self)
        if kernel is None:
            for layer in layers:
                for name, gradient in layer.parameters.items():
                    self.update(layer, name, getattr(layer, gradient))
            return
        run_kernel(self, kernel, layers)

    def hyperparameters(self) -> dict[str, float]:
        """What a fused kernel takes besides the arrays, for the step about to run."""
        return {"lr": self.current_learning_rate, **{n: getattr(self, n) for n in self._hyper}}

    def make_state(self, layers: Sequence[Layer]) -> None:
        """This optimizer's state for ``layers``, zeros where missing (as an update makes it)."""
        for layer in layers:
            for name in layer.parameters:
                for kind in self.state_kinds:
                    self.state(layer, name, kind)

    def state(self, layer: Layer, name: str, kind: str) -> Array:
        """The state of ``kind`` kept for the parameter ``name`` (zeros at first, as the book
        creates them when ``hasattr`` finds none)."""
        attribute = layer.state_name(name, kind)
        if not hasattr(layer, attribute):
            setattr(layer, attribute, self.xp.zeros_like(getattr(layer, name)))
        return getattr(layer, attribute)

    def keep(self, layer: Layer, name: str, kind: str, value: Array) -> Array:
        """Store ``value`` as the state of ``kind`` for the parameter ``name`` (the book's
        ``layer.weight_momentums = weight_updates``); returns what was stored, which the
        update goes on with, as the book reads ``layer.weight_momentums`` back.

        ``keep`` and ``apply`` are the only writers of the state: a runner that guards a step
        without reading the host (a compiled one) wraps these two, and the formulas above
        them stay the book's."""
        setattr(layer, layer.state_name(name, kind), value)
        return value

    def apply(self, layer: Layer, name: str, updates: Array) -> None:
        """``layer.<name> += updates``: in place where the backend's arrays allow it."""
        params = getattr(layer, name)
        params += updates
        setattr(layer, name, params)  # a new array on backends without in-place updates

    def state_names(self, layer: Layer) -> list[str]:
        """The attributes this optimizer keeps on ``layer`` (``weight_momentums``, ...)."""
        return [name for *_, names in layer.slots(self.state_kinds) for name in names]

    def restore_iterations(self, iterations: int) -> None:
        """Continue after ``iterations`` steps (checkpoints, model files): the counter and the
        learning rate the last of those steps used, computed as ``pre_update_params`` does."""
        self.iterations = iterations
        self.current_learning_rate = self.learning_rate
        if self.decay and iterations > 0:
            self.iterations -= 1
            self.pre_update_params()
            self.iterations = iterations

    def config(self) -> dict[str, Any]:
        """Hyperparameters that rebuild this optimizer (for model files)."""
        config = {"learning_rate": self.learning_rate, "decay": self.decay, "fused": self.fused}
        return {**config, **{name: getattr(self, name) for name in self._hyper}}


class SGD(Optimizer):
    """Stochastic gradient descent: ``w -= lr * dw``; with momentum,
    ``m = momentum * m - lr * dw`` and ``w += m``."""

    kernel = "sgd"

    def __init__(
        self,
        learning_rate: float = 1.0,
        decay: float = 0.0,
        momentum: float = 0.0,
        *,
        fused: bool = True,
        backend: Backend | str | None = None,
    ) -> None:
        super().__init__(learning_rate, decay, backend, fused, momentum=momentum)
        self.momentum = float(momentum)
        self.state_kinds = ("momentums",) if momentum else ()

    def update(self, layer: Layer, name: str, dparams: Array) -> None:
        if self.momentum:
            # A fraction of the previous update carries over: the step keeps rolling.
            updates = (
                self.momentum * self.state(layer, name, "momentums")
                - self.current_learning_rate * dparams
            )
            updates = self.keep(layer, name, "momentums", updates)
        else:
            updates = -self.current_learning_rate * dparams
        self.apply(layer, name, updates)


class Adagrad(Optimizer):
    """Adaptive gradient: ``cache += dw^2``, ``w -= lr * dw / (sqrt(cache) + epsilon)``."""

    state_kinds = ("cache",)
    kernel = "adagrad"

    def __init__(
        self,
        learning_rate: float = 1.0,
        decay: float = 0.0,
        epsilon: float = 1e-7,
        *,
        fused: bool = True,
        backend: Backend | str | None = None,
    ) -> None:
        super().__init__(learning_rate, decay, backend, fused, epsilon=epsilon)
        self.epsilon = float(epsilon)

    def update(self, layer: Layer, name: str, dparams: Array) -> None:
        cache = self.keep(layer, name, "cache", self.state(layer, name, "cache") + dparams**2)
        # Each parameter's step shrinks with the sum of its squared gradients so far.
        updates = -self.current_learning_rate * dparams / (self.xp.sqrt(cache) + self.epsilon)
        self.apply(layer, name, updates)


class RMSprop(Optimizer):
    """Root mean square propagation: ``cache = rho * cache + (1 - rho) * dw^2``."""

    state_kinds = ("cache",)
    kernel = "rmsprop"

    def __init__(
        self,
        learning_rate: float = 0.001,
        decay: float = 0.0,
        epsilon: float = 1e-7,
        rho: float = 0.9,
        *,
        fused: bool = True,
        backend: Backend | str | None = None,
    ) -> None:
        super().__init__(learning_rate, decay, backend, fused, epsilon=epsilon, rho=rho)
        check_fraction(type(self).__name__, "rho", rho)
        self.epsilon, self.rho = float(epsilon), float(rho)

    def update(self, layer: Layer, name: str, dparams: Array) -> None:
        # A moving average of squared gradients, where Adagrad keeps their sum.
        cache = self.rho * self.state(layer, name, "cache") + (1 - self.rho) * dparams**2
        cache = self.keep(layer, name, "cache", cache)
        updates = -self.current_learning_rate * dparams / (self.xp.sqrt(cache) + self.epsilon)
        self.apply(layer, name, updates)


class Adam(Optimizer):
    """Adaptive momentum: RMSprop's cache plus momentum, both bias-corrected by step."""

    state_kinds = ("momentums", "cache")
    kernel = "adam"
    step_factors = ("current_learning_rate", "beta_1_correction", "beta_2_correction")

    def __init__(
        self,
        learning_rate: float = 0.001,
        decay: float = 0.0,
        epsilon: float = 1e-7,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        *,
        fused: bool = True,
        backend: Backend | str | None = None,
    ) -> None:
        super().__init__(
            learning_rate, decay, backend, fused, epsilon=epsilon, beta_1=beta_1, beta_2=beta_2
        )
        check_fraction(type(self).__name__, "beta_1", beta_1)
        check_fraction(type(self).__name__, "beta_2", beta_2)
        self.epsilon, self.beta_1, self.beta_2 = float(epsilon), float(beta_1), float(beta_2)
        self.pre_update_params()  # the first step's factors, for an update called before it

    def pre_update_params(self) -> None:
        super().pre_update_params()
        # Momentums and cache start at zero, so early steps average over few gradients:
        # dividing by (1 - beta ** step) corrects that bias (step counts from 1). The book
        # writes it inside the update; it is the same for every parameter of a step.
        step = self.iterations + 1
        self.beta_1_correction = 1 - self.beta_1**step
        self.beta_2_correction = 1 - self.beta_2**step

    def update(self, layer: Layer, name: str, dparams: Array) -> None:
        momentums = self.beta_1 * self.state(layer, name, "momentums") + (1 - self.beta_1) * dparams
        cache = self.beta_2 * self.state(layer, name, "cache") + (1 - self.beta_2) * dparams**2
        momentums = self.keep(layer, name, "momentums", momentums)
        cache = self.keep(layer, name, "cache", cache)
        momentums_corrected = momentums / self.beta_1_correction
        cache_corrected = cache / self.beta_2_correction
        updates = (
            -self.current_learning_rate
            * momentums_corrected
            / (self.xp.sqrt(cache_corrected) + self.epsilon)
        )
        self.apply(layer, name, updates)

    def hyperparameters(self) -> dict[str, float]:
        return {**super().hyperparameters(), "step": self.iterations + 1}
