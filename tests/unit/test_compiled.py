"""The compiled training step (``nnx._run.compiled``) on the jax backend.

Compiled and eager runs of the same model give the same numbers within float32 rounding, the
step is traced once per train call, checkpoints resume bit for bit, a NaN stops training where
the eager step stops it, and nothing traced stays on the model.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import backends
import nnx

try:
    JAX = backends.load("jax", os.environ.get("NNX_DEVICE") or None)  # gpu_run.sh: gpu
except backends.BackendError as err:  # pragma: no cover - jax is a test dependency in CI
    pytest.skip(f"jax backend unavailable: {err}", allow_module_level=True)

sys.path.insert(0, str(Path(__file__).parent))
from compiled_models import RTOL, X, Y, assert_stop_alike  # noqa: E402
from compiled_models import assert_close as _assert_close  # noqa: E402
from compiled_models import host as _host  # noqa: E402
from compiled_models import model as _model  # noqa: E402

OPTIMIZERS = {
    "sgd": lambda: nnx.SGD(learning_rate=0.5, decay=1e-2, momentum=0.9),
    "adagrad": lambda: nnx.Adagrad(learning_rate=0.5, decay=1e-3),
    "rmsprop": lambda: nnx.RMSprop(learning_rate=0.01, decay=1e-3),
    "adam": lambda: nnx.Adam(learning_rate=0.02, decay=1e-3),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_compiled_equals_eager_and_numpy(name: str) -> None:
    """Same masks, same updates, same history: compiled JAX, eager JAX and NumPy."""
    runs = {}
    for label, backend, compile in [
        ("numpy", "numpy", None),
        ("eager", JAX, False),
        ("compiled", JAX, None),
    ]:
        model = _model(backend, OPTIMIZERS[name])
        history = model.train(
            X, Y, epochs=3, batch_size=32, shuffle=True, verbose=0, compile=compile
        )
        runs[label] = (_host(model), history)
    for label in ("eager", "compiled"):
        _assert_close(runs[label][0], runs["numpy"][0])
        for key, values in runs["numpy"][1].items():
            np.testing.assert_allclose(runs[label][1][key], values, rtol=RTOL, err_msg=key)


def test_one_trace_for_a_whole_train_call_and_none_for_the_next() -> None:
    model = _model(JAX)
    model.train(X, Y, epochs=4, batch_size=40, shuffle=True, verbose=0)  # 3 steps an epoch
    assert model.compiled_step.traces == 1
    model.train(X, Y, epochs=3, batch_size=40, verbose=0)
    assert model.compiled_step.traces == 1  # same shapes, same numbers: the same code
    model.optimizer.learning_rate = 0.001  # a number compiled in: a new step, traced once
    model.train(X, Y, epochs=2, batch_size=40, verbose=0)
    assert model.compiled_step.traces == 2  # traces counts every program the model made
    eager = _model("numpy")
    eager.train(X, Y, epochs=4, batch_size=40, shuffle=True, verbose=0)
    eager.train(X, Y, epochs=3, batch_size=40, verbose=0)
    eager.optimizer.learning_rate = 0.001
    eager.train(X, Y, epochs=2, batch_size=40, verbose=0)
    _assert_close(_host(model), _host(eager))


def test_a_ragged_last_batch_is_a_second_shape() -> None:
    model = _model(JAX, dropout=False)
    history = model.train(X, Y, epochs=2, batch_size=50, verbose=0)  # 50, 50, 20
    assert model.compiled_step.traces == 2
    eager = _model("numpy", dropout=False)
    np.testing.assert_allclose(
        history["loss"], eager.train(X, Y, epochs=2, batch_size=50, verbose=0)["loss"], RTOL
    )


def test_nothing_traced_stays_on_the_model() -> None:
    model = _model(JAX)
    model.train(X, Y, epochs=2, batch_size=40, verbose=0)
    assert type(model.optimizer.iterations) is int and model.optimizer.iterations == 6
    assert type(model.optimizer.current_learning_rate) is float
    assert model.loss.accumulated_count == 120
    for layer in model.layers:
        assert not any(hasattr(layer, name) for name in ("inputs", "output", "dinputs"))
    for value in _host(model).values():
        assert np.isfinite(value).all()
    # Eager use afterwards works on the trained arrays.
    output = model.forward(JAX.asarray(X[:5], JAX.xp.float32), training=False)
    assert output.shape == (5, 3)
    model.evaluate(X, Y, verbose=0)


def test_a_checkpoint_of_a_compiled_run_resumes_bit_for_bit(tmp_path: Any) -> None:
    path = tmp_path / "run.nnx"
    whole = _model(JAX)
    whole.train(X, Y, epochs=4, batch_size=40, shuffle=True, verbose=0)
    first = _model(JAX)
    first.train(X, Y, epochs=2, batch_size=40, shuffle=True, verbose=0, checkpoint=path)
    resumed = _model(JAX)
    history = resumed.train(X, Y, epochs=4, batch_size=40, shuffle=True, verbose=0, resume=path)
    for key, value in _host(whole).items():
        np.testing.assert_array_equal(_host(resumed)[key], value, err_msg=key)
    assert len(history["loss"]) == 4


def _diverging(backend: Any) -> nnx.Model:
    # A learning rate that overflows the weights within a few steps.
    return _model(backend, lambda: nnx.SGD(learning_rate=1e18), dropout=False)


@pytest.mark.parametrize("verbose", [0, 1])
def test_a_nan_stops_where_the_eager_step_stops(verbose: int, capsys: Any) -> None:
    models = [_diverging(backend) for backend in ("numpy", JAX)]
    assert_stop_alike(models, epochs=6, batch_size=40, verbose=verbose)
    capsys.readouterr()


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_the_guard_keeps_or_drops_the_whole_update_of_every_optimizer(name: str) -> None:
    """The NaN guard wraps the step (where(finite, new, old) over the whole state), not the
    optimizers' formulas: every optimizer stops where its eager step stops, with its state."""
    models = [_model(backend, OPTIMIZERS[name], dropout=False) for backend in ("numpy", JAX)]
    for model in models:
        model.optimizer.learning_rate = 1e30  # overflows float32 within a few steps
    assert_stop_alike(models, epochs=6, batch_size=40, verbose=0)


def test_on_nan_warn_returns_the_history_before_the_diverged_epoch() -> None:
    histories = []
    for backend in ("numpy", JAX):
        with pytest.warns(RuntimeWarning, match="the loss became"):
            histories.append(_diverging(backend).train(X, Y, epochs=6, verbose=0, on_nan="warn"))
    assert histories[0].keys() == histories[1].keys()
    assert len(histories[0]["loss"]) == len(histories[1]["loss"])


def test_compile_true_needs_a_backend_that_compiles() -> None:
    with pytest.raises(ValueError, match="cannot compile"):
        _model("numpy").train(X, Y, epochs=1, verbose=0, compile=True)
    with pytest.raises(ValueError, match="compile as True, False or None"):
        _model(JAX).train(X, Y, epochs=1, verbose=0, compile="yes")


def test_compile_false_runs_the_eager_step() -> None:
    model = _model(JAX)
    model.train(X, Y, epochs=1, verbose=0, compile=False)
    assert not hasattr(model, "compiled_step")
    assert hasattr(model.layers[0], "dweights")  # the eager step leaves its arrays


def test_the_book_lines_are_printed_from_a_compiled_run(capsys: Any) -> None:
    lines = []
    for backend in ("numpy", JAX):
        _model(backend, dropout=False).train(X, Y, epochs=3, print_every=1)
        lines.append(capsys.readouterr().out.splitlines())
    assert len(lines[0]) == len(lines[1]) == 3
    for ours, theirs in zip(*lines, strict=True):
        assert ours.split(", acc")[0] == theirs.split(", acc")[0]
        assert ours.endswith(theirs.rsplit("lr: ", 1)[1])  # the same Python learning rate


def test_jax_backend_errors_say_what_to_do() -> None:
    with pytest.raises(backends.BackendError, match="JAX_ENABLE_X64"):
        JAX.dtype("float64")
    with pytest.raises(backends.BackendError, match="unknown device"):
        backends.load("jax", "quantum")
    if not any(d.platform == "gpu" for d in __import__("jax").devices()):
        with pytest.raises(backends.BackendError, match="no GPU device"):
            backends.load("jax", "cuda:0")


def test_loading_a_backend_keeps_numpys_global_generator() -> None:
    """Importing jax draws from NumPy's global generator; the book seeds it just before its
    first layer loads the backend. A fresh process, so that jax is imported there."""
    code = (
        "import numpy as np, backends\n"
        "np.random.seed(3); expected = np.random.rand(); np.random.seed(3)\n"
        "backends.load('jax')\n"
        "assert np.random.rand() == expected"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_the_running_sums_after_a_compiled_call_are_the_eager_ones() -> None:
    # The compiled step carries them in one array with the figures; the parts get them back
    # at the end of the call, as the eager step leaves them.
    sums = {}
    for name in ("numpy", JAX):
        model = _model(name)
        model.train(X, Y, epochs=2, batch_size=40, verbose=0)
        sums[name] = (
            float(model.loss.calculate_accumulated()),
            float(model.accuracy.calculate_accumulated()),
            model.loss.accumulated_count,
        )
    np.testing.assert_allclose(sums[JAX][:2], sums["numpy"][:2], rtol=1e-4)
    assert sums[JAX][2] == sums["numpy"][2] == len(X)
