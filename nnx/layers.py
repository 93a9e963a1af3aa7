"""Layers: Dense (the book's fully connected layer), Dropout and Input."""

from __future__ import annotations

import math
from typing import Any, ClassVar

from backends import Backend
from nnx._xp import (
    Array,
    Component,
    column_sums,
    dtype_name,
    real_floating,
    real_number,
    whole_number,
)

__all__ = ["Layer", "Dense", "Dropout", "Input"]

_INITS = ("book", "he", "glorot")


class Layer(Component):
    """A step of the network: ``forward`` sets ``output``, ``backward`` sets ``dinputs``.

    A layer that trains says so in two class attributes, and everything else in nnx (the
    optimizers, regularization, model files, checkpoints, moving to another backend) reads
    them instead of naming a layer's attributes:

    - ``parameters`` maps each parameter to its gradient, under the book's names
      (``Dense``: ``{"weights": "dweights", "biases": "dbiases"}``);
    - ``stems`` gives the book's stem for the names kept per parameter: an optimizer keeps
      ``weight_momentums`` and ``bias_cache`` on the layer, the penalties are
      ``weight_regularizer_l1`` and so on (a parameter without a stem is its own stem).

    A new trainable layer is one class: its ``parameters`` (and ``stems``), its parameter
    arrays and ``dtype`` set in ``__init__``, ``forward``, a ``backward`` that sets every
    gradient (and calls :meth:`add_penalty_gradients` if it takes ``<stem>_regularizer_l1/l2``
    arguments), and ``config()``. ``tests/conformance/test_new_layer.py`` builds one.
    """

    parameters: ClassVar[dict[str, str]] = {}
    stems: ClassVar[dict[str, str]] = {}
    # Widths of the inputs and outputs, where the layer fixes them (Dense does, ReLU not).
    n_inputs: int | None = None
    n_outputs: int | None = None
    dtype: Any = None
    # The first trainable layer of a model has nobody to hand dinputs to; Model switches it off.
    needs_dinputs = True
    output: Any
    dinputs: Any
    # What one step leaves on a layer besides the gradients: dropped when a model moves.
    _STEP_ARRAYS: ClassVar[frozenset[str]] = frozenset({"inputs", "output", "dinputs"})

    @property
    def trainable(self) -> bool:
        return bool(self.parameters)

    def forward(self, inputs: Array, training: bool = False) -> Array:
        raise NotImplementedError

    def backward(self, dvalues: Array) -> Array | None:
        raise NotImplementedError

    def state_name(self, parameter: str, kind: str) -> str:
        """The attribute an optimizer keeps state of ``kind`` in (``weight_momentums``)."""
        return f"{self.stems.get(parameter, parameter)}_{kind}"

    def regularizers(self, parameter: str) -> tuple[float, float]:
        """The L1 and L2 strengths of ``parameter`` (0 where the layer has no such penalty)."""
        stem = self.stems.get(parameter, parameter)
        return getattr(self, f"{stem}_regularizer_l1", 0.0), getattr(
            self, f"{stem}_regularizer_l2", 0.0
        )

    @classmethod
    def shapes(cls, config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
        """The shape of each parameter of the layer ``cls(**config)`` builds, without building
        it (model files check a file against them before allocating); {} when not declared."""
        return {}

    def get_parameters(self) -> tuple[Array, ...]:
        """The parameters, in the order of ``parameters``, on this layer's backend."""
        return tuple(getattr(self, name) for name in self.parameters)

    def set_parameters(self, *values: Any) -> None:
        """Replace the parameters (in the order of ``parameters``); host arrays are moved to
        this layer's backend. Nothing changes unless every value fits."""
        if len(values) != len(self.parameters):
            raise ValueError(
                f"{self._label()}.set_parameters: expected {len(self.parameters)} arrays "
                f"({', '.join(self.parameters)}), got {len(values)}."
            )
        checked = [
            self._checked_parameter(name, value, f"{self._label()}.set_parameters")
            for name, value in zip(self.parameters, values, strict=True)
        ]
        for name, value in zip(self.parameters, checked, strict=True):
            setattr(self, name, value)

    def _checked_parameter(self, name: str, value: Any, where: str, like: str = "") -> Array:
        """``value`` as this layer's own copy for the parameter ``name`` (or for state kept like
        it, named ``like``): shape and dtype of the parameter, or a ValueError that starts
        with ``where``."""
        current = getattr(self, name)
        if hasattr(value, "dtype") and not real_floating(value):
            raise ValueError(
                f"{where}: expected {like or name} as real floats, got an array "
                f"of dtype {value.dtype}."
            )
        # The layer's dtype where it keeps one: after a move, current is of the old backend.
        array = self._adopt(
            value, like or name, current.dtype if self.dtype is None else self.dtype
        )
        if tuple(array.shape) != tuple(current.shape):
            raise ValueError(
                f"{where}: expected {like or name} of shape "
                f"{tuple(current.shape)}, got {tuple(array.shape)}."
            )
        # Own copies: optimizers update parameters in place, never the caller's arrays.
        return self.xp.asarray(array, copy=True, device=self.device)

    def add_penalty_gradients(self) -> None:
        """The book's L1/L2 penalty gradients, added to each parameter's gradient: L1 adds
        ``l1 * sign(p)`` (+1 at p = 0, as in the book), L2 adds ``2 * l2 * p``."""
        for name, gradient in self.parameters.items():
            l1, l2 = self.regularizers(name)
            if l1 > 0:
                penalty = l1 * _sign_book(self.xp, getattr(self, name))
                setattr(self, gradient, add_into(self.backend, getattr(self, gradient), penalty))
            if l2 > 0:
                penalty = 2 * l2 * getattr(self, name)
                setattr(self, gradient, add_into(self.backend, getattr(self, gradient), penalty))

    def _step_arrays(self) -> frozenset[str]:
        return self._STEP_ARRAYS | frozenset(self.parameters.values())

    def random_state(self) -> dict[str, Any] | None:
        """The state of the layer's own host generator, where it draws from one (a seeded
        Dropout): checkpoints keep it, so a resumed run draws what an uninterrupted one would.
        None for layers that draw nothing, or from NumPy's global generator."""
        return None

    def set_random_state(self, state: dict[str, Any]) -> None:
        raise ValueError(f"{self._label()}: has no generator of its own to restore.")

    def _label(self) -> str:
        return type(self).__name__


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
        inputs = self._adopt(inputs, "inputs", self.dtype)
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

    def _label(self) -> str:
        return f"Dense(n_inputs={self.n_inputs}, n_neurons={self.n_neurons})"


def add_into(backend: Backend, array: Array, addend: Any, scale: float | None = None) -> Array:
    """``scale * array + addend``, written into ``array`` when the backend allows it.

    The book updates parameters in place (``weights += ...``); doing the same for every
    state update saves a full-size temporary and a pass over memory each time. Immutable
    backends get the same value as a new array. Pass only arrays the caller owns.
    """
    if not backend.mutable:
        return addend + (array if scale is None else scale * array)
    if scale is not None:
        array *= scale
    array += addend
    return array


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


def _sign_book(xp: Any, values: Array) -> Array:
    """The book's L1 derivative: 1 where value >= 0, else -1."""
    ones = xp.ones_like(values)
    return xp.where(values >= 0, ones, -ones)


class Dropout(Layer):
    """Zeroes a fraction ``rate`` of the inputs in training and scales the rest by 1/(1-rate).

    The mask is drawn on the host from a generator seeded with ``seed`` (or NumPy's global one),
    so every backend drops the same units.
    """

    _STEP_ARRAYS = Layer._STEP_ARRAYS | {"binary_mask"}

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
        self.seed = seed
        self._rng = self.backend.rng(seed)

    def forward(self, inputs: Array, training: bool = False) -> Array:
        self.inputs = inputs
        if not training or self.rate == 0:
            self.binary_mask = None
            self.output = inputs
            return inputs
        keep = 1.0 - self.rate
        mask = self._rng.binomial(1, keep, size=tuple(inputs.shape)) / keep
        self.binary_mask = self.backend.asarray(mask, inputs.dtype)
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


class Input(Layer):
    """The book's input layer: passes its inputs on (it is where data meets the model)."""

    def forward(self, inputs: Array, training: bool = False) -> Array:
        self.output = inputs
        return inputs

    def backward(self, dvalues: Array) -> Array:
        self.dinputs = dvalues
        return dvalues
