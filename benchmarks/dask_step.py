"""Step time of nnx's coarse data-parallel step on Dask against NumPy, and what a step costs.

    python benchmarks/dask_step.py [--batches 1024,8192,32768] [--steps 3] [--repeats 3]

Workload L (784-512-512-10, Adam, float32) at each batch size, trained through ``Model.train``
with one batch per epoch, so epochs = steps. NumPy runs in this process with one BLAS thread
and with two; Dask on two clusters of ``--workers`` single-thread worker processes: a
``LocalCluster``, then one started as users start one (``dask scheduler`` and ``dask worker``
processes on 127.0.0.1). The data is split into one chunk per worker and kept there.

A step's time is the difference of two ``train`` calls (``2 * steps`` and ``steps`` epochs)
over ``steps``, so the per-call cost (the checks of the labels, the first transfer of the
parameters) is left out. Per batch size it reports the tasks of a step and the bytes the
workers fetched from each other (from the scheduler's task stream and the workers' transfer
logs), the time of a chunk's forward and backward pass and of the update task; and per
cluster the fixed cost of a step: the step of a model whose arithmetic is negligible (the
spiral model, 2-64-3 on 300 samples), with ``on_nan="ignore"`` and with the NaN check.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

import backends
import nnx
from backends import install_hint
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


def settle(model: nnx.Model) -> None:
    """Wait for the last step: on dask, for the futures behind the model's parameters."""
    if model.backend.name == "dask":
        from distributed import futures_of, wait

        wait(futures_of([layer.weights for layer in model.trainable_layers]))


def step_time(model: nnx.Model, X: Any, y: Any, args: Any, **options: Any) -> float:
    """Median seconds per step: (time of 2 * steps epochs - time of steps epochs) / steps."""

    def clock(epochs: int) -> float:
        start = time.perf_counter()
        model.train(X, y, epochs=epochs, verbose=0, **options)
        settle(model)
        return time.perf_counter() - start

    clock(2)  # warm-up: the workers build their copy of the model, BLAS warms up
    return statistics.median(
        (clock(2 * args.steps) - clock(args.steps)) / args.steps for _ in range(args.repeats)
    )


def on_workers(client: Any, X: np.ndarray, y: np.ndarray) -> tuple[Any, Any]:
    """``X``, ``y`` as dask arrays of one chunk per worker, scattered to the workers."""
    import dask.array as da

    def scattered(host: np.ndarray) -> Any:
        blocks = np.array_split(host, len(client.nthreads()))
        pairs = zip(client.scatter(blocks, hash=False), blocks, strict=True)
        parts = [da.from_delayed(f, b.shape, dtype=b.dtype) for f, b in pairs]
        return client.persist(da.concatenate(parts))  # its futures only: stable keys

    return scattered(X), scattered(y)


def profile(client: Any, model: nnx.Model, X: Any, y: Any, steps: int) -> dict[str, float]:
    """Tasks and bytes fetched between workers per step, and the median compute time of a
    chunk's pass and of the update, over ``steps`` steps."""
    from distributed import get_task_stream

    client.run(_clear_transfer_log)
    with get_task_stream(client) as stream:
        model.train(X, y, epochs=steps, verbose=0, on_nan="ignore")
        settle(model)
    fetched = sum(client.run(_transfer_bytes).values())
    keys = [str(record["key"]).split("-") for record in stream.data]
    ours = [key for key in keys if key[0] == "nnx" and key[1] in ("gradients", "update", "state")]

    def compute_ms(kind: str) -> float:
        return 1e3 * statistics.median(
            stop["stop"] - stop["start"]
            for record in stream.data
            if str(record["key"]).startswith(f"nnx-{kind}-")
            for stop in record["startstops"]
            if stop["action"] == "compute"
        )

    return {
        "tasks": len(ours) / steps,
        "MB": fetched / steps / 1e6,
        "chunk_ms": compute_ms("gradients"),
        "update_ms": compute_ms("update"),
    }


def _clear_transfer_log(dask_worker: Any) -> None:
    dask_worker.transfer_incoming_log.clear()


def _transfer_bytes(dask_worker: Any) -> int:
    return sum(entry["total"] for entry in dask_worker.transfer_incoming_log)


def fixed_cost(client: Any, args: Any) -> tuple[float, float]:
    """Seconds of a spiral step on the cluster, with on_nan='ignore' and with the NaN check."""
    X, y = on_workers(client, *spiral_data(100, 3, seed=0))
    model = build("dask", S_SIZES)
    quick = argparse.Namespace(steps=10 * args.steps, repeats=args.repeats)
    return step_time(model, X, y, quick, on_nan="ignore"), step_time(model, X, y, quick)


@contextmanager
def local_cluster(workers: int) -> Iterator[Any]:
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
    )
    with cluster, Client(cluster) as client:
        yield client


@contextmanager
def command_line_cluster(workers: int) -> Iterator[Any]:
    """``dask scheduler`` and ``dask worker --nworkers N --nthreads 1`` on 127.0.0.1."""
    from distributed import Client

    dask = shutil.which("dask", path=os.path.dirname(sys.executable)) or "dask"
    with socket.socket() as probe:  # a free port for the scheduler
        probe.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    port = address.rsplit(":", 1)[1]
    processes = [
        subprocess.Popen(
            [dask, "scheduler", "--host", "127.0.0.1", "--port", port, "--no-dashboard"], **quiet
        )
    ]
    try:
        worker = [dask, "worker", address, "--nworkers", str(workers), "--nthreads", "1"]
        processes.append(subprocess.Popen([*worker, "--no-dashboard"], **quiet))
        with Client(address, timeout="30s") as client:
            client.wait_for_workers(workers, timeout=60)
            yield client
    finally:
        for process in reversed(processes):
            process.terminate()
            process.wait(timeout=30)


def numpy_times(batches: list[int], args: Any) -> dict[int, tuple[float, float]]:
    """Step seconds of the numpy backend with one and with two BLAS threads, per batch."""
    import threadpoolctl

    times = {}
    for batch in batches:
        X, y = data(batch)
        model = build("numpy", L_SIZES)
        pair = []
        for threads in (1, 2):
            with threadpoolctl.threadpool_limits(threads):
                pair.append(step_time(model, X, y, args))
        times[batch] = (pair[0], pair[1])
    return times


def data(batch: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((batch, L_SIZES[0]), dtype=np.float32)
    return X, rng.integers(0, L_SIZES[-1], size=batch)


def on_cluster(client: Any, batches: list[int], args: Any) -> dict[str, Any]:
    """Fixed cost, and per batch the step time (on_nan='ignore') with its profile."""
    result: dict[str, Any] = {"fixed": fixed_cost(client, args)}
    for batch in batches:
        X, y = on_workers(client, *data(batch))
        model = build("dask", L_SIZES)
        seconds = step_time(model, X, y, args, on_nan="ignore")
        result[batch] = (seconds, profile(client, model, X, y, args.steps))
    return result


def report(name: str, result: dict[str, Any], numpy: dict[int, Any], args: Any) -> None:
    ignore, checked = result["fixed"]
    print(f"\n{name}: fixed cost of a step (spiral model) {1e3 * ignore:.1f} ms, "
          f"{1e3 * checked:.1f} ms with the NaN check")  # fmt: skip
    print(
        f"{'L batch':>8} {'numpy 1t ms':>11} {'numpy 2t ms':>11} {'dask ms':>8} "
        f"{'dask/np1':>8} {'tasks':>6} {'MB moved':>8} {'chunk ms':>8} {'update ms':>9}"
    )
    for batch, (one, two) in numpy.items():
        seconds, p = result[batch]
        print(
            f"{batch:>8} {1e3 * one:>11.1f} {1e3 * two:>11.1f} {1e3 * seconds:>8.1f} "
            f"{seconds / one:>8.2f} {p['tasks']:>6.1f} {p['MB']:>8.1f} {p['chunk_ms']:>8.1f} "
            f"{p['update_ms']:>9.1f}"
        )
    targets = {8192: 0.80, 32768: 0.65}
    checks = [f"dask/np1 <= {targets[b]} at {b}: {result[b][0] / numpy[b][0] <= targets[b]}"
              for b in numpy if b in targets]  # fmt: skip
    tasks = max(result[b][1]["tasks"] for b in numpy)
    checks.append(f"fixed cost <= 15 ms: {ignore <= 0.015}")
    checks.append(f"tasks <= 4 x {args.workers} + 10: {tasks <= 4 * args.workers + 10}")
    print("targets: " + "; ".join(checks))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--batches", default="1024,8192,32768", help="batch sizes")
    parser.add_argument("--steps", type=int, default=3, help="steps per timing (default 3)")
    parser.add_argument("--repeats", type=int, default=3, help="timings per figure (default 3)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    args = parser.parse_args()
    batches = [int(text) for text in args.batches.split(",")]
    try:
        import distributed  # noqa: F401
        import threadpoolctl  # noqa: F401  (the NumPy columns' one and two BLAS threads)
    except ImportError as err:
        hint = install_hint("bench,dask")
        raise SystemExit(f"dask_step.py: needs {err.name} ({hint}).") from None
    print(
        f"{time.strftime('%Y-%m-%d %H:%M')}; {len(os.sched_getaffinity(0))} cores; "
        f"{args.workers} worker processes x 1 thread; numpy in this process; "
        f"dask {backends.load('dask').version}"
    )
    numpy = numpy_times(batches, args)
    for name, cluster in (("LocalCluster", local_cluster),
                          ("dask scheduler + dask worker", command_line_cluster)):  # fmt: skip
        with cluster(args.workers) as client:
            result = on_cluster(client, batches, args)
        report(name, result, numpy, args)


if __name__ == "__main__":
    main()
