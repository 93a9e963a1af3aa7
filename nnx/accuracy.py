"""Accuracies: share of correct predictions, for classes and for regression."""

from __future__ import annotations

import math
from typing import Any

from backends import Backend
from nnx._checks import real_number, y_like_predictions
from nnx._component import Component
from nnx._door import formula
from nnx._xp import Array

__all__ = ["Accuracy", "CategoricalAccuracy", "RegressionAccuracy"]


class Accuracy(Component):
    """Base: ``calculate`` gives the share of ``compare`` that is true (a 0-d array)."""

    accumulated_sum: Any
    accumulated_count: int
    # The running sum of hits over an epoch (in ``count_dtype``); the count is a Python int.
    sums, counts = ("accumulated_sum",), ("accumulated_count",)
    # What Model hands to ``compare``: the last layer's ``predictions`` (classes, 0/1, values),
    # or "outputs", the model's outputs as they are (probabilities: a metric of its own).
    takes = "predictions"
    # Host data given to these moves to the accuracy's backend first (see Component).
    takes_arrays = {"calculate": ("data", "data"), "compare": ("data", "data"), "init": ("data",)}
    # Then _check_pair checks their shapes (Model calls the formulas, on checked targets).
    checks = {"calculate": "_check_pair", "compare": "_check_pair"}

    def __init__(self, backend: Backend | str | None = None) -> None:
        super().__init__(backend)
        self._moved()

    def init(self, y: Array, reinit: bool = False) -> None:
        """Learn what the comparison needs from the targets (regression's precision)."""

    def compare(self, predictions: Array, y: Array) -> Array:
        raise NotImplementedError

    def calculate(self, predictions: Array, y: Any) -> Any:
        hits = formula(self, "compare")(predictions, y)  # checked at calculate's door
        hits = self.xp.astype(hits, self.count_dtype)
        # One reduction serves both the batch's share and the running count.
        batch_hits, count = self.xp.sum(hits), math.prod(hits.shape)
        self.accumulated_sum = self.accumulated_sum + batch_hits
        self.accumulated_count += count
        return batch_hits / count

    def calculate_accumulated(self) -> Any:
        return self.accumulated_sum / max(self.accumulated_count, 1)

    _check_pair = y_like_predictions  # targets of the predictions' shape (nnx._checks)

    def new_pass(self) -> None:
        self.accumulated_sum = 0.0
        self.accumulated_count = 0

    def _moved(self) -> None:
        # Counting in float64 where the backend has it keeps the share exact for large sets.
        self.count_dtype = self.backend.dtype("float64" if self.backend.float64 else "float32")
        self.new_pass()  # the running sums were arrays of the old backend


class CategoricalAccuracy(Accuracy):
    """Predicted class equals the label; one-hot labels are reduced with argmax.

    ``binary=True`` compares element by element (Sigmoid outputs against 0/1 targets).
    """

    def __init__(self, *, binary: bool = False, backend: Backend | str | None = None) -> None:
        super().__init__(backend)
        self.binary = bool(binary)

    def config(self) -> dict[str, Any]:
        return {"binary": self.binary}

    def compare(self, predictions: Array, y: Array) -> Array:
        if not self.binary and y.ndim == 2:
            y = self.xp.argmax(y, axis=1)
        if y.dtype != predictions.dtype:
            y = self.xp.astype(y, predictions.dtype)
        return self.xp.equal(predictions, y)


class RegressionAccuracy(Accuracy):
    """A prediction counts when within ``precision`` of the target.

    Parameters
    ----------
    precision : float, optional
        ``None`` learns the book's rule, ``std(y) / 250``, from the first targets it sees
        (``init``); model files keep the learned value.
    """

    def __init__(
        self, backend: Backend | str | None = None, *, precision: float | None = None
    ) -> None:
        super().__init__(backend)
        number = None if precision is None else real_number(precision)
        if precision is not None and (number is None or not number > 0):
            raise ValueError(
                f"RegressionAccuracy: expected precision > 0 or None, got precision={precision!r}."
            )
        self.precision = number

    def init(self, y: Array, reinit: bool = False) -> None:
        if self.precision is None or reinit:
            # A Python float: read once, when training starts, and stored in model files.
            self.precision = float(self.xp.std(self.xp.astype(y, self.count_dtype)) / 250)

    def compare(self, predictions: Array, y: Array) -> Array:
        if self.precision is None:
            self.init(y)
        if y.dtype != predictions.dtype:
            y = self.xp.astype(y, predictions.dtype)
        return self.xp.abs(predictions - y) < self.precision

    def config(self) -> dict[str, Any]:
        return {"precision": self.precision}
