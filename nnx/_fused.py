"""The fast path of the optimizers: handing a backend's fused kernel every array at once.

``nnx.optimizers`` says the formulas; this gathers, for the kernel a backend offers, each
parameter, its gradient and the optimizer's state for it across a model's layers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from nnx._xp import plain

__all__ = ["kernel_for", "run_kernel"]

_KERNEL_IS_UPDATE: dict[type, bool] = {}


def kernel_for(optimizer: Any) -> Callable[..., None] | None:
    """The backend's kernel for ``optimizer``'s update, or None for the plain form.

    Kernels write in place, so a backend without in-place updates (a compiler's) runs the
    plain form; so does an optimizer with ``fused=False``, and a subclass that rewrote
    ``update`` (the kernel computes its parent's formula, not the new one).
    """
    if not (optimizer.fused and optimizer.backend.mutable and _kernel_is_update(type(optimizer))):
        return None
    if plain():  # inside a compiler's trace: the compiler fuses the plain form itself
        return None
    kernel: Callable[..., None] | None = optimizer.backend.kernels.get(optimizer.kernel)
    return kernel


def run_kernel(optimizer: Any, kernel: Callable[..., None], layers: Sequence[Any]) -> None:
    """One call of ``kernel`` over every parameter of ``layers``, with their gradients and the
    optimizer's state (created as zeros where missing, as the plain form does)."""
    kinds = optimizer.state_kinds
    params, grads = [], []
    states: list[list[Any]] = [[] for _ in kinds]
    for layer in layers:
        for name, gradient, attributes in layer.slots(kinds):
            params.append(getattr(layer, name))
            grads.append(getattr(layer, gradient))
            for arrays, attribute, kind in zip(states, attributes, kinds):  # noqa: B905
                state = getattr(layer, attribute, None)
                arrays.append(optimizer.state(layer, name, kind) if state is None else state)
    kernel(params, grads, *states, **optimizer.hyperparameters())


def _kernel_is_update(cls: type) -> bool:
    """Whether ``cls.update`` is the update of the class that names ``cls.kernel``."""
    answer = _KERNEL_IS_UPDATE.get(cls)
    if answer is None:
        owner: Any = next(c for c in cls.__mro__ if "kernel" in vars(c))
        answer = _KERNEL_IS_UPDATE[cls] = cls.update is owner.update  # type: ignore[attr-defined]
    return answer
