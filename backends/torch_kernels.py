"""PyTorch's fused optimizer updates, over lists of tensors (``torch._foreach_*``).

The multi-tensor kernels ``torch.optim`` itself runs on CUDA: one call per operation for all
of a model's tensors instead of one per tensor, from Python. The formulas are those of
``backends/kernels.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["torch_kernels"]


def torch_kernels(torch: Any) -> dict[str, Callable[..., None]]:
    """The kernels, given the ``torch`` module (imported by the backend that offers them).

    SGD, Adagrad and RMSprop run the plain formulas' operations in their order, one
    ``_foreach`` call per operation for all tensors (no fused multiply-adds: the plain form's
    bits). Adam takes ``torch.optim``'s own fused kernel where this torch has it.
    """
    # torch's multi-tensor operations (torch._foreach_<op>: one call for all tensors), named
    # once here; the formulas below read as the plain ones.
    add_, sub_, mul, mul_ = (torch._foreach_add_, torch._foreach_sub_,
                             torch._foreach_mul, torch._foreach_mul_)  # fmt: skip
    div, div_, sqrt, sqrt_ = (torch._foreach_div, torch._foreach_div_,
                              torch._foreach_sqrt, torch._foreach_sqrt_)  # fmt: skip

    def sgd(
        params: list, grads: list, momentums: list | None = None, *, lr: float, momentum: float
    ) -> None:
        if momentums is None:
            add_(params, mul(grads, -lr))  # -lr * g
            return
        mul_(momentums, momentum)  # m = momentum * m - lr * g
        sub_(momentums, mul(grads, lr))
        add_(params, momentums)

    def _adaptive(params: list, grads: list, caches: list, lr: float, epsilon: float) -> None:
        updates = mul(grads, -lr)  # -lr * g / (sqrt(c) + eps)
        roots = sqrt(caches)
        add_(roots, epsilon)
        div_(updates, roots)
        add_(params, updates)

    def adagrad(params: list, grads: list, caches: list, *, lr: float, epsilon: float) -> None:
        add_(caches, mul(grads, grads))  # c = c + g**2
        _adaptive(params, grads, caches, lr, epsilon)

    def rmsprop(
        params: list, grads: list, caches: list, *, lr: float, epsilon: float, rho: float
    ) -> None:
        mul_(caches, rho)  # c = rho * c + (1 - rho) * g**2
        squares = mul(grads, grads)
        mul_(squares, 1 - rho)
        add_(caches, squares)
        _adaptive(params, grads, caches, lr, epsilon)

    def foreach_adam(
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
        mul_(momentums, beta_1)  # m = beta_1 * m + (1 - beta_1) * g
        add_(momentums, mul(grads, 1 - beta_1))
        mul_(caches, beta_2)  # c = beta_2 * c + (1 - beta_2) * g**2
        squares = mul(grads, grads)
        mul_(squares, 1 - beta_2)
        add_(caches, squares)
        # p += -lr * (m / (1 - beta_1**step)) / (sqrt(c / (1 - beta_2**step)) + eps)
        updates = div(momentums, 1 - beta_1**step)
        roots = div(caches, 1 - beta_2**step)
        sqrt_(roots)
        add_(roots, epsilon)
        mul_(updates, -lr)
        div_(updates, roots)
        add_(params, updates)

    def fused_adam(
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
        # torch.optim.Adam(fused=True)'s kernel: one pass over each tensor, on CPU and CUDA.
        # The same formulas (epsilon outside the root of the corrected cache), rounded in its
        # own order: m moves by lerp, and the corrections divide the root and the rate.
        if not params:
            return
        steps = [torch.full((), float(step), device=params[0].device)] * len(params)
        torch._fused_adam_(
            params, grads, momentums, caches, [], steps, lr=lr, beta1=beta_1, beta2=beta_2,
            weight_decay=0.0, eps=epsilon, amsgrad=False, maximize=False,
        )  # fmt: skip

    # torch has had _fused_adam_ since 2.0, for CUDA; its CPU kernel came with 2.4.
    major, minor = (int(part) for part in torch.__version__.split(".")[:2])
    adam = fused_adam if (major, minor) >= (2, 4) else foreach_adam
    return {"sgd": sgd, "adagrad": adagrad, "rmsprop": rmsprop, "adam": adam}
