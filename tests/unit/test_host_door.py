"""The door of every method that takes arrays (nnx._component): what it moves, what it refuses,
and that your own classes get it too."""

from __future__ import annotations

import numpy as np
import pytest

import backends
import nnx


def test_an_array_of_another_library_is_refused_naming_both():
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match=r"ReLU\.forward: inputs is an array of torch on cpu, "
                       r"but this object lives on backend numpy on cpu"):  # fmt: skip
        nnx.ReLU(backend="numpy").forward(torch.ones(2, 2))


def test_a_foreign_label_array_is_refused_too():
    strict = backends.load("array_api_strict")
    loss = nnx.CategoricalCrossentropy(backend="numpy")
    with pytest.raises(TypeError, match=r"CategoricalCrossentropy\.forward: y_true is an array"):
        loss.forward(np.full((2, 3), 1 / 3), strict.asarray([0, 1]))


def test_host_data_takes_the_precision_numpy_would_compute_in():
    relu = nnx.ReLU(backend="array_api_strict")
    xp = relu.xp
    assert relu.forward(np.ones(3, dtype=np.float32)).dtype == xp.float32
    assert relu.forward(np.ones(3)).dtype == xp.float64
    assert relu.forward([1, -2, 3]).dtype == xp.float64  # integers compute as NumPy's floats
    # A part with a dtype of its own (Dense) takes host data in it.
    dense = nnx.Dense(3, 2, seed=0, backend="array_api_strict")
    assert dense.forward([[1.0, 2.0, 3.0]]).dtype == xp.float32
    # Labels keep theirs.
    accuracy = nnx.CategoricalAccuracy(backend="array_api_strict")
    assert accuracy.compare([0, 1], [0, 2]).dtype == xp.bool


def test_arrays_passed_by_name_pass_the_door():
    loss = nnx.MeanSquaredError(backend="array_api_strict")
    value = loss.calculate(output=[[1.0, 2.0]], y=[[1.0, 4.0]])
    assert float(value) == pytest.approx(2.0)
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'y'"):
        loss.calculate(output=[[1.0]])


def test_arrays_set_by_hand_move_at_the_next_method():
    strict = "array_api_strict"
    softmax = nnx.Softmax(backend=strict)
    softmax.output = np.array([[0.7, 0.1, 0.2]])  # chapter 9
    dinputs = softmax.backward(np.array([[1.0, 0.0, 0.0]]))
    np.testing.assert_allclose(backends.to_numpy(dinputs), [[0.21, -0.07, -0.14]])
    dense = nnx.Dense(2, 2, seed=0, backend=strict)
    dense.weights = np.eye(2)  # chapter 6's random search sets weights from NumPy
    out = dense.forward(np.array([[3.0, 4.0]]))
    assert type(dense.weights) is dense.backend.array_type
    assert dense.weights.dtype == dense.dtype
    np.testing.assert_allclose(backends.to_numpy(out), [[3.0, 4.0]])


def test_your_own_layer_gets_the_door():
    class Double(nnx.Layer):
        def forward(self, inputs, training=False):
            self.output = inputs * 2
            return self.output

        def backward(self, dvalues):
            self.dinputs = dvalues * 2
            return self.dinputs

    layer = Double(backend="array_api_strict")
    assert type(layer.forward([1.0, 2.0])) is layer.backend.array_type
    assert type(layer.backward(np.ones(2))) is layer.backend.array_type


def test_backends_to_numpy_names_what_is_loaded():
    with pytest.raises(TypeError, match=r"to_numpy: expected an array of a loaded backend"):
        backends.to_numpy(object())
    assert backends.to_numpy(backends.load("array_api_strict", "device1").asarray([1.0])) == [1.0]


def test_an_array_subclass_of_the_backend_is_taken():
    torch = pytest.importorskip("torch")
    parameter = torch.nn.Parameter(torch.ones(2, 2), requires_grad=False)
    out = nnx.ReLU(backend="torch").forward(parameter)
    assert isinstance(out, torch.Tensor)


def test_weights_set_by_hand_take_the_layers_dtype_on_numpy_too():
    dense = nnx.Dense(2, 2, seed=0, backend="numpy")
    dense.weights = np.eye(2)  # float64, as chapter 6's np.copy(...) + noise gives
    assert dense.forward(np.ones((1, 2), dtype=np.float32)).dtype == np.float32
    assert dense.weights.dtype == np.float32


def test_a_tuple_passes_as_it_is_and_is_not_moved_as_state():
    class Concat(nnx.Layer):
        def forward(self, inputs, training=False):
            self.inputs = inputs
            self.output = np.concatenate(inputs, axis=1)
            return self.output

        def backward(self, dvalues):
            self.dinputs = dvalues
            return dvalues

    layer = Concat(backend="numpy")
    assert layer.forward((np.ones((2, 2)), np.zeros((2, 3)))).shape == (2, 5)
    layer.backward(np.ones((2, 5)))
    assert isinstance(layer.inputs, tuple)


def test_integer_ids_with_the_data_kind():
    class Embedding(nnx.Layer):
        takes_arrays = {**nnx.Layer.takes_arrays, "forward": ("data",)}
        parameters = {"table": "dtable"}

        def __init__(self, backend=None):
            super().__init__(backend)
            self.dtype = self.backend.dtype("float32")
            self.table = self.xp.reshape(self.xp.arange(6, dtype=self.dtype), (3, 2))

        def forward(self, ids, training=False):
            self.output = self.xp.take(self.table, ids, axis=0)
            return self.output

    layer = Embedding(backend="array_api_strict")
    assert layer.forward(np.array([2, 0])).shape == (2, 2)


def test_unusual_signatures_and_names():
    class Odd(nnx.Layer):
        def forward(this, type, method=1, state=None, *rest, where="x", **options):  # noqa: A002, N805
            this.output = type * method
            return this.output

        def backward(self, *args):  # no array to take by position: left without a door
            return args

    layer = Odd(backend="array_api_strict")
    assert type(layer.forward([1.0, 2.0], 3)) is layer.backend.array_type
    assert not hasattr(Odd.backward, "__door__")
    assert hasattr(Odd.forward, "__door__")


def test_a_subclass_that_adds_a_parameter_gets_its_own_door():
    class Scaled(nnx.Dense):
        parameters = {**nnx.Dense.parameters, "scale": "dscale"}

    layer = Scaled(2, 2, seed=0, backend="array_api_strict")
    layer.scale = np.ones((1, 2))  # set by hand: moved by the inherited forward's door
    layer.forward(np.ones((1, 2)))
    assert type(layer.scale) is layer.backend.array_type
    assert Scaled.forward is not nnx.Dense.forward


def test_complex_or_object_host_data_is_refused():
    with pytest.raises(TypeError, match=r"ReLU\.forward: expected inputs as real numbers"):
        nnx.ReLU(backend="array_api_strict").forward(np.array([1 + 2j]))
    pytest.importorskip("torch", reason='the object row runs on torch: pip install -e ".[torch]"')
    with pytest.raises(TypeError, match="real numbers"):
        nnx.Dense(1, 1, seed=0, backend="torch").forward(np.array([[None]], dtype=object))
