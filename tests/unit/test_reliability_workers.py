"""Reliability, round three: a Dask cluster that loses its workers mid-run (issue 27).

The workers of a ``LocalCluster`` are killed with SIGKILL once training is under way: every
worker, so that the scattered copy of the model is gone everywhere and the failure does not
depend on what the scheduler manages to recompute. ``train`` must end with one nnx error, and
the model must keep the state of the loop's last boundary, usable, savable and trainable.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import numpy as np
import pytest

import nnx
from nnx.datasets import spiral_data

X, Y = spiral_data(samples=60, classes=3, seed=0)


def _model() -> nnx.Model:
    model = nnx.Model(seed=0)
    dask = "dask"
    for layer in (nnx.Dense(2, 16, seed=1, backend=dask), nnx.ReLU(backend=dask),
                  nnx.Dense(16, 3, seed=2, backend=dask), nnx.Softmax(backend=dask)):  # fmt: skip
        model.add(layer)
    model.set(
        loss=nnx.CategoricalCrossentropy(backend="dask"),
        optimizer=nnx.Adam(learning_rate=0.02, backend="dask"),
        accuracy=nnx.CategoricalAccuracy(backend="dask"),
    )
    model.finalize()
    return model


@pytest.fixture(scope="module")
def cluster():
    pytest.importorskip("distributed", reason='dask is not installed: pip install -e ".[dask]"')
    if sys.platform == "win32":
        pytest.skip("SIGKILL is POSIX")
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as local, Client(local) as client:  # fmt: skip
        yield client


def _kill_workers_after(client, model: nnx.Model, steps: int) -> threading.Thread:
    """A thread that SIGKILLs every worker once ``model`` has run ``steps`` more steps."""
    pids = list(client.run(os.getpid).values())
    start = model.optimizer.iterations

    def kill() -> None:
        deadline = time.monotonic() + 60
        while model.optimizer.iterations < start + steps and time.monotonic() < deadline:
            time.sleep(0.005)
        for pid in pids:
            os.kill(pid, signal.SIGKILL)

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    return thread


def test_a_lost_cluster_ends_train_with_one_error_and_keeps_the_model(cluster, tmp_path):
    import dask.array as da

    Xd = da.from_array(X, chunks=(90, 2)).persist()
    yd = da.from_array(Y, chunks=90).persist()
    model = _model()
    model.train(Xd, yd, epochs=3, verbose=0)
    before = [np.asarray(a) for pair in model.get_parameters() for a in pair]
    killer = _kill_workers_after(cluster, model, steps=5)
    with pytest.raises(nnx.BackendError, match=r"cluster failed a step .* checkpoint="):
        model.train(Xd, yd, epochs=100_000, verbose=0)
    killer.join()
    # The state as of the start of the call (no print, validation or checkpoint since).
    assert model.optimizer.iterations == 3
    after = [np.asarray(a) for pair in model.get_parameters() for a in pair]
    for got, expected in zip(after, before, strict=True):
        np.testing.assert_array_equal(got, expected)
    model.save(tmp_path / "kept.nnx")
    np.testing.assert_array_equal(
        nnx.Model.load(tmp_path / "kept.nnx", backend="numpy").get_parameters()[0][0], before[0]
    )
    cluster.wait_for_workers(2, timeout=60)
    Xd = da.from_array(X, chunks=(90, 2)).persist()  # the old chunks died with the workers
    yd = da.from_array(Y, chunks=90).persist()
    history = model.train(Xd, yd, epochs=2, verbose=0)
    assert len(history["loss"]) == 2 and model.optimizer.iterations == 5


def test_a_lost_cluster_keeps_the_state_of_the_last_checkpoint(cluster, tmp_path):
    import dask.array as da

    Xd = da.from_array(X, chunks=(90, 2)).persist()
    yd = da.from_array(Y, chunks=90).persist()
    model = _model()
    path = tmp_path / "run.nnx"
    killer = _kill_workers_after(cluster, model, steps=8)
    with pytest.raises(nnx.BackendError, match="cluster failed a step"):
        model.train(Xd, yd, epochs=100_000, verbose=0, checkpoint=path, checkpoint_every=2)
    killer.join()
    saved = nnx.Model.load(path, backend="numpy")
    assert model.optimizer.iterations == saved.optimizer.iterations >= 2
    for got, expected in zip(model.get_state().values(), saved.get_state().values(), strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(expected))
    cluster.wait_for_workers(2, timeout=60)
