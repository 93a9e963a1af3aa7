"""Dense and Dropout on NumPy: initialisation, forward/backward by hand, errors."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

import nnx

NP = "numpy"

X = np.array([[1.0, 2.0], [3.0, 4.0]])
W = np.array([[1.0, 0.0, -1.0], [0.5, 2.0, 1.0]])
B = np.array([[0.1, 0.2, 0.3]])
DVALUES = np.array([[1.0, 0.0, 2.0], [0.0, 1.0, -1.0]])


@pytest.fixture(autouse=True)
def _keep_global_numpy_rng():
    """Tests that seed NumPy's global generator leave it as they found it."""
    state = np.random.get_state()
    yield
    np.random.set_state(state)


def dense(n_inputs=2, n_neurons=3, **kwargs):
    kwargs.setdefault("dtype", "float64")
    return nnx.Dense(n_inputs, n_neurons, backend=NP, **kwargs)


def hand_layer(**kwargs):
    layer = dense(2, 3, **kwargs)
    layer.set_parameters(W, B)
    return layer


# Initialisation


def test_book_init_is_scaled_standard_normal_from_seeded_generator():
    layer = dense(4, 5, seed=42)
    expected = 0.01 * np.random.default_rng(42).standard_normal((4, 5))
    assert layer.weights.dtype == np.float64
    np.testing.assert_array_equal(layer.weights, expected)


def test_book_init_float32_is_the_same_draw_rounded():
    layer = nnx.Dense(4, 5, seed=42, backend=NP)
    expected = (0.01 * np.random.default_rng(42).standard_normal((4, 5))).astype(np.float32)
    assert layer.weights.dtype == np.float32
    assert layer.biases.dtype == np.float32
    np.testing.assert_array_equal(layer.weights, expected)


def test_seed_none_draws_from_numpy_global_generator_like_nnfs_init():
    np.random.seed(0)
    first, second = dense(2, 3), dense(3, 4)
    np.random.seed(0)
    np.testing.assert_array_equal(first.weights, 0.01 * np.random.randn(2, 3))
    np.testing.assert_array_equal(second.weights, 0.01 * np.random.randn(3, 4))


def test_same_seed_same_weights_other_seed_other_weights():
    np.testing.assert_array_equal(dense(seed=1).weights, dense(seed=1).weights)
    assert not np.array_equal(dense(seed=1).weights, dense(seed=2).weights)


def test_he_init_is_normal_with_std_sqrt_2_over_n_inputs():
    layer = dense(400, 300, init="he", seed=0)
    assert abs(layer.weights.mean()) < 0.05 * math.sqrt(2 / 400)
    np.testing.assert_allclose(layer.weights.std(), math.sqrt(2 / 400), rtol=0.02)
    np.testing.assert_array_equal(layer.weights, dense(400, 300, init="he", seed=0).weights)


def test_glorot_init_is_uniform_within_limit():
    limit = math.sqrt(6 / (400 + 300))
    weights = dense(400, 300, init="glorot", seed=0).weights
    assert np.all(np.abs(weights) <= limit)
    assert weights.max() > 0.99 * limit and weights.min() < -0.99 * limit
    np.testing.assert_allclose(weights.std(), limit / math.sqrt(3), rtol=0.02)


def test_biases_start_at_zero_with_shape_1_by_n():
    layer = dense(3, 7, seed=0)
    assert layer.biases.shape == (1, 7)
    np.testing.assert_array_equal(layer.biases, np.zeros((1, 7)))


def test_default_dtype_float32_and_float64_on_request():
    assert nnx.Dense(2, 3, seed=0, backend=NP).weights.dtype == np.float32
    assert nnx.Dense(2, 3, seed=0, backend=NP).forward(X).dtype == np.float32
    layer = dense(seed=0, dtype="float64")
    assert (layer.weights.dtype, layer.biases.dtype) == (np.float64, np.float64)
    assert layer.forward(X.astype(np.float32)).dtype == np.float64


# Forward and backward


def test_forward_by_hand():
    layer = hand_layer()
    expected = np.array([[2.1, 4.2, 1.3], [5.1, 8.2, 1.3]])
    np.testing.assert_allclose(layer.forward(X), expected, rtol=1e-14)
    np.testing.assert_allclose(layer.output, expected, rtol=1e-14)


def test_forward_accepts_host_lists():
    layer = hand_layer()
    np.testing.assert_allclose(layer.forward([[1.0, 2.0]]), [[2.1, 4.2, 1.3]], rtol=1e-14)


def test_backward_by_hand():
    layer = hand_layer()
    layer.forward(X)
    dinputs = layer.backward(DVALUES)
    np.testing.assert_allclose(layer.dweights, [[1.0, 3.0, -1.0], [2.0, 4.0, 0.0]], rtol=1e-14)
    np.testing.assert_allclose(layer.dbiases, [[1.0, 1.0, 1.0]], rtol=1e-14)
    np.testing.assert_allclose(dinputs, [[-1.0, 2.5], [1.0, 1.0]], rtol=1e-14)
    assert layer.dinputs is dinputs


def test_backward_matches_matrix_formulas():
    rng = np.random.default_rng(5)
    inputs, dvalues = rng.standard_normal((6, 4)), rng.standard_normal((6, 3))
    layer = dense(4, 3, seed=9)
    layer.forward(inputs)
    layer.backward(dvalues)
    np.testing.assert_allclose(layer.dweights, inputs.T @ dvalues, rtol=1e-13)
    np.testing.assert_allclose(layer.dbiases, dvalues.sum(axis=0, keepdims=True), rtol=1e-13)
    np.testing.assert_allclose(layer.dinputs, dvalues @ layer.weights.T, rtol=1e-13)


def test_regularization_gradients_follow_the_book():
    weights = np.array([[0.5, -0.25, 0.0], [-1.0, 2.0, 0.1]])
    biases = np.array([[0.0, -0.5, 0.5]])
    layer = dense(
        weight_regularizer_l1=0.1,
        weight_regularizer_l2=0.01,
        bias_regularizer_l1=0.2,
        bias_regularizer_l2=0.3,
    )
    layer.set_parameters(weights, biases)
    layer.forward(X)
    layer.backward(DVALUES)
    # The book's L1 derivative is +1 where w >= 0 (zero included) and -1 elsewhere.
    weight_sign = np.array([[1.0, -1.0, 1.0], [-1.0, 1.0, 1.0]])
    bias_sign = np.array([[1.0, -1.0, 1.0]])
    expected_dw = X.T @ DVALUES + 0.1 * weight_sign + 2 * 0.01 * weights
    expected_db = DVALUES.sum(axis=0, keepdims=True) + 0.2 * bias_sign + 2 * 0.3 * biases
    np.testing.assert_allclose(layer.dweights, expected_dw, rtol=1e-14)
    np.testing.assert_allclose(layer.dbiases, expected_db, rtol=1e-14)
    np.testing.assert_allclose(layer.dinputs, DVALUES @ weights.T, rtol=1e-14)


def test_each_regularizer_alone():
    for kwargs, dw_extra, db_extra in (
        ({"weight_regularizer_l1": 0.5}, 0.5 * np.array([[1.0, 1.0, -1.0], [1.0, 1.0, 1.0]]), 0.0),
        ({"weight_regularizer_l2": 0.5}, 1.0 * W, 0.0),
        ({"bias_regularizer_l1": 0.5}, 0.0, 0.5 * np.ones_like(B)),
        ({"bias_regularizer_l2": 0.5}, 0.0, 1.0 * B),
    ):
        layer = hand_layer(**kwargs)
        layer.forward(X)
        layer.backward(DVALUES)
        np.testing.assert_allclose(layer.dweights, X.T @ DVALUES + dw_extra, rtol=1e-14)
        np.testing.assert_allclose(
            layer.dbiases, DVALUES.sum(axis=0, keepdims=True) + db_extra, rtol=1e-14
        )


# Parameters


def test_set_and_get_parameters_with_host_arrays():
    layer = dense(seed=0)
    layer.set_parameters(W.tolist(), B.astype(np.float32))
    weights, biases = layer.get_parameters()
    assert (weights.dtype, biases.dtype) == (np.float64, np.float64)
    np.testing.assert_array_equal(weights, W)
    np.testing.assert_array_equal(biases, B.astype(np.float32).astype(np.float64))
    np.testing.assert_allclose(layer.forward(X), X @ W + biases, rtol=1e-14)


def test_set_parameters_casts_to_layer_dtype():
    layer = nnx.Dense(2, 3, seed=0, backend=NP)
    layer.set_parameters(W, B)
    assert layer.weights.dtype == np.float32
    assert layer.biases.dtype == np.float32


@pytest.mark.parametrize(
    ("weights", "biases", "message"),
    [
        (W.T, B, "expected weights of shape (2, 3), got (3, 2)"),
        (W, B[0], "expected biases of shape (1, 3), got (3,)"),
        (W, np.zeros((1, 4)), "expected biases of shape (1, 3), got (1, 4)"),
    ],
)
def test_set_parameters_wrong_shape(weights, biases, message):
    layer = dense(seed=0)
    before = layer.weights.copy()
    pattern = re.escape("Dense(n_inputs=2, n_neurons=3).set_parameters: " + message)
    with pytest.raises(ValueError, match=pattern):
        layer.set_parameters(weights, biases)
    np.testing.assert_array_equal(layer.weights, before)


def test_forward_wrong_feature_count_names_both_shapes():
    layer = nnx.Dense(2, 64, seed=0, backend=NP)
    message = "expected inputs of shape (batch, 2), got (32, 3)"
    with pytest.raises(ValueError, match=re.escape(message)):
        layer.forward(np.ones((32, 3)))
    with pytest.raises(ValueError, match=re.escape("got (4,)")):
        layer.forward(np.ones(4))


def test_torch_tensor_into_numpy_layer_is_type_error():
    torch = pytest.importorskip("torch")
    layer = dense(seed=0)
    with pytest.raises(TypeError, match=r"array of torch .*backend numpy") as info:
        layer.forward(torch.ones((4, 2), dtype=torch.float64))
    assert "asarray" in str(info.value)  # says how to fix it
    with pytest.raises(TypeError, match="torch"):
        layer.set_parameters(torch.zeros((2, 3)), B)


def test_non_array_input_is_type_error():
    with pytest.raises(TypeError, match="expected inputs as an array or a list of numbers"):
        dense(seed=0).forward({"a": 1})


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"n_inputs": 0}, r"expected n_inputs as a positive integer, got n_inputs=0"),
        ({"n_neurons": -3}, r"n_neurons=-3"),
        ({"n_inputs": 2.0}, r"n_inputs=2\.0"),
        ({"n_inputs": True}, r"n_inputs=True"),
        ({"init": "xavier"}, r"expected init in \('book', 'he', 'glorot'\), got init='xavier'"),
        ({"weight_regularizer_l1": -0.1}, r"expected weight_regularizer_l1 >= 0, got .*=-0\.1"),
        ({"weight_regularizer_l2": -1e-4}, r"weight_regularizer_l2=-0\.0001"),
        ({"bias_regularizer_l1": float("nan")}, r"bias_regularizer_l1=nan"),
        ({"bias_regularizer_l2": "0.1"}, r"bias_regularizer_l2='0\.1'"),
        ({"dtype": "float16"}, r"got dtype='float16'"),
    ],
)
def test_bad_constructor_arguments(kwargs, pattern):
    args = {"n_inputs": 2, "n_neurons": 3, **kwargs}
    with pytest.raises(ValueError, match=pattern):
        nnx.Dense(backend=NP, **args)


def test_numpy_integer_sizes_are_accepted():
    layer = nnx.Dense(np.int64(2), np.int64(3), seed=0, backend=NP)
    assert layer.weights.shape == (2, 3)


# Dropout


@pytest.mark.parametrize("rate", [1.0, -0.1, 1.5, True, "0.5"])
def test_dropout_rate_outside_unit_interval(rate):
    pattern = re.escape(f"expected rate (the fraction to drop) in [0, 1), got rate={rate!r}")
    with pytest.raises(ValueError, match=pattern):
        nnx.Dropout(rate, backend=NP)


def test_dropout_not_training_is_identity():
    layer = nnx.Dropout(0.5, seed=0, backend=NP)
    inputs = np.arange(12.0).reshape(3, 4)
    np.testing.assert_array_equal(layer.forward(inputs), inputs)
    np.testing.assert_array_equal(layer.forward(inputs, training=False), inputs)
    np.testing.assert_array_equal(layer.backward(np.ones((3, 4))), np.ones((3, 4)))


def test_dropout_rate_zero_training_is_identity():
    inputs = np.arange(12.0).reshape(3, 4)
    np.testing.assert_array_equal(nnx.Dropout(0, backend=NP).forward(inputs, True), inputs)


def test_dropout_training_drops_rate_and_scales_survivors():
    rate = 0.3
    layer = nnx.Dropout(rate, seed=1, backend=NP)
    inputs = np.full((200, 500), 2.0)
    output = layer.forward(inputs, training=True)
    dropped = output == 0
    assert abs(dropped.mean() - rate) < 0.01
    np.testing.assert_allclose(output[~dropped], 2.0 / (1 - rate), rtol=1e-12)
    assert abs(output.mean() - 2.0) < 0.05  # the scaling keeps the expected sum
    dinputs = layer.backward(np.ones_like(inputs))
    np.testing.assert_array_equal(dinputs == 0, dropped)
    np.testing.assert_allclose(dinputs[~dropped], 1 / (1 - rate), rtol=1e-12)


def test_dropout_seeded_mask_is_reproducible():
    inputs = np.ones((8, 10))
    first = nnx.Dropout(0.5, seed=3, backend=NP).forward(inputs, training=True)
    second = nnx.Dropout(0.5, seed=3, backend=NP).forward(inputs, training=True)
    other = nnx.Dropout(0.5, seed=4, backend=NP).forward(inputs, training=True)
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, other)


def test_dropout_draws_a_new_mask_each_pass():
    layer = nnx.Dropout(0.5, seed=3, backend=NP)
    inputs = np.ones((8, 10))
    assert not np.array_equal(layer.forward(inputs, True), layer.forward(inputs, True))


def test_dropout_keeps_dtype():
    layer = nnx.Dropout(0.2, seed=0, backend=NP)
    assert layer.forward(np.ones((3, 3), dtype=np.float32), training=True).dtype == np.float32
