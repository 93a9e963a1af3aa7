"""Step time of nnx on a Dask LocalCluster of 2 worker processes against the numpy backend.

    python benchmarks/dask_step.py [--batches 1024,8192] [--steps 5] [--repeats 3]

Workload L (784-512-512-10, Adam, float32) at each batch size, timed through ``Model.train``
with one batch per epoch, so epochs = steps; on dask the batch is split into one chunk per
worker and kept on the workers. Two floors show what every dask step pays whatever its size:
a trivial persisted step (``x + 1`` on 3 numbers through ``backend.materialize``) and an nnx
step whose arithmetic is negligible (the spiral model, 2-64-3 on 300 samples). A straight line
through the L times per batch size gives the batch from which the cluster beats numpy.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

import numpy as np

import backends
import nnx
from nnx.datasets import spiral_data

L_SIZES = (784, 512, 512, 10)
S_SIZES = (2, 64, 3)


def build(backend: str, sizes: tuple[int, ...]) -> nnx.Model:
    """The book's classifier with the given widths: Dense + ReLU ..., Softmax, Adam."""
    with nnx.use_backend(backend):
        model = nnx.Model(seed=0)
        for i, (n_inputs, n_neurons) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            model.add(nnx.Dense(n_inputs, n_neurons, seed=i))
            model.add(nnx.ReLU() if i < len(sizes) - 2 else nnx.Softmax())
        model.set(
            loss=nnx.CategoricalCrossentropy(),
            optimizer=nnx.Adam(learning_rate=0.001),
            accuracy=nnx.CategoricalAccuracy(),
        )
        model.finalize()
    return model


def per_step(run: Any, sync: Any, steps: int, repeats: int) -> float:
    """Median seconds per step of ``run(steps)`` after one warm-up call."""
    run(2)
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(steps)
        sync()
        times.append((time.perf_counter() - start) / steps)
    return statistics.median(times)


def train_time(backend: str, sizes: tuple[int, ...], X: Any, y: Any, args: Any, **kw: Any) -> float:
    model = build(backend, sizes)

    def run(steps: int) -> None:
        model.train(X, y, epochs=steps, verbose=0, **kw)

    return per_step(run, model.backend.synchronize, args.steps, args.repeats)


def on_workers(client: Any, X: np.ndarray, y: np.ndarray) -> tuple[Any, Any]:
    """``X``, ``y`` as dask arrays of one chunk per worker, scattered to the workers."""
    import dask.array as da

    def scattered(host: np.ndarray) -> Any:
        blocks = np.array_split(host, len(client.nthreads()))
        pairs = zip(client.scatter(blocks), blocks, strict=True)
        parts = [da.from_delayed(f, b.shape, dtype=b.dtype) for f, b in pairs]
        return client.persist(da.concatenate(parts))  # its futures only: stable keys

    return scattered(X), scattered(y)


def floors(client: Any, args: Any) -> tuple[float, float, float]:
    """Seconds of a trivial persisted step, of a scalar read, and of a spiral nnx step."""
    dask = backends.load("dask")
    state = [dask.asarray(np.zeros(3))]

    def trivial(steps: int) -> None:
        for _ in range(steps):
            state[:] = dask.materialize([state[0] + 1])

    def read(steps: int) -> None:
        for _ in range(steps):
            float(state[0][0])

    trivial_s = per_step(trivial, dask.synchronize, 20 * args.steps, args.repeats)
    read_s = per_step(read, dask.synchronize, 20 * args.steps, args.repeats)
    X, y = on_workers(client, *spiral_data(100, 3, seed=0))
    spiral_s = train_time("dask", S_SIZES, X, y, args, on_nan="ignore")
    return trivial_s, read_s, spiral_s


def crossover(batches: list[int], dask_s: list[float], numpy_s: list[float]) -> str:
    """Where the straight lines through the step times per batch size cross."""
    if len(batches) < 2:
        return "give two or more --batches for the crossover"
    (dask_slope, dask_zero), (numpy_slope, numpy_zero) = (
        np.polyfit(batches, times, 1) for times in (dask_s, numpy_s)
    )
    if dask_slope >= numpy_slope:
        return "never on this cluster: per sample its workers are no faster than numpy here"
    return f"from a batch of about {(dask_zero - numpy_zero) / (numpy_slope - dask_slope):,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--batches", default="1024,8192", help="batch sizes (default 1024,8192)")
    parser.add_argument("--steps", type=int, default=5, help="steps per timing (default 5)")
    parser.add_argument("--repeats", type=int, default=3, help="timings per figure (default 3)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    args = parser.parse_args()
    batches = [int(text) for text in args.batches.split(",")]
    try:
        from distributed import Client, LocalCluster
    except ImportError as err:
        raise SystemExit(f'dask_step.py: needs dask ({err}); pip install "nnx[dask]".') from None
    cluster = LocalCluster(
        n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None
    )
    with cluster, Client(cluster) as client:
        print(
            f"{len(os.sched_getaffinity(0))} cores; LocalCluster of {args.workers} processes x 1 "
            f"thread; numpy in this process; dask {backends.load('dask').version}"
        )
        trivial_s, read_s, spiral_s = floors(client, args)
        print(f"trivial persisted step   {1e3 * trivial_s:8.1f} ms")
        print(f"scalar read (float)      {1e3 * read_s:8.1f} ms")
        print(f"nnx spiral step (floor)  {1e3 * spiral_s:8.1f} ms")
        rows = []
        for batch in batches:
            rng = np.random.default_rng(0)
            X = rng.standard_normal((batch, L_SIZES[0]), dtype=np.float32)
            y = rng.integers(0, L_SIZES[-1], size=batch)
            numpy_s = train_time("numpy", L_SIZES, X, y, args)
            X_dask, y_dask = on_workers(client, X, y)
            guarded = train_time("dask", L_SIZES, X_dask, y_dask, args)
            unguarded = train_time("dask", L_SIZES, X_dask, y_dask, args, on_nan="ignore")
            rows.append((batch, numpy_s, guarded, unguarded))
    print(
        f"\n{'L batch':>8} {'numpy ms':>9} {'dask ms':>9} {'dask/numpy':>10} "
        f"{'on_nan=ignore ms':>17} {'ratio':>6} {'floor/numpy':>11}"
    )
    for batch, numpy_s, guarded, unguarded in rows:
        print(
            f"{batch:>8} {1e3 * numpy_s:>9.1f} {1e3 * guarded:>9.1f} {guarded / numpy_s:>10.2f} "
            f"{1e3 * unguarded:>17.1f} {unguarded / numpy_s:>6.2f} {spiral_s / numpy_s:>11.2f}"
        )
    batch_list = [row[0] for row in rows]
    line = crossover(batch_list, [row[3] for row in rows], [row[1] for row in rows])
    print(f"dask pays (on_nan='ignore'): {line}")


if __name__ == "__main__":
    main()
