"""The training step, compiled: ``Model.train_step`` as a pure function of (state, batch).

A backend that can compile (``Backend.compiler``: JAX's ``jax.jit``) gets the model's own step,
not a second one written for it. :class:`CompiledStep` wraps it in a function that

1. loads the training state it is given (the arrays of ``Model.get_state``) into the layers
   and the optimizer, and the numbers of this step (``Optimizer.step_factors``: the learning
   rate after its decay, Adam's bias corrections), worked out on the host by
   ``pre_update_params`` exactly as the eager step works them out,
2. runs ``Model.train_step``: the book's forward, loss, backward and update,
3. reads the new state back, and puts every part as it was (their declared state, their
   arrays of one step), so nothing traced stays behind.

The backend compiles that function once per batch shape and reuses it for every step, with
the state's buffers donated to the new state. Nothing in it retraces per step: the iteration
count and the running sums of the loss and the accuracy are arrays the step carries, the
step's factors come in as numbers, and the layers' host draws (Dropout's masks, drawn from the
same host generators as in the eager step, so both drop the same units) come in as inputs. The
host keeps the book's Python numbers alongside (``optimizer.iterations``,
``accumulated_count``), for printing and files.

The other Python numbers the step reads (hyperparameters, penalties, a regression accuracy's
precision) are compiled in as constants: ``signature`` lists them (each part's ``config()``),
and a change makes a new step.

No host read happens inside a step. The NaN guard is arrays too, and wraps the step, not the
formulas: a step whose loss is not finite leaves the whole state as it was (the optimizer's
two state writers are wrapped for the trace: ``_guarded``), and so does every step after it,
and a record keeps the first such loss and the iteration it happened at. The training loop
reads that record when it reads from the device anyway (printing, validation, checkpoints,
the last epoch) and otherwise one epoch late, so the device runs ahead of the host.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from nnx import _state, _xp
from nnx._layer import HOST_DRAWS

__all__ = ["CompiledStep", "signature"]


def signature(model: Any, steps: int) -> tuple[Any, ...]:
    """The Python numbers (and strings, flags) a step of ``model`` reads, as each part
    declares them (``config()``), with the steps per epoch: a compiled step is valid while
    these stay the same."""
    parts = [*model.layers, model.loss, model.optimizer, model.accuracy]
    return (steps,) + tuple(
        (type(part), tuple(sorted(part.config().items()))) for part in parts if part is not None
    )


class CompiledStep:
    """``model``'s training step, compiled by its backend (see the module's text).

    Parameters
    ----------
    model : Model
        A finalized model with an optimizer, on a backend whose ``compile`` is set.
    guard : bool
        Keep a step with a non-finite loss from changing the state (``on_nan`` other than
        ``"ignore"``).
    steps : int
        Steps per epoch: the running sums start again after so many.

    Attributes
    ----------
    traces : int
        How many times the step was traced (compiled): once per batch shape.
    figures : array
        After a step: the epoch's figures so far, (loss, data loss, regularization loss,
        accuracy), as ``calculate_accumulated`` gives them; one transfer brings all four.
    """

    def __init__(self, model: Any, guard: bool, steps: int) -> None:
        backend = model.backend
        if backend.compiler is None:
            raise ValueError(f"{backend.name} cannot compile a function.")
        self.model, self.guard, self.steps, self.traces = model, guard, steps, 0
        self.backend, self.xp = backend, backend.xp
        self.signature = signature(model, steps)
        self._summed = [part for part in (model.loss, model.accuracy) if part is not None]
        parts = [*model.layers, model.loss, model.optimizer, model.accuracy, model._fused]
        self._parts = [part for part in parts if part is not None]
        self._drawing = any(layer.draws_on_host for layer in model.layers)
        # What each batch shape adds to the running counts (Python ints), and its draws.
        self._counts: dict[tuple[Any, ...], list[int]] = {}
        self._draws: dict[tuple[Any, ...], list[tuple[Any, ...]]] = {}
        # The running sum and count of the loss (and the accuracy), then the step's place in
        # its epoch. Made once a train call: a small array costs 70-150 us on JAX's CPU.
        host = backend.asarray
        self._sums: list[Any] = []
        for part in self._summed:
            dtype = part._count_dtype if part is model.accuracy else model._dtype
            self._sums += [host(0.0, dtype), host(0, self.xp.int32)]
        self.record: tuple[Any, ...] = ()
        self._tripped = True
        self._place: Any = None
        self._host_place = 0
        self._counted: int | None = None  # the count the device's array holds, when known
        self.figures: Any = None
        self._compiled = backend.compiler.compile(self._pure, donate=(0,))

    def prepare(self) -> None:
        """Ready for a ``train`` call: the state as the model holds it now, no divergence.

        The optimizer's state is made now where missing (zeros, as its first update would
        make it), so the step takes and returns the same arrays from the first step on. The
        layers' arrays of one step go: the compiled code keeps them inside, and stale ones
        from an earlier eager step would mislead. ``record`` is (diverged, first bad loss,
        its iteration), three 0-d arrays, not donated: the loop reads an epoch's record
        while the next epoch runs.
        """
        model, optimizer, host = self.model, self.model.optimizer, self.backend.asarray
        for layer in model.trainable_layers:
            for name in layer.parameters:
                for kind in optimizer.state_kinds:
                    optimizer.state(layer, name, kind)
        self._slots = list(_state.state_slots(model.layers, optimizer).values())
        for layer in model.layers:
            for name in layer._step_arrays():
                vars(layer).pop(name, None)
        # The device's counters, made again only where the host's differ (a new array costs
        # more than a small model's step): the count after a reset, the place in an epoch
        # after a run that stopped inside one.
        if self._counted != optimizer.iterations:
            self._iterations, self._counted = host(optimizer.iterations, self.xp.int32), None
        if self._host_place != 0 or self._place is None:
            self._place, self._host_place = host(0, self.xp.int32), 0
        if self._tripped:  # a record that saw no divergence serves the next call as it is
            self.record = (host(False), host(0.0, model._dtype), host(0, self.xp.int32))
            self._tripped = False

    # -- on the host, every step -------------------------------------------------------------
    def __call__(self, X: Any, y: Any) -> tuple[Any, Any, Any]:
        """One training step; returns (data loss, regularization loss, accuracy) as arrays."""
        optimizer = self.model.optimizer
        optimizer.pre_update_params()  # this step's factors, as the eager step computes them
        factors = tuple(getattr(optimizer, name) for name in optimizer.step_factors)
        key = (X.shape, y.shape)  # tuples, as the standard has them
        draws = self._draws.get(key)
        if draws is None:
            draws = self._draws[key] = self._record_draws(X) if self._drawing else []
        drawn = [layer.backend.asarray(draw(rng), dtype) for layer, rng, draw, _, dtype in draws]
        state = [getattr(holder, name) for holder, name in self._slots]
        state.append(self._iterations)
        state, carried, record, out = self._compiled(
            state, [*self._sums, self._place], self.record, X, y, drawn, factors
        )
        self._iterations = state.pop()
        for (holder, name), value in zip(self._slots, state, strict=True):
            setattr(holder, name, value)
        if carried:
            *self._sums, self._place = carried
        if record:
            self.record = record
        # The host's numbers and the parts' sums, as an eager step leaves them.
        optimizer.post_update_params()
        self._counted = optimizer.iterations
        fresh, self._host_place = self._host_place == 0, (self._host_place + 1) % self.steps
        summed = zip(self._summed, self._sums[::2], self._counts[key])  # noqa: B905
        for part, total, count in summed:
            part.accumulated_sum = total
            part.accumulated_count = (0 if fresh else part.accumulated_count) + count
        data_loss, reg_loss, accuracy, self.figures = out
        return data_loss, reg_loss, math.nan if accuracy is None else accuracy

    def divergence(self, record: tuple[Any, ...]) -> tuple[float, int] | None:
        """(the first non-finite loss, the iteration of its step) that ``record`` holds, or
        None; reads from the device (it waits for the step that made the record)."""
        to_numpy = self.backend.to_numpy
        if not (self.guard and bool(to_numpy(record[0]))):
            return None
        self._tripped = True
        return float(to_numpy(record[1])), int(to_numpy(record[2]))

    def _record_draws(self, X: Any) -> list[tuple[Any, ...]]:
        """What the layers draw in a forward pass over a batch like ``X``: one eager pass in
        which every draw is noted (zeros stand in), with every part put back after it."""
        noted: list[tuple[Any, ...]] = []

        def note(layer: Any, rng: Any, draw: Callable[..., Any], shape: Any, dtype: Any) -> Any:
            noted.append((layer, rng, draw, shape, dtype))
            return self.xp.zeros(shape, dtype=dtype, device=self.backend.device)

        with self._borrowed(), _draws_from(note):
            self.model.forward(X, training=True)
        return noted

    @contextmanager
    def _borrowed(self) -> Iterator[None]:
        """The parts as they were before the block, after it: their declared state, the
        running sums and the step's factors put back, and their arrays of one step gone, so
        nothing a trace set (tracers) stays on them."""
        optimizer = self.model.optimizer
        state = [getattr(holder, name) for holder, name in self._slots]
        sums = [(part.accumulated_sum, part.accumulated_count) for part in self._summed]
        factors = [getattr(optimizer, name) for name in optimizer.step_factors]
        try:
            yield
        finally:
            for (holder, name), value in zip(self._slots, state, strict=True):
                setattr(holder, name, value)
            for part, (total, count) in zip(self._summed, sums, strict=True):
                part.accumulated_sum, part.accumulated_count = total, count
            for name, value in zip(optimizer.step_factors, factors, strict=True):
                setattr(optimizer, name, value)
            for part in self._parts:
                for name in part._step_arrays():
                    part.__dict__.pop(name, None)

    # -- traced once per batch shape ---------------------------------------------------------
    def _pure(
        self,
        state: list[Any],
        carried: list[Any],
        record: tuple[Any, ...],
        X: Any,
        y: Any,
        drawn: list[Any],
        factors: tuple[Any, ...],
    ) -> tuple[list[Any], list[Any], tuple[Any, ...], tuple[Any, ...]]:
        self.traces += 1
        model, optimizer, xp = self.model, self.model.optimizer, self.xp
        *sums, place = carried
        iterations = state[-1]
        # One step an epoch (the spiral, one batch): the epoch's sums are the step's, and no
        # running sum or place is carried. On a small model each operation saved counts: XLA
        # runs every fused kernel at a cost of a few microseconds.
        single = self.steps == 1
        fresh = place == 0
        drawn = list(drawn)
        checked: dict[str, Any] = {}

        def feed(layer: Any, rng: Any, draw: Any, shape: Any, dtype: Any) -> Any:
            return drawn.pop(0)

        def guard(loss: Any) -> None:  # the optimizer's writers read "keep" (see _guarded)
            finite = xp.isfinite(loss)
            checked.update(loss=loss, finite=finite, keep=finite & ~record[0])

        with self._borrowed(), _xp.plain_operations(), _guarded(optimizer, checked):
            for (holder, name), value in zip(self._slots, state, strict=False):
                setattr(holder, name, value)
            for part, total in zip(self._summed, sums[::2]):  # noqa: B905
                part.accumulated_sum = 0.0 if single else xp.where(fresh, 0.0, total)
                part.accumulated_count = 0
            for name, value in zip(optimizer.step_factors, factors, strict=True):
                setattr(optimizer, name, value)
            with _draws_from(feed):
                data_loss, reg_loss, accuracy = model.train_step(
                    X, y, guard=guard if self.guard else False, counted=False
                )
            new = [getattr(holder, name) for holder, name in self._slots]
            new.append(xp.where(checked["keep"], iterations + 1, iterations) if checked else
                       iterations + 1)  # fmt: skip
            # The epoch's figures so far, as calculate_accumulated gives them after this step
            # (the penalty on the updated parameters).
            counts = [part.accumulated_count for part in self._summed]
            self._counts[(X.shape, y.shape)] = counts
            new_sums, means = [], []
            for part, count, old in zip(self._summed, counts, sums[1::2]):  # noqa: B905
                total = part.accumulated_sum
                if single:
                    means.append(total / count)
                else:
                    count = xp.where(fresh, 0, old) + count
                    new_sums += [total, count]
                    means.append(total / xp.astype(xp.maximum(count, 1), total.dtype))
            epoch_reg = model.loss.regularization_loss()
        epoch_data = means[0]
        epoch_accuracy = means[1] if len(means) > 1 else math.nan
        figures = [epoch_data + epoch_reg, epoch_data, epoch_reg, epoch_accuracy]
        dtype = epoch_data.dtype
        figures_array = xp.stack([xp.astype(xp.asarray(f), dtype) for f in figures])
        if self.guard:
            diverged, bad_loss, bad_at = record
            loss, finite = checked["loss"], checked["finite"]
            first = ~finite & ~diverged
            record = (
                diverged | ~finite,
                xp.where(first, xp.astype(loss, bad_loss.dtype), bad_loss),
                xp.where(first, iterations, bad_at),
            )
        if not _xp.is_array(accuracy):
            accuracy = None
        # What did not change is not returned: a returned input is a copy.
        carried = [] if single else [*new_sums, (place + 1) % self.steps]
        return (
            new,
            carried,
            record if self.guard else (),
            (
                data_loss,
                reg_loss,
                accuracy,
                figures_array,
            ),
        )


@contextmanager
def _guarded(optimizer: Any, checked: dict[str, Any]) -> Iterator[None]:
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


@contextmanager
def _draws_from(source: Callable[..., Any]) -> Iterator[None]:
    """``Layer.host_draw`` asks ``source`` for its numbers inside the block."""
    token = HOST_DRAWS.set(source)
    try:
        yield
    finally:
        HOST_DRAWS.reset(token)
