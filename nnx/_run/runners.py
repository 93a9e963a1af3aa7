"""How a step runs, chosen in one place: eager, eager on a lazy library, compiled, or in coarse
tasks on a Dask cluster.

``Model`` and the training loop name no mode: ``nnx._run.choose`` asks each runner in turn whether
it takes this model and data (``accepts``), and the loop calls the same methods of whichever
answered: ``step`` for each batch, ``epoch_figures`` after an epoch, ``divergence`` where it
reads the device anyway, and ``evaluate``/``predict`` outside training. Every runner runs the
model's one step (``Model.train_step``); they differ only in where and when it runs.
"""

from __future__ import annotations

import math
import time
import warnings
import weakref
from collections.abc import Iterator
from typing import Any

from nnx import _state
from nnx._run.compiled import CompiledStep
from nnx._run.inference import CompiledPasses
from nnx._run.tracing import signature
from nnx._step import batches

__all__ = ["Compiled", "Eager", "Lazy", "kept", "materialize_state"]

# What runners keep across a model's train calls (a compiled step, a cluster's copy of the
# model), per model, while the model lives and its parts stay the ones they were made for.
_KEPT: weakref.WeakKeyDictionary[Any, tuple[tuple[int, ...], dict[Any, Any]]] = (
    weakref.WeakKeyDictionary()
)

# Seconds between looks at a compiled run's divergence record when nothing else reads.
_LOOK_EVERY = 0.05


class Eager:
    """The model's step as it comes: the NaN check reads the loss on the host, which costs
    nothing where every operation runs as it is called (NumPy, CuPy, torch)."""

    # Steps a call may run (Model.train's steps_per_execution, None: nnx picks); a runner
    # that runs one step per call leaves it. And the steps the train call runs at most, which
    # the loop sets before prepare.
    steps_per_execution: int | None = 1
    steps_in_call: int | None = None

    def __init__(self, model: Any, guard: bool = True) -> None:
        self.model, self.guard = model, guard

    @staticmethod
    def accepts(model: Any, X: Any, compile: bool | None, per_call: int | None = 1) -> bool:
        return True

    @classmethod
    def make(cls, model: Any, guard: bool = True) -> Any:
        return cls(model, guard)

    def prepare(self, steps: int) -> None:
        """Ready for a ``train`` call of ``steps`` steps an epoch."""

    def boundary(self, last: bool, check: bool) -> str | None:
        """The loop reads the device here (a printed line, validation, a checkpoint, or the
        end of the call: ``last``); with ``check``, the key of an array of the state that
        holds NaN or infinity, else None (one read for the whole state). A runner may also
        keep what it needs to recover from a failure (the Dask runner brings the state to the
        client, and checks it there)."""
        model = self.model
        return _state.non_finite(model.layers, model.optimizer) if check else None

    def batches(
        self, X: Any, y: Any, batch_size: int | None, order: Any
    ) -> Iterator[tuple[Any, Any]]:
        """An epoch's batches, each handed to ``step``: slices of the data on the device, in
        ``order`` (the epoch's sample order on the host, or None) when shuffling."""
        backend = self.model.backend
        order = None if order is None else backend.asarray(order)
        return batches(backend.xp, X, y, batch_size, order)

    def step(self, X: Any, y: Any) -> tuple[Any, Any, Any]:
        """One training step; (data loss, regularization loss, accuracy) of the batch."""
        return self.model.train_step(X, y, self.guard)  # type: ignore[no-any-return]

    def epoch_figures(self) -> Any:
        """(loss, data loss, regularization loss, accuracy) of the epoch's steps so far, as
        anything indexed 0 to 3 (a tuple here): the loop keeps it whole and reads it only to
        print a line, save a checkpoint, show the progress bar and when training ends, so a
        runner may leave the figures on the device until then."""
        model = self.model
        data_loss, reg_loss = model.loss.calculate_accumulated(include_regularization=True)
        accuracy = model.accuracy.calculate_accumulated() if model.accuracy else math.nan
        return data_loss + reg_loss, data_loss, reg_loss, accuracy

    def divergence(self, now: bool) -> tuple[float, int] | None:
        """(the first non-finite loss, its iteration) of a step that did not stop at once;
        the eager step raises in the step itself, so never."""
        return None

    def evaluate(self, X: Any, y: Any, batch_size: int | None) -> tuple[float, float]:
        model = self.model
        model.loss.new_pass()
        if model.accuracy is not None:
            model.accuracy.new_pass()
        for batch_X, batch_y in batches(model.backend.xp, X, y, batch_size):
            model.score(model.forward(batch_X, training=False), batch_y)
        loss = float(model.loss.calculate_accumulated())
        accuracy = float(model.accuracy.calculate_accumulated()) if model.accuracy else math.nan
        return loss, accuracy

    def predict(self, X: Any, batch_size: int | None) -> Any:
        model = self.model
        outputs = [
            model.forward(batch_X, training=False)
            for batch_X, _ in batches(model.backend.xp, X, None, batch_size)
        ]
        return outputs[0] if len(outputs) == 1 else model.backend.xp.concat(outputs, axis=0)


class Lazy(Eager):
    """The eager step on a library that defers work (Dask without a cluster): after each
    step the state and the running sums are computed, so no task graph outlives its step."""

    @staticmethod
    def accepts(model: Any, X: Any, compile: bool | None, per_call: int | None = 1) -> bool:
        return model.backend.lazy is not None

    def step(self, X: Any, y: Any) -> tuple[Any, Any, Any]:
        figures = super().step(X, y)
        model = self.model
        slots = _state.state_slots(model.layers, model.optimizer)
        sums = _state.declared(model.parts(), "sums")
        materialize_state(model.backend, [*slots.values(), *sums])
        return figures


class Compiled(Eager):
    """The step compiled by the backend's compiler (``nnx._run.compiled``), kept across ``train``
    calls while the numbers compiled into it stay the same. Nothing is read from the device
    inside a step: the loop asks ``divergence`` when it reads anyway."""

    def __init__(self, model: Any, guard: bool = True) -> None:
        super().__init__(model, guard)
        self.compiled: CompiledStep | None = None

    @staticmethod
    def accepts(model: Any, X: Any, compile: bool | None, per_call: int | None = 1) -> bool:
        compiler = model.backend.compiler
        return compiler is not None and (compile or (compile is None and compiler.by_default))

    def prepare(self, steps: int) -> None:
        model = self.model
        runners = kept(model)
        step = runners.get(("compiled", self.guard))
        if step is None or step.signature != signature(model):
            traced = 0 if step is None else step.traces  # traces counts them all
            step = runners["compiled", self.guard] = CompiledStep(model, self.guard)
            step.traces = traced
        step.prepare(steps)
        self.compiled = model.compiled_step = step
        self._unread: list[Any] = []  # divergence records not read yet, oldest first
        self._next_look = 0.0

    def step(self, X: Any, y: Any) -> tuple[Any, Any, Any]:
        assert self.compiled is not None  # prepare() comes first
        return self.compiled(X, y)

    def boundary(self, last: bool, check: bool) -> str | None:
        """As the eager runner's, with the check compiled: one call instead of an op each."""
        assert self.compiled is not None
        return self.compiled.boundary(last, check)

    def epoch_figures(self) -> Any:
        """The figures the compiled step computed with the epoch's last step, read from the
        device together, when one of them is first read."""
        assert self.compiled is not None
        return self.compiled.epoch_figures()

    def evaluate(self, X: Any, y: Any, batch_size: int | None) -> tuple[float, float]:
        """As the eager runner's, each batch one compiled call (``nnx._run.inference``)."""
        return self._compiled_or_eager("evaluate", X, y, batch_size)  # type: ignore[no-any-return]

    def predict(self, X: Any, batch_size: int | None) -> Any:
        """As the eager runner's, each batch one compiled call (``nnx._run.inference``)."""
        return self._compiled_or_eager("predict", X, batch_size)

    def _compiled_or_eager(self, method: str, X: Any, *args: Any) -> Any:
        """The compiled pass, or the eager one where it fails: an error of the data or the
        model comes again from the eager pass; where only the compiled pass fails (a part
        that cannot be traced), the passes stay eager for the model, and a warning says why."""
        passes, batch_size = self._passes(), args[-1]
        if passes is None or not passes.takes(X, batch_size):
            return getattr(super(), method)(X, *args)
        try:
            return getattr(passes, method)(X, *args)
        except Exception as err:  # noqa: BLE001  # the eager pass below raises a real error
            failure = err
        result = getattr(super(), method)(X, *args)
        passes.works = False
        warnings.warn(
            f"Model.{method} runs eagerly on this model from now on: its compiled pass failed "
            f"({type(failure).__name__}: {str(failure).splitlines()[0] if str(failure) else ''})"
            ", and the eager pass gives the same numbers.",
            RuntimeWarning,
            stacklevel=4,
        )
        return result

    def _passes(self) -> CompiledPasses | None:
        """The model's compiled evaluation and prediction, kept while its numbers stay the
        same; None where they run eagerly: a compiler that does not pay from the start
        (torch.compile: seconds a batch shape, to save a fraction of a millisecond), or a
        part that could not be traced."""
        model = self.model
        if not model.backend.compiler.by_default:
            return None
        runners = kept(model)
        passes = runners.get("passes")
        if passes is None or passes.signature != signature(model):
            passes = runners["passes"] = CompiledPasses(model)
        return passes if passes.works else None  # type: ignore[no-any-return]

    def divergence(self, now: bool) -> tuple[float, int] | None:
        """Whether a step's loss was not finite: (that loss, its iteration), or None.

        ``now=False`` reads only what the device has finished (``Compiler.ready``): the newest
        finished record, which holds every divergence before it too, and at most every
        ``_LOOK_EVERY`` seconds (a read costs more than a small model's step). The host never
        waits for the device then, and it runs ahead; ``now=True`` waits for the last step.
        """
        compiled, ready = self.compiled, self.model.backend.compiler.ready
        assert compiled is not None
        self._unread.append(compiled.record)
        if now:
            done = len(self._unread)
        else:
            clock = time.perf_counter()
            if clock < self._next_look:
                return None
            self._next_look = clock + _LOOK_EVERY
            done = next(
                (i + 1 for i in range(len(self._unread) - 1, -1, -1) if ready(self._unread[i][0])),
                0,
            )
        if not done:
            return None
        record = self._unread[done - 1]
        del self._unread[:done]
        return compiled.divergence(record)


def materialize_state(
    backend: Any, slots: list[tuple[Any, str]], extra: tuple[Any, ...] = ()
) -> list[Any]:
    """Lazy backends: compute the arrays a step leaves in ``slots`` ((holder, attribute) pairs:
    the model's state, the running sums), so no task graph outlives its step; ``extra`` arrays
    are computed along, and returned."""
    slots = [(h, name) for h, name in slots if not isinstance(getattr(h, name), (int, float))]
    arrays = backend.lazy.materialize([getattr(h, name) for h, name in slots] + list(extra))
    _state.put(slots, arrays[: len(slots)])
    return list(arrays[len(slots) :])


def kept(model: Any) -> dict[Any, Any]:
    """What runners keep for ``model`` across ``train`` calls; empty again once the model's
    parts changed (``set``, ``add``, a new ``finalize``)."""
    parts = tuple(map(id, model.parts()))
    entry = _KEPT.get(model)
    if entry is None or entry[0] != parts:
        entry = _KEPT[model] = (parts, {})
    return entry[1]
