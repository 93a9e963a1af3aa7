"""Evaluation and prediction, compiled, where the training step is (``Model.evaluate``,
``Model.predict`` and validation in ``Model.train`` on JAX).

Eagerly, each operation of a forward pass is a dispatch of its own on JAX: evaluating the
spiral's 300 rows took 1.1 ms (NumPy: 0.2 ms), and validation every epoch made a compiled
epoch sixteen times slower. Compiled, a batch is one call. The passes are the model's own
(``forward`` with ``training=False``, ``score``), run on the parameters they are given, as
the compiled step runs ``train_step``; the running sums of the loss and the accuracy come back
as arrays, and their counts (Python numbers) are what the trace of each batch shape added.

Where a pass fails compiled, the runner runs it eagerly: an error of the data or the model
comes again from the eager pass, and a part that cannot be traced (one that reads an array on
the host when not training) keeps the model's passes eager from then on, since these methods
have no ``compile`` switch to turn it off.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from nnx import _state, _xp
from nnx._run import tracing as tracing
from nnx._step import batches

__all__ = ["CompiledPasses"]


class CompiledPasses:
    """``model``'s evaluation and prediction passes, compiled by its backend's compiler."""

    def __init__(self, model: Any) -> None:
        self.model, self.backend = model, model.backend
        self.signature = tracing.signature(model)
        parts = model.parts()
        self.slots = list(_state.state_slots(model.layers, None).values())  # the parameters
        self.sum_slots = _state.declared(parts, "sums")
        self.count_slots = _state.declared(parts, "counts")
        self.added: dict[tuple[Any, ...], list[int]] = {}  # counts a batch shape adds
        self.shapes: set[int] = set()  # the batch sizes compiled (see ``takes``)
        compile = self.backend.compiler.compile
        self._score, self._forward = compile(self._pure_score), compile(self._pure_forward)
        self.works = True  # False once a part could not be traced: the eager passes run

    def takes(self, X: Any, batch_size: int | None) -> bool:
        """Whether these passes run ``X`` compiled: each new batch shape is a compile (tens of
        milliseconds), so past ``MAX_PROGRAMS`` shapes (a ``predict`` of every request size)
        new shapes run eagerly, as each would cost more to compile than to run."""
        n = X.shape[0]
        if n == 0:
            return False
        size = n if batch_size is None else min(batch_size, n)
        rows = {size, n % size or size}
        return len(self.shapes | rows) <= tracing.MAX_PROGRAMS

    def evaluate(self, X: Any, y: Any, batch_size: int | None) -> tuple[float, float]:
        """(loss, accuracy) over ``X``, ``y``, as the eager pass gives them."""
        model, total = self.model, None
        params = [getattr(holder, name) for holder, name in self.slots]
        counts = [0] * len(self.count_slots)
        for batch_X, batch_y in batches(self.backend.xp, X, y, batch_size):
            sums = self._score(params, batch_X, batch_y)
            # Added on the device in the eager pass's order, so the figures are its figures.
            total = sums if total is None else [a + b for a, b in zip(total, sums, strict=True)]
            added = self.added[(batch_X.shape, batch_y.shape)]
            counts = [a + b for a, b in zip(counts, added, strict=True)]
        _state.put(self.sum_slots, total or [0.0] * len(self.sum_slots))
        _state.put(self.count_slots, counts)
        loss = float(model.loss.calculate_accumulated())
        accuracy = float(model.accuracy.calculate_accumulated()) if model.accuracy else math.nan
        return loss, accuracy

    def predict(self, X: Any, batch_size: int | None) -> Any:
        """The outputs for ``X``, as the eager pass gives them."""
        params = [getattr(holder, name) for holder, name in self.slots]
        outputs = [
            self._forward(params, batch_X)
            for batch_X, _ in batches(self.backend.xp, X, None, batch_size)
        ]
        return outputs[0] if len(outputs) == 1 else self.backend.xp.concat(outputs, axis=0)

    # -- traced once per batch shape ---------------------------------------------------------
    def _pure_forward(self, params: list[Any], X: Any) -> Any:
        self.shapes.add(X.shape[0])
        with self._borrowed():
            _state.put(self.slots, params)
            return self.model.forward(X, training=False)

    def _pure_score(self, params: list[Any], X: Any, y: Any) -> list[Any]:
        model = self.model
        self.shapes.add(X.shape[0])
        with self._borrowed():
            _state.put(self.slots, params)
            _state.put(self.sum_slots, [0.0] * len(self.sum_slots))
            _state.put(self.count_slots, [0] * len(self.count_slots))
            model.score(model.forward(X, training=False), y)
            self.added[(X.shape, y.shape)] = [getattr(h, name) for h, name in self.count_slots]
            return [getattr(holder, name) for holder, name in self.sum_slots]

    @contextmanager
    def _borrowed(self) -> Iterator[None]:
        """Every part as it was after the trace, and the fused kernels out of it."""
        slots = [*self.slots, *self.sum_slots, *self.count_slots]
        with _state.borrowed(slots, self.model.parts()), _xp.plain_operations():
            yield
