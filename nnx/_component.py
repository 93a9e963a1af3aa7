"""The base of every layer, loss, optimizer and accuracy: a backend held from birth.

Also the checks of plain numbers that their constructors share. Arrays are ``nnx._xp``'s.
"""

from __future__ import annotations

import numbers
import operator
from typing import Any

from backends import Backend, get_backend, load
from nnx._xp import device_fast, device_of, dtype_name, is_array, is_dtype, is_host_data, library_of


def resolve(backend: Backend | str | None) -> Backend:
    """An explicit backend, a registry name, or the selected backend when ``None``."""
    if backend is None:
        return get_backend()
    if isinstance(backend, Backend):
        return backend
    if isinstance(backend, str):
        return load(backend)
    raise TypeError(
        f"expected a Backend, a backend name or None, got backend={type(backend).__name__}."
    )


class Component:
    """Base of every layer, loss, optimizer and accuracy: holds its backend from birth.

    The namespace is looked up once, here, never per operation (it is the hot path).
    """

    def __init__(self, backend: Backend | str | None = None) -> None:
        self.backend = resolve(backend)
        self.xp = self.backend.xp
        self.device = self.backend.device
        self._array_type = type(self.backend.asarray([0.0]))

    def config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this part (model files store them)."""
        return {}

    def _step_arrays(self) -> frozenset[str]:
        """Attributes that hold arrays of one step only (inputs, gradients, ...)."""
        return frozenset()

    def _move_to(self, backend: Backend, replaced: frozenset[str] = frozenset()) -> None:
        """Rebind to ``backend``: the arrays of one step are dropped, other arrays move through
        the host, except ``replaced`` (the model's state: ``Model.to`` puts it back through
        ``Model.set_state``, the one door state comes in by)."""
        old = self.backend
        for name, value in list(vars(self).items()):
            if name in self._step_arrays():
                delattr(self, name)
            elif isinstance(value, Component):
                value._move_to(backend)
            elif is_array(value) and not isinstance(value, type) and name not in replaced:
                # A copy: torch's .numpy() shares memory, and updates are in place.
                setattr(self, name, backend.asarray(old.to_numpy(value).copy()))
            elif name != "backend" and is_dtype(old.xp, value):
                setattr(self, name, backend.dtype(dtype_name(old.xp, value)))
        self.backend, self.xp, self.device = backend, backend.xp, backend.device
        self._array_type = type(backend.asarray([0.0]))
        self._moved()

    def _moved(self) -> None:
        """After a move: reset what only made sense on the old backend (running sums)."""

    def _adopt(self, data: Any, what: str, dtype: Any = None) -> Any:
        """``data`` as an array of this backend: host data moves, foreign arrays raise."""
        # The hot path: an array of this backend on this device. ``.device`` is the
        # standard's attribute and cheap; array-api-compat's lookup is for arrays without it.
        if type(data) is self._array_type:
            if device_fast(data) == self.device:
                return data if dtype is None or data.dtype == dtype else self.xp.astype(data, dtype)
        if is_host_data(data):
            return self.backend.asarray(data, dtype)
        if is_array(data):
            raise TypeError(
                f"{type(self).__name__}: {what} is an array of {library_of(data)} on "
                f"{device_of(data)}, but this object lives on backend {self.backend.name} on "
                f"{self.device}. Move the data with backend.asarray(backend.to_numpy(x)) "
                "or build the model on the data's backend."
            )
        raise TypeError(
            f"{type(self).__name__}: expected {what} as an array or a list of numbers, "
            f"got {what}={type(data).__name__}."
        )


def common_backend(parts: list[Any]) -> Backend:
    """The one backend and device every part lives on; mixing them is a TypeError."""
    parts = [part for part in parts if part is not None]
    first = parts[0]
    for part in parts[1:]:
        if (part.backend.name, str(part.device)) != (first.backend.name, str(first.device)):
            raise TypeError(
                f"Model.finalize: {type(part).__name__} lives on {part.backend.name} "
                f"({part.device}) but {type(first).__name__} on {first.backend.name} "
                f"({first.device}); build every part under one backend."
            )
    return first.backend


def whole_number(value: Any) -> int | None:
    """``value`` as an int when it is an integer (NumPy's too, not bool), else None."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def real_number(value: Any) -> float | None:
    """``value`` as a float when it is a real number (NumPy scalars too, not bool), else None."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    return float(value)
