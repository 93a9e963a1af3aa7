"""Every public method that takes arrays takes host data on every backend, and refuses arrays of
another backend or device, naming both (issue: the book's code on every backend).

One row per method: it is called with NumPy float32, NumPy float64 and Python lists (integer
labels as NumPy int64 and lists), and every array it returns or leaves behind must be an array
of the backend, on its device, in the expected dtype. The ``nnx.book`` names are these classes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

import backends
import nnx
from backends import Backend
from nnx import book
from nnx.testing._check import array_problems

_RNG = np.random.default_rng(5)
X = _RNG.normal(size=(4, 3))
PROBS = np.array([[0.7, 0.1, 0.2], [0.1, 0.5, 0.4], [0.02, 0.9, 0.08], [0.3, 0.3, 0.4]])
LABELS = np.array([0, 1, 1, 2])
BINARY = np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0], [0.0, 1.0, 0.0]])

# How host data reaches a method: the dtype a part without a dtype of its own computes in.
FORMS: dict[str, tuple[Callable[[np.ndarray], Any], str]] = {
    "float32": (lambda a: a.astype(np.float32), "float32"),
    "float64": (lambda a: a.astype(np.float64), "float64"),
    "list": (lambda a: a.tolist(), "float64"),  # Python floats are float64, as in NumPy
}


@dataclass(frozen=True)
class Row:
    """One method: the part to build, the call (``h`` turns NumPy data into the form under
    test), where the arrays to check are ("return" or attribute names), and their dtype:
    "form" (the input's precision), a dtype name (Dense's float32), or None (labels)."""

    id: str
    build: Callable[[Backend], Any]
    call: Callable[[Any, Callable[[np.ndarray], Any]], Any]
    where: tuple[str, ...] = ("return",)
    dtype: str | None = "form"
    # Run before ``call`` with the form's host data, never a foreign array: so the refusal
    # test reaches the door of ``call``'s method (a backward after its forward).
    prepare: Callable[[Any, Callable[[np.ndarray], Any]], Any] | None = None


def _part(cls: Any) -> Callable[[Backend], Any]:
    return lambda b: cls(backend=b)


def _dense(backend: Backend) -> Any:
    return nnx.Dense(3, 2, seed=0, backend=backend)


def _dropout(backend: Backend) -> Any:
    return nnx.Dropout(0.5, seed=0, backend=backend)


def _set_by_hand(part: Any, **arrays: Any) -> Any:
    for name, value in arrays.items():
        setattr(part, name, value)
    return part


ROWS = [
    Row("Dense.forward", _dense, lambda p, h: p.forward(h(X)), dtype="float32"),
    Row(
        "Dense.backward",
        _dense,
        lambda p, h: p.backward(h(X[:, :2])),
        ("return", "dweights"),
        "float32",
        prepare=lambda p, h: p.forward(h(X)),
    ),
    Row("Dropout.forward", _dropout, lambda p, h: p.forward(h(X), training=True)),
    Row(
        "Dropout.backward",
        _dropout,
        lambda p, h: p.backward(h(X)),
        prepare=lambda p, h: p.forward(h(X), training=True),
    ),
    # Chapter 9 sets the softmax output by hand before calling backward.
    Row(
        "Softmax.backward, output set by hand",
        _part(nnx.Softmax),
        lambda p, h: _set_by_hand(p, output=h(PROBS)).backward(h(PROBS)),
    ),
    Row(
        "CategoricalAccuracy.calculate",
        _part(nnx.CategoricalAccuracy),
        lambda p, h: p.calculate(h(LABELS), LABELS.tolist()),
        dtype=None,
    ),  # fmt: skip
    Row(
        "CategoricalAccuracy.compare",
        _part(nnx.CategoricalAccuracy),
        lambda p, h: p.compare(h(LABELS), LABELS),
        dtype=None,
    ),  # fmt: skip
    Row(
        "RegressionAccuracy.init",
        _part(nnx.RegressionAccuracy),
        lambda p, h: (p.init(h(X)), p.compare(X, X))[1],
        dtype=None,
    ),  # fmt: skip
    Row(
        "RegressionAccuracy.calculate",
        _part(nnx.RegressionAccuracy),
        lambda p, h: p.calculate(h(X), h(X)),
        dtype=None,
    ),  # fmt: skip
    # Gradients set by hand, as a reader trying an optimizer alone would.
    Row(
        "Adam.update_params, gradients set by hand",
        _dense,
        lambda p, h: nnx.Adam(backend=p.backend).update_params(
            _set_by_hand(p, dweights=h(X[:3, :2]), dbiases=h(X[:1, :2]))
        ),
        ("weights", "biases", "weight_cache"),
        "float32",
    ),
]
for _cls in (nnx.ReLU, nnx.Softmax, nnx.Sigmoid, nnx.Linear, nnx.Input):
    _name = _cls.__name__
    ROWS.append(Row(f"{_name}.forward", _part(_cls), lambda p, h: p.forward(h(X))))
    ROWS.append(
        Row(
            f"{_name}.backward",
            _part(_cls),
            lambda p, h: p.backward(h(X)),
            prepare=lambda p, h: p.forward(h(X)),
        )
    )
    if _cls is not nnx.Input:
        indices = _cls is nnx.Softmax  # argmax: integer indices
        ROWS.append(
            Row(
                f"{_name}.predictions",
                _part(_cls),
                lambda p, h: p.predictions(h(PROBS)),
                dtype=None if indices else "form",
            )  # fmt: skip
        )
_TARGETS = {
    nnx.CategoricalCrossentropy: LABELS,
    nnx.BinaryCrossentropy: BINARY,
    nnx.MeanSquaredError: BINARY,
    nnx.MeanAbsoluteError: BINARY,
    nnx.SoftmaxCategoricalCrossentropy: LABELS,
}
for _cls, _y in _TARGETS.items():
    _name = _cls.__name__
    ROWS += [
        Row(f"{_name}.forward", _part(_cls), lambda p, h, y=_y: p.forward(h(PROBS), y)),
        Row(f"{_name}.backward", _part(_cls), lambda p, h, y=_y: p.backward(h(PROBS), y.tolist())),
        Row(f"{_name}.calculate", _part(_cls), lambda p, h, y=_y: p.calculate(h(PROBS), y)),
    ]
IDS = [row.id for row in ROWS]


@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_takes_host_data(backend: Backend, form: str, row: Row) -> None:
    to_host, form_dtype = FORMS[form]
    if form_dtype == "float64" and not backend.float64:
        form_dtype = "float32"
    part = row.build(backend)
    if row.prepare is not None:
        row.prepare(part, to_host)
    result = row.call(part, to_host)
    dtype = form_dtype if row.dtype == "form" else row.dtype
    for name in row.where:
        value = result if name == "return" else getattr(part, name)
        problems = array_problems(backend, value, dtype)
        assert not problems, f"{row.id} ({form}): {name}: {'; '.join(problems)}"


def _foreign(backend: Backend) -> Backend:
    """A backend whose arrays nnx must refuse on ``backend``: array-api-strict, on its other
    device when ``backend`` is array-api-strict itself."""
    pytest.importorskip("array_api_strict")
    device = None
    if backend.name == "array_api_strict":
        device = "CPU_DEVICE" if "device1" in str(backend.device) else "device1"
    return backends.load("array_api_strict", device)


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_refuses_arrays_of_another_backend(backend: Backend, row: Row) -> None:
    foreign = _foreign(backend)
    part = row.build(backend)
    if row.prepare is not None:
        row.prepare(part, FORMS["float32"][0])
    with pytest.raises(TypeError, match=rf"array of array_api_strict on .*backend {backend.name}"):
        row.call(part, lambda host: foreign.asarray(host))


# The second array of each method that takes two: labels or targets, refused the same way.
SECOND = [
    *[
        (cls, method, y)
        for cls, y in _TARGETS.items()
        for method in ("forward", "backward", "calculate")
    ],
    (nnx.CategoricalAccuracy, "calculate", LABELS),
    (nnx.CategoricalAccuracy, "compare", LABELS),
    (nnx.RegressionAccuracy, "calculate", X),
]


@pytest.mark.parametrize(
    ("cls", "method", "y"), SECOND, ids=[f"{c.__name__}.{m}" for c, m, _ in SECOND]
)
def test_refuses_a_second_array_of_another_backend(
    backend: Backend, cls: Any, method: str, y: np.ndarray
) -> None:
    foreign = _foreign(backend).asarray(y)
    first = LABELS if cls is nnx.CategoricalAccuracy else (X if y is X else PROBS)
    with pytest.raises(TypeError, match=rf"{cls.__name__}\.{method}: \w+ is an array of array_api"):
        getattr(cls(backend=backend), method)(first, foreign)


def test_book_names_are_these_classes() -> None:
    assert book.Activation_ReLU is nnx.ReLU
    assert book.Activation_Softmax_Loss_CategoricalCrossentropy is (
        nnx.SoftmaxCategoricalCrossentropy
    )
    assert book.Optimizer_Adam is nnx.Adam and book.Accuracy_Categorical is nnx.CategoricalAccuracy
