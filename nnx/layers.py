"""Layers: Dense (the book's fully connected layer), Dropout and Input."""

from __future__ import annotations

import math
from typing import Any

from backends import Backend
from nnx._checks import real_number, whole_number
from nnx._layer import Layer
from nnx._xp import Array, add_into, column_sums, dtype_name

__all__ = ["Layer", "Dense", "Dropout", "Input"]

_INITS = ("book", "he", "glorot")


class Dense(Layer):
    """Fully connected layer: ``output = inputs @ weights + biases``.

    Parameters
    ----------
    n_inputs, n_neurons : int
        Width of the input and of the layer.
    weight_regularizer_l1, weight_regularizer_l2, bias_regularizer_l1, bias_regularizer_l2 : float
        The book's L1/L2 penalty strengths (0 switches a penalty off).
    init : {"book", "he", "glorot"}
        ``"book"``: 0.01 x standard normal, as in the book; He or Glorot (uniform) scaling.
    seed : int, optional
        Seed of the host generator that draws the weights. ``None`` draws from NumPy's global
        generator, so ``nnfs.init()`` gives the book's own numbers.
    dtype : {"float32", "float64"}
    backend : Backend or str, optional
        Defaults to the selected backend (``nnx.get_backend()``).
    """

    parameters = {"weights": "dweights", "biases": "dbiases"}
    stems = {"weights": "weight", "biases": "bias"}

    def __init__(
        self,
        n_inputs: int,
        n_neurons: int,
        weight_regularizer_l1: float = 0.0,
        weight_regularizer_l2: float = 0.0,
        bias_regularizer_l1: float = 0.0,
        bias_regularizer_l2: float = 0.0,
        *,
        init: str = "book",
        seed: int | None = None,
        dtype: str = "float32",
        backend: Backend | str | None = None,
    ) -> None:
        super().__init__(backend)
        n_inputs, n_neurons = _size("n_inputs", n_inputs), _size("n_neurons", n_neurons)
        if init not in _INITS:
            raise ValueError(f"Dense: expected init in {_INITS}, got init={init!r}.")
        regularizers = {
            "weight_regularizer_l1": weight_regularizer_l1,
            "weight_regularizer_l2": weight_regularizer_l2,
            "bias_regularizer_l1": bias_regularizer_l1,
            "bias_regularizer_l2": bias_regularizer_l2,
        }
        for name, value in regularizers.items():
            number = real_number(value)
            if number is None or not number >= 0:
                raise ValueError(f"Dense: expected {name} >= 0, got {name}={value!r}.")
        self.n_inputs, self.n_neurons, self.init = n_inputs, n_neurons, init
        self.n_outputs = n_neurons
        self.weight_regularizer_l1 = float(weight_regularizer_l1)
        self.weight_regularizer_l2 = float(weight_regularizer_l2)
        self.bias_regularizer_l1 = float(bias_regularizer_l1)
        self.bias_regularizer_l2 = float(bias_regularizer_l2)
        self.dtype = self.backend.dtype(dtype)
        rng = self.backend.rng(seed)
        self.weights = self.backend.asarray(
            _draw_weights(rng, n_inputs, n_neurons, init), self.dtype
        )
        self.biases = self.xp.zeros((1, n_neurons), dtype=self.dtype, device=self.device)

    def forward(self, inputs: Array, training: bool = False) -> Array:
        if inputs.ndim != 2 or inputs.shape[1] != self.n_inputs:
            raise ValueError(
                f"Dense(n_inputs={self.n_inputs}, n_neurons={self.n_neurons}).forward: expected "
                f"inputs of shape (batch, {self.n_inputs}), got {tuple(inputs.shape)}. "
                "Check n_neurons of the previous layer or the number of features in X."
            )
        self.inputs = inputs
        # inputs @ weights + biases, with the biases added into the fresh product.
        self.output = add_into(self.backend, inputs @ self.weights, self.biases)
        return self.output

    def backward(self, dvalues: Array) -> Array | None:
        self.dweights = self.inputs.T @ dvalues
        self.dbiases = column_sums(self.xp, dvalues)  # sum over the batch, per neuron
        self.add_penalty_gradients()  # L1/L2 regularization
        if not self.needs_dinputs:  # the model's first trainable layer: nobody reads them
            return None
        self.dinputs = dvalues @ self.weights.T
        return self.dinputs

    @classmethod
    def shapes(cls, config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        n_inputs, n_neurons = config["n_inputs"], config["n_neurons"]
        return {"weights": (n_inputs, n_neurons), "biases": (1, n_neurons)}

    def config(self) -> dict[str, Any]:
        return {
            "n_inputs": self.n_inputs,
            "n_neurons": self.n_neurons,
            "weight_regularizer_l1": self.weight_regularizer_l1,
            "weight_regularizer_l2": self.weight_regularizer_l2,
            "bias_regularizer_l1": self.bias_regularizer_l1,
            "bias_regularizer_l2": self.bias_regularizer_l2,
            "init": self.init,
            "dtype": dtype_name(self.xp, self.dtype),
        }

    def __str__(self) -> str:
        return f"Dense(n_inputs={self.n_inputs}, n_neurons={self.n_neurons})"


def _size(name: str, value: Any) -> int:
    """A layer width: any integer (NumPy's too, as from ``y.max() + 1``), at least 1."""
    size = whole_number(value)
    if size is None or size < 1:
        raise ValueError(f"Dense: expected {name} as a positive integer, got {name}={value!r}.")
    return size


def _draw_weights(rng: Any, n_inputs: int, n_neurons: int, init: str) -> Any:
    """Initial weights drawn on the host, so one seed gives the same numbers on every backend."""
    if init == "glorot":
        limit = math.sqrt(6.0 / (n_inputs + n_neurons))
        return rng.uniform(-limit, limit, size=(n_inputs, n_neurons))
    scale = 0.01 if init == "book" else math.sqrt(2.0 / n_inputs)
    return scale * rng.standard_normal(size=(n_inputs, n_neurons))


class Dropout(Layer):
    """Zeroes a fraction ``rate`` of the inputs in training and scales the rest by 1/(1-rate).

    The mask is drawn on the host from a generator seeded with ``seed`` (or NumPy's global one),
    so every backend drops the same units.
    """

    step_arrays = Layer.step_arrays | {"binary_mask"}

    def __init__(
        self, rate: float, *, seed: int | None = None, backend: Backend | str | None = None
    ) -> None:
        super().__init__(backend)
        number = real_number(rate)
        if number is None or not 0 <= number < 1:
            raise ValueError(
                f"Dropout: expected rate (the fraction to drop) in [0, 1), got rate={rate!r}."
            )
        self.rate = float(rate)
        self.draws_on_host = self.rate > 0
        self.seed = seed
        self._rng = self.backend.rng(seed)

    def forward(self, inputs: Array, training: bool = False) -> Array:
        self.inputs = inputs
        if not training or self.rate == 0:
            self.binary_mask = None
            self.output = inputs
            return inputs
        keep = 1.0 - self.rate
        shape = tuple(inputs.shape)
        self.binary_mask = self.host_draw(
            self._rng, lambda rng: rng.binomial(1, keep, size=shape) / keep, shape, inputs.dtype
        )
        self.output = inputs * self.binary_mask
        return self.output

    def backward(self, dvalues: Array) -> Array:
        self.dinputs = dvalues if self.binary_mask is None else dvalues * self.binary_mask
        return self.dinputs

    def random_state(self) -> dict[str, Any] | None:
        state = getattr(getattr(self._rng, "bit_generator", None), "state", None)
        return state if isinstance(state, dict) else None  # NumPy's global one: not ours

    def set_random_state(self, state: dict[str, Any]) -> None:
        if self.random_state() is None:
            super().set_random_state(state)
        self._rng.bit_generator.state = state

    def config(self) -> dict[str, Any]:
        return {"rate": self.rate, "seed": self.seed}

    def __str__(self) -> str:
        return f"Dropout(rate={self.rate})"


class Input(Layer):
    """The book's input layer: passes its inputs on (it is where data meets the model)."""

    def forward(self, inputs: Array, training: bool = False) -> Array:
        self.output = inputs
        return inputs

    def backward(self, dvalues: Array) -> Array:
        self.dinputs = dvalues
        return dvalues
