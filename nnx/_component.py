"""The base of every layer, loss, optimizer and accuracy: a backend held from birth, and the
door every array comes in by. Arrays are ``nnx._xp``'s.
"""

from __future__ import annotations

from typing import Any, ClassVar

from backends import Backend, get_backend, load
from nnx._checks import missing_gradients
from nnx._door import door as _door
from nnx._xp import (
    device_fast,
    device_of,
    dtype_name,
    holds_reals,
    is_array,
    is_host_data,
    library_of,
)


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

    Every public method that takes arrays takes host data too (NumPy arrays, lists, numbers):
    a base class names those methods in ``takes_arrays``, and each subclass's own definition of
    them is wrapped, when the class is made, in a door (``nnx._door``) that moves host data to
    the part's backend once and refuses arrays of another backend or device. The formulas
    inside only ever see arrays of their own backend. ``ReLU.forward.__door__`` shows the
    door's code.
    """

    # Method name -> what its first one or two arguments are: "floats" (real numbers: in the
    # part's ``dtype`` where it keeps one, else float32 stays float32 and the rest becomes
    # float64, as NumPy computes), or "data" (labels, targets, predictions: dtype kept).
    takes_arrays: ClassVar[dict[str, tuple[str, ...]]] = {}
    # Method name -> attributes it reads that a reader may have set by hand (the book sets
    # ``activation.output`` before calling ``backward``): they pass the door too, as floats.
    takes_state: ClassVar[dict[str, tuple[str, ...]]] = {}
    # Method name -> the name of a method that checks its arrays once they arrived (a loss's
    # shapes and labels): public calls only, the formulas behind the doors never pay for it.
    checks: ClassVar[dict[str, str]] = {}
    # What the part keeps, declared by kind; nnx reads these names, never the object's
    # ``__dict__``. ``step_arrays``: arrays of one step (inputs, outputs, gradients), dropped
    # when the part moves or a compiled step runs. ``sums``: an epoch's running sums (arrays,
    # which every runner carries from step to step) and ``counts``, the numbers they are
    # divided by (Python ints, which the host knows from the shapes). ``arrays``: other arrays
    # it keeps (moved with it). ``parts``: the components it holds (moved with it).
    step_arrays: ClassVar[frozenset[str]] = frozenset()
    sums: ClassVar[tuple[str, ...]] = ()
    counts: ClassVar[tuple[str, ...]] = ()
    arrays: ClassVar[tuple[str, ...]] = ()
    parts: ClassVar[tuple[str, ...]] = ()
    # The float dtype of the part's arrays, where it keeps one (Dense's ``dtype``).
    dtype: Any = None
    # The dtype object its arrays report (on NumPy a dtype instance, not the float32 type): the
    # door's fast test is ``x.dtype is _array_dtype``, as ``x.dtype == dtype`` costs ~0.3 us there.
    _array_dtype: Any = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        typed = tuple(getattr(cls, "parameters", ()))  # they keep the part's dtype
        for name, kinds in cls.takes_arrays.items():
            state, check = cls.takes_state.get(name, ()), cls.checks.get(name, "")
            own, method = vars(cls).get(name), getattr(cls, name, None)
            if own is not None and not hasattr(own, "__door__"):
                setattr(cls, name, _door(own, kinds, state, typed, check))
            elif own is None and getattr(method, "__door_state__", state) != state:
                # Inherited behind the parent's door, which checks the parent's parameters
                # only: a subclass that adds a parameter gets a door of its own.
                setattr(cls, name, _door(method.__wrapped__, kinds, state, typed, check))  # type: ignore[union-attr]

    def __init__(self, backend: Backend | str | None = None) -> None:
        self.backend = resolve(backend)
        self.xp = self.backend.xp
        self.device = self.backend.device
        self._array_type: Any = self.backend.array_type

    def config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this part (model files store them)."""
        return {}

    def clear_step(self) -> None:
        """Drop the arrays of one step (``step_arrays``): a new backend, or a compiled step
        that keeps them inside its code, would find stale ones misleading."""
        for name in self.step_arrays:
            self.__dict__.pop(name, None)

    def to(self, backend: Backend) -> None:
        """Rebind the part to ``backend``, moving what it declares it keeps.

        Its ``parameters`` (layers) and ``arrays`` move through the host, the parts it holds
        (``parts``) move with it, its arrays of one step are dropped and its running sums start
        again: nothing is found by looking through the object. ``Model.to`` moves every part
        this way, then puts the optimizer's state back through ``Model.set_state``.
        """
        old = self.backend
        for name in self.parts:
            getattr(self, name).to(backend)
        # Everything made first, then set: a part that cannot move stays whole where it was.
        moved = {
            # A copy: torch's .numpy() shares memory, and updates are in place.
            name: backend.asarray(old.to_numpy(value).copy())
            for name in (*getattr(self, "parameters", ()), *self.arrays)
            if is_array(value := getattr(self, name, None))
        }
        dtype = None if self.dtype is None else backend.dtype(dtype_name(old.xp, self.dtype))
        self.clear_step()
        for name, value in moved.items():
            setattr(self, name, value)
        if dtype is not None:
            self.dtype = dtype
        self.backend, self.xp, self.device = backend, backend.xp, backend.device
        self._array_type = backend.array_type
        self.__dict__.pop("_array_dtype", None)  # the old library's dtype object
        self._moved()

    def _moved(self) -> None:
        """After a move: reset what only made sense on the old backend (running sums)."""

    def _set_by(self, name: str) -> str | None:
        """The method that sets the attribute ``name`` (a layer's ``inputs``: ``forward``),
        for parts whose methods need another called first; None for anything else."""
        return None

    def _not_ready(self, error: AttributeError, where: str) -> None:
        """Raise the clear error for ``error`` when it says that an array another method sets
        is missing (``ReLU.backward`` before any ``forward``); else return (the door re-raises
        ``error`` as it was)."""
        name = getattr(error, "name", None)
        first = self._set_by(name) if getattr(error, "obj", None) is self and name else None
        if first is None:
            return
        kind = type(self).__name__
        raise ValueError(
            f"{self._where(where)}: expected {name} from a call to {first}, got none: this "
            f"{kind} has no {name} (no {first} since it was made or moved). Call "
            f"{first} first."
        ) from error

    def adopt(self, data: Any, what: str, dtype: Any = None, where: str = "") -> Any:
        """``data`` as an array of this backend: host data moves, foreign arrays raise."""
        if type(data) is not self._array_type and is_host_data(data):
            from nnx.data import plain_host  # host boundary; it imports this module

            data = plain_host(data, what, self._where(where))
        # An array of this backend on this device (a subclass too, as torch's Parameter).
        # ``.device`` is the standard's attribute and cheap; array-api-compat's lookup is for
        # arrays without it.
        if isinstance(data, self._array_type):
            if device_fast(data) == self.device:
                return data if dtype is None or data.dtype == dtype else self.xp.astype(data, dtype)
        if self.backend.stands_for_arrays(data):  # inside a step its compiler traces
            traced: Any = data
            return (
                traced if dtype is None or traced.dtype == dtype else self.xp.astype(traced, dtype)
            )
        where = self._where(where)
        if is_host_data(data):
            return self.backend.asarray(data, dtype)
        if is_array(data):
            raise TypeError(
                f"{where}: {what} is an array of {library_of(data)} on "
                f"{device_of(data)}, but this object lives on backend {self.backend.name} on "
                f"{self.device}. Move the data with backend.asarray(backend.to_numpy(x)) "
                "or build the model on the data's backend."
            )
        raise TypeError(
            f"{where}: expected {what} as an array or a list of numbers, "
            f"got {what}={type(data).__name__}."
        )

    def _where(self, where: str) -> str:
        """``ReLU.forward`` for the method name ``forward``: the part's class, not the base's
        that defines the method (a name with a dot is taken as it is)."""
        return where if "." in where else f"{type(self).__name__}.{where}".rstrip(".")

    def _has_dtype(self, data: Any) -> bool:
        """Whether ``data`` has the part's dtype (remembering the object it reports)."""
        if data.dtype != self.dtype:
            return False
        self._array_dtype = data.dtype
        return True

    def _fits(self, data: Any, typed: bool) -> bool:
        """Whether ``data`` is an array of this backend on its device (and, if ``typed`` and
        the part keeps a dtype, of that dtype): what the door lets pass unchanged."""
        return (
            type(data) is self._array_type
            and device_fast(data) == self.device
            and (not typed or self.dtype is None or self._has_dtype(data))
        )

    def arrive_all(self, names: tuple[str, ...], where: str) -> None:
        """The arrays ``names`` of this part through the door (parameters and gradients set by
        hand, before an optimizer reads them), typed; nothing to do in the every-step case,
        where all are the backend's already (an optimizer asks each step). One not set at all
        is named (``missing_gradients``) before anything changes."""
        array_type, device, dtype = self._array_type, self.device, self._array_dtype
        for name in names:
            data: Any = getattr(self, name, None)
            if (
                type(data) is array_type
                and data.dtype is dtype
                and getattr(data, "device", 0) == device
            ):
                continue
            if data is None or _movable(data) and not self._fits(data, True):
                break
        else:
            return
        missing_gradients(where, self, names)
        self._arrive_attributes(names, where, names)

    def _arrive_attributes(self, names: Any, where: str, typed: Any = ()) -> None:
        """Arrays set by hand as attributes (a NumPy array as ``output``, a weight) through the
        door as floats; those in ``typed`` also in the part's dtype. Other values (a tuple a
        layer of yours keeps) are left as they are."""
        for name in names:
            data = getattr(self, name, None)
            if _movable(data) and not self._fits(data, name in typed):
                dtype = self.dtype if name in typed else None
                setattr(self, name, self._arrive(data, name, "floats", where, dtype))

    def _arrive(self, data: Any, what: str, kind: str, where: str = "", dtype: Any = None) -> Any:
        """``data`` through the door, as ``takes_arrays`` describes it (``kind``).

        A tuple passes as it is (a layer of yours may take several arrays at once).
        """
        if isinstance(data, tuple):
            return data
        if kind != "floats":
            return self.adopt(data, what, None, where)
        kind_of = getattr(getattr(data, "dtype", None), "kind", "f")  # NumPy's letter
        if (is_host_data(data) and kind_of not in "biuf") or not holds_reals(data):
            raise TypeError(
                f"{self._where(where)}: expected {what} as real numbers, got an array of "
                f"dtype {data.dtype}."
            )
        dtype = dtype if dtype is not None else self.dtype
        if dtype is None and is_host_data(data):
            # Host data keeps float32; anything else is computed in float64, as NumPy would.
            single = str(getattr(data, "dtype", "")) == "float32" or not self.backend.float64
            dtype = self.backend.dtype("float32" if single else "float64")
        return self.adopt(data, what, dtype, where)


def _movable(data: Any) -> bool:
    """An attribute the doors move when it is not the backend's: arrays and lists (and
    NumPy's subclasses that array-api-compat does not count as arrays: np.matrix)."""
    if isinstance(data, list) or is_array(data):
        return True
    return is_host_data(data) and not isinstance(data, (tuple, int, float))


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
