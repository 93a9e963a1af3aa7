"""What ``nnx._run.distributed`` needs from ``dask`` and ``distributed`` besides its tasks: the
active client, the workers' nnx, the chunks of a batch, arrays over a task's result, and a
runner that survives the loss of its workers (``Survivor``).
"""

from __future__ import annotations

import operator
from typing import Any, NoReturn

from backends import BackendError, install_hint
from nnx import _state, _version
from nnx._run import replica as worker
from nnx._run.runners import kept

__all__ = ["Survivor", "check_workers", "chunks", "client", "item"]


class Survivor:
    """What lets the Dask runner outlive its workers: the state brought to the client at the
    loop's boundaries, put back on the layers when the cluster fails a step."""

    model: Any
    params: list[tuple[Any, str]]
    extra: list[tuple[Any, str]]
    held: list[Any]
    state: list[Any]
    sent: list[Any]
    saved: tuple[Any, ...] | None

    def prepare(self, steps: int) -> None:
        if self.saved is None or not self._holding():  # first call, or state set by hand
            self._save()

    def boundary(self, last: bool, check: bool) -> str | None:
        """The state to the client and checked there, in one round trip; at the call's end it
        stays there, on the layers, so that the model outlives any worker."""
        try:
            finite = self._save(check)
        except Exception as err:  # the cluster's, as in a step
            self._lost(err)
        if not all(finite):
            bad = self.saved[0][finite.index(False)]  # type: ignore[index]
            slots = _state.state_slots(self.model.layers, self.model.optimizer)
            return next(key for key, slot in slots.items() if slot == bad)
        if last:
            self._put_saved()
        return None

    def _holding(self) -> bool:
        """Whether the layers hold the arrays of the last step (nothing set by hand since)."""
        now = [getattr(holder, name) for holder, name in [*self.params, *self.extra]]
        return len(now) == len(self.held) and all(a is b for a, b in zip(now, self.held))  # noqa: B905

    def _save(self, check: bool = False) -> list[bool]:
        """The state to the client; with ``check``, whether each array of it is finite."""
        import dask

        xp = self.model.backend.xp
        slots = [*self.params, *self.extra]  # the order of held
        arrays = [getattr(holder, name) for holder, name in slots]
        flags = [xp.all(xp.isfinite(array)) for array in arrays] if check else []
        host = dask.compute(*arrays, *flags)
        self.saved = (slots, host[: len(arrays)], self.model.optimizer.iterations)
        return [bool(flag) for flag in host[len(arrays) :]] if check else [True] * len(arrays)

    def _put_saved(self) -> None:
        """The saved state onto the layers as the client's arrays (not scattered: no worker
        holds them), and the counter with it."""
        import dask.array as da

        assert self.saved is not None
        slots, arrays, iterations = self.saved
        self.held = [da.from_array(array) for array in arrays]
        _state.put(slots, self.held)
        self.model.optimizer.restore_iterations(iterations)
        self.state, self.sent = [], []  # the next step sends them again

    def _lost(self, err: BaseException) -> NoReturn:
        """After the cluster failed a step: the saved state back on the layers, a new copy of
        the model for the workers next time, and one error that says what happened."""
        if self.saved is not None:
            self._put_saved()
        for part in (self.model.loss, self.model.accuracy):
            if part is not None:
                part.new_pass()  # sums over futures that are gone
        kept(self.model).pop("data_parallel", None)
        raise BackendError(
            f"Model on dask: the cluster failed a step ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else 'no message'}): a worker was lost or "
            "a task failed. The model holds its state as of the loop's last print, validation, "
            "checkpoint or the start of this call (optimizer.iterations="
            f"{self.model.optimizer.iterations}), and can be saved, used or trained again; "
            "train with checkpoint= to resume a long run from its last checkpoint."
        ) from err


def client() -> Any:
    """The active ``distributed.Client``, or None (dask's local threads, where coarse tasks
    gain nothing)."""
    try:
        from distributed import get_client

        return get_client()
    except (ImportError, ValueError):
        return None


def item(future: Any, index: int, like: Any, name: str) -> Any:
    """Item ``index`` of the list behind ``future`` as a dask array of one chunk, shaped
    like ``like``: a graph of one task (``getitem``), run only when the array is read."""
    import dask.array as da
    from dask.array.utils import meta_from_array
    from dask.highlevelgraph import HighLevelGraph
    from dask.task_spec import Task, TaskRef

    key = (name,) + (0,) * like.ndim
    tasks = {key: Task(key, operator.getitem, TaskRef(future.key), index), future.key: future}
    graph = HighLevelGraph.from_collections(name, tasks, dependencies=[])
    chunks = tuple((n,) for n in like.shape)
    return da.Array(graph, name, chunks, dtype=like.dtype, meta=meta_from_array(like))


def chunks(X: Any, y: Any) -> list[tuple[Any, Any, int]]:
    """(X block, y block, rows) per chunk along the samples, as Delayed objects."""
    if len(X.chunks) > 1 and len(X.chunks[1]) > 1:
        X = X.rechunk({1: -1})  # a sample's features together: a chunk is whole samples
    xs = X.to_delayed(optimize_graph=False).ravel()
    if y is None:
        return [(x, None, rows) for x, rows in zip(xs, X.chunks[0], strict=True)]
    y = y.rechunk({0: X.chunks[0], **{axis: -1 for axis in range(1, y.ndim)}})
    ys = y.to_delayed(optimize_graph=False).ravel()
    return list(zip(xs, ys, X.chunks[0], strict=True))


def check_workers(client: Any) -> None:
    """Every worker runs nnx's own code on its chunks: it needs the client's nnx."""
    found = client.run(worker.nnx_version, on_error="return")
    wrong = {
        address: version
        for address, version in found.items()
        if isinstance(version, BaseException) or version != _version.__version__
    }
    if wrong:
        address, version = next(iter(wrong.items()))
        got = f"cannot import nnx ({version!r})" if isinstance(version, BaseException) else (
            f"has nnx=={version}"
        )  # fmt: skip
        raise BackendError(
            f"Model.train on dask: {len(wrong)} of {len(found)} workers cannot run nnx's "
            f"step; worker {address} {got}, expected nnx=={_version.__version__} as here. Install "
            f"the same nnx on every worker ({install_hint('dask')}, at the commit the client "
            "runs) and restart them."
        )
