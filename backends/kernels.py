"""Fused optimizer updates: what a backend may offer in ``Backend.kernels``, and NumPy's.

A kernel updates many arrays at once, in place: lists of parameters, their gradients and the
optimizer's state, all of one backend. The names and signatures (``lr`` is the learning rate
of this step, ``step`` counts from 1):

- ``sgd(params, grads, momentums=None, *, lr, momentum)``: without momentums ``p -= lr * g``;
  with them ``m = momentum * m - lr * g`` and ``p += m``.
- ``adagrad(params, grads, caches, *, lr, epsilon)``: ``c += g**2``,
  ``p -= lr * g / (sqrt(c) + epsilon)``.
- ``rmsprop(params, grads, caches, *, lr, epsilon, rho)``: ``c = rho * c + (1 - rho) * g**2``,
  then as adagrad.
- ``adam(params, grads, momentums, caches, *, lr, epsilon, beta_1, beta_2, step)``:
  ``m = beta_1 * m + (1 - beta_1) * g``, ``c = beta_2 * c + (1 - beta_2) * g**2``,
  ``p -= lr * m_hat / (sqrt(c_hat) + epsilon)`` with ``m_hat = m / (1 - beta_1**step)`` and
  ``c_hat = c / (1 - beta_2**step)``.

A backend offers any subset; nnx's optimizers run their plain formulas for the rest, and the
conformance suite (``nnx conformance``) checks every kernel offered against them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["KERNEL_NAMES", "numpy_kernels"]

KERNEL_NAMES = ("sgd", "adagrad", "rmsprop", "adam")


class _Work(threading.local):
    """Scratch arrays per (shape, dtype, slot) and thread: kernels of two models training in
    two threads never share one."""

    def __init__(self) -> None:
        self.arrays: dict[tuple[Any, ...], np.ndarray] = {}

    def like(self, array: np.ndarray, slot: int = 0) -> np.ndarray:
        key = (array.shape, array.dtype, slot)
        work = self.arrays.get(key)
        if work is None:
            if len(self.arrays) >= 64:  # shapes keep changing: start over
                self.arrays.clear()
            work = self.arrays[key] = np.empty_like(array)
        return work


def numpy_kernels() -> dict[str, Callable[..., None]]:
    """NumPy's kernels: the plain formulas' operations, in their order, written through
    ``out=`` into kept scratch arrays instead of fresh temporaries.

    Same operations in the same order: the results are the plain formulas' to the bit
    (tests/unit/test_kernels.py), only faster (benchmarks/RESULTS.md). NumPy cannot fuse
    elementwise work; what it can do is stop allocating memory that has left the cache.
    """
    work = _Work()

    def sgd(
        params: list, grads: list, momentums: list | None = None, *, lr: float, momentum: float
    ) -> None:
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            if momentums is None:
                p += np.multiply(g, -lr, out=work.like(g))  # -lr * g
                continue
            m = momentums[i]  # m = momentum * m - lr * g; p += m
            m *= momentum
            m -= np.multiply(g, lr, out=work.like(g))
            p += m

    def _adaptive(p: np.ndarray, g: np.ndarray, c: np.ndarray, lr: float, eps: float) -> None:
        # p += -lr * g / (sqrt(c) + eps)
        w = np.multiply(g, -lr, out=work.like(g))
        root = np.sqrt(c, out=work.like(g, 1))
        root += eps
        w /= root
        p += w

    def adagrad(params: list, grads: list, caches: list, *, lr: float, epsilon: float) -> None:
        for p, g, c in zip(params, grads, caches, strict=True):
            c += np.square(g, out=work.like(g))  # c = c + g**2
            _adaptive(p, g, c, lr, epsilon)

    def rmsprop(
        params: list, grads: list, caches: list, *, lr: float, epsilon: float, rho: float
    ) -> None:
        for p, g, c in zip(params, grads, caches, strict=True):
            c *= rho  # c = rho * c + (1 - rho) * g**2
            w = np.square(g, out=work.like(g))
            w *= 1 - rho
            c += w
            _adaptive(p, g, c, lr, epsilon)

    def adam(
        params: list,
        grads: list,
        momentums: list,
        caches: list,
        *,
        lr: float,
        epsilon: float,
        beta_1: float,
        beta_2: float,
        step: int,
    ) -> None:
        for p, g, m, c in zip(params, grads, momentums, caches, strict=True):
            m *= beta_1  # m = beta_1 * m + (1 - beta_1) * g
            m += np.multiply(g, 1 - beta_1, out=work.like(g))
            c *= beta_2  # c = beta_2 * c + (1 - beta_2) * g**2
            w = np.square(g, out=work.like(g))
            w *= 1 - beta_2
            c += w
            # p += -lr * (m / (1 - beta_1**step)) / (sqrt(c / (1 - beta_2**step)) + eps)
            w = np.divide(m, 1 - beta_1**step, out=w)
            root = np.divide(c, 1 - beta_2**step, out=work.like(g, 1))
            np.sqrt(root, out=root)
            root += epsilon
            w *= -lr
            w /= root
            p += w

    return {"sgd": sgd, "adagrad": adagrad, "rmsprop": rmsprop, "adam": adam}
