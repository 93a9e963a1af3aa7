"""The training step, compiled: ``Model._step`` as a pure function of (state, batch).

A backend that can compile (``Backend.compile``: JAX's ``jax.jit``) gets the model's own step,
not a second one written for it. :class:`CompiledStep` wraps it in a function that

1. loads the training state it is given (the arrays of ``Model.get_state``, the running sums
   of the loss and the accuracy) into the layers, the loss and the optimizer,
2. runs ``Model._step`` on the batch, the book's forward, loss, backward and update, and
3. reads the new state back, and puts every part as it was, so nothing traced stays behind.

The backend compiles that function once per batch shape and reuses it for every step, with
the state's buffers donated to the new state. What would otherwise freeze at trace time
comes in as arguments every step: the iteration count and the decayed learning rate (the
host keeps them as the book's Python numbers, ``pre_update_params``/``post_update_params``
round each call), and the layers' host draws (Dropout's masks, drawn from the same host
generators as in the eager step, so both drop the same units).

No host read happens inside a step. The NaN guard is arrays too: a step whose loss is not
finite leaves the state as it was, and so does every step after it, and the state records
the first such loss and the iteration it happened at. The training loop reads that record
when it reads from the device anyway (printing, validation, checkpoints, the last epoch) and
otherwise one epoch late, so the device runs ahead of the host.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from nnx import _state, _xp
from nnx._layer import HOST_DRAWS

__all__ = ["CompiledStep"]


class CompiledStep:
    """``model``'s training step, compiled by its backend (see the module's text).

    Parameters
    ----------
    model : Model
        A finalized model with an optimizer, on a backend whose ``compile`` is set.
    guard : bool
        Keep a step with a non-finite loss from changing the state (``on_nan`` other than
        ``"ignore"``).

    Attributes
    ----------
    traces : int
        How many times the step was traced (compiled): once per batch shape.
    """

    def __init__(self, model: Any, guard: bool) -> None:
        backend = model.backend
        if backend.compile is None:
            raise ValueError(f"{backend.name} cannot compile a function.")
        self.model, self.guard, self.traces = model, guard, 0
        self.backend, self.xp = backend, backend.xp
        self._parts_summed = [part for part in (model.loss, model.accuracy) if part is not None]
        parts = [*model.layers, model.loss, model.optimizer, model.accuracy, model._fused]
        self._parts = [part for part in parts if part is not None]
        self._drawing = any(layer.draws_on_host for layer in model.layers)
        # What each batch shape adds to the running counts (Python ints), and its draws.
        self._counts: dict[tuple[Any, ...], list[int]] = {}
        self._draws: dict[tuple[Any, ...], list[tuple[Any, ...]]] = {}
        self.prepare()
        self._compiled = backend.compile(self._pure, donate=(0,))

    def prepare(self) -> None:
        """Ready for a ``train`` call: the state as the model holds it now, no divergence.

        The optimizer's state is made now where missing (zeros, as its first update would
        make it), so the step takes and returns the same arrays from the first step on. The
        layers' arrays of one step go: the compiled code keeps them inside, and stale ones
        from an earlier eager step would mislead. ``record`` is (diverged, first bad loss,
        its iteration), three 0-d arrays, not donated: the loop reads an epoch's record
        while the next epoch runs.
        """
        model, optimizer = self.model, self.model.optimizer
        for layer in model.trainable_layers:
            for name in layer.parameters:
                for kind in optimizer.state_kinds:
                    optimizer.state(layer, name, kind)
        self._state_slots = list(_state.state_slots(model.layers, optimizer).values())
        for layer in model.layers:
            for name in layer._step_arrays():
                vars(layer).pop(name, None)
        xp, dev = self.xp, self.backend.device
        # The running sum and count of the loss (and the accuracy), carried from step to step.
        self._sums = []
        for part in self._parts_summed:
            dtype = part._count_dtype if part is model.accuracy else model._dtype
            self._sums += [
                xp.zeros((), dtype=dtype, device=dev),
                xp.zeros((), dtype=xp.int32, device=dev),
            ]
        self.figures: Any = None
        self.record = (
            xp.asarray(False, device=dev),
            xp.asarray(0.0, dtype=self.model._dtype, device=dev),
            xp.zeros((), dtype=xp.int32, device=dev),
        )

    # -- on the host, every step -------------------------------------------------------------
    def __call__(self, X: Any, y: Any) -> tuple[Any, Any, Any]:
        """One training step; returns (data loss, regularization loss, accuracy) as arrays.

        ``figures`` then holds the epoch's figures so far as one array, (loss, data loss,
        regularization loss, accuracy), what ``calculate_accumulated`` would give: one
        transfer brings all four to the host.
        """
        model, optimizer = self.model, self.model.optimizer
        key = (tuple(X.shape), tuple(y.shape))
        draws = self._draws.get(key)
        if draws is None:
            draws = self._draws[key] = self._record_draws(X) if self._drawing else []
        drawn = [layer.backend.asarray(draw(rng), dtype) for layer, rng, draw, _, dtype in draws]
        # new_pass() set the loss's sum to 0.0: the step starts the carried sums from zero.
        fresh = not _xp.is_array(model.loss.accumulated_sum)
        optimizer.pre_update_params()
        state = [getattr(holder, name) for holder, name in self._state_slots]
        state, self._sums, self.record, out = self._compiled(
            state,
            self._sums,
            self.record,
            X,
            y,
            optimizer.iterations,
            optimizer.current_learning_rate,
            fresh,
            drawn,
        )
        for (holder, name), value in zip(self._state_slots, state, strict=True):
            setattr(holder, name, value)
        optimizer.post_update_params()
        # The parts show the running sums as an eager step leaves them.
        summed = zip(self._parts_summed, self._sums[::2], self._counts[key])  # noqa: B905
        for part, total, count in summed:
            part.accumulated_sum = total
            part.accumulated_count = (0 if fresh else part.accumulated_count) + count
        data_loss, reg_loss, accuracy, self.figures = out
        return data_loss, reg_loss, math.nan if accuracy is None else accuracy

    def divergence(self, record: tuple[Any, Any, Any]) -> tuple[float, int] | None:
        """(the first non-finite loss, the iteration of its step) that ``record`` holds, or
        None; reads from the device (it waits for the step that made the record)."""
        to_numpy = self.backend.to_numpy
        if not (self.guard and bool(to_numpy(record[0]))):
            return None
        return float(to_numpy(record[1])), int(to_numpy(record[2]))

    def _record_draws(self, X: Any) -> list[tuple[Any, ...]]:
        """What the layers draw in a forward pass over a batch like ``X``: one eager pass in
        which every draw is noted (zeros stand in), with every part put back after it."""
        noted: list[tuple[Any, ...]] = []

        def note(layer: Any, rng: Any, draw: Callable[..., Any], shape: Any, dtype: Any) -> Any:
            noted.append((layer, rng, draw, shape, dtype))
            return self.xp.zeros(shape, dtype=dtype, device=self.backend.device)

        with _Scratch(self._parts):
            token = HOST_DRAWS.set(note)
            try:
                self.model.forward(X, training=True)
            finally:
                HOST_DRAWS.reset(token)
        return noted

    # -- traced once per batch shape ---------------------------------------------------------
    def _pure(
        self,
        state: list[Any],
        sums: list[Any],
        record: tuple[Any, Any, Any],
        X: Any,
        y: Any,
        iterations: Any,
        lr: Any,
        fresh: Any,
        drawn: list[Any],
    ) -> tuple[list[Any], list[Any], tuple[Any, Any, Any], tuple[Any, ...]]:
        self.traces += 1
        model, optimizer, xp = self.model, self.model.optimizer, self.xp
        drawn = list(drawn)

        def feed(layer: Any, rng: Any, draw: Any, shape: Any, dtype: Any) -> Any:
            return drawn.pop(0)

        with _Scratch(self._parts), _ConstantsOfTrace():
            for (holder, name), value in zip(self._state_slots, state, strict=True):
                setattr(holder, name, value)
            for part, total in zip(self._parts_summed, sums[::2]):  # noqa: B905
                part.accumulated_sum = xp.where(fresh, xp.zeros_like(total), total)
                part.accumulated_count = 0
            optimizer.iterations, optimizer.current_learning_rate = iterations, lr
            token = HOST_DRAWS.set(feed)
            try:
                data_loss, reg_loss, accuracy = model._step(X, y, guard=False, counted=False)
            finally:
                HOST_DRAWS.reset(token)
            new = [getattr(holder, name) for holder, name in self._state_slots]
            # The epoch's figures so far, as calculate_accumulated gives them after this step
            # (the penalty on the updated parameters).
            counts = [part.accumulated_count for part in self._parts_summed]
            self._counts[(tuple(X.shape), tuple(y.shape))] = counts
            new_sums = []
            for part, count, old in zip(self._parts_summed, counts, sums[1::2]):  # noqa: B905
                new_sums += [part.accumulated_sum, xp.where(fresh, 0, old) + count]
            means = [
                total / xp.astype(xp.maximum(count, 1), total.dtype)
                for total, count in zip(new_sums[::2], new_sums[1::2])  # noqa: B905
            ]
            epoch_reg = model.loss.regularization_loss()
        epoch_data = means[0]
        epoch_accuracy = means[1] if len(means) > 1 else math.nan
        figures = [epoch_data + epoch_reg, epoch_data, epoch_reg, epoch_accuracy]
        dtype = epoch_data.dtype
        figures_array = xp.stack([xp.astype(xp.asarray(f), dtype) for f in figures])
        if self.guard:
            diverged, bad_loss, bad_at = record
            loss = data_loss + reg_loss
            finite = xp.isfinite(loss)
            keep = finite & ~diverged
            # The model's state stays as it was from the first non-finite loss on.
            new = [xp.where(keep, a, old) for a, old in zip(new, state, strict=True)]
            first = ~finite & ~diverged
            record = (
                diverged | ~finite,
                xp.where(first, xp.astype(loss, bad_loss.dtype), bad_loss),
                xp.where(first, xp.astype(xp.asarray(iterations), bad_at.dtype), bad_at),
            )
        if not _xp.is_array(accuracy):
            accuracy = None
        return new, new_sums, record, (data_loss, reg_loss, accuracy, figures_array)


class _Scratch:
    """Every attribute of ``parts`` as it was before the block, after it: what a trace sets
    on them (tracers, counts) goes, and nothing of a step stays on the objects."""

    def __init__(self, parts: list[Any]) -> None:
        self.parts = parts

    def __enter__(self) -> None:
        self.saved = [(part, dict(vars(part))) for part in self.parts]

    def __exit__(self, *exc: Any) -> None:
        for part, attributes in self.saved:
            vars(part).clear()
            vars(part).update(attributes)


class _ConstantsOfTrace:
    """The constants that ``nnx._xp`` caches, made during a trace, are the trace's own: they
    leave the cache when it ends (a later trace must not see them)."""

    def __enter__(self) -> None:
        self.before = set(_xp._CONSTANTS)

    def __exit__(self, *exc: Any) -> None:
        for key in [key for key in _xp._CONSTANTS if key not in self.before]:
            del _xp._CONSTANTS[key]
