"""CuPy's fused optimizer updates: one elementwise CUDA kernel per optimizer.

Each kernel reads a parameter, its gradient and its state once and writes them once, where
the plain formulas make a pass per operation. The formulas are those of
``backends/kernels.py``, in the same order; the compiler may contract a multiply and an add
into one rounding (FMA), so results may differ from the plain form's in the last bit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["cupy_kernels"]


def cupy_kernels(cupy: Any) -> dict[str, Callable[..., None]]:
    """The kernels, given the ``cupy`` module (imported by the backend that offers them).

    CuPy compiles each kernel on its first call, for the dtype it meets.
    """
    sgd_kernel = cupy.ElementwiseKernel("T g, T lr", "T p", "p += -lr * g", "nnx_sgd")
    momentum_kernel = cupy.ElementwiseKernel(
        "T g, T lr, T momentum",
        "T p, T m",
        "m = momentum * m - lr * g; p += m",
        "nnx_sgd_momentum",
    )
    adaptive_kernel = cupy.ElementwiseKernel(
        "T g, T lr, T epsilon, T rho, T fresh",
        "T p, T c",
        "c = rho * c + fresh * (g * g); p += -lr * g / (sqrt(c) + epsilon)",
        "nnx_adaptive",
    )
    adam_kernel = cupy.ElementwiseKernel(
        "T g, T lr, T epsilon, T beta_1, T beta_2, T fresh_1, T fresh_2, T correction_1, "
        "T correction_2",
        "T p, T m, T c",
        """
        m = beta_1 * m + fresh_1 * g;
        c = beta_2 * c + fresh_2 * (g * g);
        p += -lr * (m / correction_1) / (sqrt(c / correction_2) + epsilon);
        """,
        "nnx_adam",
    )

    def scalars(like: Any, *values: float) -> list[Any]:
        return [like.dtype.type(value) for value in values]

    def sgd(
        params: list, grads: list, momentums: list | None = None, *, lr: float, momentum: float
    ) -> None:
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            if momentums is None:
                sgd_kernel(g, *scalars(g, lr), p)
            else:
                momentum_kernel(g, *scalars(g, lr, momentum), p, momentums[i])

    def adagrad(params: list, grads: list, caches: list, *, lr: float, epsilon: float) -> None:
        for p, g, c in zip(params, grads, caches, strict=True):
            adaptive_kernel(g, *scalars(g, lr, epsilon, 1.0, 1.0), p, c)

    def rmsprop(
        params: list, grads: list, caches: list, *, lr: float, epsilon: float, rho: float
    ) -> None:
        for p, g, c in zip(params, grads, caches, strict=True):
            adaptive_kernel(g, *scalars(g, lr, epsilon, rho, 1 - rho), p, c)

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
        # 1 - beta on the host, in float64, rounded once (as the plain form does): in float32
        # on the device, 1 - 0.999 is off by 1e-5 relative.
        fresh = (1 - beta_1, 1 - beta_2)
        corrections = (1 - beta_1**step, 1 - beta_2**step)
        for p, g, m, c in zip(params, grads, momentums, caches, strict=True):
            values = scalars(g, lr, epsilon, beta_1, beta_2, *fresh, *corrections)
            adam_kernel(g, *values, p, m, c)

    return {"sgd": sgd, "adagrad": adagrad, "rmsprop": rmsprop, "adam": adam}
