"""``Model.train(steps_per_execution=K)``: K compiled steps per call of the compiled code give
what K eager steps give (state, history, printed lines, the NaN stop), with one compile per
batch shape for every K."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import backends
import nnx

try:
    JAX = backends.load("jax", os.environ.get("NNX_DEVICE") or None)
except backends.BackendError as err:  # pragma: no cover - jax is a test dependency in CI
    pytest.skip(f"jax backend unavailable: {err}", allow_module_level=True)

sys.path.insert(0, str(Path(__file__).parent))
from compiled_models import RTOL, X, Y, assert_stop_alike  # noqa: E402
from compiled_models import assert_close as _assert_close  # noqa: E402
from compiled_models import host as _host  # noqa: E402
from compiled_models import model as compiled_model  # noqa: E402


def _model(backend: Any, optimizer: Any = None) -> nnx.Model:
    return compiled_model(backend, optimizer, dropout=False)  # Dropout: its own test


@pytest.fixture(scope="module")
def eager() -> tuple[dict[str, np.ndarray], dict[str, list[float]], nnx.Model]:
    """The reference: 7 epochs of 50, 50, 20 rows, shuffled, on NumPy (21 steps: enough
    that K left out runs many steps a call)."""
    model = _model("numpy")
    history = model.train(X, Y, epochs=7, batch_size=50, shuffle=True, verbose=0)
    return _host(model), history, model


@pytest.mark.parametrize("K", [2, 4, 7, None, 1000])
def test_k_steps_per_call_are_k_eager_steps(K: Any, eager: Any) -> None:
    """Calls that end inside an epoch, span epochs, and stop at the ragged last batch."""
    state, history, reference = eager
    model = _model(JAX)
    got = model.train(X, Y, epochs=7, batch_size=50, shuffle=True, verbose=0, steps_per_execution=K)
    assert sorted(model.compiled_step.loops) == [20, 50]
    _assert_close(_host(model), state)
    assert got.keys() == history.keys()
    for key, values in history.items():
        np.testing.assert_allclose(got[key], values, rtol=RTOL, err_msg=key)
    # What the eager step leaves on the host, the same.
    assert type(model.optimizer.iterations) is int and model.optimizer.iterations == 21
    assert model.optimizer.current_learning_rate == reference.optimizer.current_learning_rate
    assert model.loss.accumulated_count == reference.loss.accumulated_count == 120
    np.testing.assert_allclose(
        float(model.loss.accumulated_sum), float(reference.loss.accumulated_sum), RTOL
    )
    for layer in model.layers:  # nothing traced stays behind
        assert not any(hasattr(layer, name) for name in ("inputs", "output", "dinputs"))


def test_one_compile_serves_every_k() -> None:
    model = _model(JAX)
    for K, epochs in ((3, 2), (5, 2), (None, 7), (100, 2)):
        model.train(X, Y, epochs=epochs, batch_size=50, verbose=0, steps_per_execution=K)
    # One program for the 50-row batches, one for the 20-row ragged batch, whatever K was.
    assert model.compiled_step.traces == 2
    assert sorted(model.compiled_step.loops) == [20, 50]


def test_left_to_nnx_a_short_call_runs_one_step_a_call() -> None:
    """Below 20 steps a train call, the loop's setup costs more than it saves."""
    model, reference = _model(JAX), _model("numpy")
    got = model.train(X, Y, epochs=2, batch_size=50, verbose=0)  # 6 steps
    assert model.compiled_step.loops == {} and model.compiled_step.traces == 2
    want = reference.train(X, Y, epochs=2, batch_size=50, verbose=0)
    np.testing.assert_allclose(got["loss"], want["loss"], rtol=RTOL)
    model.train(X, Y, epochs=7, batch_size=50, verbose=0)  # 21 steps: the loop
    assert sorted(model.compiled_step.loops) == [20, 50]


def test_full_batch_epochs_run_many_per_call() -> None:
    """The book's case: one batch an epoch, so a call of K steps spans K epochs; the history
    still has a line per epoch."""
    model, reference = _model(JAX), _model("numpy")
    got = model.train(X, Y, epochs=23, verbose=0, steps_per_execution=10)  # calls: 10, 10, 3
    want = reference.train(X, Y, epochs=23, verbose=0)
    for key, values in want.items():
        np.testing.assert_allclose(got[key], values, rtol=RTOL, err_msg=key)
    # Full-batch Adam at 0.02 on 120 points: float32 rounding grows faster here (eager JAX
    # differs from NumPy by 5e-5 after 23 steps, by 3e-3 after 37).
    for key, value in _host(reference).items():
        np.testing.assert_allclose(_host(model)[key], value, atol=1e-4, err_msg=key)


def test_the_printed_lines_are_the_eager_ones(capsys: Any) -> None:
    """Step lines (several batches an epoch) and epoch lines read figures from inside calls."""
    lines = []
    for backend, K in (("numpy", None), (JAX, 4)):
        _model(backend).train(X, Y, epochs=3, batch_size=20, print_every=2, steps_per_execution=K)
        lines.append(capsys.readouterr().out.splitlines())
    assert len(lines[0]) == len(lines[1]) > 6
    for want, got in zip(*lines, strict=True):
        # The printed figures are rounded to 3 digits: compare the words, and numbers closely.
        assert want.split(":")[0] == got.split(":")[0]
        w = [float(t.strip("(),")) for t in want.split() if t[:1].isdigit()]
        g = [float(t.strip("(),")) for t in got.split() if t[:1].isdigit()]
        np.testing.assert_allclose(g, w, atol=1.5e-3)


def test_validation_and_checkpoints_between_calls(tmp_path: Any) -> None:
    path = tmp_path / "run.nnx"
    whole = _model(JAX)
    whole.train(X, Y, epochs=4, batch_size=50, shuffle=True, verbose=0, steps_per_execution=5)
    first = _model(JAX)
    history = first.train(
        X, Y, epochs=2, batch_size=50, shuffle=True, verbose=0, checkpoint=path,
        validation_data=(X[:30], Y[:30]), steps_per_execution=5,
    )  # fmt: skip
    assert len(history["val_loss"]) == 2
    reference = _model("numpy")
    want = reference.train(
        X, Y, epochs=2, batch_size=50, shuffle=True, verbose=0,
        validation_data=(X[:30], Y[:30]),
    )  # fmt: skip
    np.testing.assert_allclose(history["val_loss"], want["val_loss"], rtol=RTOL)
    resumed = _model(JAX)
    resumed.train(
        X, Y, epochs=4, batch_size=50, shuffle=True, verbose=0, resume=path,
        steps_per_execution=5,
    )  # fmt: skip
    for key, value in _host(whole).items():
        np.testing.assert_array_equal(_host(resumed)[key], value, err_msg=key)


def _diverging(backend: Any) -> nnx.Model:
    return _model(backend, lambda: nnx.SGD(learning_rate=1e18))


@pytest.mark.parametrize("K", [3, 50])
def test_a_nan_inside_a_call_stops_where_the_eager_step_stops(K: int) -> None:
    # numpy ignores steps_per_execution: its eager step is the reference.
    models = [_diverging(backend) for backend in ("numpy", JAX)]
    assert_stop_alike(models, epochs=20, batch_size=40, verbose=0, steps_per_execution=K)


def test_on_nan_warn_keeps_the_history_before_the_diverged_epoch() -> None:
    histories, iterations = [], []
    for backend in ("numpy", JAX):
        model = _diverging(backend)
        with pytest.warns(RuntimeWarning, match="the loss became"):
            histories.append(
                model.train(X, Y, epochs=20, verbose=0, on_nan="warn", steps_per_execution=8)
            )
        iterations.append(model.optimizer.iterations)
    assert len(histories[0]["loss"]) == len(histories[1]["loss"])
    assert iterations[0] == iterations[1]


def test_a_divergence_read_after_its_epochs_reached_the_host_leaves_them_out() -> None:
    """SGD at 5e3 diverges at step 13; calls of 8 steps bring epochs 9-16 to the host (and
    the loop turns them into floats) before the loop reads the divergence at the end."""
    histories = []
    for backend in ("numpy", JAX):
        model = _model(backend, lambda: nnx.SGD(learning_rate=5e3, momentum=0.9))
        with pytest.warns(RuntimeWarning, match="the loss became"):
            history = model.train(X, Y, epochs=30, verbose=0, on_nan="warn", steps_per_execution=8)
        assert model.optimizer.iterations == 13
        histories.append(history)
    assert {key: len(values) for key, values in histories[1].items()} == dict.fromkeys(
        histories[0], 13
    )
    np.testing.assert_allclose(histories[1]["loss"], histories[0]["loss"], rtol=1e-3)


@pytest.mark.parametrize("bad", [0, -1, 2.5, "3", True])
def test_steps_per_execution_must_be_a_whole_number(bad: Any) -> None:
    with pytest.raises(ValueError, match="steps_per_execution"):
        _model(JAX).train(X, Y, epochs=1, verbose=0, steps_per_execution=bad)


def test_eager_steps_ignore_it() -> None:
    """compile=False and backends without a compiler run one step at a time, as asked."""
    for backend, compile in (("numpy", None), (JAX, False)):
        model = _model(backend)
        model.train(X, Y, epochs=2, verbose=0, compile=compile, steps_per_execution=4)
        assert model.optimizer.iterations == 2
        assert getattr(model, "compiled_step", None) is None


@pytest.mark.parametrize("draws_bytes", [None, 1])
def test_dropout_draws_the_eager_masks_in_calls_of_many_steps(
    draws_bytes: Any, monkeypatch
) -> None:
    """Each step's masks come from the layer's host generator in the eager order, one table a
    call; where a step's draws are large, a call runs fewer steps (here: 1 byte allowed, so
    one step a call), with the same numbers."""
    import nnx._run.many

    if draws_bytes is not None:
        monkeypatch.setattr(nnx._run.many, "_DRAWS_BYTES", draws_bytes)
    runs = []
    for backend, K in (("numpy", None), (JAX, 4)):
        model = compiled_model(backend)  # with Dropout(0.2)
        history = model.train(
            X, Y, epochs=7, batch_size=50, shuffle=True, verbose=0, steps_per_execution=K
        )
        runs.append((_host(model), history, model))
    (want, want_history, _), (got, got_history, model) = runs
    _assert_close(got, want)
    np.testing.assert_allclose(got_history["loss"], want_history["loss"], rtol=RTOL)
    capacities = {size: capacity for size, (_, capacity) in model.compiled_step.loops.items()}
    assert capacities == ({20: 1, 50: 1} if draws_bytes else {20: 128, 50: 128})
