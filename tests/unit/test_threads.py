"""Tracing, compiling and eager steps in several threads at once, one model per thread.

What lives only while one step is traced (the plain reductions, the constants a trace makes)
belongs to that trace's context: an eager step in another thread keeps its own bits, and two
traces at once do not see each other's tracers. The overlap is forced, not hoped for: a layer
waits inside the trace until the other thread has done its part.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

import backends
import nnx
from nnx.datasets import spiral_data

jax = pytest.importorskip("jax", reason='the compiled step needs jax: pip install -e ".[jax]"')

X, Y = spiral_data(40, 3, seed=0)
WAIT = 120  # seconds: far above a trace here; a timeout means the overlap never happened


class Pause(nnx.Layer):
    """Passes its inputs on; the first time it is traced, runs ``inside`` (which waits for the
    other thread), so that work happens while this thread is inside a trace."""

    def __init__(self, inside: Any, backend: Any = None) -> None:
        super().__init__(backend)
        self.inside = inside

    def forward(self, inputs: Any, training: bool = False) -> Any:
        if isinstance(inputs, jax.core.Tracer) and self.inside is not None:
            inside, self.inside = self.inside, None
            inside()
        self.output = inputs
        return inputs

    def backward(self, dvalues: Any) -> Any:
        self.dinputs = dvalues
        return dvalues


def _model(backend: str, inside: Any = None) -> nnx.Model:
    with nnx.use_backend(backend):
        model = nnx.Model(seed=0)
        model.add(nnx.Dense(2, 16, seed=1))
        model.add(nnx.ReLU())
        if inside is not None:
            model.add(Pause(inside))
        model.add(nnx.Dense(16, 3, seed=2))
        model.add(nnx.Softmax())
        model.set(
            loss=nnx.CategoricalCrossentropy(),
            optimizer=nnx.Adam(learning_rate=0.02),
            accuracy=nnx.CategoricalAccuracy(),
        )
    model.finalize()
    return model


def _state(model: nnx.Model) -> dict[str, np.ndarray]:
    return {key: backends.to_numpy(value) for key, value in model.get_state().items()}


def _eager_run() -> tuple[dict[str, np.ndarray], list[float]]:
    # Full batches of 120 rows: there NumPy's sum and the eager path's product with a ones
    # vector round differently, so a step that took the other reductions shows in the bits.
    model = _model("numpy")
    history = model.train(X, Y, epochs=5, verbose=0)
    return _state(model), history["loss"]


def _run_threads(*targets: Any) -> None:
    errors: list[BaseException] = []

    def guarded(target: Any) -> Any:
        def run() -> None:
            try:
                target()
            except BaseException as err:  # reported in the main thread below
                errors.append(err)

        return run

    threads = [threading.Thread(target=guarded(t)) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT * 2)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    if errors:
        raise errors[0]


def test_an_eager_numpy_run_while_another_thread_traces_keeps_its_bits():
    alone_state, alone_loss = _eager_run()
    tracing, eager_done = threading.Event(), threading.Event()
    found: dict[str, Any] = {}

    def inside_the_trace() -> None:
        tracing.set()
        assert eager_done.wait(WAIT), "the eager thread never finished"

    def compiled() -> None:
        _model("jax", inside_the_trace).train(X, Y, epochs=2, verbose=0, compile=True)

    def eager() -> None:
        assert tracing.wait(WAIT), "the other thread never traced"
        try:
            found["state"], found["loss"] = _eager_run()
        finally:
            eager_done.set()

    _run_threads(compiled, eager)
    assert found["loss"] == alone_loss
    for key, value in alone_state.items():
        np.testing.assert_array_equal(found["state"][key], value, err_msg=key)


def test_two_threads_compiling_at_once_each_get_their_own_step():
    alone = _model("jax", lambda: None)
    alone.train(X, Y, epochs=3, verbose=0, compile=True)
    both_inside = threading.Barrier(2, timeout=WAIT)
    models = [_model("jax", both_inside.wait) for _ in range(2)]

    def train(model: nnx.Model) -> Any:
        return lambda: model.train(X, Y, epochs=3, verbose=0, compile=True)

    _run_threads(*(train(model) for model in models))
    for model in models:
        for key, value in _state(alone).items():
            np.testing.assert_array_equal(_state(model)[key], value, err_msg=key)
