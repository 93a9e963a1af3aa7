"""Data-parallel training on a Dask cluster: coarse tasks, one reduction per step.

With ``nnx._run.cluster``, the one module of nnx that talks to ``dask.distributed`` (a host
boundary, as ``io`` is for files). On the ``dask`` backend, with a ``distributed.Client``
active and the data as dask arrays, a training step is a handful of tasks instead of one per
array operation per chunk:

1. per chunk of the batch, on the worker that holds it: nnx's own forward and backward pass
   on the worker's NumPy (a copy of the model, ``nnx._run.replica``), returning the chunk's
   gradients scaled by ``rows / batch_rows`` and its sums of losses and hits;
2. a tree sum of those: the scaled gradients add up to the gradient of the mean loss over the
   whole batch (``mean = sum over chunks of rows / batch_rows * chunk mean``; a penalty's
   gradient, in every chunk's, is scaled by weights that add up to 1, so it counts once);
3. the optimizer's own ``update_layers`` on the summed gradients, in one task, giving the new
   parameters and optimizer state, which stay on the cluster as futures.

The layers hold the new state as dask arrays over those futures, so everything else in nnx
(files, ``Model.to``, the fine-grained path) reads them as before. Only the step's figures
(three numbers) come to the host, and only when read: printing, the NaN check.

A cluster can lose a worker, and with it the futures of the state. So at the loop's boundaries
(where it reads the device anyway: a print, validation, a checkpoint, the end of the call) the
runner brings the state to the client; a step that fails puts that copy back on the layers and
ends ``train`` with one error that says what happened, and the model stays usable.
"""

from __future__ import annotations

import math
import operator
import uuid
from typing import Any

from nnx import _state
from nnx._run import cluster as cluster
from nnx._run import replica as worker
from nnx._run.cluster import Survivor
from nnx._run.runners import Eager, kept
from nnx._run.tracing import signature
from nnx._step import NonFiniteLossError, batches

__all__ = ["DataParallel"]

_FAN_IN = 8  # chunk results summed per task of the tree
# Steps sent before the host waits for the oldest: with two, the scheduler holds the next
# step while one runs, so no message from the client lies between two steps.
_IN_FLIGHT = 2
_N_FIGURES = 9  # what _figures returns


class DataParallel(Survivor, Eager):
    """``model``'s training step, evaluation and prediction as coarse tasks on ``client``.

    Every task gets a name of its own (``nnx-<kind>-<run>-<count>``): dask would otherwise
    hash the arguments of each task for its key, which costs more than the task's own work
    on a small model.
    """

    @staticmethod
    def accepts(model: Any, X: Any, compile: bool | None, per_call: int | None = 1) -> bool:
        """On the ``dask`` backend with the data as dask arrays and a ``distributed.Client``
        active; otherwise the model's own step runs, fine-grained on dask.

        Layers that draw random numbers on the host (Dropout) keep the fine-grained path: their
        masks are drawn per batch on the client, as on NumPy.
        """
        if model.backend.lazy is None or not hasattr(X, "__dask_graph__"):
            return False
        return (
            not any(layer.draws_on_host for layer in model.layers) and cluster.client() is not None
        )

    @classmethod
    def make(cls, model: Any, guard: bool = True) -> DataParallel:
        """The model's runner on the active Client, kept while the client and the parts'
        Python numbers stay the same: the workers' copy holds those numbers (Adam's betas,
        ...), so a change of any makes a new copy, as it makes a new compiled step."""
        client = cluster.client()
        runners = kept(model)
        runner = runners.get("data_parallel")
        if runner is None or runner.client is not client or runner.signature != signature(model):
            runner = runners["data_parallel"] = cls(model, client)
        runner.guard = guard
        return runner  # type: ignore[no-any-return]

    def __init__(self, model: Any, client: Any) -> None:
        cluster.check_workers(client)
        super().__init__(model)
        self.client = client
        self.signature = signature(model)
        if model.optimizer is not None:
            model.optimizer.make_state(model.trainable_layers)
        slots = _state.state_slots(model.layers, model.optimizer)
        self.params = [(holder, n) for holder, n in slots.values() if n in holder.parameters]
        self.extra = [(holder, n) for holder, n in slots.values() if n not in holder.parameters]
        index = {id(layer): i for i, layer in enumerate(model.layers)}
        where = [(index[id(holder)], name) for holder, name in [*self.params, *self.extra]]
        copy = worker.Replica(model, where, len(self.params))
        # Every worker deserializes it once and keeps the rebuilt model for every step.
        self.replica = client.scatter(copy, broadcast=True, hash=False)
        self.state: list[Any] = []  # futures: the parameters, the optimizer's state
        self.held: list[Any] = []  # the arrays the layers got from them
        self.sent: list[Any] = []  # a future of each step in flight, oldest first
        self.figures: Any = None
        self.saved: tuple[Any, ...] | None = None  # the state on the client, at a boundary
        self.run, self.count = uuid.uuid4().hex[:12], 0

    def _key(self, kind: str, *index: int) -> str:
        return "-".join(["nnx", kind, self.run, str(self.count), *map(str, index)])

    # -- training ------------------------------------------------------------------------------
    def step(self, X: Any, y: Any) -> tuple[Any, Any, Any]:
        """One step; returns (data loss, regularization loss, accuracy) of the batch."""
        try:
            return self._step(X, y)
        except NonFiniteLossError:
            raise
        except Exception as err:  # the cluster's: a lost worker, FutureCancelledError
            self._lost(err)

    def _step(self, X: Any, y: Any) -> tuple[Any, Any, Any]:
        from distributed import wait

        guard = self.guard
        model, optimizer = self.model, self.model.optimizer
        self.count += 1
        params, extra = self._state()
        self._tasks: list[Any] = []
        n = X.shape[0]
        parts = [
            self._record(worker.gradients, "gradients", self.replica, params, x, t, rows / n)
            for x, t, rows in cluster.chunks(X, y)
        ]
        optimizer.pre_update_params()
        previous = None if model.loss.accumulated_count == 0 else self.figures
        # One task sums the gradients (the last level of the tree) and updates: every hop
        # between tasks costs a scheduler round trip, a few ms.
        # The step's numbers, as the optimizer here worked them out (the counter: kernels'
        # own bias corrections count from it).
        names = ("iterations", *optimizer.step_factors)
        factors = {name: getattr(optimizer, name) for name in names}
        new = self._record(
            worker.update, "update", self.replica, params, extra, previous, factors, guard,
            *self._tree(parts, worker.add_gradients),
        )  # fmt: skip
        outputs = [self._record(operator.getitem, "state", new, i) for i in range(3)]
        if len(self.sent) >= _IN_FLIGHT:  # the host runs ahead this far, then waits
            wait(self.sent.pop(0))
        new_params, new_extra, figures = self.client.compute(outputs, optimize_graph=False)
        if guard:
            host = figures.result()
            if not math.isfinite(host[0] + host[1]):  # the update was skipped: state unchanged
                raise NonFiniteLossError(float(host[0] + host[1]))
        optimizer.post_update_params()
        self.figures = figures
        self.sent.append(new_extra)
        self._adopt(new_params, new_extra)
        values = host.tolist() if guard else self._scalars(figures, 5)
        model.loss.accumulated_sum, accuracy_sum = values[3], values[4]
        model.loss.accumulated_count += X.shape[0]
        if model.accuracy is not None:
            model.accuracy.accumulated_sum = accuracy_sum
            model.accuracy.accumulated_count += X.shape[0]
        return values[0], values[1], values[2] if model.accuracy is not None else math.nan

    def _record(self, function: Any, kind: str, *args: Any) -> Any:
        """A task of this step (Delayed), named, and counted in ``tasks``."""
        from dask import delayed

        task = delayed(function)(*args, dask_key_name=self._key(kind, len(self._tasks)))
        self._tasks.append(task)
        return task

    def _tree(self, parts: list[Any], add: Any) -> list[Any]:
        """``parts`` summed as a tree of tasks, ``_FAN_IN`` at a time, down to ``_FAN_IN`` or
        fewer: the last sum is the caller's."""
        while len(parts) > _FAN_IN:
            groups = [parts[i : i + _FAN_IN] for i in range(0, len(parts), _FAN_IN)]
            parts = [self._record(add, "sum", *g) if len(g) > 1 else g[0] for g in groups]
        return parts

    def _state(self) -> tuple[Any, Any]:
        """Futures of the parameters and the optimizer state: the last step's, while the layers
        still hold its arrays; else what the layers hold now (set by hand, loaded)."""
        from dask import delayed

        if self.state and self._holding():
            return self.state[0], self.state[1]
        now = [getattr(holder, name) for holder, name in [*self.params, *self.extra]]
        n = len(self.params)
        # Named by this run: a key made from the arrays' names could be one that the
        # scheduler is still releasing (the same model built again has the same names).
        packed = [
            delayed(list)(arrays, dask_key_name=self._key("pack", i))
            for i, arrays in enumerate((now[:n], now[n:]))
        ]
        self.state = self.client.compute(packed, optimize_graph=False)
        self.held = now
        return self.state[0], self.state[1]

    def _adopt(self, params: Any, extra: Any) -> None:
        """The new state onto the layers, as dask arrays over its futures (lazy: a layer's
        array is fetched only when something reads it). Built by hand: ``from_delayed``
        costs 0.2-0.3 ms an array, a tenth of a small model's step for its dozen arrays."""
        self.state, self.held = [params, extra], []
        for future, slots in ((params, self.params), (extra, self.extra)):
            for i, (holder, name) in enumerate(slots):
                array = cluster.item(future, i, getattr(holder, name), self._key(name, i))
                setattr(holder, name, array)
                self.held.append(array)

    def _scalars(self, future: Any, n: int) -> list[Any]:
        """The first ``n`` figures behind ``future`` as 0-d dask arrays (not computed)."""
        import dask.array as da

        figures = da.from_delayed(future, (_N_FIGURES,), dtype="float64", name=self._key("fig"))
        return [figures[i] for i in range(n)]

    # -- evaluation and prediction ------------------------------------------------------------
    def evaluate(self, X: Any, y: Any, batch_size: int | None) -> tuple[float, float]:
        """Mean data loss and accuracy over ``(X, y)``: a task per chunk, a sum, two numbers."""
        self.count += 1
        params, _ = self._state()
        self._tasks = []
        parts = [
            self._record(worker.losses, "losses", self.replica, params, x, t)
            for batch_X, batch_y in batches(self.model.backend.xp, X, y, batch_size)
            for x, t, _ in cluster.chunks(batch_X, batch_y)
        ]
        total = self._record(worker.add_sums, "sum", *self._tree(parts, worker.add_sums))
        try:
            loss_sum, rows, hits, compared, _ = self.client.compute(total).result()
        except Exception as err:  # the cluster's, as in a step
            self._lost(err)
        accuracy = hits / max(compared, 1) if self.model.accuracy is not None else math.nan
        return loss_sum / max(rows, 1), accuracy

    def predict(self, X: Any, batch_size: int | None) -> Any:
        """The outputs for ``X`` as a dask array, one task per chunk, left on the workers."""
        import dask.array as da

        self.count += 1
        params, _ = self._state()
        self._tasks = []
        width, dtype = self.model.n_outputs, self.model.dtype
        blocks = [
            da.from_delayed(
                self._record(worker.outputs, "outputs", self.replica, params, x),
                (rows, width),
                dtype=dtype,
                name=self._key("predict", len(self._tasks)),
            )
            for batch_X, _ in batches(self.model.backend.xp, X, None, batch_size)
            for x, _, rows in cluster.chunks(batch_X, None)
        ]
        return blocks[0] if len(blocks) == 1 else da.concatenate(blocks)
