"""The base of every layer, loss, optimizer and accuracy: a backend held from birth, and the
door every array comes in by.

Also the checks of plain numbers that their constructors share. Arrays are ``nnx._xp``'s.
"""

from __future__ import annotations

import functools
import inspect
import numbers
import operator
from collections.abc import Callable
from typing import Any, ClassVar

from backends import Backend, get_backend, load
from nnx._xp import (
    device_fast,
    device_of,
    dtype_name,
    holds_reals,
    is_array,
    is_dtype,
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
    them is wrapped, when the class is made, in a door (:func:`_door`) that moves host data to
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
    # The float dtype of the part's arrays, where it keeps one (Dense's ``dtype``).
    dtype: Any = None
    # The dtype object its arrays report (NumPy's np.dtype, not np.float32): the door's fast
    # test is ``x.dtype is _array_dtype``, as ``x.dtype == dtype`` costs ~0.3 us on NumPy.
    _array_dtype: Any = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        typed = tuple(getattr(cls, "parameters", ()))  # they keep the part's dtype
        for name, kinds in cls.takes_arrays.items():
            state = cls.takes_state.get(name, ())
            own, method = vars(cls).get(name), getattr(cls, name, None)
            if own is not None and not hasattr(own, "__door__"):
                setattr(cls, name, _door(own, kinds, state, typed))
            elif own is None and getattr(method, "__door_state__", state) != state:
                # Inherited behind the parent's door, which checks the parent's parameters
                # only: a subclass that adds a parameter gets a door of its own.
                setattr(cls, name, _door(method.__wrapped__, kinds, state, typed))  # type: ignore[union-attr]

    def __init__(self, backend: Backend | str | None = None) -> None:
        self.backend = resolve(backend)
        self.xp = self.backend.xp
        self.device = self.backend.device
        self._array_type: Any = self.backend.array_type

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
        self._array_type = backend.array_type
        self.__dict__.pop("_array_dtype", None)  # the old library's dtype object
        self._moved()

    def _moved(self) -> None:
        """After a move: reset what only made sense on the old backend (running sums)."""

    def _adopt(self, data: Any, what: str, dtype: Any = None, where: str = "") -> Any:
        """``data`` as an array of this backend: host data moves, foreign arrays raise."""
        # An array of this backend on this device (a subclass too, as torch's Parameter).
        # ``.device`` is the standard's attribute and cheap; array-api-compat's lookup is for
        # arrays without it.
        if isinstance(data, self._array_type):
            if device_fast(data) == self.device:
                return data if dtype is None or data.dtype == dtype else self.xp.astype(data, dtype)
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
            return self._adopt(data, what, None, where)
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
        return self._adopt(data, what, dtype, where)


def _door(
    method: Callable[..., Any],
    kinds: tuple[str, ...],
    state: tuple[str, ...],
    typed: tuple[str, ...] = (),
) -> Callable[..., Any]:
    """``method`` behind the door: its leading arguments (one per entry of ``kinds``) and the
    attributes named in ``state`` (those in ``typed`` in the part's dtype) pass ``_arrive``
    before the method runs.

    The door is written for each method with the method's own parameters (as ``dataclasses``
    writes ``__init__``): calls bind to it exactly as to the method, and the hot path packs no
    ``*args``/``**kwargs``, which alone would cost several times the checks. An array of the
    part's own backend, device and dtype passes on three comparisons (about 0.1 us on NumPy).
    A method whose leading parameters cannot take the arrays by position (``*args``) is left
    as it is, without a door.
    """
    signature = inspect.signature(method)
    parameters = list(signature.parameters.values())
    arrays = parameters[1 : 1 + len(kinds)]
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if len(arrays) != len(kinds) or any(
        p.kind not in positional for p in parameters[: 1 + len(kinds)]
    ):
        return method
    me = parameters[0].name  # "self", as a rule
    # The door's own names start with _nnx_, so no parameter of the method can hide them.
    namespace: dict[str, Any] = {
        "_nnx_method": method,
        "_nnx_where": method.__name__,
        "_nnx_state": state,
        "_nnx_typed": typed,
        "_nnx_type": type,
    }
    header = signature.replace(
        parameters=[_by_reference(p, i, namespace) for i, p in enumerate(parameters)],
        return_annotation=inspect.Signature.empty,
    )
    lines = [f"def door{header}:"]
    for parameter, kind in zip(arrays, kinds, strict=True):
        name = parameter.name
        cast = (
            f" and ({me}.dtype is None or {name}.dtype is {me}._array_dtype"
            f" or {me}._has_dtype({name}))"
        )
        lines += [
            "    try:",
            f"        _nnx_fits = (_nnx_type({name}) is {me}._array_type"
            f" and {name}.device == {me}.device{cast if kind == 'floats' else ''})",
            "    except AttributeError:  # arrays without .device (Dask's): _arrive asks",
            "        _nnx_fits = False",
            "    if not _nnx_fits:",
            f"        {name} = {me}._arrive({name}, {name!r}, {kind!r}, _nnx_where)",
        ]
    for name in state:
        # Arrays set by hand (a NumPy array as ``output``) are moved; the hot path tests their
        # type (and a parameter's dtype): an array of the library on another device is left
        # to the library, whose error names both devices (torch's and array-api-strict's do).
        dtype = f" or {me}.dtype is not None and _nnx_value.dtype is not {me}._array_dtype"
        lines += [  # an attribute read, not getattr(): the plain read is several times faster
            "    try:",
            f"        _nnx_value = {me}.{name}",
            "    except AttributeError:  # not set yet: the method says so itself",
            "        _nnx_value = None",
            f"    if _nnx_value is not None and (_nnx_type(_nnx_value) is not {me}._array_type"
            f"{dtype if name in typed else ''}):",
            f"        {me}._arrive_attributes(_nnx_state, _nnx_where, _nnx_typed)",
        ]
    lines.append(f"    return _nnx_method({', '.join(_passed(p) for p in parameters)})")
    text = "\n".join(lines)
    exec(compile(text, f"<door of {method.__qualname__}>", "exec"), namespace)  # noqa: S102
    door: Any = functools.wraps(method)(namespace["door"])
    door.__door__ = text  # the door's code, for a reader (and a debugger)
    door.__door_state__ = state
    return door


def _by_reference(parameter: inspect.Parameter, i: int, namespace: dict[str, Any]) -> Any:
    """``parameter`` without its annotation, its default named ``_nnx_default<i>`` in
    ``namespace`` (so any default object works, whatever its repr)."""
    parameter = parameter.replace(annotation=inspect.Parameter.empty)
    if parameter.default is inspect.Parameter.empty:
        return parameter
    namespace[f"_nnx_default{i}"] = parameter.default
    return parameter.replace(default=_Name(f"_nnx_default{i}"))


class _Name:
    """A default that renders as a name in a signature's text."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


def _passed(parameter: inspect.Parameter) -> str:
    """How the door hands ``parameter`` on to the method."""
    kind, name = parameter.kind, parameter.name
    if kind is inspect.Parameter.VAR_POSITIONAL:
        return f"*{name}"
    if kind is inspect.Parameter.VAR_KEYWORD:
        return f"**{name}"
    if kind is inspect.Parameter.KEYWORD_ONLY:
        return f"{name}={name}"
    return name


def _all_fit(part: Component, names: tuple[str, ...]) -> bool:
    """Whether every array ``names`` of ``part`` is of its backend, device and dtype."""
    array_type, device, dtype = part._array_type, part.device, part._array_dtype
    for name in names:
        data: Any = getattr(part, name, None)
        if (
            type(data) is array_type
            and data.dtype is dtype
            and getattr(data, "device", 0) == device
        ):
            continue  # the every-step case, without calls (optimizers ask each step)
        if _movable(data) and not part._fits(data, True):
            return False
    return True


def _movable(data: Any) -> bool:
    """An attribute the doors move when it is not the backend's: arrays and lists."""
    return isinstance(data, list) or is_array(data)


def formula(part: Any, name: str) -> Callable[..., Any]:
    """``part``'s method ``name`` without its door, bound to ``part``: for a caller whose arrays
    came through a door already (``Model``, inside which every array is the backend's)."""
    method = getattr(type(part), name)
    return getattr(method, "__wrapped__", method).__get__(part)  # type: ignore[no-any-return]


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
