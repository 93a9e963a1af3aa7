"""Data sets on the host (NumPy arrays): the book's spiral, vertical and sine data.

Host boundary: these return NumPy arrays; the model moves them to its backend once.
"""

from __future__ import annotations

import numpy as np
from nnfs.datasets import sine_data as _nnfs_sine
from nnfs.datasets import spiral_data as _nnfs_spiral
from nnfs.datasets import vertical_data as _nnfs_vertical

__all__ = ["spiral_data", "vertical_data", "sine_data"]


def _seeded(seed: int | None, make, *args):
    """Run an nnfs generator (which draws from NumPy's global generator) under ``seed``."""
    if seed is None:
        return make(*args)
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        return make(*args)
    finally:
        np.random.set_state(state)


def spiral_data(samples: int, classes: int, *, seed: int | None = None):
    """The book's spiral: ``samples`` points per class, ``X`` (n, 2) float32, ``y`` (n,) int."""
    X, y = _seeded(seed, _nnfs_spiral, samples, classes)
    return X.astype(np.float32), y.astype(np.int64)


def vertical_data(samples: int, classes: int, *, seed: int | None = None):
    """The book's vertical clusters: ``X`` (n, 2) float32, ``y`` (n,) int."""
    X, y = _seeded(seed, _nnfs_vertical, samples, classes)
    return X.astype(np.float32), y.astype(np.int64)


def sine_data(samples: int = 1000):
    """The book's sine wave: ``X`` (samples, 1), ``y = sin(2 pi X)`` (samples, 1), float32."""
    X, y = _nnfs_sine(samples)
    return X.astype(np.float32), y.astype(np.float32)
