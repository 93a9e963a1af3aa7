"""Data-parallel training on a Dask cluster: the spiral classifier on dask and on NumPy.

Starts a LocalCluster of 2 worker processes (1 thread each) and a Client, splits the 300
samples into one chunk per worker, trains the same seeded model on the dask backend and on
numpy, and prints both results, which agree to float tolerance. On the cluster each step is a
few coarse tasks: every worker runs nnx's forward and backward pass on its chunk, one task sums
the gradients and runs Adam (so the workers need nnx installed, as here). With
NNX_DASK_SCHEDULER set (e.g. tcp://scheduler:8786) it trains on that cluster instead.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path
from typing import NoReturn

import backends
import nnx
from backends import install_hint
from nnx.datasets import spiral_data

# float64: splitting the batch changes the order of the sums in each gradient, and Adam carries
# such last-bit differences on from step to step; in float32 they reach a percent of the loss
# after a few hundred steps, in float64 they stay near 1e-8.
DTYPE = "float64"


def fail(message: str) -> NoReturn:
    """Exit with status 2 and ``message`` as one line on stderr, without a traceback."""
    print(f"distributed.py: {' '.join(str(message).split())}", file=sys.stderr)
    raise SystemExit(2)


def build(backend: str) -> nnx.Model:
    with nnx.use_backend(backend):
        model = nnx.Model(seed=0)
        model.add(nnx.Dense(2, 64, seed=1, dtype=DTYPE))
        model.add(nnx.ReLU())
        model.add(nnx.Dense(64, 3, seed=2, dtype=DTYPE))
        model.add(nnx.Softmax())
        model.set(
            loss=nnx.CategoricalCrossentropy(),
            optimizer=nnx.Adam(learning_rate=0.05, decay=5e-7),
            accuracy=nnx.CategoricalAccuracy(),
        )
        model.finalize()
    return model


def train(model: nnx.Model, X, y, epochs: int, **options) -> tuple[float, float, float]:
    """Seconds of training, then the final accuracy and loss. A run that Ctrl-C stopped (its
    history is shorter than ``epochs``) ends the program: there is nothing to compare."""
    start = time.perf_counter()
    history = model.train(X, y, epochs=epochs, verbose=0, **options)
    model.backend.synchronize()
    seconds = time.perf_counter() - start
    if len(history["loss"]) < epochs:
        print(
            f"distributed.py: interrupted after {len(history['loss'])} of {epochs} epochs on "
            f"{model.backend.name}, {seconds:.1f} s; nothing compared.",
            file=sys.stderr,
        )
        raise SystemExit(130)
    return seconds, history["accuracy"][-1], history["loss"][-1]


def on_cluster(client, X, y, epochs: int) -> tuple[float, float, float]:
    """Train on dask with the samples split into one chunk per worker, kept on the workers."""
    import dask.array as da

    workers = len(client.nthreads())
    rows = math.ceil(X.shape[0] / workers)
    # In the model's dtype already, so that no conversion joins the graph of every step.
    X_dask = da.from_array(X.astype(DTYPE), chunks=(rows, X.shape[1])).persist()
    y_dask = da.from_array(y, chunks=rows).persist()
    print(f"dask: {workers} workers at {client.scheduler.address}, chunks {X_dask.chunks[0]}")
    # The NaN check of every step waits for the step's loss to reach the client (a round trip
    # to the cluster each step); here the final loss is checked below instead.
    return train(build("dask"), X_dask, y_dask, epochs, on_nan="ignore")


def run(args) -> None:
    try:
        from distributed import Client, LocalCluster
    except ImportError as err:
        fail(f"this example needs dask ({err}); {install_hint('dask')}.")
    X, y = spiral_data(100, 3, seed=0)
    if os.environ.get("NNX_DASK_SCHEDULER"):
        try:
            backends.load("dask")  # connects a Client to NNX_DASK_SCHEDULER
        except backends.BackendError as err:
            fail(str(err))
        from distributed import get_client

        results = on_cluster(get_client(), X, y, args.epochs)
    else:
        cluster = LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        )
        with cluster, Client(cluster) as client:
            results = on_cluster(client, X, y, args.epochs)
    reference = train(build("numpy"), X, y, args.epochs)
    for name, (seconds, accuracy, loss) in (("dask", results), ("numpy", reference)):
        print(
            f"{name:>5}: {args.epochs} epochs in {seconds:.1f} s, "
            f"accuracy {accuracy:.6f}, loss {loss:.10f}"
        )
    pairs = zip(results[1:], reference[1:], strict=True)
    if not all(math.isclose(a, b, rel_tol=1e-6) for a, b in pairs):
        fail("dask and numpy disagree beyond float tolerance; see the lines above.")
    print("dask and numpy agree to 1e-6.")


if __name__ == "__main__":
    # Python puts this file's folder first on sys.path, where this file would hide the
    # distributed package (here and in the worker processes): take the folder off.
    here = Path(__file__).resolve().parent
    sys.path[:] = [path for path in sys.path if Path(path or ".").resolve() != here]
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--epochs", type=int, default=300, help="epochs to train (default 300)")
    arguments = parser.parse_args()
    if arguments.epochs < 1:
        parser.error(f"expected a positive number of epochs, got --epochs {arguments.epochs}")
    run(arguments)
