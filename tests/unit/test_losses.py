"""Losses, activations and accuracies on NumPy, against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

import nnx

NP = "numpy"
TIGHT = {"rtol": 1e-12, "atol": 0.0}

PROBS = np.array([[0.7, 0.2, 0.1], [0.1, 0.5, 0.4], [0.02, 0.9, 0.08]])
LABELS = np.array([0, 1, 1])
ONE_HOT = np.eye(3)[LABELS]
LOGITS = np.array([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0], [0.0, -1.0, 2.0]])
LOGIT_LABELS = np.array([2, 0, 2])


def softmax_reference(logits):
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


# Categorical crossentropy


@pytest.mark.parametrize(
    "labels", [LABELS, ONE_HOT, LABELS.tolist()], ids=["int", "onehot", "list"]
)
def test_categorical_crossentropy_by_hand(labels):
    loss = nnx.CategoricalCrossentropy(backend=NP)
    expected = [-math.log(0.7), -math.log(0.5), -math.log(0.9)]
    np.testing.assert_allclose(loss.forward(PROBS, labels), expected, **TIGHT)
    np.testing.assert_allclose(float(loss.calculate(PROBS, labels)), sum(expected) / 3, **TIGHT)


def test_categorical_crossentropy_clips_at_1e_minus_7():
    loss = nnx.CategoricalCrossentropy(backend=NP)
    certain = np.array([[1.0, 0.0], [1.0, 0.0]])
    values = loss.forward(certain, np.array([1, 0]))
    np.testing.assert_allclose(values, [-math.log(1e-7), -math.log(1 - 1e-7)], **TIGHT)
    assert np.all(np.isfinite(values)) and values[1] > 0


def test_categorical_crossentropy_backward_is_minus_y_over_p_over_n():
    loss = nnx.CategoricalCrossentropy(backend=NP)
    expected = -ONE_HOT / PROBS / 3
    np.testing.assert_allclose(loss.backward(PROBS, LABELS), expected, **TIGHT)
    np.testing.assert_allclose(loss.backward(PROBS, ONE_HOT), expected, **TIGHT)
    # Only the true class gets a gradient: -1 / (0.7 * 3) for the first sample.
    np.testing.assert_allclose(loss.dinputs[0], [-1 / 2.1, 0.0, 0.0], **TIGHT)


# Binary crossentropy, MSE, MAE


def test_binary_crossentropy_by_hand():
    loss = nnx.BinaryCrossentropy(backend=NP)
    y_pred = np.array([[0.9, 0.2], [0.4, 0.7]])
    y_true = np.array([[1, 0], [0, 1]])
    expected = [
        (-math.log(0.9) - math.log(0.8)) / 2,
        (-math.log(0.6) - math.log(0.7)) / 2,
    ]
    np.testing.assert_allclose(loss.forward(y_pred, y_true), expected, **TIGHT)
    # d/dp of -(y log p + (1-y) log(1-p)), divided by outputs (2) and samples (2).
    expected_grad = np.array([[-1 / 0.9, 1 / 0.8], [1 / 0.6, -1 / 0.7]]) / 4
    np.testing.assert_allclose(loss.backward(y_pred, y_true), expected_grad, **TIGHT)


def test_binary_crossentropy_clips_certain_predictions():
    loss = nnx.BinaryCrossentropy(backend=NP)
    values = loss.forward(np.array([[1.0], [0.0]]), np.array([[0], [1]]))
    np.testing.assert_allclose(values, [-math.log(1e-7)] * 2, rtol=1e-6)
    assert np.all(np.isfinite(loss.backward(np.array([[1.0], [0.0]]), np.array([[0], [1]]))))


def test_mean_squared_error_by_hand():
    loss = nnx.MeanSquaredError(backend=NP)
    y_pred = np.array([[1.0, 2.0], [3.0, 5.0]])
    y_true = np.array([[0.0, 2.0], [3.0, 3.0]])
    np.testing.assert_allclose(loss.forward(y_pred, y_true), [0.5, 2.0], **TIGHT)
    np.testing.assert_allclose(float(loss.calculate(y_pred, y_true)), 1.25, **TIGHT)
    # -2 (y - p) / outputs / samples
    np.testing.assert_allclose(loss.backward(y_pred, y_true), [[0.5, 0.0], [0.0, 1.0]], **TIGHT)


def test_mean_absolute_error_by_hand():
    loss = nnx.MeanAbsoluteError(backend=NP)
    y_pred = np.array([[1.0, 2.0], [3.0, 5.0]])
    y_true = np.array([[0.0, 2.0], [3.0, 3.0]])
    np.testing.assert_allclose(loss.forward(y_pred, y_true), [0.5, 1.0], **TIGHT)
    # d|y - p|/dp = -sign(y - p), over outputs and samples; sign(0) = 0. (The book's listing
    # has sign(y - p): a prediction above its target would be pushed further up.)
    np.testing.assert_allclose(loss.backward(y_pred, y_true), [[0.25, 0.0], [0.0, 0.25]], **TIGHT)


# Softmax fused with categorical crossentropy


def test_softmax_crossentropy_forward_is_mean_crossentropy_of_softmax():
    loss = nnx.SoftmaxCategoricalCrossentropy(backend=NP)
    value = loss.forward(LOGITS, LOGIT_LABELS)
    probs = softmax_reference(LOGITS)
    np.testing.assert_allclose(loss.output, probs, **TIGHT)
    expected = -np.log(probs[np.arange(3), LOGIT_LABELS]).mean()
    np.testing.assert_allclose(float(value), expected, **TIGHT)
    # The middle row is uniform: its loss is log 3.
    np.testing.assert_allclose(-math.log(probs[1, 0]), math.log(3), **TIGHT)


@pytest.mark.parametrize("one_hot_labels", [False, True], ids=["int", "onehot"])
def test_softmax_crossentropy_backward_is_softmax_minus_onehot_over_n(one_hot_labels):
    labels = np.eye(3)[LOGIT_LABELS] if one_hot_labels else LOGIT_LABELS
    loss = nnx.SoftmaxCategoricalCrossentropy(backend=NP)
    loss.forward(LOGITS, labels)
    dinputs = loss.backward(loss.output, labels)
    expected = (softmax_reference(LOGITS) - np.eye(3)[LOGIT_LABELS]) / 3
    np.testing.assert_allclose(dinputs, expected, rtol=1e-12, atol=1e-15)


def test_softmax_crossentropy_backward_equals_separate_chain():
    rng = np.random.default_rng(0)
    logits, labels = rng.standard_normal((16, 5)), rng.integers(0, 5, 16)
    fused = nnx.SoftmaxCategoricalCrossentropy(backend=NP)
    fused.forward(logits, labels)
    fused.backward(fused.output, labels)
    softmax = nnx.Softmax(backend=NP)
    crossentropy = nnx.CategoricalCrossentropy(backend=NP)
    softmax.forward(logits)
    softmax.backward(crossentropy.backward(softmax.output, labels))
    np.testing.assert_allclose(fused.dinputs, softmax.dinputs, rtol=0, atol=1e-6)


def test_softmax_crossentropy_calculate_like_every_loss():
    loss = nnx.SoftmaxCategoricalCrossentropy(backend=NP)
    expected = -np.log(softmax_reference(LOGITS)[np.arange(3), LOGIT_LABELS]).mean()
    np.testing.assert_allclose(float(loss.calculate(LOGITS, LOGIT_LABELS)), expected, **TIGHT)
    np.testing.assert_allclose(float(loss.calculate_accumulated()), expected, **TIGHT)


# Regularisation and accumulation


def _regularized_layer():
    layer = nnx.Dense(2, 2, 0.1, 0.01, 0.2, 0.02, dtype="float64", backend=NP)
    layer.set_parameters([[1.0, -2.0], [0.5, 0.0]], [[-1.0, 3.0]])
    return layer


def test_regularization_loss_of_one_layer():
    loss = nnx.MeanSquaredError(backend=NP)
    # 0.1 * 3.5 + 0.01 * 5.25 + 0.2 * 4 + 0.02 * 10
    np.testing.assert_allclose(
        float(loss.regularization_loss(_regularized_layer())), 1.4025, **TIGHT
    )
    plain = nnx.Dense(2, 2, seed=0, backend=NP)
    assert float(loss.regularization_loss(plain)) == 0.0


def test_regularization_loss_sums_remembered_layers_and_calculate_returns_both():
    loss = nnx.MeanSquaredError(backend=NP)
    loss.remember_trainable_layers([_regularized_layer(), _regularized_layer()])
    np.testing.assert_allclose(float(loss.regularization_loss()), 2 * 1.4025, **TIGHT)
    data, reg = loss.calculate(np.array([[1.0]]), np.array([[3.0]]), include_regularization=True)
    np.testing.assert_allclose([float(data), float(reg)], [4.0, 2.805], **TIGHT)
    data, reg = loss.calculate_accumulated(include_regularization=True)
    np.testing.assert_allclose([float(data), float(reg)], [4.0, 2.805], **TIGHT)


def test_calculate_accumulates_until_new_pass():
    loss = nnx.MeanSquaredError(backend=NP)
    first = loss.calculate(np.array([[1.0], [2.0]]), np.array([[0.0], [4.0]]))  # 1 and 4
    second = loss.calculate(np.array([[0.0]]), np.array([[3.0]]))  # 9
    np.testing.assert_allclose([float(first), float(second)], [2.5, 9.0], **TIGHT)
    np.testing.assert_allclose(float(loss.calculate_accumulated()), 14 / 3, **TIGHT)
    loss.new_pass()
    assert float(loss.calculate_accumulated()) == 0.0
    loss.calculate(np.array([[1.0]]), np.array([[3.0]]))
    np.testing.assert_allclose(float(loss.calculate_accumulated()), 4.0, **TIGHT)


# Activations


def test_relu_forward_and_backward_zero_where_input_not_positive():
    relu = nnx.ReLU(backend=NP)
    inputs = np.array([[-1.0, 0.0, 2.0], [3.0, -0.5, 0.0]])
    np.testing.assert_array_equal(relu.forward(inputs), [[0.0, 0.0, 2.0], [3.0, 0.0, 0.0]])
    dvalues = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    np.testing.assert_array_equal(relu.backward(dvalues), [[0.0, 0.0, 3.0], [4.0, 0.0, 0.0]])


def test_softmax_by_hand_and_rows_sum_to_one():
    softmax = nnx.Softmax(backend=NP)
    np.testing.assert_allclose(
        softmax.forward(np.array([[0.0, math.log(3.0)]])), [[0.25, 0.75]], **TIGHT
    )
    probs = softmax.forward(LOGITS)
    np.testing.assert_allclose(probs.sum(axis=1), np.ones(3), **TIGHT)
    np.testing.assert_array_equal(softmax.predictions(probs), [2, 0, 2])


@pytest.mark.filterwarnings("error")
def test_softmax_extreme_float32_logits_stay_finite():
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, -1e4]], dtype=np.float32)
    probs = nnx.Softmax(backend=NP).forward(logits)
    assert probs.dtype == np.float32
    assert np.all(np.isfinite(probs))
    np.testing.assert_allclose(probs, [[1, 0, 0], [1 / 3] * 3, [0.5, 0.5, 0]], rtol=1e-6)
    np.testing.assert_allclose(probs.sum(axis=1), np.ones(3), rtol=1e-6)


def test_softmax_backward_equals_book_jacobian():
    rng = np.random.default_rng(1)
    softmax = nnx.Softmax(backend=NP)
    output = softmax.forward(rng.standard_normal((4, 3)))
    dvalues = rng.standard_normal((4, 3))
    expected = np.stack(
        [(np.diagflat(s) - np.outer(s, s)) @ d for s, d in zip(output, dvalues, strict=True)]
    )
    np.testing.assert_allclose(softmax.backward(dvalues), expected, rtol=1e-12, atol=1e-15)


@pytest.mark.filterwarnings("error")
def test_sigmoid_values_extremes_and_predictions():
    sigmoid = nnx.Sigmoid(backend=NP)
    np.testing.assert_allclose(
        sigmoid.forward(np.array([[0.0, math.log(3.0)]])), [[0.5, 0.75]], **TIGHT
    )
    np.testing.assert_allclose(sigmoid.backward(np.array([[1.0, 1.0]])), [[0.25, 0.1875]], **TIGHT)
    extreme = sigmoid.forward(np.array([[1e4, -1e4, 0.0]], dtype=np.float32))
    assert extreme.dtype == np.float32 and np.all(np.isfinite(extreme))
    np.testing.assert_array_equal(extreme, [[1.0, 0.0, 0.5]])
    predictions = sigmoid.predictions(np.array([[0.2, 0.5, 0.51]]))
    np.testing.assert_array_equal(predictions, [[0.0, 0.0, 1.0]])


def test_linear_is_identity():
    linear = nnx.Linear(backend=NP)
    inputs = np.array([[1.5, -2.0]])
    np.testing.assert_array_equal(linear.forward(inputs), inputs)
    np.testing.assert_array_equal(linear.backward(inputs), inputs)
    np.testing.assert_array_equal(linear.predictions(inputs), inputs)


# Accuracies


@pytest.mark.parametrize(
    "labels", [np.array([0, 1, 1, 1]), np.eye(3)[[0, 1, 1, 1]]], ids=["int", "onehot"]
)
def test_categorical_accuracy(labels):
    accuracy = nnx.CategoricalAccuracy(backend=NP)
    assert float(accuracy.calculate(np.array([0, 2, 1, 1]), labels)) == 0.75


def test_categorical_accuracy_binary_compares_elementwise():
    accuracy = nnx.CategoricalAccuracy(binary=True, backend=NP)
    predictions = np.array([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    y = np.array([[1, 1], [0, 0], [1, 0]])
    assert float(accuracy.calculate(predictions, y)) == pytest.approx(4 / 6, rel=1e-12)


def test_accuracy_accumulates_until_new_pass():
    accuracy = nnx.CategoricalAccuracy(backend=NP)
    accuracy.calculate(np.array([0, 1]), np.array([0, 0]))
    accuracy.calculate(np.array([2, 2, 2]), np.array([2, 2, 2]))
    assert float(accuracy.calculate_accumulated()) == pytest.approx(4 / 5, rel=1e-12)
    accuracy.new_pass()
    accuracy.calculate(np.array([1]), np.array([0]))
    assert float(accuracy.calculate_accumulated()) == 0.0


def test_regression_accuracy_precision_is_std_over_250():
    y = np.array([[0.0], [1.0], [2.0], [3.0]])
    precision = math.sqrt(1.25) / 250  # population std of 0, 1, 2, 3
    accuracy = nnx.RegressionAccuracy(backend=NP)
    accuracy.init(y)
    np.testing.assert_allclose(float(accuracy.precision), precision, **TIGHT)
    offsets = np.array([[0.0], [0.9 * precision], [1.1 * precision], [-0.5 * precision]])
    assert float(accuracy.calculate(y + offsets, y)) == 0.75
    accuracy.init(10 * y)  # kept without reinit
    np.testing.assert_allclose(float(accuracy.precision), precision, **TIGHT)
    accuracy.init(10 * y, reinit=True)
    np.testing.assert_allclose(float(accuracy.precision), 10 * precision, **TIGHT)


def test_regression_accuracy_initialises_itself_on_first_compare():
    y = np.array([[0.0], [1.0], [2.0], [3.0]])
    accuracy = nnx.RegressionAccuracy(backend=NP)
    assert float(accuracy.calculate(y, y)) == 1.0
    np.testing.assert_allclose(float(accuracy.precision), np.std(y) / 250, **TIGHT)
