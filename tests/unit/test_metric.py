"""A metric added in one place, nnx unchanged: the mean of the highest predicted probability.

It is one class, an ``nnx.Accuracy`` that takes the model's outputs as they are
(``takes = "outputs"``). Every runner counts it with the model's one ``score``, so its
per-epoch values agree on eager NumPy, the compiled step on JAX and the coarse tasks on a
Dask cluster (within float32 rounding), and equal its value computed by hand from the
model's own outputs.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pytest

import nnx
from nnx.datasets import spiral_data

X, Y = spiral_data(40, 3, seed=0)


class MeanConfidence(nnx.Accuracy):
    """How sure the model is: the mean over the rows of the highest predicted probability."""

    takes = "outputs"

    def compare(self, outputs: Any, y: Any) -> Any:
        return self.xp.max(outputs, axis=1)


def _model(backend: str, dtype: str = "float32") -> nnx.Model:
    with nnx.use_backend(backend):
        model = nnx.Model(seed=0)
        model.add(nnx.Dense(2, 16, seed=1, dtype=dtype))
        model.add(nnx.ReLU())
        model.add(nnx.Dense(16, 3, seed=2, dtype=dtype))
        model.add(nnx.Softmax())
        model.set(
            loss=nnx.CategoricalCrossentropy(),
            optimizer=nnx.Adam(learning_rate=0.05),
            accuracy=MeanConfidence(),
        )
    model.finalize()
    return model


def _eager() -> list[float]:
    return _model("numpy").train(X, Y, epochs=5, verbose=0)["accuracy"]


def test_the_metric_is_what_it_says_on_numpy():
    model = _model("numpy", dtype="float64")
    history = model.train(X, Y, epochs=1, verbose=0)
    # One full batch: the epoch's figure is the step's, computed from the outputs before
    # the update; evaluate after it gives the same metric from the updated parameters.
    loss, confidence = model.evaluate(X, Y, verbose=0)
    outputs = np.asarray(model.predict(X))
    assert confidence == pytest.approx(float(np.mean(np.max(outputs, axis=1))), rel=1e-12)
    assert 1 / 3 <= history["accuracy"][0] <= 1


def test_the_compiled_step_on_jax_counts_it_as_the_eager_step():
    pytest.importorskip("jax", reason='the compiled step needs jax: pip install -e ".[jax]"')
    compiled = _model("jax").train(X, Y, epochs=5, verbose=0, compile=True)["accuracy"]
    np.testing.assert_allclose(compiled, _eager(), rtol=1e-5)


def test_the_coarse_dask_step_counts_it_as_the_eager_step():
    pytest.importorskip("distributed", reason='dask is not installed: pip install -e ".[dask]"')
    import cloudpickle
    import dask.array as da
    from distributed import Client, LocalCluster, get_task_stream

    # The workers rebuild the model from its parts' classes: this module's class goes along.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=None)  # fmt: skip
    with cluster, Client(cluster):
        X_dask = da.from_array(X, chunks=(60, 2)).persist()
        y_dask = da.from_array(Y, chunks=60).persist()
        model = _model("dask")
        with get_task_stream() as tasks:
            coarse = model.train(X_dask, y_dask, epochs=5, verbose=0)["accuracy"]
        # The coarse tasks ran (nnx names them ``nnx-<kind>-...``), not the fine graph.
        assert any(str(task["key"]).startswith("nnx-") for task in tasks.data)
    np.testing.assert_allclose(coarse, _eager(), rtol=1e-5)
