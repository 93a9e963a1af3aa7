"""A model's training state as one flat, ordered mapping of arrays, and the way back.

The keys name where each array lives: ``layers.3.weights`` is the parameter ``weights`` of
``model.layers[3]``, ``layers.3.weight_momentums`` the optimizer's state kept for it,
``optimizer.iterations`` the step counter (a 0-d integer array), and ``layers.2.random_state``
the state of a layer's own host generator (a seeded Dropout: ten int32 numbers). Everything
here reads the parts' declarations (``Layer.parameters``, ``Optimizer.state_kinds``,
``Layer.random_state``): model files, checkpoints and ``Model.to`` go through these two
functions, and a new layer needs no change here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from nnx._checks import whole_number
from nnx._xp import is_host_data

__all__ = [
    "borrowed",
    "declared",
    "get_state",
    "host_state",
    "finite_flags",
    "non_finite",
    "put",
    "set_state",
    "state_slots",
]

ITERATIONS = "optimizer.iterations"
RANDOM = "random_state"  # layers.<i>.random_state: a layer's own host generator


def state_slots(layers: list[Any], optimizer: Any) -> dict[str, tuple[Any, str]]:
    """Where each array of the state of ``layers`` trained by ``optimizer`` (or None) lives:
    key -> (layer, attribute), in order.

    Per layer: its parameters, then the optimizer's state for them where it exists (an
    optimizer creates its state at its first update).
    """
    return {
        key: (layer, name)
        for key, layer, name, _ in _slots(layers, optimizer)
        if name in layer.parameters or hasattr(layer, name)
    }


def declared(parts: list[Any], kind: str) -> list[tuple[Any, str]]:
    """(part, attribute) for everything ``parts`` declare of ``kind`` ("sums", "counts",
    "step_arrays"): what runners carry, reset or drop, read from the declarations alone."""
    return [(part, name) for part in parts if part is not None for name in getattr(part, kind)]


def get_state(layers: list[Any], optimizer: Any) -> dict[str, Any]:
    """The parameters of ``layers``, the state of ``optimizer`` (None: parameters only), its
    step counter and the layers' own generators (``random_state``), as arrays of the
    backend; the parameters and the optimizer's state are the layers' own, not copies."""
    state = {
        key: getattr(layer, name) for key, (layer, name) in state_slots(layers, optimizer).items()
    }
    if optimizer is not None:
        state[ITERATIONS] = optimizer.backend.asarray(optimizer.iterations, optimizer.xp.int64)
        state.update(_generators(layers))
    return state


def host_state(layers: list[Any], optimizer: Any) -> dict[str, Any]:
    """:func:`get_state` as NumPy copies (files, moves): copies, because torch's ``.numpy()``
    shares memory and updates are in place."""
    state = get_state(layers, optimizer)
    owners = [optimizer if key == ITERATIONS else layers[int(key.split(".")[1])] for key in state]
    return {
        key: owner.backend.to_numpy(value).copy()
        for (key, value), owner in zip(state.items(), owners, strict=True)
    }


def _generators(layers: list[Any]) -> dict[str, Any]:
    """``layers.<i>.random_state``: the state of each layer's own host generator (a seeded
    Dropout), so a resumed run draws the masks an uninterrupted one would."""
    from nnx.data import generator_array  # host numbers

    return {
        key: layer.backend.asarray(generator_array(layer.random_state()), layer.xp.int32)
        for key, layer in _generator_layers(layers).items()
    }


def _generator_layers(layers: list[Any]) -> dict[str, Any]:
    """``layers.<i>.random_state`` -> the layer, for each layer with a generator of its own."""
    return {
        f"layers.{i}.{RANDOM}": layer
        for i, layer in enumerate(layers)
        if layer.random_state() is not None
    }


def _on_host(part: Any, value: Any, key: str) -> Any:
    """``value`` for ``key`` as host data: read as it is, or adopted by ``part`` (refused if of
    another backend) and brought over."""
    return value if is_host_data(value) else part.backend.to_numpy(part.adopt(value, key))


def put(slots: list[tuple[Any, str]], values: Any) -> None:
    """Set each (holder, attribute) of ``slots`` to its value, in order."""
    for (holder, name), value in zip(slots, values, strict=True):
        setattr(holder, name, value)


@contextmanager
def borrowed(slots: list[tuple[Any, str]], parts: list[Any]) -> Iterator[None]:
    """Inside the block a runner may set ``slots`` to anything (a trace sets tracers); after
    it, each holds what it held before, and ``parts`` hold no arrays of one step."""
    values = [getattr(holder, name) for holder, name in slots]
    try:
        yield
    finally:
        put(slots, values)
        for part in parts:
            part.clear_step()


def non_finite(layers: list[Any], optimizer: Any, found: list[bool] | None = None) -> str | None:
    """The key of the first array of the state that holds NaN or infinity, or None: one read
    from the device for the whole state (the training loop asks at its boundaries). ``found``:
    what :func:`finite_flags` gave for the state already, in its order (a compiled boundary
    computes them in its own call)."""
    slots = state_slots(layers, optimizer)  # not the counter: an int
    if not slots:
        return None
    if found is None:
        flags = finite_flags(layers[0].xp)([getattr(h, n) for h, n in slots.values()])
        found = layers[0].backend.to_numpy(flags).tolist()
    return next((key for key, ok in zip(slots, found, strict=True) if not ok), None)


def finite_flags(xp: Any) -> Any:
    """A function of a list of arrays: whether each holds finite numbers only, as one array."""
    return lambda arrays: xp.stack([xp.all(xp.isfinite(array)) for array in arrays])


def set_state(layers: list[Any], optimizer: Any, state: dict[str, Any]) -> None:
    """Put ``state`` (as :func:`get_state` gives it; host or backend arrays) into ``layers``
    and ``optimizer`` (None: parameters only).

    Every parameter is required; optimizer state, the counter and the layers' generators
    (with an optimizer) are taken where present. A
    mapping with the counter is a whole training state: optimizer state it lacks is removed
    (it starts from zeros again, as at step 0), so no stale momentum outlives a reset counter.
    Everything is checked before anything changes: an unknown key, a missing parameter, a
    wrong shape or a non-float array raises ValueError and leaves the model as it was.
    """
    slots = {
        key: (layer, name, parameter) for key, layer, name, parameter in _slots(layers, optimizer)
    }
    missing = [key for key, (layer, name, _) in slots.items() if name in layer.parameters]
    missing = [key for key in missing if key not in state]
    generators = _generator_layers(layers)
    known = set(slots) | ({ITERATIONS, *generators} if optimizer is not None else set())
    unexpected = [key for key in state if key not in known]
    if missing or unexpected:
        raise ValueError(
            f"the state does not fit the model (missing: {', '.join(missing) or 'none'}; "
            f"unexpected: {', '.join(unexpected) or 'none'})."
        )
    checked: dict[str, Any] = {}
    for key, value in state.items():
        if key == ITERATIONS:
            checked[key] = _iterations(optimizer, value)
        elif key in generators:
            from nnx.data import generator_state  # host numbers

            checked[key] = generator_state(_on_host(generators[key], value, key), key)
        else:
            layer, name, parameter = slots[key]
            where = f"layer {key.split('.')[1]} ({layer})"
            try:
                checked[key] = layer.checked_parameter(parameter, value, where, like=name)
            except TypeError as err:  # not an array, or one of another backend
                raise ValueError(f"{key}: {err}") from None
    if ITERATIONS in state:  # a whole training state: drop the optimizer state it lacks
        for key, (layer, name, parameter) in slots.items():
            if name != parameter and key not in state and hasattr(layer, name):
                delattr(layer, name)
    for key, value in checked.items():  # all checked: only now change the model
        if key == ITERATIONS:
            optimizer.restore_iterations(value)
        elif key in generators:
            generators[key].set_random_state(value)
        else:
            layer, name, _ = slots[key]
            setattr(layer, name, value)


def _slots(layers: list[Any], optimizer: Any) -> Iterator[tuple[str, Any, str, str]]:
    """Every slot of the state: (key, layer, attribute, the parameter it belongs to)."""
    for i, layer in enumerate(layers):
        for parameter in layer.parameters:
            yield f"layers.{i}.{parameter}", layer, parameter, parameter
        kinds = optimizer.state_kinds if optimizer is not None else ()
        for parameter, _, names in layer.slots(kinds):
            for name in names:
                yield f"layers.{i}.{name}", layer, name, parameter


def _iterations(optimizer: Any, value: Any) -> int:
    """The step counter as a Python int, from a 0-d integer array or an int. Host data is
    read as it is: through a backend without 64-bit integers (JAX) 2**31 would wrap."""
    value = _on_host(optimizer, value, ITERATIONS)
    number = whole_number(value) if tuple(getattr(value, "shape", ())) == () else None
    if number is None or number < 0:
        shape, dtype = tuple(getattr(value, "shape", ())), getattr(value, "dtype", type(value))
        raise ValueError(
            f"expected {ITERATIONS} as one whole number >= 0, got {value!r} (shape {shape}, "
            f"dtype {dtype})."
        )
    return number
