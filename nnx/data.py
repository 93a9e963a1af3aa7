"""Host boundary: checks on the data a model is given, before any of it moves to a device.

Host data (NumPy arrays, lists) is checked here with NumPy; arrays already on a backend are
checked with that backend's namespace, once per call to ``train``/``evaluate``/``predict``.
"""

from __future__ import annotations

import math
from typing import Any

import array_api_compat
import numpy as np

from nnx._checks import whole_number
from nnx._xp import dtype_name

__all__ = [
    "check_features",
    "check_targets",
    "check_validation",
    "check_batch_size",
    "plain_host",
    "shuffled_order",
    "to_backend",
]


def plain_host(data: Any, what: str, where: str) -> Any:
    """``data`` without a NumPy subclass's meaning: a masked array is refused (its masked
    entries would be computed with as numbers), any other ndarray subclass (``np.matrix``,
    whose ``*`` is a matrix product and whose rows stay 2-D) becomes the plain array of the
    same numbers. Anything else comes back as it is."""
    if isinstance(data, np.ma.MaskedArray):
        raise TypeError(
            f"{where}: expected {what} as a plain array, got a masked array "
            f"({what}={type(data).__name__} with {int(np.ma.count_masked(data))} masked "
            f"entries), whose masked values would be used as numbers. Fill them "
            f"({what}.filled(value)) or drop those rows first."
        )
    if isinstance(data, np.ndarray) and type(data) is not np.ndarray:
        return np.asarray(data)
    return data


def _host(data: Any, what: str) -> Any:
    """Host data as a NumPy array of numbers; device arrays pass through untouched."""
    if array_api_compat.is_array_api_obj(data) and not array_api_compat.is_numpy_array(data):
        return data
    data = plain_host(data, what, "Model")
    try:
        array = np.asarray(data)
    except (ValueError, TypeError) as err:
        raise TypeError(f"expected {what} as a rectangular array of numbers: {err}") from err
    if array.dtype.kind not in "biuf":
        raise TypeError(
            f"expected {what} as numbers, got dtype={array.dtype}. Convert it first, "
            "e.g. encode string labels as integers."
        )
    return array


def _all_finite(array: Any) -> bool:
    xp = array_api_compat.array_namespace(array)
    if not xp.isdtype(array.dtype, "real floating"):
        return True
    return bool(xp.all(xp.isfinite(array)))


def check_features(X: Any, n_inputs: int | None, name: str = "X", single: bool = False) -> Any:
    """``X`` as a 2-D, non-empty, finite array with ``n_inputs`` columns; with ``single``,
    finite in float32 too (the model computes in it)."""
    X = _host(X, name)
    if X.ndim != 2:
        raise ValueError(
            f"expected {name} of shape (samples, features), got shape {tuple(X.shape)}. "
            "Reshape a single feature with X.reshape(-1, 1)."
        )
    if X.shape[0] == 0:
        raise ValueError(f"expected at least one sample in {name}, got shape {tuple(X.shape)}.")
    if n_inputs is not None and X.shape[1] != n_inputs:
        raise ValueError(
            f"the model's first layer expects {n_inputs} features, got {name} of shape "
            f"{tuple(X.shape)}. Check n_inputs of the first layer or the columns of {name}."
        )
    if not _all_finite(X):
        raise ValueError(f"{name} contains NaN or infinity; clean or impute the data first.")
    if single and _beyond_float32(X):
        raise ValueError(
            f"{name} has values beyond float32's range (|x| > {_FLOAT32_MAX:.3g}), which the "
            "model computes in; scale the data, or build the layers with dtype='float64'."
        )
    return X


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _beyond_float32(array: Any) -> bool:
    """Whether an array (host or device, float64 or wider) holds values float32 turns into
    infinity."""
    xp = array_api_compat.array_namespace(array)
    if not xp.isdtype(array.dtype, "real floating") or xp.finfo(array.dtype).bits <= 32:
        return False
    return math.prod(array.shape) > 0 and float(xp.max(xp.abs(array))) > _FLOAT32_MAX


def check_targets(
    y: Any, n_samples: int, kind: str, n_outputs: int, name: str = "y", single: bool = False
) -> Any:
    """``y`` checked against what the loss expects (with ``single``, finite in float32).

    ``kind`` is ``"classes"`` (integer labels in [0, n_outputs) or one-hot rows of width
    ``n_outputs``), ``"binary"`` (values in [0, 1]) or ``"values"`` (regression).
    """
    y = _host(y, name)
    if y.ndim == 0:
        raise ValueError(
            f"expected {name} with one entry per sample of X ({n_samples}), got a single "
            f"number, {name}={y!r}."
        )
    if y.shape[0] != n_samples:
        raise ValueError(
            f"expected {name} with one row per sample of X ({n_samples}), got "
            f"{y.shape[0]} ({name} of shape {tuple(y.shape)})."
        )
    if not _all_finite(y):
        raise ValueError(f"{name} contains NaN or infinity; clean the targets first.")
    if single and kind != "classes" and _beyond_float32(y):
        raise ValueError(
            f"{name} has values beyond float32's range (|y| > {_FLOAT32_MAX:.3g}), which the "
            "model computes in; scale the targets, or build the layers with dtype='float64'."
        )
    xp = array_api_compat.array_namespace(y)
    if kind == "classes":
        _check_classes(xp, y, n_outputs, name)
    elif y.ndim == 1:
        raise ValueError(
            f"expected {name} of shape (samples, {n_outputs}) for this loss, got shape "
            f"{tuple(y.shape)}. Use {name}.reshape(-1, 1) for a single output."
        )
    elif y.shape[1] != n_outputs:
        raise ValueError(
            f"the model has {n_outputs} outputs, got {name} of shape {tuple(y.shape)}."
        )
    elif kind == "binary" and not bool(xp.all((y >= 0) & (y <= 1))):
        raise ValueError(f"binary targets must lie in [0, 1]; {name} has values outside.")
    return y


def _check_classes(xp: Any, y: Any, n_outputs: int, name: str) -> None:
    if y.ndim == 2:
        if y.shape[1] != n_outputs:
            raise ValueError(
                f"expected one-hot {name} rows of width {n_outputs} (the model's outputs), "
                f"got shape {tuple(y.shape)}."
            )
        ones = xp.sum(xp.astype(y == 1, xp.int64), axis=1)
        zeros = xp.sum(xp.astype(y == 0, xp.int64), axis=1)
        if not bool(xp.all((ones == 1) & (ones + zeros == n_outputs))):
            raise ValueError(
                f"expected one-hot {name}: each row a single 1 among 0s. For class labels, "
                f"pass them as integers of shape (samples,) (e.g. {name}.argmax(axis=1))."
            )
        return
    if y.ndim != 1:
        raise ValueError(f"expected class labels of shape (samples,), got {tuple(y.shape)}.")
    if not xp.isdtype(y.dtype, "integral"):
        if not bool(xp.all(y == xp.round(y))):
            raise ValueError(f"class labels must be whole numbers; {name} has fractions.")
    low, high = int(xp.min(y)), int(xp.max(y))
    if low < 0 or high >= n_outputs:
        raise ValueError(
            f"class labels must lie in [0, {n_outputs - 1}] for a model with {n_outputs} "
            f"outputs, got labels from {low} to {high}."
        )


def to_backend(model: Any, X: Any, y: Any, name: str = "X") -> tuple[Any, Any]:
    """Host data for ``model`` checked once (features, targets), then moved to the model's
    backend once: what ``train``, ``evaluate`` and ``predict`` hand their runner."""
    backend, dtype = model.backend, model.dtype
    single = dtype_name(backend.xp, dtype) == "float32"
    X = check_features(X, model.n_inputs, name, single)
    # Plain data: a torch X that requires grad would grow an autograd graph every step.
    X = backend.detach(model.input_layer.adopt(X, name, dtype))
    if y is None:
        return X, None
    y_name = "y" if name == "X" else f"y{name[1:]}"  # y_val for X_val
    targets = model.loss.targets
    y = check_targets(y, X.shape[0], targets, model.n_outputs, y_name, single)
    if targets == "classes" and y.ndim == 1:  # whole-number labels, any dtype
        y = model.input_layer.adopt(y, y_name, backend.xp.int64)
    else:
        y = model.input_layer.adopt(y, y_name, dtype)
    return X, backend.detach(y)


def check_validation(validation_data: Any) -> tuple[Any, Any]:
    """``validation_data`` as the pair ``(X_val, y_val)``, or a ValueError that says why not."""
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
        raise ValueError(
            "Model.train: expected validation_data=(X_val, y_val), a pair, got "
            f"validation_data of type {type(validation_data).__name__}."
        )
    if validation_data[1] is None:
        raise ValueError(
            "Model.train: expected validation_data=(X_val, y_val) with both arrays, "
            "got y_val=None; pass the validation targets, or leave validation_data out."
        )
    return validation_data[0], validation_data[1]


def check_batch_size(batch_size: Any) -> int | None:
    """``batch_size`` as an int (NumPy integers too) or None; anything else is refused."""
    if batch_size is None:
        return None
    size = whole_number(batch_size)
    if size is None or size < 1:
        raise ValueError(
            f"expected batch_size as a positive integer or None, got batch_size={batch_size!r}."
        )
    return size


def shuffled_order(rng: np.random.Generator, n_samples: int) -> np.ndarray:
    """One epoch's sample order, drawn on the host so every backend sees the same one."""
    return rng.permutation(n_samples)


def stacked(arrays: list[Any], rows: int) -> np.ndarray:
    """``arrays`` (host arrays of one shape) stacked along a new first axis, padded with
    zeros to ``rows``: one step's draws a row (many steps per call)."""
    table = np.zeros((rows, *np.shape(arrays[0])), dtype=np.asarray(arrays[0]).dtype)
    table[: len(arrays)] = arrays
    return table


def rows_table(steps: list[tuple[Any, int]], size: int, every: int, rows: int) -> np.ndarray:
    """The sample indices of the batches of ``size`` rows that ``steps`` take, one step a row
    of a (``rows``, ``size``) table padded with zeros: (epoch order, place) pairs, a batch
    starting ``place * every`` into its epoch's order (many steps per call, shuffled)."""
    table = np.zeros((rows, size), dtype=np.int32)
    for j, (order, place) in enumerate(steps):
        table[j] = order[place * every : place * every + size]
    return table


# A host generator's state as numbers (NumPy's PCG64, which Backend.rng makes): its 128-bit
# state and increment as four 32-bit words each, then the cached 32-bit draw and its flag, as
# int32 (their bits): every backend holds int32 (JAX without x64 has no 64-bit integers).
_GENERATOR = "PCG64"
_WORDS = (96, 64, 32, 0)


def generator_array(state: dict[str, Any]) -> np.ndarray:
    """A generator's ``bit_generator.state`` as ten int32 numbers: the state mapping keeps
    it beside the parameters (a checkpoint resumes a Dropout layer's masks)."""
    if state.get("bit_generator") != _GENERATOR:
        raise ValueError(f"expected a {_GENERATOR} generator, got {state.get('bit_generator')!r}")
    inner = state["state"]
    words = [(inner[name] >> shift) & 0xFFFFFFFF for name in ("state", "inc") for shift in _WORDS]
    words += [state["has_uint32"], state["uinteger"]]
    return np.array(words, dtype=np.uint32).view(np.int32)


def generator_state(array: Any, where: str) -> dict[str, Any]:
    """:func:`generator_array` read back; ValueError naming ``where`` if it is not ten int32
    numbers that NumPy takes as a generator's state."""
    host = np.asarray(array)
    if host.shape != (10,) or host.dtype != np.int32:
        raise ValueError(
            f"{where}: expected a generator's state as 10 int32 numbers, got shape "
            f"{host.shape} and dtype {host.dtype}."
        )
    words = [int(word) for word in host.view(np.uint32)]
    numbers = [sum(word << shift for word, shift in zip(words[i : i + 4], _WORDS)) for i in (0, 4)]  # noqa: B905
    has, cached = words[8:]
    if has not in (0, 1):
        raise ValueError(f"{where}: not a generator's state (its cached-draw flag is {has}).")
    state: dict[str, Any] = {
        "bit_generator": _GENERATOR,
        "state": {"state": numbers[0], "inc": numbers[1]},
        "has_uint32": has,
        "uinteger": cached,
    }
    try:
        np.random.PCG64().state = state  # type: ignore[assignment]  # what NumPy refuses
    except (ValueError, TypeError, OverflowError) as err:
        raise ValueError(f"{where}: not a generator's state ({err}).") from None
    return state
