"""Data sets on the host (NumPy arrays): the book's spiral, vertical and sine data, IDX files
(Fashion-MNIST) and scikit-learn's bundled digits.

Host boundary: these return NumPy arrays; the model moves them to its backend once.
"""

from __future__ import annotations

import gzip
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
from nnfs.datasets import sine_data as _nnfs_sine
from nnfs.datasets import spiral_data as _nnfs_spiral
from nnfs.datasets import vertical_data as _nnfs_vertical

from backends import install_hint
from nnx._xp import Array

__all__ = [
    "spiral_data",
    "vertical_data",
    "sine_data",
    "load_idx",
    "load_fashion_mnist",
    "load_digits",
]


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


# IDX type codes (the third byte of the magic number) and their big-endian NumPy dtypes.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_FASHION_FILES = {
    "X": "train-images-idx3-ubyte",
    "y": "train-labels-idx1-ubyte",
    "X_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


def load_idx(path: str | os.PathLike[str]) -> Array:
    """Read an IDX file (the MNIST format), plain or gzip-compressed (told by its first bytes).

    Returns
    -------
    numpy.ndarray
        The array, with the shape and dtype the header gives, in native byte order.

    Raises
    ------
    ValueError
        The magic number, type code or size does not describe an IDX file.
    """
    path = Path(path)
    payload = path.read_bytes()
    if payload[:2] == b"\x1f\x8b":
        try:
            payload = gzip.decompress(payload)
        except (OSError, EOFError) as err:
            raise ValueError(f"load_idx: {path} is a damaged gzip file ({err}).") from err
    if len(payload) < 4 or payload[:2] != b"\x00\x00" or payload[2] not in _IDX_DTYPES:
        raise ValueError(
            f"load_idx: {path} is not an IDX file: expected the magic number 00 00 <type> <ndim> "
            f"with type in {{{', '.join(f'{c:02x}' for c in _IDX_DTYPES)}}}, got "
            f"{payload[:4].hex(' ') or 'an empty file'}."
        )
    dtype, ndim = np.dtype(_IDX_DTYPES[payload[2]]), payload[3]
    start = 4 + 4 * ndim
    if len(payload) < start:
        raise ValueError(f"load_idx: {path} ends inside its header; the file is truncated.")
    shape = tuple(int.from_bytes(payload[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = start + math.prod(shape) * dtype.itemsize
    if len(payload) != expected:
        raise ValueError(
            f"load_idx: {path} has shape {shape} of {dtype.name}, which needs {expected} bytes, "
            f"but the data is {len(payload)} bytes. The file is truncated or corrupt."
        )
    array = np.frombuffer(payload, dtype=dtype, offset=start).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def load_fashion_mnist(folder: str | os.PathLike[str]) -> tuple[Array, Array, Array, Array]:
    """Fashion-MNIST from the four standard IDX files in ``folder`` (``.gz`` or not).

    Never downloads. Returns ``X, y, X_test, y_test`` as in the book: images flattened to
    784 float32 features scaled to [-1, 1], labels int64.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"load_fashion_mnist: no folder {folder}. Download the four IDX files "
            f"({', '.join(_FASHION_FILES.values())}, .gz allowed) from "
            "https://github.com/zalandoresearch/fashion-mnist into one folder and pass its path."
        )
    arrays: dict[str, Any] = {}
    for key, name in _FASHION_FILES.items():
        path = next((p for p in (folder / name, folder / f"{name}.gz") if p.is_file()), None)
        if path is None:
            raise FileNotFoundError(
                f"load_fashion_mnist: {folder} has no {name} (or {name}.gz); it needs all of "
                f"{', '.join(_FASHION_FILES.values())}."
            )
        arrays[key] = load_idx(path)
    for images, labels in (("X", "y"), ("X_test", "y_test")):
        if len(arrays[images]) != len(arrays[labels]) or arrays[images].ndim != 3:
            raise ValueError(
                f"load_fashion_mnist: in {folder}, {_FASHION_FILES[images]} has shape "
                f"{arrays[images].shape} but {_FASHION_FILES[labels]} has "
                f"{len(arrays[labels])} labels; expected (n, rows, cols) images and n labels."
            )
        arrays[images] = _scale(arrays[images].reshape(len(arrays[images]), -1), 255.0)
        arrays[labels] = arrays[labels].astype(np.int64)
    return arrays["X"], arrays["y"], arrays["X_test"], arrays["y_test"]


def load_digits() -> tuple[Array, Array]:
    """scikit-learn's bundled 8x8 digits (no download): ``X`` (1797, 64) float32 in [-1, 1],
    ``y`` (1797,) int64."""
    try:
        from sklearn.datasets import load_digits as _sklearn_digits
    except ImportError as err:
        raise ImportError(
            "load_digits needs scikit-learn, which ships the digits data set: "
            f"pip install scikit-learn (or {install_hint('examples')})."
        ) from err
    digits = _sklearn_digits()
    return _scale(digits.data, 16.0), digits.target.astype(np.int64)


def _scale(pixels: Any, top: float) -> Any:
    """Pixel values in [0, top] mapped to [-1, 1], as float32."""
    half = top / 2
    return ((pixels.astype(np.float32) - half) / half).astype(np.float32)
