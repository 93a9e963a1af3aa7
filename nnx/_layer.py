"""The base of every layer: what it trains, declared once, and what follows from that.

``nnx.layers`` holds the book's layers; this is the contract they and your own layers share.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from nnx._component import Component
from nnx._xp import Array, add_into, draw_source, dtype_of, real_floating

__all__ = ["Layer"]


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

    Other arrays a layer keeps are named in ``arrays`` (Component), so they move with it
    (``Model.to``); nnx finds nothing by looking through a layer's attributes.

    A new trainable layer is one class: its ``parameters`` (and ``stems``), its parameter
    arrays and ``dtype`` set in ``__init__``, ``forward``, a ``backward`` that sets every
    gradient (and calls :meth:`add_penalty_gradients` if it takes ``<stem>_regularizer_l1/l2``
    arguments), and ``config()``. ``tests/conformance/test_new_layer.py`` builds one.

    ``forward``, ``backward`` and ``predictions`` get a door (see ``Component``): host data
    arrives as arrays of the layer's backend in its ``dtype``, and so do ``inputs``,
    ``output`` and parameters set by hand. A layer whose ``forward`` takes something else
    (integer ids) declares ``takes_arrays = {**Layer.takes_arrays, "forward": ("data",)}``;
    ``takes_arrays = {}`` leaves the methods it defines without a door.
    """

    parameters: ClassVar[dict[str, str]] = {}
    stems: ClassVar[dict[str, str]] = {}
    # Each parameter and its gradient, in turn: what an optimizer's update reads (derived).
    parameters_and_gradients: ClassVar[tuple[str, ...]] = ()
    # Widths of the inputs and outputs, where the layer fixes them (Dense does, ReLU not).
    n_inputs: int | None = None
    n_outputs: int | None = None
    # The first trainable layer of a model has nobody to hand dinputs to; Model switches it off.
    needs_dinputs = True
    # Whether forward draws random numbers (through host_draw) in training.
    draws_on_host = False
    output: Any
    dinputs: Any
    # What one step leaves on a layer (its gradients are added per class, from ``parameters``).
    step_arrays = frozenset({"inputs", "output", "dinputs"})
    # Host data given to these (and inputs or output set by hand before backward) moves to the
    # layer's backend first: see Component. The formulas see only their backend's arrays.
    takes_arrays = {"forward": ("floats",), "backward": ("floats",), "predictions": ("floats",)}
    takes_state = {"backward": ("inputs", "output")}
    # A direct backward call gets the gradient of the output of the last forward: another
    # shape would broadcast (ReLU's mask) into a plausible, wrong gradient.
    checks = {"backward": "_check_dvalues"}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Parameters set by hand (chapter 6 assigns ``dense1.weights``) pass the doors of the
        # methods that read them.
        params = tuple(cls.parameters)
        cls.step_arrays = cls.step_arrays | frozenset(cls.parameters.values())
        cls.parameters_and_gradients = tuple(
            name for pair in cls.parameters.items() for name in pair
        )
        cls.takes_state = {
            **cls.takes_state,
            "forward": params,
            "backward": (*Layer.takes_state["backward"], *params),
        }
        super().__init_subclass__(**kwargs)

    @property
    def trainable(self) -> bool:
        return bool(self.parameters)

    def forward(self, inputs: Array, training: bool = False) -> Array:
        raise NotImplementedError

    def backward(self, dvalues: Array) -> Array | None:
        raise NotImplementedError

    def state_name(self, parameter: str, kind: str) -> str:
        """The attribute an optimizer keeps state of ``kind`` in (``weight_momentums``)."""
        return stemmed(type(self), parameter, kind)

    @classmethod
    def slots(cls, kinds: tuple[str, ...]) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
        """Per parameter: its name, its gradient's, and the attribute of each of ``kinds`` of
        optimizer state for it (``("weights", "dweights", ("weight_momentums",))``)."""
        slots = _SLOTS.get((cls, kinds))
        if slots is None:
            slots = _SLOTS[cls, kinds] = tuple(
                (name, gradient, tuple(stemmed(cls, name, kind) for kind in kinds))
                for name, gradient in cls.parameters.items()
            )
        return slots

    def penalties(self) -> list[tuple[str, str, float, float]]:
        """``(parameter, gradient, l1, l2)`` for each parameter with an L1 or L2 penalty."""
        found = []
        for name, gradient, (l1_name, l2_name) in self.slots(_PENALTIES):
            l1, l2 = getattr(self, l1_name, 0.0), getattr(self, l2_name, 0.0)
            if l1 > 0 or l2 > 0:
                found.append((name, gradient, l1, l2))
        return found

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
                f"{self}.set_parameters: expected {len(self.parameters)} arrays "
                f"({', '.join(self.parameters)}), got {len(values)}."
            )
        checked = [
            self.checked_parameter(name, value, f"{self}.set_parameters")
            for name, value in zip(self.parameters, values, strict=True)
        ]
        for name, value in zip(self.parameters, checked, strict=True):
            setattr(self, name, value)

    def checked_parameter(self, name: str, value: Any, where: str, like: str = "") -> Array:
        """``value`` as this layer's own copy for the parameter ``name`` (or for state kept like
        it, named ``like``): shape and dtype of the parameter, or a ValueError that starts
        with ``where``."""
        current = getattr(self, name)
        if hasattr(value, "dtype") and not real_floating(value):
            raise ValueError(
                f"{where}: expected {like or name} as real floats, got an array "
                f"of dtype {value.dtype}."
            )
        # The layer's dtype where it keeps one; else the parameter's, by name (after a move,
        # ``current`` is still an array of the old backend).
        dtype = self.dtype if self.dtype is not None else self.backend.dtype(dtype_of(current))
        array = self.adopt(value, like or name, dtype)
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
        for name, gradient, l1, l2 in self.penalties():
            if l1 > 0:
                penalty = l1 * _sign_book(self.xp, getattr(self, name))
                setattr(self, gradient, add_into(self.backend, getattr(self, gradient), penalty))
            if l2 > 0:
                penalty = 2 * l2 * getattr(self, name)
                setattr(self, gradient, add_into(self.backend, getattr(self, gradient), penalty))

    def _check_dvalues(self, dvalues: Array, where: str) -> None:
        output = getattr(self, "output", None)
        shape = getattr(output, "shape", None)
        if shape is not None and tuple(dvalues.shape) != tuple(shape):
            raise ValueError(
                f"{self._where(where)}: expected dvalues of the shape of the output of the last "
                f"forward, {tuple(shape)}, got dvalues of shape {tuple(dvalues.shape)}. Pass "
                "the gradient of this layer's output (the next layer's dinputs)."
            )

    def _set_by(self, name: str) -> str | None:
        if name == "dinputs" or name in self.parameters.values():
            return "backward"  # the gradients
        return "forward" if name in self.step_arrays else None

    def host_draw(
        self, rng: Any, draw: Callable[[Any], Any], shape: tuple[int, ...], dtype: Any
    ) -> Array:
        """``draw(rng)``, host random numbers of ``shape``, as an array of the layer's backend.

        Every layer that draws goes through here (Dropout's mask): the numbers come from the
        host generator, so every backend draws the same. A runner that traces the step once
        hands each step's draws in instead (``nnx._xp.draws_from``). A layer that draws says
        so in ``draws_on_host``.
        """
        feed = draw_source()
        if feed is None:
            return self.backend.asarray(draw(rng), dtype)
        return feed(self, rng, draw, shape, dtype)

    def random_state(self) -> dict[str, Any] | None:
        """The state of the layer's own host generator, where it draws from one (a seeded
        Dropout): checkpoints keep it, so a resumed run draws what an uninterrupted one would.
        None for layers that draw nothing, or from NumPy's global generator."""
        return None

    def set_random_state(self, state: dict[str, Any]) -> None:
        raise ValueError(f"{self}: has no generator of its own to restore.")

    def __str__(self) -> str:
        """The layer as errors and ``summary()`` name it (``Dense(n_inputs=2, n_neurons=64)``)."""
        return type(self).__name__


# Attribute names derived from a class's declarations, built once per class: they are looked
# up every step, and building them there cost more than the arithmetic of a small layer.
_NAMES: dict[tuple[Any, str, str], str] = {}
# The penalty strengths of a parameter: <stem>_regularizer_l1 and _l2 (the book's names).
_PENALTIES = ("regularizer_l1", "regularizer_l2")
_SLOTS: dict[tuple[Any, ...], tuple[tuple[str, str, tuple[str, ...]], ...]] = {}


def stemmed(cls: Any, parameter: str, suffix: str) -> str:
    """``<stem>_<suffix>`` for a parameter of the layer class ``cls`` (``weight_momentums``)."""
    key = (cls, parameter, suffix)
    name = _NAMES.get(key)
    if name is None:
        name = _NAMES[key] = f"{cls.stems.get(parameter, parameter)}_{suffix}"
    return name


def _sign_book(xp: Any, values: Array) -> Array:
    """The book's L1 derivative: 1 where value >= 0, else -1."""
    ones = xp.ones_like(values)
    return xp.where(values >= 0, ones, -ones)
