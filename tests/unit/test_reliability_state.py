"""Reliability, round three: compiled steps that honour every change or refuse it, and state
that never turns non-finite unnoticed or reaches a file (issue 27).

Written as an attacker would: hyperparameters changed in place or as NumPy scalars, a new batch
size on every call, a layer that reads an array on the host, tied weights, a counter past
int32, inputs of 1e30 that keep the loss finite while Adam's cache overflows.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import nnx
from nnx.datasets import spiral_data

X, Y = spiral_data(samples=40, classes=3, seed=0)


def _model(backend: str = "numpy", layers=None, optimizer=None) -> nnx.Model:
    model = nnx.Model(seed=0)
    for layer in layers or (nnx.Dense(2, 8, seed=1, backend=backend), nnx.ReLU(backend=backend),
                            nnx.Dense(8, 3, seed=2, backend=backend)):  # fmt: skip
        model.add(layer)
    model.add(nnx.Softmax(backend=backend))
    model.set(
        loss=nnx.CategoricalCrossentropy(backend=backend),
        optimizer=optimizer or nnx.Adam(learning_rate=0.02, backend=backend),
        accuracy=nnx.CategoricalAccuracy(backend=backend),
    )
    model.finalize()
    return model


class Scaled(nnx.Layer):
    """Multiplies by ``factors[0]``, a hyperparameter kept in a list (changed in place)."""

    def __init__(self, factors, *, backend=None):
        super().__init__(backend)
        self.factors = factors

    def forward(self, inputs, training=False):
        self.inputs, self.output = inputs, inputs * self.factors[0]
        return self.output

    def backward(self, dvalues):
        self.dinputs = dvalues * self.factors[0]
        return self.dinputs

    def config(self):
        return {"factors": self.factors}


class ReadsOnHost(nnx.Layer):
    """Scales by the host value of its input's maximum: fine eagerly, not traceable."""

    def forward(self, inputs, training=False):
        self.inputs = inputs
        self.output = inputs / float(self.xp.max(self.xp.abs(inputs)) + 1.0)
        return self.output

    def backward(self, dvalues):
        self.dinputs = dvalues
        return self.dinputs


def _jax() -> None:
    pytest.importorskip("jax", reason='the compiled step needs jax: pip install -e ".[jax]"')


# -- compiled steps honour every change -------------------------------------------------------
def _two_calls(compile: bool, change) -> np.ndarray:
    factors = [1.0]
    layers = (nnx.Dense(2, 8, seed=1, backend="jax"), Scaled(factors, backend="jax"),
              nnx.Dense(8, 3, seed=2, backend="jax"))  # fmt: skip
    model = _model("jax", layers, nnx.Adam(learning_rate=0.02, backend="jax"))
    model.train(X, Y, epochs=3, verbose=0, compile=compile)
    change(model, factors)
    history = model.train(X, Y, epochs=3, verbose=0, compile=compile)
    return np.asarray(history["loss"])


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda model, factors: factors.__setitem__(0, 3.0), id="list-in-place"),
        pytest.param(
            lambda model, factors: setattr(
                model.layers[0], "weight_regularizer_l2", np.float32(0.01)
            ),  # fmt: skip
            id="numpy-scalar",
        ),
        pytest.param(
            lambda model, factors: setattr(model.optimizer, "beta_1", np.float64(0.5)),
            id="optimizer-numpy-scalar",
        ),
    ],
)
def test_the_compiled_step_honours_a_change_as_the_eager_step_does(change):
    _jax()
    compiled, eager = _two_calls(True, change), _two_calls(False, change)
    np.testing.assert_allclose(compiled, eager, rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("per_call", [1, 4])  # one step a call, and many (their own programs)
def test_a_new_batch_size_every_call_is_counted_warned_and_bounded(per_call):
    _jax()
    model = _model("jax")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for batch_size in range(3, 13):  # ten shapes, one call each
            model.train(
                X, Y, epochs=1, batch_size=batch_size, verbose=0, steps_per_execution=per_call
            )
    step = model.compiled_step
    # Every batch shape once: each size, and the short last batches (1 for 7; 3 and 10 are
    # sizes already).
    shapes = set(range(3, 13)) | {120 % b for b in range(3, 13) if 120 % b}
    assert step.traces == len(shapes) == 11
    said = [w for w in caught if "batch shape it has not seen" in str(w.message)]
    assert said and "compile=False" in str(said[0].message)


def test_traces_count_every_program_across_changes():
    _jax()
    model = _model("jax")
    model.train(X, Y, epochs=1, verbose=0)
    model.optimizer.beta_2 = 0.99  # compiled in as a constant: a new step
    model.train(X, Y, epochs=1, verbose=0)
    assert model.compiled_step.traces == 2


def test_a_layer_that_reads_an_array_on_the_host_is_named():
    _jax()
    layers = (nnx.Dense(2, 8, seed=1, backend="jax"), ReadsOnHost(backend="jax"),
              nnx.Dense(8, 3, seed=2, backend="jax"))  # fmt: skip
    model = _model("jax", layers)
    with pytest.raises(TypeError, match=r"cannot trace layer 1 \(ReadsOnHost\).*compile=False"):
        model.train(X, Y, epochs=1, verbose=0)
    model.train(X, Y, epochs=1, verbose=0, compile=False)  # eagerly it works


def test_tied_parameters_are_refused_by_the_compiled_step():
    _jax()
    first, second = nnx.Dense(2, 2, seed=1, backend="jax"), nnx.Dense(2, 2, seed=2, backend="jax")
    second.weights = first.weights
    model = _model("jax", (first, second, nnx.Dense(2, 3, seed=3, backend="jax")))
    with pytest.raises(ValueError, match=r"layers.0.weights and layers.1.weights are one array"):
        model.train(X, Y, epochs=1, verbose=0)


def test_a_counter_past_int32_is_refused_not_wrapped():
    _jax()
    model = _model("jax")
    state = model.get_state()
    state["optimizer.iterations"] = np.asarray(2**31, dtype=np.int64)
    model.set_state(state)
    with pytest.raises(ValueError, match=r"iterations=2147483648 does not fit .* compile=False"):
        model.train(X, Y, epochs=1, verbose=0)
    assert model.optimizer.iterations == 2**31  # nothing changed


# -- no non-finite state, in training or in files ---------------------------------------------
def _overflowing() -> tuple[nnx.Model, np.ndarray]:
    """Inputs of 1e30 keep the (clipped) loss finite while Adam's cache, the squared
    gradients, overflows float32."""
    return _model(), (X * 1e30).astype(np.float32)


def test_a_state_that_overflows_under_a_finite_loss_stops_training():
    model, big = _overflowing()
    # Silent, the loop reads the device at the end only: that is where it is found.
    with pytest.raises(nnx.NonFiniteLossError, match=r"after epoch 5, layers.0.weight_cache"):
        model.train(big, Y, epochs=5, verbose=0)
    # Validation reads the device every epoch: found after the first.
    model, big = _overflowing()
    with pytest.raises(nnx.NonFiniteLossError, match=r"after epoch 1, layers.0.weight_cache"):
        model.train(big, Y, epochs=5, verbose=0, validation_data=(X, Y))


@pytest.mark.parametrize("K", [1, 100])
def test_a_compiled_run_names_the_array_that_overflowed_as_the_eager_run_does(K):
    """The compiled boundary checks the state and hands back the running sums in one call:
    both must still say what the eager loop says."""
    _jax()
    big = (X * 1e30).astype(np.float32)
    messages = []
    for backend in ("numpy", "jax"):
        with pytest.raises(nnx.NonFiniteLossError) as error:
            _model(backend).train(big, Y, epochs=5, verbose=0, steps_per_execution=K)
        messages.append(str(error.value))
    assert "after epoch 5, layers.0.weight_cache" in messages[1]
    assert messages[0] == messages[1]
    sums = []  # the end of a call leaves the epoch's sums on the loss, as the eager step does
    for backend in ("numpy", "jax"):
        model = _model(backend)
        model.train(X, Y, epochs=3, verbose=0, steps_per_execution=K, on_nan="ignore")
        model.train(X, Y, epochs=2, verbose=0, steps_per_execution=K)
        sums.append(float(model.loss.calculate_accumulated()))
    np.testing.assert_allclose(sums[1], sums[0], rtol=1e-4)


def test_on_nan_warn_returns_the_epochs_before_the_state_overflowed():
    model, big = _overflowing()
    model.train(X, Y, epochs=2, verbose=0)
    with pytest.warns(RuntimeWarning, match="holds NaN or infinity although the loss"):
        history = model.train(big, Y, epochs=5, verbose=0, on_nan="warn", validation_data=(X, Y))
    assert history.get("loss", []) == []  # the first epoch already overflowed


def test_a_checkpoint_is_never_written_with_non_finite_state(tmp_path):
    path = tmp_path / "run.nnx"
    model, big = _overflowing()
    model.train(X, Y, epochs=2, verbose=0, checkpoint=path)
    good = path.read_bytes()
    with pytest.raises(nnx.NonFiniteLossError):
        model.train(big, Y, epochs=3, verbose=0, checkpoint=path)
    assert path.read_bytes() == good
    nnx.Model.load(path)  # still loads


@pytest.mark.parametrize("method", ["save", "save_parameters"])
def test_save_refuses_non_finite_state_and_keeps_the_last_good_file(tmp_path, method):
    path = tmp_path / "model.nnx"
    model = _model()
    getattr(model, method)(path)
    good = path.read_bytes()
    model.layers[0].weights[0, 0] = np.inf
    with pytest.raises(ValueError, match=rf"Model.{method}: layers.0.weights holds NaN"):
        getattr(model, method)(path)
    assert path.read_bytes() == good


def test_the_state_check_is_skipped_with_on_nan_ignore():
    model, big = _overflowing()
    history = model.train(big, Y, epochs=2, verbose=0, on_nan="ignore")
    assert len(history["loss"]) == 2
