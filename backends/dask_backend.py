"""Dask arrays, data-parallel on the active ``distributed.Client`` or on local threads.

``NNX_DASK_SCHEDULER=tcp://host:8786`` connects a Client when none is active. Host arrays of
4096 rows or more are split along the batch axis, one chunk per worker (``NNX_DASK_CHUNKS``
sets rows per chunk for every array); smaller ones, such as parameters, stay one chunk.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from backends._backend import Backend, BackendError, Lazy, install_hint

_SPLIT_ROWS = 4096
_REBASE_EVERY = 50  # steps between cuts of the scheduler's record of the state's ancestry


def make(device: Any = None) -> Backend:
    try:
        import array_api_compat.dask.array as compat
        import dask
        import distributed
    except ImportError as err:
        raise BackendError(f"dask is not installed ({err}); {install_hint('dask')}.") from err
    if device not in (None, "cpu"):
        raise BackendError(f"dask arrays live on the CPU, got device={device!r}; unset NNX_DEVICE.")
    rows = os.environ.get("NNX_DASK_CHUNKS", "")
    if rows and not (rows.isdigit() and int(rows) > 0):
        raise ValueError(f"expected NNX_DASK_CHUNKS as rows per chunk (> 0), got {rows!r}.")
    run = _Runner(int(rows or 0))
    address = os.environ.get("NNX_DASK_SCHEDULER")
    if address and _client() is None:
        try:
            # Held here: distributed keeps only weak references to its clients.
            run.own_client = distributed.Client(address, timeout="10s")
        except OSError as err:
            raise BackendError(
                f"dask: no scheduler at NNX_DASK_SCHEDULER={address!r} ({err}); start one "
                "(dask scheduler) or unset the variable."
            ) from err
    return Backend(
        name="dask",
        xp=compat,
        device="cpu",
        asarray=run.asarray,
        to_numpy=np.asarray,  # computes on the active Client, else on local threads
        synchronize=run.synchronize,
        mutable=False,
        version=dask.__version__,
        lazy=Lazy(run.materialize),
    )


def _client() -> Any:
    """The active ``distributed.Client``, or None (dask's local threads)."""
    from distributed import get_client

    try:
        return get_client()
    except ValueError:
        return None


class _Runner:
    """Chunking, and the state persisted by the last step."""

    def __init__(self, rows: int) -> None:
        self.rows, self.steps = rows, 0
        self.pending: list[Any] = []
        self.own_client: Any = None

    def asarray(self, data: Any, dtype: Any = None) -> Any:
        import dask.array as da

        if isinstance(data, da.Array):
            return data if dtype is None else data.astype(dtype)
        host, client = np.asarray(data, dtype=dtype), _client()
        if host.ndim == 0:
            return da.from_array(host)
        n = host.shape[0]
        workers = len(client.nthreads()) if client and n >= _SPLIT_ROWS else 1
        rows = max(self.rows or (n if n < _SPLIT_ROWS else -(-n // workers)), 1)
        if client is None:
            return da.from_array(host, chunks=(rows, *host.shape[1:]))
        # To the workers once, not inside every step's graph; scattered data also lets the
        # scheduler forget each step's tasks, which it keeps while they could be recomputed.
        # Persisted, the array is its futures alone: graph optimization cannot give its keys
        # other tasks from one submission to the next (dask/dask#9888). Keys of their own
        # (hash=False): equal data scattered again while the scheduler releases its earlier
        # copy (a model built again with the same seed) would lose that key under it.
        blocks = [host[start : start + rows] for start in range(0, max(n, 1), rows)]
        parts = [
            da.from_delayed(future, block.shape, dtype=host.dtype)
            for future, block in zip(client.scatter(blocks, hash=False), blocks, strict=True)
        ]
        return client.persist(da.concatenate(parts))

    def materialize(self, arrays: list[Any]) -> list[Any]:
        import dask

        client = _client()
        if client is None:
            return list(dask.persist(*arrays))
        self.steps += 1
        if self.steps % _REBASE_EVERY == 1:
            # State built before the Client (or computed from recomputable tasks) would keep
            # its whole history alive on the scheduler: restart it from its values.
            arrays = [self.asarray(value) for value in client.gather(client.compute(arrays))]
        self.pending = client.persist(arrays)
        return list(self.pending)

    def synchronize(self) -> None:
        if self.pending and _client() is not None:
            from distributed import futures_of, wait

            wait(futures_of(self.pending))
