"""The one place nnx talks to array-api-compat: the Array type and the array helpers.

What serves every part's arithmetic: sums as products with a ones vector, the row maximum by
folding, ``pick`` and ``one_hot``, the cache of constants they use, ``add_into`` (the one
in-place fast path), and the questions about arrays the component base asks (whose, where,
which dtype).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol

import array_api_compat

from backends import Backend


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


def device_of(array: Any) -> Any:
    """The device of an array of any library."""
    return array_api_compat.device(array)


def library_of(array: Any) -> str:
    """The top-level package an array's type comes from (``torch``, ``numpy``, ...)."""
    return type(array).__module__.split(".")[0]


def is_host_data(data: Any) -> bool:
    """NumPy arrays, lists, tuples and Python numbers: what any backend's ``asarray`` takes."""
    return array_api_compat.is_numpy_array(data) or isinstance(data, (list, tuple, int, float))


def is_array(data: Any) -> bool:
    """An array of any Array API library."""
    return bool(array_api_compat.is_array_api_obj(data))


def dtype_name(xp: Any, dtype: Any) -> str:
    """``"float64"`` or ``"float32"``: the name of a float dtype of ``xp``."""
    return "float64" if dtype == xp.float64 else "float32"


def dtype_of(array: Any) -> str:
    """``"float64"`` or ``"float32"``: the float dtype of an array of any library."""
    return dtype_name(array_api_compat.array_namespace(array), array.dtype)


def holds_reals(data: Any) -> bool:
    """Whether an array of a library other than NumPy holds real numbers, integers or
    booleans (not complex); True for anything else (host data is asked by its own dtype)."""
    if is_host_data(data) or not is_array(data):
        return True
    xp = array_api_compat.array_namespace(data)
    return bool(xp.isdtype(data.dtype, ("real floating", "integral", "bool")))


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
    if _PLAIN.get():  # a trace's or a graph's own: it must not outlive them in the table
        return _build_constant(xp, kind, shape, dtype, device)
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


def device_fast(x: Any) -> Any:
    """``x.device`` (the standard's attribute); array-api-compat's lookup for arrays without it."""
    device = getattr(x, "device", None)
    return device if device is not None else array_api_compat.device(x)


# Set while a compiler traces nnx's code or a graph is built for export (nnx._run.compiled,
# nnx._export). A context variable, not a flag on a class: an eager step in another thread (or
# task) keeps its fast paths, and nothing a trace made is left in the constants' table.
_PLAIN: ContextVar[bool] = ContextVar("nnx_plain_operations", default=False)


@contextmanager
def plain_operations() -> Iterator[None]:
    """The block in which the helpers below are the plain operations of the standard.

    They are written for libraries that run each operation as it comes; a compiler fuses plain
    reductions into the operations around them, where a product with a ones vector or a gather
    stays a kernel of its own, and a graph reads better with ReduceSum than with a MatMul.
    """
    token = _PLAIN.set(True)
    try:
        yield
    finally:
        _PLAIN.reset(token)


def plain() -> bool:
    """Whether this is the block of ``plain_operations`` (a trace, a graph being built)."""
    return _PLAIN.get()


# Where Layer.host_draw takes its numbers from inside the block of draws_from (None: from the
# layer's host generator, now).
_DRAWS: ContextVar[Callable[..., Any] | None] = ContextVar("nnx_draws", default=None)


@contextmanager
def draws_from(source: Callable[..., Any]) -> Iterator[None]:
    """The block in which ``Layer.host_draw`` asks ``source(layer, rng, draw, shape, dtype)``
    for its numbers instead of drawing them: a runner that traces the step once hands each
    step's draws in as inputs (a draw made while tracing would be frozen into the code)."""
    token = _DRAWS.set(source)
    try:
        yield
    finally:
        _DRAWS.reset(token)


def draw_source() -> Callable[..., Any] | None:
    """The source ``draws_from`` set for this block, or None."""
    return _DRAWS.get()


# Sums over one axis of a matrix, written as products with a vector of ones: BLAS does them
# several times faster than NumPy's general reduction along one axis (benchmarks/RESULTS.md),
# and a GPU runs them as well.
def column_sums(xp: Any, x: Any) -> Any:
    """``sum(x, axis=0, keepdims=True)`` of a matrix, shape (1, n)."""
    if _PLAIN.get():
        return xp.sum(x, axis=0, keepdims=True)
    return _constant(xp, "ones", (1, x.shape[0]), x.dtype, device_fast(x)) @ x


def row_sums(xp: Any, x: Any) -> Any:
    """``sum(x, axis=1, keepdims=True)`` of a matrix, shape (n, 1)."""
    if _PLAIN.get():
        return xp.sum(x, axis=1, keepdims=True)
    return x @ _constant(xp, "ones", (x.shape[1], 1), x.dtype, device_fast(x))


def row_max(xp: Any, x: Any) -> Any:
    """``max(x, axis=1, keepdims=True)`` of a matrix, shape (n, 1), by folding columns in half.

    Each fold takes the elementwise maximum of the left and right halves (they overlap by a
    column when the width is odd, which max does not mind): log2(columns) passes over
    shrinking arrays, where NumPy's reduction along a short axis is slow (benchmarks/
    RESULTS.md). A one-column matrix comes back as itself, not a copy.
    """
    if _PLAIN.get():
        return xp.max(x, axis=1, keepdims=True)
    while x.shape[1] > 1:
        half = (x.shape[1] + 1) // 2
        x = xp.maximum(x[:, :half], x[:, x.shape[1] - half :])
    return x


def pick(xp: Any, x: Any, columns: Any) -> Any:
    """Row i's entry ``columns[i]`` of a matrix (NumPy's ``x[range(n), columns]``), shape (n,).

    Row i's entry sits at ``i * n_columns + columns[i]`` of the flattened rows; ``take`` on
    that is cheaper than ``take_along_axis``, which builds index grids.
    """
    if _PLAIN.get():
        return xp.take_along_axis(x, columns[:, None], axis=1)[:, 0]
    rows, n_columns = x.shape
    starts = _constant(xp, "arange", (rows, n_columns), None, device_fast(x))
    return xp.take(xp.reshape(x, (-1,)), columns + starts)


def one_hot(xp: Any, labels: Any, n_classes: int, dtype: Any, device: Any) -> Any:
    """Rows of the identity picked by ``labels``: comparison with ``arange`` (no fancy writes)."""
    classes = _constant(xp, "arange", (n_classes, 1), None, device)
    return xp.astype(labels[:, None] == classes[None, :], dtype)


def add_into(backend: Backend, array: Array, addend: Any) -> Array:
    """``array + addend``, written into ``array`` when the backend allows it.

    Saves a full-size temporary and a pass over memory (the bias added into a fresh product,
    a penalty into a fresh gradient). Immutable backends get a new array. Pass only arrays
    the caller owns.
    """
    if not backend.mutable:
        return array + addend
    array += addend
    return array
