"""Many training steps in one compiled call (``Model.train(steps_per_execution=K)``, Keras's
name), where the backend's compiler has a loop (``Compiler.loop``: JAX's ``fori_loop``).

The training loop hands this runner tokens, not slices: which rows of the data a step takes
(their place in the epoch, the epoch's order when shuffling). The runner keeps them until it
has ``K``, or until the loop reads a figure, validates, saves or ends, and runs them as one
call of a program that cuts each batch from the whole data on the device and runs the compiled
step's body (``CompiledStep.pure``: the model's one ``train_step``, its NaN guard, running
sums) once per token. The number of steps is an argument of the program: one compile serves
every K up to ``CAPACITY`` for a batch shape; a ragged last batch is a call of its own. The
host counts each step as the eager step does when it takes the token (``optimizer.iterations``,
and the step's factors, which go in as a table); the figures of a step or an epoch come from
the call's per-step rows.
Layers that draw on the host draw at the token too, from their generators in the eager
order; a call's draws (Dropout's masks) go in as one table per layer.
"""

from __future__ import annotations

import math
import time
from typing import Any

from nnx import _state
from nnx._run import tracing as tracing
from nnx._run.runners import Compiled
from nnx._step import CallFigures, EpochFigures, StepFigures
from nnx.data import rows_table, stacked

__all__ = ["CAPACITY", "ManySteps"]

# The most steps a call runs (the rows of its figures and index tables): past 128, a call's
# fixed cost (~100 us on JAX's CPU) is under a microsecond a step.
CAPACITY = 128
# Seconds of work one call does at most when K is left to nnx, so Ctrl-C stays prompt.
_SECONDS_PER_CALL = 0.5
_DRAWS_BYTES = 2**26  # a call's host draws at most (64 MiB): fewer steps a call above it
_FEW = 20  # steps in a train call below which nnx runs one step a call (K left out)
_TOKEN = object()  # what the runner's batches give as X: the token is in y


class ManySteps(Compiled):
    """Compiled steps, ``steps_per_execution`` of them per call (see the module's text)."""

    @staticmethod
    def accepts(model: Any, X: Any, compile: bool | None, per_call: int | None = 1) -> bool:
        return bool(
            Compiled.accepts(model, X, compile, per_call)
            and per_call != 1
            and model.backend.compiler.loop is not None
        )

    def __init__(self, model: Any, guard: bool = True) -> None:
        super().__init__(model, guard)
        self._pending: list[tuple[Any, int, int]] = []  # tokens not run yet
        self._factors: list[list[float]] = []  # their steps' factors (step_factors)
        self._drawn: list[list[Any]] = []  # their host draws (Dropout's masks), in order
        self._call = CallFigures(self)  # the call the pending tokens will make
        self._tokens: list[tuple[Any, Any]] = []  # an epoch's, kept when not shuffling

    def prepare(self, steps: int) -> None:
        super().prepare(steps)
        compiled = self.compiled
        assert compiled is not None
        self._before = self.model.optimizer.iterations  # the host's count before them
        self._progress = (0, 0)  # the epoch's steps so far (see step)
        self._known: dict[tuple[int, int], list[int]] = {}  # counts per progress
        # The call that ran last: none yet (an empty call, so the first call's flush does not
        # wait for that call itself, but goes on to the next tokens while the device runs it).
        self._last, self._last_count = CallFigures(self), 0
        self.width = len(compiled.sum_slots) + 4  # a step's row: 3 figures, sums, penalty
        seconds, K = compiled.seconds_per_step, self.steps_per_execution
        # Left to nnx, a call of a few steps runs one step a call: measured on S, the loop's
        # setup costs more than it saves below about 20 steps.
        self._single = K is None and (self.steps_in_call or _FEW) < _FEW
        # K, or one step a call until the first call measured one (K follows from it); the
        # first calls run 8, 16, ... steps, so that the device starts while the host goes on.
        self._target = min(K, CAPACITY) if K else CAPACITY if seconds is None else _limit(seconds)
        self._limit = 1 if K is None and seconds is None else min(8, self._target)

    def batches(  # type: ignore[override]
        self, X: Any, y: Any, batch_size: int | None, order: Any
    ) -> list[tuple[Any, Any]]:
        if self._single:
            return super().batches(X, y, batch_size, order)  # type: ignore[return-value]
        n = X.shape[0]
        size = n if batch_size is None else min(batch_size, n)
        if order is None and self._tokens:  # the same every epoch (a list costs 1 us)
            return self._tokens
        self._data = (X, y, size, math.ceil(n / size))
        sizes = [size] * (n // size) + ([n % size] if n % size else [])
        tokens = [(_TOKEN, (order, place, rows)) for place, rows in enumerate(sizes)]
        self._tokens = tokens if order is None else []
        return tokens

    def step(self, X: Any, y: Any) -> tuple[Any, Any, Any]:
        if X is not _TOKEN:  # a runner's batches of its own: one step, as Compiled runs it
            self.flush()
            return super().step(X, y)
        order, place, size = y
        if self._pending and size != self._pending[-1][2]:  # another shape: another program
            self.flush()
        pending = self._pending
        if not pending:  # a call starts: how many steps it takes is fixed until it runs
            self._before = self.model.optimizer.iterations
            self._room = min(self._limit, self._program(size)[1])
        pending.append(y)
        # Where the epoch is: full batches so far, and the ragged last batch's size once run.
        full, ragged = (0, 0) if place == 0 else self._progress
        self._progress = (full + 1, 0) if size == self._data[2] else (full, size)
        optimizer = self.model.optimizer  # the host's numbers, as an eager step leaves them
        optimizer.pre_update_params()  # the step's factors, worked out in float64
        self._factors.append([getattr(optimizer, name) for name in optimizer.step_factors])
        optimizer.post_update_params()
        if self.compiled.drawing:  # type: ignore[union-attr]  # now: the eager step's order
            self._drawn.append([draw(rng) for _, rng, draw, _, _ in self._draws(size)])
        row = StepFigures(self._call, len(pending) - 1)
        if len(pending) >= self._room:
            self.flush()
        return row  # type: ignore[return-value]

    def epoch_figures(self) -> Any:
        if self._single:
            return super().epoch_figures()
        call, j, progress = self._call, len(self._pending) - 1, self._progress
        if j < 0:  # the epoch's last step is in the call that ran last
            call, j = self._last, self._last_count - 1
        figures = EpochFigures(call, j, progress)
        call.epochs.append(figures)
        return figures  # type: ignore[return-value]

    def boundary(self, last: bool, check: bool) -> str | None:
        self.flush()
        return super().boundary(last, check)

    def divergence(self, now: bool) -> tuple[float, int] | None:
        if now:
            self.flush()
        elif self._unread and self._unread[-1] is self.compiled.record:  # type: ignore[union-attr]
            return None  # no call ran since the last look
        return super().divergence(now)

    def evaluate(self, X: Any, y: Any, batch_size: int | None) -> tuple[float, float]:
        self.flush()
        return super().evaluate(X, y, batch_size)

    def flush(self) -> None:
        """Run the pending tokens as one call of the compiled loop."""
        pending, call, compiled, factors = self._pending, self._call, self.compiled, self._factors
        if not pending:
            return
        assert compiled is not None
        drawn, self._drawn = self._drawn, []
        self._pending, self._call, self._factors = [], CallFigures(self), []
        X, y, full, steps = self._data
        size, backend = pending[0][2], self.model.backend
        program, capacity = self._program(size)
        table = None
        if pending[0][0] is not None:  # shuffled: the rows each step takes, padded
            places = [(order, place) for order, place, _ in pending]
            table = backend.asarray(rows_table(places, size, full, capacity))
        draws = [  # each layer's draws of the call's steps, one table each, padded
            backend.asarray(stacked([step[k] for step in drawn], capacity), dtype)
            for k, (*_, dtype) in enumerate(self._draws(size) if drawn else [])
        ]
        state = [getattr(holder, name) for holder, name in compiled.slots]
        state.append(compiled.iterations)
        factors += [factors[0]] * (capacity - len(factors))  # padded, never read
        if factors != compiled.sent[0]:  # a constant rate (SGD without decay) is sent once
            compiled.sent = (factors, backend.asarray(factors, self.model.dtype))
        try:
            state, figures, record, rows = program(
                state, compiled.figures, compiled.record, X, y, table, compiled.sent[1], draws,
                pending[0][1], len(pending), full, steps,
            )  # fmt: skip
        except Exception as err:
            self.model.optimizer.restore_iterations(self._before)  # none of them ran
            compiled.failed(err)
            raise
        started = time.perf_counter()
        compiled.iterations = state.pop()
        _state.put(compiled.slots, state)
        compiled.record, compiled.figures = record, figures
        compiled.counted = self.model.optimizer.iterations
        call.rows = rows
        # The call before this one is done, or nearly: its figures come to the host now,
        # while the device runs this one, rather than all at the end of training.
        self._last.fetch()
        self._last, self._last_count = call, len(pending)
        counts = self.counts_after(self._progress)
        _state.put(compiled.count_slots, counts)
        compiled.epoch_counts = counts
        if self.steps_per_execution is None and compiled.seconds_per_step is None:
            backend.to_numpy(figures)  # waits for the call: a step's time sets K from now on
            compiled.seconds_per_step = (time.perf_counter() - started) / len(pending)
            self._target = _limit(compiled.seconds_per_step)
        self._limit = min(self._target, 2 * self._limit)

    def counts_after(self, progress: tuple[int, int]) -> list[int]:
        """The running counts (samples seen) after ``progress``: (full batches, the ragged
        batch's size or 0) of an epoch, from what the traces found a batch of each size adds."""
        counts = self._known.get(progress)
        if counts is None:
            assert self.compiled is not None
            known, X, y = self.compiled.shape_counts, self._data[0], self._data[1]
            counts = [0] * len(self.compiled.count_slots)
            for size, n in ((self._data[2], progress[0]), (progress[1], progress[1] > 0)):
                if n:
                    key = ((size, *X.shape[1:]), (size, *y.shape[1:]))
                    counts = [total + n * count for total, count in zip(counts, known[key])]  # noqa: B905
            self._known[progress] = counts
        return counts

    def _program(self, size: int) -> tuple[Any, int]:
        """The compiled loop for batches of ``size`` rows, made on first use, and the most
        steps a call of it runs: fewer than ``CAPACITY`` where each step's host draws are
        large (a call's draws come in as one table, padded to that many steps)."""
        compiled = self.compiled
        assert compiled is not None
        if size not in compiled.loops and len(compiled.loops) >= tracing.MAX_PROGRAMS:
            tracing.warn_programs(compiled.traces)  # the old programs go
            compiled.loops.clear()
        if size not in compiled.loops:
            drawn = sum(8 * math.prod(shape) for *_, shape, _ in self._draws(size))
            capacity = max(1, min(CAPACITY, _DRAWS_BYTES // max(drawn, 1)))
            compiled.loops[size] = (_loop(compiled, size, self.width, capacity), capacity)
        return compiled.loops[size]  # type: ignore[no-any-return]

    def _draws(self, size: int) -> list[tuple[Any, ...]]:
        """What the layers draw in a step on ``size`` rows (``CompiledStep.record_draws``)."""
        compiled, (X, y) = self.compiled, self._data[:2]
        assert compiled is not None
        if not compiled.drawing:
            return []
        key = ((size, *X.shape[1:]), (size, *y.shape[1:]))
        if key not in compiled.draws:
            compiled.draws[key] = compiled.record_draws(X[:size, ...])
        return compiled.draws[key]  # type: ignore[no-any-return]


def _loop(compiled: Any, size: int, width: int, capacity: int) -> Any:
    """``compiled``'s step as a compiled loop over batches of ``size`` rows cut from the whole
    data: each step takes rows ``table[i]`` (shuffled) or the ``place``-th run of ``size``
    rows from ``place * full``; the running sums start again where ``place`` is 0."""
    backend, model = compiled.backend, compiled.model
    xp, dtype, n = backend.xp, model.dtype, len(model.optimizer.step_factors)

    def program(
        state: Any, carried: Any, record: Any, X: Any, y: Any, table: Any, factors: Any,
        draws: Any, start: Any, count: Any, full: Any, steps: Any,
    ) -> Any:  # fmt: skip
        offsets = xp.arange(size)

        def body(i: Any, carry: Any) -> Any:
            state, carried, record = carry
            place = (start + i) % steps
            if table is None:
                rows = place * full + offsets
            else:
                rows = xp.take(table, xp.reshape(i, (1,)), axis=0)[0, ...]
            batch_X, batch_y = xp.take(X, rows, axis=0), xp.take(y, rows, axis=0)
            carried = xp.where(place == 0, xp.zeros_like(carried), carried)
            # The step's factors, from the host (1 - 0.999**t in float32 is off by 1e-5).
            at = xp.reshape(i, (1,))
            mine = tuple(xp.take(factors, at, axis=0)[0, k] for k in range(n))
            drawn = [xp.take(d, at, axis=0)[0, ...] for d in draws]  # this step's masks
            state, new_record, out = compiled.pure(
                state, carried, record, batch_X, batch_y, drawn, mine
            )
            data_loss, reg_loss, accuracy, figures = out
            accuracy = math.nan if accuracy is None else accuracy
            head = xp.stack([xp.asarray(v, dtype=dtype) for v in (data_loss, reg_loss, accuracy)])
            row = xp.concat([head, figures])
            return (state, figures, new_record if compiled.guard else record), row

        rows = xp.zeros((capacity, width), dtype=dtype)
        (state, carried, record), rows = backend.compiler.loop(
            count, body, (state, carried, record), rows
        )
        return state, carried, record, rows

    return backend.compiler.compile(program, donate=(0,))


def _limit(seconds_per_step: float) -> int:  # K when left to nnx: _SECONDS_PER_CALL of work
    return max(1, min(CAPACITY, int(_SECONDS_PER_CALL / max(seconds_per_step, 1e-9))))
