"""The one place nnx talks to array-api-compat: the Array type and boundary helpers."""

from __future__ import annotations

import numbers
import operator
from typing import Any, Protocol

import array_api_compat

from backends import Backend, get_backend, load


class Array(Protocol):
    """Any Array API array (NumPy, CuPy, torch, array-api-strict, ...).

    Only what nnx uses is spelled out; shapes go in docstrings, not in types.
    """

    @property
    def shape(self) -> tuple[int, ...]: ...

    @property
    def ndim(self) -> int: ...

    @property
    def dtype(self) -> Any: ...

    @property
    def T(self) -> Array: ...

    def __getitem__(self, key: Any) -> Array: ...
    def __setitem__(self, key: Any, value: Any) -> None: ...
    def __matmul__(self, other: Any) -> Array: ...
    def __add__(self, other: Any) -> Array: ...
    def __radd__(self, other: Any) -> Array: ...
    def __sub__(self, other: Any) -> Array: ...
    def __rsub__(self, other: Any) -> Array: ...
    def __mul__(self, other: Any) -> Array: ...
    def __rmul__(self, other: Any) -> Array: ...
    def __truediv__(self, other: Any) -> Array: ...
    def __rtruediv__(self, other: Any) -> Array: ...
    def __pow__(self, other: Any) -> Array: ...
    def __neg__(self) -> Array: ...
    def __iadd__(self, other: Any) -> Array: ...
    def __imul__(self, other: Any) -> Array: ...
    def __ipow__(self, other: Any) -> Array: ...
    def __gt__(self, other: Any) -> Array: ...
    def __ge__(self, other: Any) -> Array: ...
    def __lt__(self, other: Any) -> Array: ...
    def __le__(self, other: Any) -> Array: ...
    def __float__(self) -> float: ...


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

    def _move_to(self, backend: Backend) -> None:
        """Rebind to ``backend``; the arrays of one step are dropped.

        The state (parameters, optimizer state) stays behind: ``Model.to`` replaces it through
        ``Model.set_state``, the one door state comes in by.
        """
        old = self.backend
        for name, value in list(vars(self).items()):
            if name in self._step_arrays():
                delattr(self, name)
            elif isinstance(value, Component):
                value._move_to(backend)
            elif name != "backend" and _is_dtype(old.xp, value):
                setattr(self, name, backend.dtype(dtype_name(old.xp, value)))
        self.backend, self.xp, self.device = backend, backend.xp, backend.device
        self._array_type = type(backend.asarray([0.0]))

    def _adopt(self, data: Any, what: str, dtype: Any = None) -> Any:
        """``data`` as an array of this backend: host data moves, foreign arrays raise."""
        # The hot path: an array of this backend on this device. ``.device`` is the
        # standard's attribute and cheap; array-api-compat's lookup is for arrays without it.
        if type(data) is self._array_type:
            if _device_fast(data) == self.device:
                return data if dtype is None or data.dtype == dtype else self.xp.astype(data, dtype)
        if array_api_compat.is_numpy_array(data) or isinstance(data, (list, tuple, int, float)):
            return self.backend.asarray(data, dtype)
        if array_api_compat.is_array_api_obj(data):
            raise TypeError(
                f"{type(self).__name__}: {what} is an array of {_library_of(data)} on "
                f"{_device_of(data)}, but this object lives on backend {self.backend.name} on "
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


def _device_of(array: Any) -> Any:
    return array_api_compat.device(array)


def _library_of(array: Any) -> str:
    return type(array).__module__.split(".")[0]


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


def _is_dtype(xp: Any, value: Any) -> bool:
    try:
        return any(value == getattr(xp, name) for name in ("float32", "float64"))
    except TypeError:
        return False


def dtype_name(xp: Any, dtype: Any) -> str:
    """``"float64"`` or ``"float32"``: the name of a float dtype of ``xp``."""
    return "float64" if dtype == xp.float64 else "float32"


def real_floating(value: Any) -> bool:
    """Whether ``value`` is an array (of any library) of real floats."""
    try:
        return bool(array_api_compat.array_namespace(value).isdtype(value.dtype, "real floating"))
    except (TypeError, AttributeError):
        return False


# Constants that a step needs again and again: vectors of ones for the sums below and
# index ranges for pick and one_hot. Built afresh they cost more than the arithmetic they
# serve on small batches (benchmarks/RESULTS.md, "Why the hot-path helpers"). Nobody writes
# to them, so one per
# (library, shape, dtype, device) is kept; the table is emptied if batch sizes keep changing.
_CONSTANTS: dict[tuple[Any, ...], Any] = {}
_MAX_CONSTANTS = 64


def _constant(xp: Any, kind: str, shape: tuple[int, ...], dtype: Any, device: Any) -> Any:
    key = (xp, kind, shape, dtype, device)  # the namespace itself: wrapped ones differ
    try:
        value = _CONSTANTS.get(key)
    except TypeError:  # unhashable dtype or device (CuPy's devices): their names instead
        key = (xp, kind, shape, str(dtype), str(device))
        try:
            value = _CONSTANTS.get(key)
        except TypeError:  # an unhashable namespace: build it every time
            return _build_constant(xp, kind, shape, dtype, device)
    if value is None:
        if len(_CONSTANTS) >= _MAX_CONSTANTS:
            _CONSTANTS.clear()
        value = _CONSTANTS[key] = _build_constant(xp, kind, shape, dtype, device)
    return value


def _build_constant(xp: Any, kind: str, shape: tuple[int, ...], dtype: Any, device: Any) -> Any:
    if kind == "ones":
        return xp.ones(shape, dtype=dtype, device=device)
    n, step = shape  # "arange": 0, step, 2 step, ... (n values)
    return xp.arange(0, n * step, step, device=device)


def _device_fast(x: Any) -> Any:
    """``x.device`` (the standard's attribute); array-api-compat's lookup for arrays without it."""
    device = getattr(x, "device", None)
    return device if device is not None else array_api_compat.device(x)


# Sums over one axis of a matrix, written as products with a vector of ones: BLAS does them
# several times faster than NumPy's general reduction along one axis (benchmarks/RESULTS.md),
# and a GPU runs them as well.
def column_sums(xp: Any, x: Any) -> Any:
    """``sum(x, axis=0, keepdims=True)`` of a matrix, shape (1, n)."""
    return _constant(xp, "ones", (1, x.shape[0]), x.dtype, _device_fast(x)) @ x


def row_sums(xp: Any, x: Any) -> Any:
    """``sum(x, axis=1, keepdims=True)`` of a matrix, shape (n, 1)."""
    return x @ _constant(xp, "ones", (x.shape[1], 1), x.dtype, _device_fast(x))


def row_max(xp: Any, x: Any) -> Any:
    """``max(x, axis=1, keepdims=True)`` of a matrix, shape (n, 1), by folding columns in half.

    Each fold takes the elementwise maximum of the left and right halves (they overlap by a
    column when the width is odd, which max does not mind): log2(columns) passes over
    shrinking arrays, where NumPy's reduction along a short axis is slow (benchmarks/
    RESULTS.md). A one-column matrix comes back as itself, not a copy.
    """
    while x.shape[1] > 1:
        half = (x.shape[1] + 1) // 2
        x = xp.maximum(x[:, :half], x[:, x.shape[1] - half :])
    return x


def pick(xp: Any, x: Any, columns: Any) -> Any:
    """Row i's entry ``columns[i]`` of a matrix (NumPy's ``x[range(n), columns]``), shape (n,).

    Row i's entry sits at ``i * n_columns + columns[i]`` of the flattened rows; ``take`` on
    that is cheaper than ``take_along_axis``, which builds index grids.
    """
    rows, n_columns = x.shape
    starts = _constant(xp, "arange", (rows, n_columns), None, _device_fast(x))
    return xp.take(xp.reshape(x, (-1,)), columns + starts)


def one_hot(xp: Any, labels: Any, n_classes: int, dtype: Any, device: Any) -> Any:
    """Rows of the identity picked by ``labels``: comparison with ``arange`` (no fancy writes)."""
    classes = _constant(xp, "arange", (n_classes, 1), None, device)
    return xp.astype(labels[:, None] == classes[None, :], dtype)
