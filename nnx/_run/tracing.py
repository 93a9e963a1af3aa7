"""What a compiled step reads as constants, and what it refuses: the checks that keep a traced
step honest (``nnx._run.compiled``).

A compiled step bakes the parts' Python numbers in (``signature``: a change makes a new step),
counts in 32-bit integers, returns a new array for every slot of the state, and cannot run a
part's code that reads an array's values on the host. Each of those limits is refused here
with a message that names the cause, rather than wrapping, untying or failing deep in the
compiler. And the step's NaN guard, which wraps the optimizer's two state writers for the
trace (``guarded``).
"""

from __future__ import annotations

import copy
import warnings
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from nnx._step import NonFiniteLossError

__all__ = [
    "MAX_COUNT",
    "MAX_PROGRAMS",
    "Numbers",
    "guarded",
    "in_model",
    "name_the_part",
    "frozen",
    "refuse_tied",
    "signature",
    "warn_programs",
]


def signature(model: Any) -> tuple[Any, ...]:
    """The Python numbers (and strings, flags) a step of ``model`` reads, as each part
    declares them (``config()``): a compiled step is valid while these stay the same."""
    parts = [*model.layers, model.loss, model.optimizer, model.accuracy]
    numbers = _NUMBERS.get(model) or _NUMBERS.setdefault(model, Numbers())
    return numbers.of([part for part in parts if part is not None])


class Numbers:
    """The Python numbers of some parts (their ``config()``, with their classes), frozen into a
    snapshot that a list changed in place later does not follow. Worked out again only when a
    config differs from a copy of the last one: comparing costs about a microsecond a part,
    freezing twenty for a small model, and a compiled run asks at every call."""

    def __init__(self) -> None:
        self._configs: list[Any] = []
        self._snapshot: tuple[Any, ...] = ()

    def of(self, parts: list[Any]) -> tuple[Any, ...]:
        configs = [(type(part), part.config()) for part in parts]
        if configs != self._configs:
            self._configs = copy.deepcopy(configs)
            self._snapshot = tuple((kind, frozen(config)) for kind, config in configs)
        return self._snapshot


_NUMBERS: weakref.WeakKeyDictionary[Any, Numbers] = weakref.WeakKeyDictionary()


# The step counter and the divergence record's iteration are int32 on the device: JAX has no
# 64-bit integers unless its x64 mode is on.
MAX_COUNT = 2**31 - 1
# Programs one compiled step keeps (one per batch shape) before it warns and starts afresh.
MAX_PROGRAMS = 8


def frozen(value: Any) -> Any:
    """``value`` with every list and dict made a tuple: a snapshot that a container changed in
    place later does not follow (and ten times cheaper than a deep copy, every call)."""
    if isinstance(value, dict):
        return tuple(sorted((key, frozen(item)) for key, item in value.items()))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(frozen(item) for item in value))
    return value


def warn_programs(traces: int) -> None:
    """Say why a compiled step keeps compiling: a new batch shape past ``MAX_PROGRAMS``."""
    warnings.warn(
        f"Model.train: the compiled step was traced {traces} times: a batch shape it has not "
        f"seen (now {MAX_PROGRAMS} of them) compiles a new program, which costs seconds. Keep "
        "one batch_size across train calls (the last batch of an epoch may differ), or pass "
        "compile=False.",
        RuntimeWarning,
        stacklevel=6,
    )


def refuse_tied(slots: dict[str, tuple[Any, str]]) -> None:
    """Refuse parameters shared by two layers (tied weights): the compiled step returns a new
    array for each slot, which would untie them after one step."""
    seen: dict[int, str] = {}
    for key, (holder, name) in slots.items():
        other = seen.setdefault(id(getattr(holder, name)), key)
        if other != key:
            raise ValueError(
                f"Model.train: {other} and {key} are one array (tied parameters); the compiled "
                "step keeps every parameter apart, so it would untie them. Train with "
                "compile=False, or give each layer its own array."
            )


def name_the_part(
    err: Exception, parts: list[Any], describe: Callable[[Any], str], caller: str, instead: str
) -> None:
    """Raise a TypeError naming the part of ``parts`` (as ``describe`` names it) in whose code
    ``err`` was raised while ``caller`` traced it, if any: a part that reads an array's values
    on the host (``float()``, an ``if`` on an array) cannot be compiled. Else return."""
    known = {id(part): part for part in parts}
    culprit, tb = None, err.__traceback__
    while tb is not None:  # the innermost frame of a part's own method
        culprit = known.get(id(tb.tb_frame.f_locals.get("self")), culprit)
        tb = tb.tb_next
    if culprit is None or isinstance(err, NonFiniteLossError):
        return
    raise TypeError(
        f"{caller} cannot trace {describe(culprit)}: {type(err).__name__}: "
        f"{str(err).splitlines()[0] if str(err) else ''}. Compiled, a part computes with its "
        f"backend's xp only: no float(), no if on an array's values, no NumPy calls. Rewrite "
        f"it so, or {instead}."
    ) from err


def in_model(model: Any) -> Callable[[Any], str]:
    """How errors name a part of ``model``: ``layer 1 (Dense(...))``, or the part's class."""

    def describe(part: Any) -> str:
        if part in model.layers:
            return f"layer {model.layers.index(part)} ({part})"
        return type(part).__name__

    return describe


@contextmanager
def guarded(optimizer: Any, checked: dict[str, Any]) -> Iterator[None]:
    """The step's NaN guard, without a host read: the optimizer's two state writers (``keep``
    and ``apply``) wrapped for the block, so that while ``checked["keep"]`` is False (this
    loss or an earlier one not finite) every array of the state stays as it was. Wrapped
    there and not as one ``where(keep, new, old)`` over the whole state after the step:
    the update goes on with the state as kept, so XLA never holds the old state next to the
    new one (the select after the step cost S 80-100 us a step here: copies)."""
    keep, apply, xp = optimizer.keep, optimizer.apply, optimizer.xp

    def guarded_keep(layer: Any, name: str, kind: str, value: Any) -> Any:
        if "keep" in checked:
            value = xp.where(checked["keep"], value, getattr(layer, layer.state_name(name, kind)))
        return keep(layer, name, kind, value)

    def guarded_apply(layer: Any, name: str, updates: Any) -> None:
        if "keep" in checked:  # w + 0 is w: a dropped step leaves the parameter as it was
            updates = xp.where(checked["keep"], updates, 0.0)
        apply(layer, name, updates)

    optimizer.keep, optimizer.apply = guarded_keep, guarded_apply
    try:
        yield
    finally:
        del optimizer.keep, optimizer.apply
