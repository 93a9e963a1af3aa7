"""Losses: crossentropies, MSE, MAE, and softmax fused with categorical crossentropy."""

from __future__ import annotations

from typing import Any

from backends import Backend
from nnx._checks import class_targets, targets_like_predictions
from nnx._component import Component
from nnx._door import formula
from nnx._xp import Array, one_hot, pick
from nnx.activations import Softmax
from nnx.layers import Layer

__all__ = [
    "Loss",
    "CategoricalCrossentropy",
    "BinaryCrossentropy",
    "MeanSquaredError",
    "MeanAbsoluteError",
    "SoftmaxCategoricalCrossentropy",
]

# The book clips predictions to [1e-7, 1 - 1e-7] so log() never sees 0.
_EPS = 1e-7


class Loss(Component):
    """Base: ``forward`` gives per-sample losses, ``calculate`` their mean.

    ``calculate`` also adds to a running sum over an epoch (``calculate_accumulated``), kept on
    the device so a training loop never waits for the host.
    """

    accumulated_sum: Any
    accumulated_count: int
    # What a loss's step leaves on it: its gradient (and the fused loss's probabilities).
    step_arrays = frozenset({"dinputs", "output"})
    # The running sum of an epoch's losses; its count is a Python int, known from the shapes.
    sums, counts = ("accumulated_sum",), ("accumulated_count",)
    # The targets it takes, which Model checks before training: "classes" (integer labels or
    # one-hot rows), "binary" (0/1 per output) or "values" (real numbers, for regression).
    targets = "values"
    # Host data given to these moves to the loss's backend first (see Component); then
    # _check_pair checks shapes and labels. Model calls the formulas behind these doors, on
    # targets it checked once at its own door.
    takes_arrays = {
        "forward": ("floats", "data"),
        "backward": ("floats", "data"),
        "calculate": ("floats", "data"),
    }
    checks = {"forward": "_check_pair", "backward": "_check_pair", "calculate": "_check_pair"}

    def __init__(self, backend: Backend | str | None = None) -> None:
        super().__init__(backend)
        self.trainable_layers: list[Layer] = []
        self.new_pass()

    def _moved(self) -> None:
        self.new_pass()  # the running sums were arrays of the old backend

    def remember_trainable_layers(self, layers: list[Layer]) -> None:
        self.trainable_layers = list(layers)

    def forward(self, y_pred: Array, y_true: Array) -> Array:
        raise NotImplementedError

    def backward(self, dvalues: Array, y_true: Array) -> Array:
        raise NotImplementedError

    def calculate(self, output: Array, y: Any, *, include_regularization: bool = False) -> Any:
        """Mean loss over the batch (a 0-d array); with regularisation, ``(data, reg)``."""
        sample_losses = formula(self, "forward")(output, y)  # checked at calculate's door
        # One reduction serves both: the mean is the sum over the count, as in mean() itself.
        batch_sum = self.xp.sum(sample_losses)
        data_loss = batch_sum / sample_losses.shape[0]
        self.accumulated_sum = self.accumulated_sum + batch_sum
        self.accumulated_count += sample_losses.shape[0]
        if not include_regularization:
            return data_loss
        return data_loss, self.regularization_loss()

    def calculate_accumulated(self, *, include_regularization: bool = False) -> Any:
        """Mean loss over everything since ``new_pass``."""
        data_loss = self.accumulated_sum / max(self.accumulated_count, 1)
        if not include_regularization:
            return data_loss
        return data_loss, self.regularization_loss()

    def new_pass(self) -> None:
        self.accumulated_sum = 0.0
        self.accumulated_count = 0

    def regularization_loss(self, layer: Layer | None = None) -> Any:
        """The book's L1 (``l1 * sum|w|``) and L2 (``l2 * sum w^2``) penalties."""
        xp = self.xp
        layers: list[Any] = self.trainable_layers if layer is None else [layer]
        total: Any = 0.0
        for lay in layers:
            for name, _, strength_l1, strength_l2 in lay.penalties():
                values = getattr(lay, name)
                if strength_l1 > 0:
                    total = total + strength_l1 * xp.sum(xp.abs(values))
                if strength_l2 > 0:
                    total = total + strength_l2 * xp.sum(values * values)
        return total

    def _clip(self, y_pred: Array) -> Array:
        return self.xp.minimum(self.xp.maximum(y_pred, _EPS), 1.0 - _EPS)

    def _targets(self, y_true: Array, like: Array) -> Array:
        """Float targets in the predictions' dtype (the standard does not mix int and float)."""
        return y_true if y_true.dtype == like.dtype else self.xp.astype(y_true, like.dtype)

    # What a direct call can get wrong (nnx._checks): targets of the predictions' shape.
    _check_pair = targets_like_predictions

    def _one_hot(self, y_true: Array, like: Array) -> Array:
        """Integer labels as one-hot rows; one-hot rows as floats of ``like``'s dtype."""
        if y_true.ndim == 1:
            return one_hot(self.xp, y_true, like.shape[1], like.dtype, self.device)
        return self._targets(y_true, like)


class CategoricalCrossentropy(Loss):
    """``-log`` of the probability given to the true class; labels as integers or one-hot."""

    targets = "classes"

    _check_pair = class_targets  # labels in range, or one-hot rows (nnx._checks)

    def forward(self, y_pred: Array, y_true: Array) -> Array:
        xp = self.xp
        if y_true.ndim == 1:
            # The book's y_pred_clipped[range(n), y_true]; picking before clipping gives the
            # same numbers and clips n values instead of n * classes.
            correct = self._clip(pick(xp, y_pred, y_true))
        else:
            clipped = self._clip(y_pred)
            correct = xp.sum(clipped * self._targets(y_true, clipped), axis=1)
        return -xp.log(correct)

    def backward(self, dvalues: Array, y_true: Array) -> Array:
        samples = dvalues.shape[0]
        # Clipped as in forward (the book divides by the raw values): a probability of exactly
        # 0 for the true class would otherwise give -inf, and 0/0 NaN elsewhere.
        self.dinputs = -self._one_hot(y_true, dvalues) / self._clip(dvalues) / samples
        return self.dinputs


class BinaryCrossentropy(Loss):
    """Crossentropy of independent yes/no outputs (after a Sigmoid)."""

    targets = "binary"

    def forward(self, y_pred: Array, y_true: Array) -> Array:
        xp = self.xp
        clipped = self._clip(y_pred)
        y_true = self._targets(y_true, clipped)
        losses = -(y_true * xp.log(clipped) + (1.0 - y_true) * xp.log(1.0 - clipped))
        return xp.mean(losses, axis=-1)

    def backward(self, dvalues: Array, y_true: Array) -> Array:
        samples, outputs = dvalues.shape
        clipped = self._clip(dvalues)
        y_true = self._targets(y_true, clipped)
        self.dinputs = -(y_true / clipped - (1.0 - y_true) / (1.0 - clipped)) / outputs / samples
        return self.dinputs


class MeanSquaredError(Loss):
    """L2 loss: mean of squared differences, for regression."""

    def forward(self, y_pred: Array, y_true: Array) -> Array:
        diff = self._targets(y_true, y_pred) - y_pred
        return self.xp.mean(diff * diff, axis=-1)

    def backward(self, dvalues: Array, y_true: Array) -> Array:
        samples, outputs = dvalues.shape
        self.dinputs = -2.0 * (self._targets(y_true, dvalues) - dvalues) / outputs / samples
        return self.dinputs


class MeanAbsoluteError(Loss):
    """L1 loss: mean of absolute differences, for regression."""

    def forward(self, y_pred: Array, y_true: Array) -> Array:
        return self.xp.mean(self.xp.abs(self._targets(y_true, y_pred) - y_pred), axis=-1)

    def backward(self, dvalues: Array, y_true: Array) -> Array:
        samples, outputs = dvalues.shape
        # d|y - y_hat|/dy_hat = -sign(y - y_hat); the book's listing drops this minus sign.
        self.dinputs = -self.xp.sign(self._targets(y_true, dvalues) - dvalues) / outputs / samples
        return self.dinputs


class SoftmaxCategoricalCrossentropy(Loss):
    """Softmax and categorical crossentropy in one: the gradient is ``(softmax - y) / n``.

    The chapter-10 interface: ``forward(inputs, y_true)`` keeps the probabilities in
    ``output`` and returns the mean loss; ``backward(dvalues, y_true)`` sets ``dinputs``.
    """

    targets = "classes"
    parts = ("activation", "loss")

    _check_pair = class_targets  # labels in range, or one-hot rows (nnx._checks)

    def __init__(self, backend: Backend | str | None = None) -> None:
        super().__init__(backend)
        self.activation = Softmax(self.backend)
        self.loss = CategoricalCrossentropy(self.backend)

    def forward(self, inputs: Array, y_true: Array) -> Any:  # type: ignore[override]
        # The formulas: this door checked inputs and labels already.
        self.output = formula(self.activation, "forward")(inputs)
        return formula(self.loss, "calculate")(self.output, y_true)

    def backward(self, dvalues: Array, y_true: Array) -> Array:
        samples = dvalues.shape[0]
        self.dinputs = (dvalues - self._one_hot(y_true, dvalues)) / samples
        return self.dinputs

    def calculate(self, output: Array, y: Any, *, include_regularization: bool = False) -> Any:
        """Mean crossentropy of the softmax of ``output`` (the logits), as for every loss."""
        data_loss = formula(self, "forward")(output, y)
        if not include_regularization:
            return data_loss
        return data_loss, self.regularization_loss()

    def calculate_accumulated(self, *, include_regularization: bool = False) -> Any:
        data_loss = self.loss.calculate_accumulated()
        if not include_regularization:
            return data_loss
        return data_loss, self.regularization_loss()

    def new_pass(self) -> None:
        super().new_pass()
        if hasattr(self, "loss"):  # Loss.__init__ calls this before self.loss exists
            self.loss.new_pass()
