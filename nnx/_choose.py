"""The one place that picks how a step runs (see ``nnx._runners``)."""

from __future__ import annotations

from typing import Any

from nnx._distributed import DataParallel
from nnx._runners import Compiled, Eager, Lazy

__all__ = ["choose"]

# Asked in this order; the first that accepts runs the step. Eager accepts every model.
RUNNERS: tuple[Any, ...] = (DataParallel, Compiled, Lazy, Eager)


def choose(
    model: Any, X: Any, *, compile: bool | None = None, guard: bool = True, runner: Any = None
) -> Any:
    """The runner for ``model`` on ``X``: ``runner`` where the caller names one (a subclass of
    ``nnx.Runner``), else the first of Dask's coarse tasks, the compiled step, the lazy and
    the plain eager step that accepts them."""
    if compile not in (None, True, False):
        raise ValueError(f"Model.train: expected compile as True, False or None, got {compile!r}.")
    if compile and model.backend.compiler is None:
        raise ValueError(
            f"Model.train: compile=True, but the {model.backend.name} backend cannot compile "
            "a function (jax can); leave compile out to train eagerly."
        )
    if runner is not None:
        if not (isinstance(runner, type) and issubclass(runner, Eager)):
            raise TypeError(
                f"Model.train: expected runner as a subclass of nnx.Runner, got {runner!r}."
            )
        return runner.make(model, guard)
    for runner in RUNNERS:
        if runner.accepts(model, X, compile):
            return runner.make(model, guard)
    raise AssertionError("Eager accepts every model")  # pragma: no cover
