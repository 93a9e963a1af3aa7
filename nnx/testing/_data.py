"""Seeded host inputs of the checks and finite differences; host boundary (NumPy)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from backends import Backend
from nnx.testing.tolerances import FINITE_DIFFERENCE_STEP


def generator(seed: int) -> np.random.Generator:
    """The host generator of one scenario: the same seed on every backend and dtype."""
    return np.random.default_rng(seed)


def representable(values: Any) -> np.ndarray:
    """``values`` in float64, rounded to float32 first so every dtype starts from them."""
    return np.asarray(values, dtype=np.float64).astype(np.float32).astype(np.float64)


def normal(rng: np.random.Generator, *shape: int, scale: float = 1.0) -> np.ndarray:
    """Standard normal draws times ``scale``, representable in float32."""
    return representable(scale * rng.standard_normal(shape))


def away_from_zero(rng: np.random.Generator, *shape: int, margin: float = 0.1) -> np.ndarray:
    """Normal draws pushed at least ``margin`` from 0 (kinks of ReLU, MAE stay out of reach)."""
    values = rng.standard_normal(shape)
    return representable(np.sign(values) * (margin + np.abs(values)))


def labels(rng: np.random.Generator, samples: int, classes: int) -> np.ndarray:
    """Integer class labels, shape (samples,)."""
    return rng.integers(0, classes, size=samples).astype(np.int64)


def one_hot(y: np.ndarray, classes: int) -> np.ndarray:
    """Integer labels as float one-hot rows."""
    return np.eye(classes)[y]


def probabilities(rng: np.random.Generator, samples: int, classes: int) -> np.ndarray:
    """Rows that sum to ~1, every entry well inside the losses' clipping range."""
    logits = rng.standard_normal((samples, classes))
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return representable(exp / exp.sum(axis=1, keepdims=True))


def put(backend: Backend, host: np.ndarray, dtype: str | None = None) -> Any:
    """Host data onto ``backend`` in ``dtype`` (``None`` keeps the host dtype, for labels)."""
    return backend.asarray(host, None if dtype is None else backend.dtype(dtype))


def scalar(backend: Backend, value: Any) -> float:
    """A 0-d array of ``backend`` as a Python float."""
    return float(np.asarray(backend.to_numpy(value)))


def numeric_gradient(function: Callable[[np.ndarray], float], at: np.ndarray) -> np.ndarray:
    """Central differences of ``function`` at ``at``, one element at a time.

    Parameters
    ----------
    function : callable ``(numpy.ndarray) -> float``
        Evaluates the objective on the backend under test from host values.
    at : numpy.ndarray
        The point, float64.

    Returns
    -------
    numpy.ndarray
        The gradient, same shape as ``at``.
    """
    h = FINITE_DIFFERENCE_STEP
    gradient = np.empty_like(at)
    for index in np.ndindex(at.shape):
        up, down = at.copy(), at.copy()
        up[index] += h
        down[index] -= h
        gradient[index] = (function(up) - function(down)) / (2 * h)
    return gradient
