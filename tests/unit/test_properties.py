"""Property-based checks: any batch size, width and dtype gives the right shapes, finite
numbers, and gradients that agree with finite differences."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import nnx

sizes = st.integers(min_value=1, max_value=9)
dtypes = st.sampled_from(["float32", "float64"])
PROFILE = settings(max_examples=25, deadline=None)


def network(n_in: int, width: int, n_out: int, dtype: str) -> list[nnx.Layer]:
    return [
        nnx.Dense(n_in, width, seed=0, dtype=dtype, weight_regularizer_l2=1e-3, init="he"),
        nnx.ReLU(),
        nnx.Dense(width, n_out, seed=1, dtype=dtype, init="glorot"),
    ]


@PROFILE
@given(
    batch=sizes,
    n_in=sizes,
    width=sizes,
    n_out=st.integers(2, 6),
    dtype=dtypes,
    seed=st.integers(0, 2**16),
)
def test_shapes_and_finite_values(batch, n_in, width, n_out, dtype, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(batch, n_in)) * 100
    y = rng.integers(0, n_out, size=batch)
    layers = network(n_in, width, n_out, dtype)
    out = X
    for layer in layers:
        out = layer.forward(out, training=True)
    head = nnx.SoftmaxCategoricalCrossentropy()
    loss = head.forward(out, y)
    assert head.output.shape == (batch, n_out) and head.output.dtype == np.dtype(dtype)
    assert np.isfinite(loss) and np.all(np.isfinite(head.output))
    grad = head.backward(head.output, y)
    for layer in reversed(layers):
        grad = layer.backward(grad)
        assert np.all(np.isfinite(grad))
    assert grad.shape == (batch, n_in)
    assert layers[0].dweights.shape == (n_in, width) and layers[0].dbiases.shape == (1, width)


def _loss_of(layers, X, y, loss) -> float:
    out = X
    for layer in layers:
        out = layer.forward(out)
    return float(loss.calculate(out, y)) + sum(
        float(loss.regularization_loss(layer)) for layer in layers if layer.trainable
    )


@PROFILE
@given(
    batch=sizes,
    n_in=sizes,
    width=sizes,
    seed=st.integers(0, 2**16),
    head=st.sampled_from(["mse", "mae", "bce"]),
)
def test_gradients_match_finite_differences(batch, n_in, width, seed, head):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(batch, n_in))
    layers = [
        nnx.Dense(n_in, width, seed=seed, dtype="float64", weight_regularizer_l2=0.1),
        nnx.Sigmoid(),
        nnx.Dense(width, 2, seed=seed + 1, dtype="float64"),
        nnx.Sigmoid(),
    ]
    y = rng.uniform(size=(batch, 2))
    loss = {
        "mse": nnx.MeanSquaredError,
        "mae": nnx.MeanAbsoluteError,
        "bce": nnx.BinaryCrossentropy,
    }[head]()
    _loss_of(layers, X, y, loss)
    grad = loss.backward(layers[-1].output, y)
    for layer in reversed(layers):
        grad = layer.backward(grad)
    dense = layers[0]
    numeric = np.zeros_like(dense.weights)
    h = 1e-6
    for index in np.ndindex(dense.weights.shape):
        original = dense.weights[index]
        dense.weights[index] = original + h
        up = _loss_of(layers, X, y, loss)
        dense.weights[index] = original - h
        down = _loss_of(layers, X, y, loss)
        dense.weights[index] = original
        numeric[index] = (up - down) / (2 * h)
    # MAE's kink at zero makes a central difference straddle two slopes only on a measure-zero
    # set; the tolerance is float64 central-difference error (h^2 terms and rounding / h).
    np.testing.assert_allclose(dense.dweights, numeric, rtol=1e-4, atol=1e-6)
