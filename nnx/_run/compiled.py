"""The training step, compiled: ``Model.train_step`` as a pure function of (state, batch).

A backend that can compile (``Backend.compiler``: ``jax.jit``, torch.compile) gets the model's
own step, not a second one written for it. :class:`CompiledStep` wraps it in a function that

1. loads the training state it is given (the arrays of ``Model.get_state``) into the layers
   and the optimizer, and the numbers of this step (``Optimizer.step_factors``: the learning
   rate after its decay, Adam's bias corrections), worked out on the host by
   ``pre_update_params`` exactly as the eager step works them out,
2. runs ``Model.train_step``: the book's forward, loss, backward and update,
3. reads the new state back, and puts every part as it was (their declared state, their
   arrays of one step), so nothing traced stays behind.

The backend compiles that function once per batch shape and reuses it for every step, the
state's buffers donated to the new state. Nothing in it retraces per step: the iteration count
and the running sums are arrays the step carries (the sums inside the step's figures), the
step's factors come in as numbers, and the layers' host draws (Dropout's masks, from the same
host generators as in the eager step) come in as inputs. The host keeps the book's Python
numbers alongside (``optimizer.iterations``, ``accumulated_count``).

The other Python numbers the step reads (hyperparameters, penalties, a regression accuracy's
precision) are compiled in as constants: ``nnx._run.tracing.signature`` lists them (each part's
``config()``), and a change makes a new step.

No host read happens inside a step. The NaN guard is arrays too, and wraps the step, not the
formulas: a step whose loss is not finite leaves the whole state as it was (the optimizer's two
state writers are wrapped for the trace: ``nnx._run.tracing.guarded``), and so does every step
after it, and a record keeps the first such loss and the iteration it happened at. The training
loop reads that record when it reads from the device anyway (printing, validation, checkpoints,
the last epoch) and otherwise one epoch late, so the device runs ahead of the host.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from nnx import _state, _xp
from nnx._run import tracing as tracing
from nnx._step import Figures

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
    slots, sum_slots, count_slots, iterations, figures, record, counted, shape_counts
        What it carries from call to call (see ``__init__`` and ``prepare``); ``pure`` is its
        body: ``nnx._run.many`` runs both in its loop.
    """

    def __init__(self, model: Any, guard: bool) -> None:
        backend = model.backend
        if backend.compiler is None:
            raise ValueError(f"{backend.name} cannot compile a function.")
        self.model, self.guard, self.steps, self.traces = model, guard, 1, 0
        self.backend, self.xp = backend, backend.xp
        self.signature = tracing.signature(model)
        parts = model.parts()
        # The declared state beside Model.get_state's: the running sums, carried as arrays,
        # and their counts, which the host keeps (``_counts``: what each batch shape adds).
        self.sum_slots = _state.declared(parts, "sums")
        self.count_slots = _state.declared(parts, "counts")
        self.shape_counts: dict[tuple[Any, ...], list[int]] = {}
        self.epoch_counts = [0] * len(self.count_slots)  # the counts of the epoch so far
        self.draws: dict[tuple[Any, ...], list[tuple[Any, ...]]] = {}
        self.drawing = any(layer.draws_on_host for layer in model.layers)
        # The running sums travel in one array with the step's figures (the sums, the penalty):
        # a step's figures are the next step's sums, and each array returned costs microseconds.
        # At an epoch's start, zeros made once (70-150 us on JAX's CPU), never donated.
        size = (len(self.sum_slots) + 1,)
        self._zeros = self.xp.zeros(size, dtype=model.dtype, device=backend.device)
        self.figures = self._zeros
        self.record: tuple[Any, ...] = ()
        self._ends: Any = None  # the boundary's helper, made on first use
        self._tripped, self._place = True, 0  # _place: the step's place in its epoch
        self.counted: int | None = None  # the count the device's array holds, when known
        self._compiled = backend.compiler.compile(self.pure, donate=(0,))
        self.loops: dict[int, Any] = {}  # its body looped, per batch size (nnx._run.many)
        self.seconds_per_step: float | None = None  # measured by the loop's first call
        self.sent: tuple[list[list[float]], Any] = ([], None)  # the loop's factors, on device

    def prepare(self, steps: int) -> None:
        """Ready for a ``train`` call: the state as the model holds it now, no divergence.

        The optimizer's state is made now where missing (zeros, as its first update would
        make it), so the step takes and returns the same arrays from the first step on. The
        parts' arrays of one step go: the compiled code keeps them inside, and stale ones
        from an earlier eager step would mislead. ``record`` is (diverged, first bad loss,
        its iteration), three 0-d arrays, not donated: the loop reads an epoch's record
        while the next epoch runs.
        """
        model, optimizer, host = self.model, self.model.optimizer, self.backend.asarray
        if optimizer.iterations > tracing.MAX_COUNT - 1:  # the step adds one, in int32
            raise ValueError(
                f"Model.train: optimizer.iterations={optimizer.iterations} does not fit the "
                f"compiled step's 32-bit counter (at most {tracing.MAX_COUNT}); train with "
                "compile=False, which counts in Python integers."
            )
        optimizer.make_state(model.trainable_layers)
        slots = _state.state_slots(model.layers, optimizer)
        tracing.refuse_tied(slots)
        self.slots = list(slots.values())
        for part in model.parts():
            part.clear_step()
        # The device's counter, made again only where the host's differs (a new array costs
        # more than a small model's step).
        if self.counted != optimizer.iterations:
            self.iterations, self.counted = host(optimizer.iterations, self.xp.int32), None
        self._place, self.steps = 0, steps
        if self._tripped:  # a record that saw no divergence serves the next call as it is
            self.record = (host(False), host(0.0, model.dtype), host(0, self.xp.int32))
            self._tripped = False

    # -- on the host, every step -------------------------------------------------------------
    def __call__(self, X: Any, y: Any) -> tuple[Any, Any, Any]:
        """One training step; returns (data loss, regularization loss, accuracy) as arrays."""
        optimizer = self.model.optimizer
        optimizer.pre_update_params()  # this step's factors, as the eager step computes them
        factors = tuple(getattr(optimizer, name) for name in optimizer.step_factors)
        key = (X.shape, y.shape)  # tuples, as the standard has them
        draws = self.draws.get(key)
        if draws is None:  # a batch shape not seen yet: a new program
            self._new_program()
            draws = self.draws[key] = self.record_draws(X) if self.drawing else []
        drawn = [layer.backend.asarray(draw(rng), dtype) for layer, rng, draw, _, dtype in draws]
        slots = self.slots
        state = [getattr(holder, name) for holder, name in slots]
        state.append(self.iterations)
        fresh = self._place == 0
        try:
            state, record, out = self._compiled(
                state, self._zeros if fresh else self.figures, self.record, X, y, drawn, factors
            )
        except Exception as err:
            self.failed(err)
            raise
        self.iterations = state.pop()
        # Inline loops: this is every step's host work, a tenth of a small model's step.
        for (holder, name), value in zip(slots, state):  # noqa: B905
            setattr(holder, name, value)
        if record:
            self.record = record
        # The host's numbers, as an eager step leaves them.
        optimizer.post_update_params()
        self.counted = optimizer.iterations
        added = self.shape_counts[key]
        counts = added if fresh else [a + b for a, b in zip(self.epoch_counts, added)]  # noqa: B905
        for (part, name), count in zip(self.count_slots, counts):  # noqa: B905
            setattr(part, name, count)
        self.epoch_counts = counts
        self._place = (self._place + 1) % self.steps
        data_loss, reg_loss, accuracy, self.figures = out
        return data_loss, reg_loss, math.nan if accuracy is None else accuracy

    def failed(self, err: Exception) -> None:
        """A trace that failed: raise naming the part whose code failed, as export does."""
        model, instead = self.model, "pass compile=False"
        where = "Model.train: the compiled step"
        tracing.name_the_part(err, model.parts(), tracing.in_model(model), where, instead)

    def _new_program(self) -> None:
        """Before a batch shape's first step, which traces and compiles a new program: past
        ``MAX_PROGRAMS`` of them, say why training keeps compiling, and let the old programs go
        (memory would grow with every one)."""
        if len(self.shape_counts) < tracing.MAX_PROGRAMS:
            return
        tracing.warn_programs(self.traces)
        self.shape_counts.clear()
        self.draws.clear()
        self._compiled = self.backend.compiler.compile(self.pure, donate=(0,))

    def epoch_figures(self) -> Any:
        """(loss, data loss, regularization loss, accuracy) of the epoch so far, indexed 0
        to 3: all four read from the device when the first is read."""
        array, counts, to_numpy = self.figures, self.epoch_counts, self.backend.to_numpy
        return Figures(lambda: (to_numpy(array).tolist(), counts))  # type: ignore[return-value]

    def boundary(self, last: bool, check: bool) -> str | None:
        """The runner's boundary (``Eager.boundary``) in one compiled call, not a dispatch an
        op: with ``check``, the key of an array of the state that holds NaN or infinity, else
        None; at the end of a call (``last``), the epoch's running sums onto the loss and the
        accuracy (``accumulated_sum``), as an eager step leaves them."""
        if not (check or last):
            return None
        if self._ends is None:  # compiled where that is cheap (JAX: 50 ms; else each op is a
            # dispatch), not where it costs seconds (torch: 2 s, to save 0.1 ms a boundary)
            n, flags = len(self.sum_slots), _state.finite_flags(self.xp)
            compiler = self.backend.compiler
            ends = lambda s, a: (flags(s) if s else None, list(a[:n]))  # noqa: E731
            self._ends = compiler.compile(ends) if compiler.by_default else ends
        state = [getattr(holder, name) for holder, name in self.slots] if check else []
        found, sums = self._ends(state, self.figures)
        if last:
            _state.put(self.sum_slots, sums)
        found = self.backend.to_numpy(found).tolist() if check else []
        if all(found):
            return None  # the every-call case
        return _state.non_finite(self.model.layers, self.model.optimizer, found)

    def divergence(self, record: tuple[Any, ...]) -> tuple[float, int] | None:
        """(the first non-finite loss, the iteration of its step) that ``record`` holds, or
        None; reads from the device (it waits for the step that made the record)."""
        if not (self.guard and bool((to_numpy := self.backend.to_numpy)(record[0]))):
            return None
        self._tripped = True
        return float(to_numpy(record[1])), int(to_numpy(record[2]))

    def record_draws(self, X: Any) -> list[tuple[Any, ...]]:
        """What the layers draw in a forward pass over a batch like ``X``: one eager pass in
        which every draw is noted (zeros stand in), with every part put back after it."""
        noted: list[tuple[Any, ...]] = []

        def note(layer: Any, rng: Any, draw: Callable[..., Any], shape: Any, dtype: Any) -> Any:
            noted.append((layer, rng, draw, shape, dtype))
            return self.xp.zeros(shape, dtype=dtype, device=self.backend.device)

        with self._borrowed(), _xp.draws_from(note):
            self.model.forward(X, training=True)
        return noted

    def _borrowed(self) -> Any:
        """The parts as they were before the block, after it: their declared state (the
        model's, the running sums and counts, the step's factors) put back, and their arrays
        of one step gone, so nothing a trace set (tracers) stays on them."""
        optimizer = self.model.optimizer
        factors = [(optimizer, name) for name in optimizer.step_factors]
        slots = [*self.slots, *self.sum_slots, *self.count_slots, *factors]
        return _state.borrowed(slots, self.model.parts())

    # -- traced once per batch shape ---------------------------------------------------------
    def pure(
        self,
        state: list[Any],
        carried: Any,
        record: tuple[Any, ...],
        X: Any,
        y: Any,
        drawn: list[Any],
        factors: tuple[Any, ...],
    ) -> tuple[list[Any], tuple[Any, ...], tuple[Any, ...]]:
        self.traces += 1
        model, optimizer, xp = self.model, self.model.optimizer, self.xp
        iterations = state[-1]
        drawn = list(drawn)
        checked: dict[str, Any] = {}

        def feed(layer: Any, rng: Any, draw: Any, shape: Any, dtype: Any) -> Any:
            return drawn.pop(0)

        def guard(loss: Any) -> None:  # the optimizer's writers read "keep" (tracing.guarded)
            finite = xp.isfinite(loss)
            checked.update(loss=loss, finite=finite, keep=finite & ~record[0])

        with self._borrowed(), _xp.plain_operations(), tracing.guarded(optimizer, checked):
            _state.put(self.slots, state[:-1])
            _state.put(self.sum_slots, [carried[i] for i in range(len(self.sum_slots))])
            _state.put(self.count_slots, [0] * len(self.count_slots))
            _state.put([(optimizer, name) for name in optimizer.step_factors], factors)
            with _xp.draws_from(feed):
                data_loss, reg_loss, accuracy = model.train_step(
                    X, y, guard=guard if self.guard else False, counted=False
                )
            new = [getattr(holder, name) for holder, name in self.slots]
            new.append(xp.where(checked["keep"], iterations + 1, iterations) if checked else
                       iterations + 1)  # fmt: skip
            new_sums = [getattr(holder, name) for holder, name in self.sum_slots]
            self.shape_counts[(X.shape, y.shape)] = [getattr(p, n) for p, n in self.count_slots]
            # The penalty on the updated parameters, as calculate_accumulated gives it.
            epoch_reg = model.loss.regularization_loss()
        dtype = new_sums[0].dtype
        figures = xp.stack([xp.astype(xp.asarray(f), dtype) for f in (*new_sums, epoch_reg)])
        if self.guard:
            diverged, bad_loss, bad_at = record
            loss, finite = checked["loss"], checked["finite"]
            first = ~finite & ~diverged
            record = (
                diverged | ~finite,
                xp.where(first, xp.astype(loss, bad_loss.dtype), bad_loss),
                xp.where(first, iterations, bad_at),
            )
        out = (data_loss, reg_loss, accuracy if _xp.is_array(accuracy) else None, figures)
        return new, record if self.guard else (), out
