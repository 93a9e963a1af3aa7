"""Methods called before what they need, and direct calls with shapes that NumPy would
broadcast: one error naming the part, what it expected and what it got, before any work."""

from __future__ import annotations

import numpy as np
import pytest

import nnx

FIRST = r"expected {name} from a call to {first}, got none.*Call {first} first"


@pytest.mark.parametrize(
    ("layer", "name"),
    [
        (lambda: nnx.ReLU(backend="numpy"), "inputs"),
        (lambda: nnx.Softmax(backend="numpy"), "output"),
        (lambda: nnx.Sigmoid(backend="numpy"), "output"),
        (lambda: nnx.Dense(3, 3, backend="numpy"), "inputs"),
        (lambda: nnx.Dropout(0.5, backend="numpy"), "binary_mask"),
    ],
    ids=["ReLU", "Softmax", "Sigmoid", "Dense", "Dropout"],
)
def test_backward_before_forward_says_to_call_forward(layer, name) -> None:
    part = layer()
    with pytest.raises(ValueError, match=FIRST.format(name=name, first="forward")) as error:
        part.backward(np.ones((2, 3)))
    assert str(error.value).startswith(f"{type(part).__name__}.backward:")
    part.forward(np.ones((2, 3)), training=True)
    part.backward(np.ones((2, 3)))  # and after forward it works


def test_a_layer_moved_to_another_backend_needs_a_forward_again() -> None:
    model = nnx.Model(seed=0)
    model.add(nnx.Dense(2, 3, seed=0, backend="numpy"))
    model.add(nnx.Softmax(backend="numpy"))
    model.set(loss=nnx.CategoricalCrossentropy(backend="numpy"), optimizer=nnx.SGD())
    model.finalize()
    model.train(np.ones((4, 2)), np.array([0, 1, 2, 0]), epochs=1, verbose=0)
    model.to("array_api_strict")
    with pytest.raises(ValueError, match="no forward since it was made or moved"):
        model.layers[0].backward(np.ones((4, 3)))


class Doubling(nnx.Layer):
    """A layer of a reader's own: its doors get the same errors."""

    def forward(self, inputs, training=False):
        self.inputs = inputs
        self.output = 2 * inputs
        return self.output

    def backward(self, dvalues):
        self.dinputs = 2 * dvalues + 0 * self.inputs
        return self.dinputs


class Typo(nnx.Layer):
    def forward(self, inputs, training=False):
        self.output = inputs
        return inputs

    def backward(self, dvalues):
        return dvalues * self.outptu  # a bug of the layer's own: its AttributeError stays


def test_your_own_layer_gets_the_clear_error_and_keeps_its_own_bugs() -> None:
    with pytest.raises(ValueError, match=r"Doubling.backward: expected inputs.*forward first"):
        Doubling(backend="numpy").backward(np.ones((2, 2)))
    typo = Typo(backend="numpy")
    typo.forward(np.ones((2, 2)))
    with pytest.raises(AttributeError, match="outptu"):
        typo.backward(np.ones((2, 2)))


@pytest.mark.parametrize("optimizer", [nnx.SGD, nnx.Adagrad, nnx.RMSprop, nnx.Adam])
def test_update_params_before_any_gradient_changes_nothing(optimizer) -> None:
    dense = nnx.Dense(2, 3, seed=0, backend="numpy")
    opt = optimizer(backend="numpy")
    before = dense.weights.copy(), dense.biases.copy()
    with pytest.raises(ValueError, match=r"gradients of Dense\(n_inputs=2, n_neurons=3\).*"
                                         r"dweights, dbiases not set.*backward"):  # fmt: skip
        opt.update_params(dense)
    dense.dweights = np.ones((2, 3), dtype=np.float32)  # one gradient of two, by hand
    with pytest.raises(ValueError, match=r"got none: dbiases not set"):
        opt.update_params(dense)
    np.testing.assert_array_equal(dense.weights, before[0])
    np.testing.assert_array_equal(dense.biases, before[1])
    assert not any(name.endswith(("momentums", "cache")) for name in vars(dense))


# -- direct calls with mismatched shapes -----------------------------------------------------

P43 = np.full((4, 3), 1 / 3)
LOSS_CASES = [
    (nnx.CategoricalCrossentropy, P43, np.array([0, 1, 2, 0, 1]), r"\(4,\) or \(4, 3\).*\(5,\)"),
    (nnx.CategoricalCrossentropy, P43, np.eye(4), r"\(4,\) or \(4, 3\).*\(4, 4\)"),
    (nnx.CategoricalCrossentropy, np.full(3, 1 / 3), np.array([0]), r"y_pred of shape \(3,\)"),
    (nnx.SoftmaxCategoricalCrossentropy, P43, np.array([0, 1]), r"\(4,\) or \(4, 3\)"),
    (nnx.MeanSquaredError, np.ones((4, 1)), np.ones((4, 2)), r"\(4, 1\), got y_true.*\(4, 2\)"),
    (nnx.MeanSquaredError, np.ones((4, 1)), np.ones(4), r"\(4, 1\), got y_true of shape \(4,\)"),
    (nnx.MeanAbsoluteError, np.ones((4, 2)), np.ones((1, 2)), r"\(4, 2\).*\(1, 2\)"),
    (nnx.BinaryCrossentropy, np.full((4, 1), 0.5), np.ones((4, 3)), r"\(4, 1\).*\(4, 3\)"),
]


@pytest.mark.parametrize(("cls", "y_pred", "y_true", "words"), LOSS_CASES)
@pytest.mark.parametrize("method", ["forward", "calculate", "backward"])
def test_a_loss_names_the_shapes_it_expected_and_got(cls, y_pred, y_true, words, method):
    loss = cls(backend="numpy")
    with pytest.raises(ValueError, match=rf"^{cls.__name__}\.{method}: expected .*{words}"):
        getattr(loss, method)(y_pred, y_true)
    assert loss.accumulated_count == 0  # refused before anything was summed


def test_the_broadcast_trap_no_longer_gives_a_plausible_loss() -> None:
    """(4, 1) predictions and (4,) targets broadcast to (4, 4): a loss, silently wrong."""
    y_pred, y_true = np.array([[1.0], [2.0], [3.0], [4.0]]), np.array([1.0, 2.0, 3.0, 4.0])
    loss = nnx.MeanSquaredError(backend="numpy")
    with pytest.raises(ValueError, match="reshape"):
        loss.calculate(y_pred, y_true)
    assert float(loss.calculate(y_pred, y_true.reshape(-1, 1))) == 0.0


@pytest.mark.parametrize(
    ("accuracy", "predictions", "y", "words"),
    [
        (nnx.CategoricalAccuracy, np.array([0, 1, 2, 0]), np.array([0, 1, 2]), r"\(4,\).*\(3,\)"),
        (nnx.CategoricalAccuracy, np.array([0, 1, 2, 0]), np.eye(3), r"\(4,\).*\(3, 3\)"),
        (lambda backend: nnx.CategoricalAccuracy(binary=True, backend=backend),
         np.ones((4, 1)), np.ones(4), r"\(4, 1\).*\(4,\)"),
        (lambda backend: nnx.RegressionAccuracy(backend, precision=0.1),
         np.ones((4, 1)), np.ones(4), r"\(4, 1\), got y of shape \(4,\)"),
    ],
    ids=["labels", "one-hot", "binary", "regression"],
)  # fmt: skip
def test_an_accuracy_names_the_shapes_it_expected_and_got(accuracy, predictions, y, words):
    part = accuracy(backend="numpy")
    for method in ("calculate", "compare"):
        with pytest.raises(ValueError, match=rf"Accuracy\.{method}: expected y .*{words}"):
            getattr(part, method)(predictions, y)
    assert part.accumulated_count == 0


def test_one_hot_targets_still_pass_the_accuracy() -> None:
    accuracy = nnx.CategoricalAccuracy(backend="numpy")
    assert float(accuracy.calculate(np.array([0, 1, 2, 0]), np.eye(3)[[0, 1, 1, 0]])) == 0.75


@pytest.mark.parametrize(
    "layer",
    [nnx.ReLU, nnx.Sigmoid, nnx.Softmax, nnx.Linear,
     lambda backend: nnx.Dense(3, 3, backend=backend),
     lambda backend: nnx.Dropout(0.5, backend=backend)],
    ids=["ReLU", "Sigmoid", "Softmax", "Linear", "Dense", "Dropout"],
)  # fmt: skip
def test_a_gradient_of_another_shape_is_refused_not_broadcast(layer) -> None:
    part = layer(backend="numpy")
    part.forward(np.ones((4, 3)), training=True)
    with pytest.raises(ValueError, match=r"output of the last forward, \(4, 3\), got dvalues of "
                                         r"shape \(1, 3\)"):  # fmt: skip
        part.backward(np.ones((1, 3)))  # ReLU's mask would broadcast it to (4, 3)
