"""What the doors of losses, accuracies and optimizers check at a direct call: shapes that
would broadcast into a plausible, wrong number, labels out of range, gradients not computed yet.

Each check is a method of its part (``Loss._check_pair = targets_like_predictions``) that the
part's door calls (``Component.checks``) once the arrays arrived; ``Model`` calls the formulas
behind the doors on data it checked at its own door, so none of this runs per step. Labels are
read on the host at every direct call: an array changed in place is seen as it is now.

Also the checks of plain numbers that the parts' constructors share (``whole_number``,
``real_number``).
"""

from __future__ import annotations

import numbers
import operator
from typing import Any

__all__ = [
    "check_fraction",
    "class_targets",
    "missing_gradients",
    "real_number",
    "targets_like_predictions",
    "whole_number",
    "y_like_predictions",
]


def targets_like_predictions(self: Any, y_pred: Any, y_true: Any, where: str) -> None:
    """A regression or binary loss: ``y_true`` of ``y_pred``'s shape."""
    if tuple(y_true.shape) != tuple(y_pred.shape):
        raise ValueError(
            f"{self._where(where)}: expected y_true of the predictions' shape "
            f"{tuple(y_pred.shape)}, got y_true of shape {tuple(y_true.shape)}. "
            "Give one target per output of each sample (y.reshape(-1, 1) for one output)."
        )


def y_like_predictions(self: Any, predictions: Any, y: Any, where: str) -> None:
    """An accuracy: ``y`` of the predictions' shape, or one-hot rows for class predictions."""
    one_hot = not getattr(self, "binary", True) and y.ndim == 2 and predictions.ndim == 1
    if one_hot and y.shape[0] == predictions.shape[0]:
        return
    if tuple(y.shape) != tuple(predictions.shape):
        raise ValueError(
            f"{self._where(where)}: expected y of the predictions' shape "
            f"{tuple(predictions.shape)}, got y of shape {tuple(y.shape)}. Pass one "
            "target per prediction (y.reshape(-1, 1) for one output)."
        )


def class_targets(self: Any, y_pred: Any, y_true: Any, where: str) -> None:
    """A crossentropy over classes: predictions of shape (samples, classes), and integer labels
    in range (out of range, they would pick another row's probability) or one-hot rows."""
    where, shape, xp = self._where(where), tuple(y_true.shape), self.xp
    n = y_pred.shape[0] if y_pred.ndim == 2 else None
    if n is None or shape not in ((n,), tuple(y_pred.shape)):
        want = f"({n},) or {tuple(y_pred.shape)}" if n is not None else "(samples, classes)"
        raise ValueError(
            f"{where}: expected y_pred of shape (samples, classes) and y_true of shape "
            f"{want} (class labels or one-hot rows), got y_pred of shape "
            f"{tuple(y_pred.shape)} and y_true of shape {shape}. Pass one target per sample."
        )
    if y_true.ndim != 1:
        return
    n_classes = y_pred.shape[1]
    if not xp.isdtype(y_true.dtype, "integral"):
        raise TypeError(
            f"{where}: expected class labels as integers, got dtype {y_true.dtype}; convert "
            "them first (y.astype(int)), or pass one-hot rows."
        )
    if shape[0] == 0 or self.backend.stands_for_arrays(y_true):
        return  # traced (nnx.compile): reading the labels would stall the compiler
    low, high = int(xp.min(y_true)), int(xp.max(y_true))
    if low < 0 or high >= n_classes:
        raise ValueError(
            f"{where}: class labels must lie in [0, {n_classes - 1}] for {n_classes} "
            f"classes, got labels from {low} to {high}."
        )


def missing_gradients(where: str, layer: Any, names: tuple[str, ...]) -> None:
    """``update_params`` before the layer's backward: say so before any parameter changes."""
    missing = [name for name in names if getattr(layer, name, None) is None]
    if missing:
        raise ValueError(
            f"{where}: expected the gradients of "
            f"{layer} from its backward pass, got none: {', '.join(missing)} not "
            "set. Call layer.backward(...) (after forward and the loss's backward) before "
            "update_params(layer)."
        )


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


def check_fraction(where: str, name: str, value: float) -> None:
    """An optimizer's decay rate (rho, beta_1, beta_2): in [0, 1), or a ValueError."""
    if not 0 <= value < 1:
        raise ValueError(f"{where}: expected {name} in [0, 1), got {name}={value!r}.")
