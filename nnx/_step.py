"""What every runner of the training step shares: the batches it runs on, and the error a
step whose loss is not finite raises."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = ["NonFiniteLossError", "batches"]


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; training stopped before that step's update."""


def batches(
    xp: Any, X: Any, y: Any, batch_size: int | None, order: Any = None
) -> Iterator[tuple[Any, Any]]:
    """Slices of the data on the device, in ``order`` when shuffling."""
    if order is not None:
        X = xp.take(X, order, axis=0)
        y = None if y is None else xp.take(y, order, axis=0)
    n = X.shape[0]
    if batch_size is None or batch_size >= n:
        yield X, y
        return
    size = batch_size
    for start in range(0, n, size):
        stop = min(start + size, n)
        yield X[start:stop, ...], (None if y is None else y[start:stop, ...])
