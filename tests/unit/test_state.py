"""Model.get_state / set_state and Model.to: the one door the training state goes through."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import backends
import nnx
from nnx.datasets import spiral_data

X, Y = spiral_data(20, 3, seed=0)


def _model(backend="numpy", optimizer=None):
    with nnx.use_backend(backend):
        model = nnx.Model(seed=0)
        model.add(nnx.Dense(2, 8, seed=1))
        model.add(nnx.ReLU())
        model.add(nnx.Dense(8, 3, seed=2))
        model.add(nnx.Softmax())
        model.set(loss=nnx.CategoricalCrossentropy(), optimizer=optimizer or nnx.Adam(0.02))
    model.finalize()
    return model


def test_a_whole_state_with_a_reset_counter_leaves_no_stale_momentum():
    fresh = _model()
    start = {k: np.array(v) for k, v in fresh.get_state().items()}
    trained = _model()
    trained.train(X, Y, epochs=3, verbose=0)
    trained.set_state(start)  # back to step 0: Adam's state must start from zeros too
    assert trained.optimizer.iterations == 0
    assert not hasattr(trained.layers[0], "weight_momentums")
    trained.train(X, Y, epochs=2, verbose=0)
    fresh.train(X, Y, epochs=2, verbose=0)
    for a, b in zip(trained.get_parameters(), fresh.get_parameters(), strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)


def test_parameters_alone_leave_the_optimizer_state():
    model = _model()
    model.train(X, Y, epochs=2, verbose=0)
    momentums = np.array(model.layers[0].weight_momentums)
    model.set_state(model.get_state(optimizer=False))
    np.testing.assert_array_equal(model.layers[0].weight_momentums, momentums)
    assert model.optimizer.iterations == 2


def test_set_state_refuses_what_is_not_an_array_and_changes_nothing():
    model = _model()
    before = {k: np.array(v) for k, v in model.get_state().items()}
    state = dict(before)
    state["layers.2.biases"] = {"not": "an array"}
    with pytest.raises(ValueError, match="layers.2.biases"):
        model.set_state(state)
    for key, value in model.get_state().items():
        np.testing.assert_array_equal(value, before[key])


class Shift(nnx.Layer):
    """A trainable layer without a dtype attribute, with an array that is not a parameter."""

    parameters = {"beta": "dbeta"}
    arrays = ("scale",)  # declared: it moves with the layer

    def __init__(self, n, *, backend=None):
        super().__init__(backend)
        self.beta = self.xp.zeros((1, n), dtype=self.xp.float32, device=self.device)
        self.scale = self.backend.asarray(np.full((1, n), 2.0, np.float32))

    def forward(self, inputs, training=False):
        self.output = inputs * self.scale + self.beta
        return self.output

    def backward(self, dvalues):
        self.dbeta = self.xp.sum(dvalues, axis=0, keepdims=True)
        self.dinputs = dvalues * self.scale
        return self.dinputs


def test_to_moves_a_layer_without_dtype_and_its_declared_arrays():
    pytest.importorskip("array_api_strict")
    model = nnx.Model(seed=0)
    for layer in (nnx.Dense(2, 4, seed=1), Shift(4), nnx.Softmax()):
        model.add(layer)
    model.set(loss=nnx.CategoricalCrossentropy(), optimizer=nnx.SGD(0.1, momentum=0.5))
    model.finalize()
    model.train(X, Y, epochs=2, verbose=0)
    expected = model.predict(X)
    model.to("array_api_strict")
    shift = model.layers[1]
    assert type(shift.scale) is type(shift.beta) is type(model.backend.asarray([0.0]))
    got = model.backend.to_numpy(model.predict(X))
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    model.train(X, Y, epochs=1, verbose=0)


def test_a_failed_move_puts_everything_back():
    numpy = backends.load("numpy")
    no_float64 = dataclasses.replace(numpy, name="no_float64", float64=False)
    model = _model(optimizer=nnx.SGD(0.1))
    model.layers[0].dtype = None  # the parameter's own dtype decides, by name
    model.layers[0].weights = model.layers[0].weights.astype(np.float64)
    before = {k: np.array(v) for k, v in model.get_state().items()}
    with pytest.raises(nnx.BackendError, match="does not support float64"):
        model.to(no_float64)
    assert all(part.backend.name == "numpy" for part in [*model.layers, model.loss])
    for key, value in model.get_state().items():
        np.testing.assert_array_equal(value, before[key])


def test_set_refuses_a_class_before_changing_anything():
    model = _model()
    model.train(X, Y, epochs=1, verbose=0)
    with pytest.raises(TypeError, match=r"optimizer as an instance of nnx's Optimizer"):
        model.set(optimizer=nnx.SGD)
    assert hasattr(model.layers[0], "weight_momentums")
    assert isinstance(model.optimizer, nnx.Adam)


def _dropout_model(backend="numpy", seed=5):
    with nnx.use_backend(backend):
        model = nnx.Model(seed=0)
        model.add(nnx.Dense(2, 16, seed=1))
        model.add(nnx.ReLU())
        model.add(nnx.Dropout(0.3, seed=seed))
        model.add(nnx.Dense(16, 3, seed=2))
        model.add(nnx.Softmax())
        model.set(loss=nnx.CategoricalCrossentropy(), optimizer=nnx.Adam(0.02))
    model.finalize()
    return model


def _host(model):
    return {k: np.array(backends.to_numpy(v)) for k, v in model.get_state().items()}


@pytest.mark.parametrize("library", ["numpy", "array_api_strict", "jax", "torch"])
def test_a_seeded_dropout_generator_is_in_the_state_and_comes_back(library):
    """The generator is state like the parameters: set_state(get_state()) at any point and
    the run goes on drawing the masks it would have drawn."""
    try:
        backends.load(library)
    except backends.BackendError as err:  # an extra not installed
        pytest.skip(str(err))
    model = _dropout_model(library)
    model.train(X, Y, epochs=2, verbose=0)
    state = model.get_state()
    assert "layers.2.random_state" in state and "layers.2.random_state" not in model.get_state(
        optimizer=False
    )
    generator = backends.to_numpy(state["layers.2.random_state"])
    assert generator.dtype == np.int32 and generator.shape == (10,)  # every backend holds int32
    saved = _host(model)
    model.train(X, Y, epochs=3, verbose=0)
    after = _host(model)
    model.set_state(saved)
    model.train(X, Y, epochs=3, verbose=0)
    for key, value in _host(model).items():
        np.testing.assert_array_equal(value, after[key], err_msg=key)


def test_a_model_file_keeps_the_generator_and_an_unseeded_dropout_has_none(tmp_path):
    model = _dropout_model()
    model.train(X, Y, epochs=2, verbose=0)
    model.save(tmp_path / "m.nnx")
    model.train(X, Y, epochs=2, verbose=0)
    loaded = nnx.Model.load(tmp_path / "m.nnx")
    loaded.train(X, Y, epochs=2, verbose=0)
    for key, value in _host(loaded).items():
        np.testing.assert_array_equal(value, _host(model)[key], err_msg=key)
    assert not any(k.endswith("random_state") for k in _dropout_model(seed=None).get_state())


@pytest.mark.parametrize(
    "value",
    [np.zeros(9, np.int32), np.zeros(10, np.int64), np.array([0] * 8 + [2, 0], np.int32)],
    ids=["short", "signed", "cached flag 2"],
)
def test_a_damaged_generator_is_refused_and_nothing_changes(value, tmp_path):
    model = _dropout_model()
    model.train(X, Y, epochs=1, verbose=0)
    before = _host(model)
    state = {**model.get_state(), "layers.2.random_state": value}
    with pytest.raises(ValueError, match="layers.2.random_state"):
        model.set_state(state)
    for key, array in _host(model).items():
        np.testing.assert_array_equal(array, before[key], err_msg=key)
