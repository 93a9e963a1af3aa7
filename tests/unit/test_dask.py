"""The dask backend: same numbers as numpy, a graph that does not grow, data left in place,
and a short run on a LocalCluster of two worker processes."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("dask", reason='dask is not installed; pip install -e ".[dask]"')
pytest.importorskip("distributed", reason='distributed is not installed; pip install -e ".[dask]"')

import dask.array as da  # noqa: E402
from distributed import Client, LocalCluster, get_task_stream  # noqa: E402

import backends  # noqa: E402
import nnx  # noqa: E402
from backends import dask_backend  # noqa: E402
from nnx.datasets import spiral_data  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "distributed.py"


def spiral_model(backend: str, dtype: str = "float64", l2: float = 0.0) -> nnx.Model:
    with nnx.use_backend(backend):
        model = nnx.Model(seed=0)
        model.add(nnx.Dense(2, 16, seed=1, dtype=dtype, weight_regularizer_l2=l2))
        model.add(nnx.ReLU())
        model.add(nnx.Dense(16, 3, seed=2, dtype=dtype))
        model.add(nnx.Softmax())
        model.set(
            loss=nnx.CategoricalCrossentropy(),
            optimizer=nnx.Adam(learning_rate=0.05, decay=5e-7),
            accuracy=nnx.CategoricalAccuracy(),
        )
        model.finalize()
    return model


def state(model: nnx.Model) -> dict[str, np.ndarray]:
    """Parameters and optimizer state of every trainable layer, on the host."""
    names = ("weights", "biases", "weight_momentums", "bias_momentums", "weight_cache")
    return {
        f"{i}.{name}": model.backend.to_numpy(getattr(layer, name))
        for i, layer in enumerate(model.trainable_layers)
        for name in names
    }


@pytest.fixture(scope="module")
def data():
    return spiral_data(40, 3, seed=0)


def test_flags_and_namespace():
    backend = backends.load("dask")
    assert (backend.lazy is not None, backend.mutable, backend.device) == (True, False, "cpu")
    x = backend.asarray(np.arange(12.0).reshape(4, 3), backend.dtype("float32"))
    assert isinstance(x, da.Array) and x.dtype == np.float32


def test_chunks_follow_nnx_dask_chunks(monkeypatch):
    monkeypatch.setenv("NNX_DASK_CHUNKS", "150")
    backend = dask_backend.make()
    assert backend.asarray(np.zeros((300, 2))).chunks == ((150, 150), (2,))
    assert backend.asarray(np.zeros((64, 3))).chunks == ((64,), (3,))
    monkeypatch.setenv("NNX_DASK_CHUNKS", "many")
    with pytest.raises(ValueError, match="NNX_DASK_CHUNKS"):
        dask_backend.make()


def test_missing_dask_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask", None)
    with pytest.raises(backends.BackendError, match=r'pip install -e "\.\[dask\]"'):
        dask_backend.make()


def test_trains_evaluates_and_predicts_like_numpy(data):
    X, y = data
    dask_model, numpy_model = spiral_model("dask"), spiral_model("numpy")
    dask_history = dask_model.train(X, y, epochs=5, batch_size=60, shuffle=True, verbose=0)
    numpy_history = numpy_model.train(X, y, epochs=5, batch_size=60, shuffle=True, verbose=0)
    for key in ("loss", "accuracy", "learning_rate"):
        np.testing.assert_allclose(dask_history[key], numpy_history[key], rtol=1e-10)
    for name, values in state(numpy_model).items():
        np.testing.assert_allclose(state(dask_model)[name], values, rtol=1e-10, err_msg=name)
    np.testing.assert_allclose(
        dask_model.evaluate(X, y, verbose=0), numpy_model.evaluate(X, y, verbose=0), rtol=1e-10
    )
    predictions = dask_model.predict(X)
    assert isinstance(predictions, da.Array)
    np.testing.assert_allclose(predictions.compute(), numpy_model.predict(X), rtol=1e-10)


def test_graph_of_the_state_does_not_grow(data):
    X, y = data
    model = spiral_model("dask", "float32")
    model.train(X, y, epochs=2, verbose=0)
    sizes = [len(array.__dask_graph__()) for array in _state_arrays(model)]
    model.train(X, y, epochs=10, verbose=0)
    assert [len(array.__dask_graph__()) for array in _state_arrays(model)] == sizes
    assert max(sizes) <= 2


def _state_arrays(model: nnx.Model) -> list:
    layers = model.trainable_layers
    return [layer.weights for layer in layers] + [layer.weight_cache for layer in layers]


def test_dask_input_stays_chunked_and_is_never_gathered(data, monkeypatch):
    X, y = data
    X_dask = da.from_array(X, chunks=(40, 2))
    y_dask = da.from_array(y, chunks=40)

    original = da.Array.__array__

    def gathered(self, *args, **kwargs):
        # Figures (the history, one number per epoch) come to the client; data never does.
        if self.ndim and self.shape[0] == X.shape[0]:
            raise AssertionError("a dask array of the data was converted to NumPy on the client")
        return original(self, *args, **kwargs)

    model = spiral_model("dask")
    monkeypatch.setattr(da.Array, "__array__", gathered)
    history = model.train(X_dask, y_dask, epochs=3, verbose=0)
    predictions = model.predict(X_dask)
    monkeypatch.undo()
    assert isinstance(predictions, da.Array) and predictions.chunks[0] == (40, 40, 40)
    reference = spiral_model("numpy")
    np.testing.assert_allclose(
        history["loss"], reference.train(X, y, epochs=3, verbose=0)["loss"], rtol=1e-10
    )


@pytest.fixture(scope="module")
def client():
    """A Client of a LocalCluster of two worker processes, one thread each."""
    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    with cluster, Client(cluster) as client:
        yield client


def test_local_cluster_of_two_processes(data, client):
    X, y = data
    start = time.perf_counter()
    X_dask = da.from_array(X, chunks=(60, 2)).persist()
    y_dask = da.from_array(y, chunks=60).persist()
    model = spiral_model("dask")
    model.train(X_dask, y_dask, epochs=3, verbose=0)
    tasks = client.run_on_scheduler(_task_count)
    history = model.train(X_dask, y_dask, epochs=4, verbose=0)
    model.backend.synchronize()
    # The scheduler forgets finished steps (were it to keep them, about 40 tasks a step); the
    # state brought to the client at the end of the call is forgotten a moment later. Some of
    # what releases it sits in reference cycles of tornado's and dask's own (timeouts'
    # tracebacks, task specs), freed when Python's cycle collector runs: collected here, so
    # the test reads nnx's retention, not when CPython happens to collect (it failed 2 runs
    # in 8 without, with one step's 38 tasks still held; none in 8 with).
    # Even so, one step's tasks sometimes stay held past 10 s (1 run in 4 here, with the code
    # before and after 2026-12-06's fifth session alike): the bound allows that one step and
    # still fails when the steps pile up (the second call's 4 steps: about 160 tasks).
    deadline = time.perf_counter() + 10
    while client.run_on_scheduler(_task_count) > tasks + 20 and time.perf_counter() < deadline:
        gc.collect()
        time.sleep(0.05)
    assert client.run_on_scheduler(_task_count) <= tasks + 60
    # A step's state is one future on the cluster; a layer's array is an item of it.
    assert len(model.trainable_layers[0].weights.__dask_graph__()) <= 2
    predictions = model.backend.to_numpy(model.predict(X_dask))
    reference = spiral_model("numpy")
    numpy_history = reference.train(X, y, epochs=7, verbose=0)
    np.testing.assert_allclose(history["loss"], numpy_history["loss"][3:], rtol=1e-10)
    np.testing.assert_allclose(predictions, reference.predict(X), rtol=1e-10)
    assert time.perf_counter() - start < 60


def test_coarse_step_on_two_processes_matches_numpy(data, client):
    """Each chunk's gradients on its worker, one sum, the optimizer once: the parameters, the
    optimizer's state and the figures of NumPy's full-batch steps, in a handful of tasks."""
    X, y = data
    X_dask = da.from_array(X, chunks=(45, 2)).persist()  # 120 rows: chunks of 45, 45, 30
    y_dask = da.from_array(y, chunks=45).persist()
    models = {name: spiral_model(name, l2=1e-3) for name in ("dask", "numpy")}
    histories = {}
    for name, (X_in, y_in) in {"dask": (X_dask, y_dask), "numpy": (X, y)}.items():
        histories[name] = models[name].train(X_in, y_in, epochs=4, verbose=0)
        models[name].optimizer.beta_2 = 0.99  # the workers' copy of the model follows
        more = models[name].train(X_in, y_in, epochs=2, batch_size=50, verbose=0)
        histories[name] = {key: histories[name][key] + more[key] for key in more}
    for key in ("loss", "data_loss", "reg_loss", "accuracy", "learning_rate"):
        np.testing.assert_allclose(histories["dask"][key], histories["numpy"][key], rtol=1e-10)
    for name, values in state(models["numpy"]).items():
        np.testing.assert_allclose(state(models["dask"])[name], values, rtol=1e-9, err_msg=name)
    np.testing.assert_allclose(
        models["dask"].evaluate(X_dask, y_dask, verbose=0),
        models["numpy"].evaluate(X, y, verbose=0),
        rtol=1e-10,
    )
    predictions = models["dask"].predict(X_dask)
    assert isinstance(predictions, da.Array) and predictions.chunks[0] == (45, 45, 30)
    np.testing.assert_allclose(predictions.compute(), models["numpy"].predict(X), rtol=1e-10)
    with get_task_stream(client) as stream:
        models["dask"].train(X_dask, y_dask, epochs=3, verbose=0, on_nan="ignore")
        models["dask"].backend.to_numpy(models["dask"].layers[0].weights)
    # Per step (keys nnx-<kind>-<run>-<step>-<n>): 3 chunks' gradients, the update, 3 items
    # of it (the parameters, the optimizer's state, the figures). The state's arrays, read at
    # the end of the call (nnx-<attribute>-...), are not the step's.
    keys = [str(record["key"]).split("-") for record in stream.data]
    kinds = ("gradients", "update", "state")
    steps = Counter(key[3] for key in keys if key[0] == "nnx" and key[1] in kinds)
    assert list(steps.values()) == [7, 7, 7]


def test_coarse_step_stops_before_a_diverging_update(data, client):
    X, y = data
    # Chunks of their own: arrays of the same data and chunks have the same keys, and keys
    # that another test's persisted arrays just released can keep a new graph waiting.
    X_dask = da.from_array(X, chunks=(50, 2)).persist()
    y_dask = da.from_array(y, chunks=50).persist()
    model = spiral_model("dask")
    model.train(X_dask, y_dask, epochs=2, verbose=0)
    before = state(model)
    model.layers[0].weights = model.backend.asarray(np.full((2, 16), np.nan))
    with pytest.raises(nnx.NonFiniteLossError, match="epoch 1, step 0"):
        model.train(X_dask, y_dask, epochs=2, verbose=0)
    after = state(model)
    assert np.isnan(after["0.weights"]).all()
    for name in before:
        if name != "0.weights":
            np.testing.assert_array_equal(after[name], before[name], err_msg=name)
    assert model.optimizer.iterations == 2


def test_workers_with_another_nnx_are_refused(data, client, monkeypatch):
    X, y = data
    monkeypatch.setattr(nnx._version, "__version__", "0.0.0+other")  # this process only
    model = spiral_model("dask")
    with pytest.raises(backends.BackendError, match=r"2 of 2 workers .* nnx==0.0.0\+other"):
        model.train(da.from_array(X, chunks=60), da.from_array(y, chunks=60), verbose=0)


def test_nnx_dask_scheduler_connects_to_the_cluster(client):
    code = (
        "import backends, nnx\n"
        "from distributed import get_client\n"
        "model = nnx.Model()\n"
        "model.add(nnx.Dense(2, 3, seed=1))\n"
        "model.add(nnx.Softmax())\n"
        "model.set(loss=nnx.CategoricalCrossentropy(), optimizer=nnx.SGD())\n"
        "model.finalize()\n"
        "history = model.train([[0.0, 1.0], [1.0, 0.0]], [0, 1], epochs=2, verbose=0)\n"
        "print(len(get_client().nthreads()), len(history['loss']))\n"
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("NNX_")}
    env.update(NNX_BACKEND="dask", NNX_DASK_SCHEDULER=client.scheduler.address)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["2", "2"]


def _task_count(dask_scheduler) -> int:
    return len(dask_scheduler.tasks)


def test_example_without_dask_says_so_in_one_line(tmp_path):
    for name in ("dask", "distributed"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"raise ImportError('No module {name}')\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), "--epochs", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and ".[dask]" in result.stderr
