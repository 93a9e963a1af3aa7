"""The one place that picks how a step runs (see ``nnx._run.runners``)."""

from __future__ import annotations

from typing import Any

from nnx._checks import whole_number
from nnx._run.distributed import DataParallel
from nnx._run.many import ManySteps
from nnx._run.runners import Compiled, Eager, Lazy

__all__ = ["cannot_compile", "choose"]

# Asked in this order; the first that accepts runs the step. Eager accepts every model.
RUNNERS: tuple[Any, ...] = (DataParallel, ManySteps, Compiled, Lazy, Eager)


def choose(
    model: Any,
    X: Any,
    *,
    compile: bool | None = None,
    guard: bool = True,
    runner: Any = None,
    steps_per_execution: int | None = None,
) -> Any:
    """The runner for ``model`` on ``X``: ``runner`` where the caller names one (a subclass of
    ``nnx.Runner``), else the first of Dask's coarse tasks, many compiled steps per call, one
    compiled step per call, the lazy and the plain eager step that accepts them."""
    per_call = steps_per_execution
    if per_call is not None and ((per_call := whole_number(per_call)) is None or per_call < 1):
        raise ValueError(
            "Model.train: expected steps_per_execution as a whole number >= 1 or None, got "
            f"{steps_per_execution!r}."
        )
    if compile not in (None, True, False):
        raise ValueError(f"Model.train: expected compile as True, False or None, got {compile!r}.")
    if compile and (why := cannot_compile(model.backend)):
        raise ValueError(
            f"Model.train: compile=True, but {why}; leave compile out to train eagerly."
        )
    if runner is not None:
        if not (isinstance(runner, type) and issubclass(runner, Eager)):
            raise TypeError(
                f"Model.train: expected runner as a subclass of nnx.Runner, got {runner!r}."
            )
        made = runner.make(model, guard)
    else:
        made = next(r for r in RUNNERS if r.accepts(model, X, compile, per_call)).make(model, guard)
    made.steps_per_execution = per_call
    return made


def cannot_compile(backend: Any) -> str | None:
    """Why ``backend`` cannot take ``compile=True`` (for an error message), or None."""
    if backend.compiler is None:
        return f"the {backend.name} backend cannot compile its step (jax and torch can)"
    return None
