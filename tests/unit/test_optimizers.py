"""Optimizers on NumPy: the first steps against the book's formulas, state, validation."""

from __future__ import annotations

import dataclasses
import math
import re

import numpy as np
import pytest

import backends
import nnx
import nnx.optimizers

NP = "numpy"
TIGHT = {"rtol": 1e-13, "atol": 1e-15}

W0 = np.array([[0.5, -0.25], [1.0, 0.0]])
B0 = np.array([[0.1, -0.2]])
# Three steps of gradients; a zero entry checks the epsilon path of the adaptive methods.
DW = [
    np.array([[0.5, -1.0], [2.0, 0.0]]),
    np.array([[-0.25, -1.0], [1.0, 0.5]]),
    np.array([[0.1, 3.0], [-2.0, 0.5]]),
]
DB = [np.array([[1.0, -0.5]]), np.array([[0.5, 0.5]]), np.array([[-1.0, 2.0]])]
ALL = [nnx.SGD, nnx.Adagrad, nnx.RMSprop, nnx.Adam]


def make_layer(dtype="float64"):
    layer = nnx.Dense(2, 2, seed=0, dtype=dtype, backend=NP)
    layer.set_parameters(W0, B0)
    return layer


def step(optimizer, layer, k):
    """One book-style optimisation step with the k-th gradients."""
    layer.dweights, layer.dbiases = DW[k], DB[k]
    optimizer.pre_update_params()
    optimizer.update_params(layer)
    optimizer.post_update_params()


def assert_params(layer, weights, biases):
    np.testing.assert_allclose(layer.weights, weights, **TIGHT)
    np.testing.assert_allclose(layer.biases, biases, **TIGHT)


# SGD


def test_sgd_plain_by_hand():
    layer, sgd = make_layer(), nnx.SGD(learning_rate=0.5, backend=NP)
    step(sgd, layer, 0)
    assert_params(layer, [[0.25, 0.25], [0.0, 0.0]], [[-0.4, 0.05]])
    step(sgd, layer, 1)
    assert_params(layer, [[0.375, 0.75], [-0.5, -0.25]], [[-0.65, -0.2]])
    assert not hasattr(layer, "weight_momentums")  # no state without momentum
    assert sgd.iterations == 2 and sgd.current_learning_rate == 0.5


def test_sgd_decay_uses_iterations_before_the_step():
    layer, sgd = make_layer(), nnx.SGD(learning_rate=1.0, decay=0.1, backend=NP)
    rates = []
    for k in range(3):
        step(sgd, layer, k)
        rates.append(sgd.current_learning_rate)
    np.testing.assert_allclose(rates, [1.0, 1 / 1.1, 1 / 1.2], rtol=1e-15)
    assert sgd.learning_rate == 1.0
    expected_w = W0 - 1.0 * DW[0] - DW[1] / 1.1 - DW[2] / 1.2
    expected_b = B0 - 1.0 * DB[0] - DB[1] / 1.1 - DB[2] / 1.2
    assert_params(layer, expected_w, expected_b)


def test_sgd_momentum_by_hand():
    layer, sgd = make_layer(), nnx.SGD(learning_rate=0.1, momentum=0.9, backend=NP)
    w, b = W0.copy(), B0.copy()
    m_w, m_b = np.zeros_like(w), np.zeros_like(b)
    for k in range(3):
        step(sgd, layer, k)
        m_w, m_b = 0.9 * m_w - 0.1 * DW[k], 0.9 * m_b - 0.1 * DB[k]
        w, b = w + m_w, b + m_b
        assert_params(layer, w, b)
        np.testing.assert_allclose(layer.weight_momentums, m_w, **TIGHT)
        np.testing.assert_allclose(layer.bias_momentums, m_b, **TIGHT)
    # Unrolled: m3 = -lr * (0.9^2 dw1 + 0.9 dw2 + dw3).
    np.testing.assert_allclose(
        -0.1 * DW[0] * (0.9**2) - 0.1 * DW[1] * 0.9 - 0.1 * DW[2], m_w, **TIGHT
    )


# Adaptive methods


def test_adagrad_by_hand():
    eps = 1e-7
    layer, adagrad = make_layer(), nnx.Adagrad(learning_rate=1.0, epsilon=eps, backend=NP)
    step(adagrad, layer, 0)
    # First step: cache = dw^2, so the update is lr * dw / (|dw| + eps), about lr * sign(dw).
    np.testing.assert_allclose(layer.weights, W0 - DW[0] / (np.abs(DW[0]) + eps), **TIGHT)
    np.testing.assert_allclose(layer.weights, [[-0.5, 0.75], [0.0, 0.0]], atol=1e-6)
    w, b = layer.weights.copy(), layer.biases.copy()
    cache_w, cache_b = DW[0] ** 2, DB[0] ** 2
    for k in (1, 2):
        step(adagrad, layer, k)
        cache_w, cache_b = cache_w + DW[k] ** 2, cache_b + DB[k] ** 2
        w = w - 1.0 * DW[k] / (np.sqrt(cache_w) + eps)
        b = b - 1.0 * DB[k] / (np.sqrt(cache_b) + eps)
        assert_params(layer, w, b)
    np.testing.assert_allclose(layer.weight_cache, sum(g**2 for g in DW), **TIGHT)
    np.testing.assert_allclose(layer.bias_cache, sum(g**2 for g in DB), **TIGHT)


def test_rmsprop_by_hand():
    lr, eps, rho = 0.02, 1e-7, 0.9
    layer = make_layer()
    rmsprop = nnx.RMSprop(learning_rate=lr, epsilon=eps, rho=rho, backend=NP)
    step(rmsprop, layer, 0)
    # First step: cache = 0.1 dw^2, so the update is lr * dw / (sqrt(0.1) |dw| + eps).
    np.testing.assert_allclose(layer.weight_cache, [[0.025, 0.1], [0.4, 0.0]], **TIGHT)
    np.testing.assert_allclose(
        layer.weights, W0 - lr * DW[0] / (math.sqrt(0.1) * np.abs(DW[0]) + eps), **TIGHT
    )
    w, b = layer.weights.copy(), layer.biases.copy()
    cache_w, cache_b = (1 - rho) * DW[0] ** 2, (1 - rho) * DB[0] ** 2
    for k in (1, 2):
        step(rmsprop, layer, k)
        cache_w = rho * cache_w + (1 - rho) * DW[k] ** 2
        cache_b = rho * cache_b + (1 - rho) * DB[k] ** 2
        w = w - lr * DW[k] / (np.sqrt(cache_w) + eps)
        b = b - lr * DB[k] / (np.sqrt(cache_b) + eps)
        assert_params(layer, w, b)
        np.testing.assert_allclose(layer.weight_cache, cache_w, **TIGHT)
        np.testing.assert_allclose(layer.bias_cache, cache_b, **TIGHT)


def test_adam_by_hand():
    lr, eps, b1, b2 = 0.01, 1e-7, 0.9, 0.999
    layer = make_layer()
    adam = nnx.Adam(learning_rate=lr, epsilon=eps, beta_1=b1, beta_2=b2, backend=NP)
    step(adam, layer, 0)
    # First step: both corrections undo (1 - beta), so the update is lr * dw / (|dw| + eps).
    np.testing.assert_allclose(layer.weights, W0 - lr * DW[0] / (np.abs(DW[0]) + eps), **TIGHT)
    np.testing.assert_allclose(layer.weight_momentums, 0.1 * DW[0], **TIGHT)
    np.testing.assert_allclose(layer.weight_cache, 0.001 * DW[0] ** 2, **TIGHT)
    w, b = layer.weights.copy(), layer.biases.copy()
    m_w, m_b = (1 - b1) * DW[0], (1 - b1) * DB[0]
    c_w, c_b = (1 - b2) * DW[0] ** 2, (1 - b2) * DB[0] ** 2
    for k in (1, 2):
        step(adam, layer, k)
        t = k + 1  # bias correction uses iterations + 1
        m_w, m_b = b1 * m_w + (1 - b1) * DW[k], b1 * m_b + (1 - b1) * DB[k]
        c_w, c_b = b2 * c_w + (1 - b2) * DW[k] ** 2, b2 * c_b + (1 - b2) * DB[k] ** 2
        w = w - lr * (m_w / (1 - b1**t)) / (np.sqrt(c_w / (1 - b2**t)) + eps)
        b = b - lr * (m_b / (1 - b1**t)) / (np.sqrt(c_b / (1 - b2**t)) + eps)
        assert_params(layer, w, b)
        # The layer keeps the uncorrected averages.
        np.testing.assert_allclose(layer.weight_momentums, m_w, **TIGHT)
        np.testing.assert_allclose(layer.bias_momentums, m_b, **TIGHT)
        np.testing.assert_allclose(layer.weight_cache, c_w, **TIGHT)
        np.testing.assert_allclose(layer.bias_cache, c_b, **TIGHT)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_decay_schedule_is_the_same_for_every_optimizer(cls):
    layer, optimizer = make_layer(), cls(learning_rate=0.04, decay=0.5, backend=NP)
    rates = []
    for k in range(3):
        step(optimizer, layer, k)
        rates.append(optimizer.current_learning_rate)
    np.testing.assert_allclose(rates, [0.04, 0.04 / 1.5, 0.04 / 2.0], rtol=1e-15)


# State and iterations


@pytest.mark.parametrize(
    ("optimizer", "names"),
    [
        (nnx.SGD(momentum=0.5, backend=NP), ("weight_momentums", "bias_momentums")),
        (nnx.Adagrad(backend=NP), ("weight_cache", "bias_cache")),
        (nnx.RMSprop(backend=NP), ("weight_cache", "bias_cache")),
        (
            nnx.Adam(backend=NP),
            ("weight_momentums", "bias_momentums", "weight_cache", "bias_cache"),
        ),
    ],
    ids=["SGD-momentum", "Adagrad", "RMSprop", "Adam"],
)
def test_state_lives_on_the_layer_under_the_book_names(optimizer, names):
    layer = make_layer()
    step(optimizer, layer, 0)
    for name in names:
        like = layer.weights if name.startswith("weight") else layer.biases
        state = getattr(layer, name)
        assert (state.shape, state.dtype) == (like.shape, like.dtype), name
    unused = {"weight_momentums", "bias_momentums", "weight_cache", "bias_cache"} - set(names)
    assert not any(hasattr(layer, name) for name in unused)


def test_each_layer_keeps_its_own_state():
    adam = nnx.Adam(backend=NP)
    first, second = make_layer(), make_layer()
    first.dweights, first.dbiases = DW[0], DB[0]
    second.dweights, second.dbiases = DW[1], DB[1]
    adam.pre_update_params()
    adam.update_params(first)
    adam.update_params(second)
    adam.post_update_params()
    np.testing.assert_allclose(first.weight_momentums, 0.1 * DW[0], **TIGHT)
    np.testing.assert_allclose(second.weight_momentums, 0.1 * DW[1], **TIGHT)
    assert adam.iterations == 1


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_iterations_count_post_update_calls_only(cls):
    layer, optimizer = make_layer(), cls(backend=NP)
    assert optimizer.iterations == 0
    layer.dweights, layer.dbiases = DW[0], DB[0]
    optimizer.pre_update_params()
    optimizer.update_params(layer)
    optimizer.update_params(layer)
    assert optimizer.iterations == 0
    optimizer.post_update_params()
    optimizer.post_update_params()
    assert optimizer.iterations == 2


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_float32_layer_stays_float32(cls):
    layer = make_layer("float32")
    optimizer = cls(momentum=0.9, backend=NP) if cls is nnx.SGD else cls(backend=NP)
    layer.dweights = DW[0].astype(np.float32)
    layer.dbiases = DB[0].astype(np.float32)
    optimizer.pre_update_params()
    optimizer.update_params(layer)
    assert (layer.weights.dtype, layer.biases.dtype) == (np.float32, np.float32)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_defaults_follow_the_book(cls):
    defaults = {
        nnx.SGD: {"learning_rate": 1.0, "decay": 0.0, "momentum": 0.0},
        nnx.Adagrad: {"learning_rate": 1.0, "decay": 0.0, "epsilon": 1e-7},
        nnx.RMSprop: {"learning_rate": 0.001, "decay": 0.0, "epsilon": 1e-7, "rho": 0.9},
        nnx.Adam: {
            "learning_rate": 0.001,
            "decay": 0.0,
            "epsilon": 1e-7,
            "beta_1": 0.9,
            "beta_2": 0.999,
        },
    }[cls]
    optimizer = cls(backend=NP)
    assert optimizer.config() == {**defaults, "fused": True}
    assert cls(**optimizer.config(), backend=NP).config() == {**defaults, "fused": True}


# Validation


@pytest.mark.parametrize(
    ("cls", "name", "value"),
    [
        (nnx.SGD, "learning_rate", -0.1),
        (nnx.SGD, "decay", -1e-3),
        (nnx.SGD, "momentum", -0.5),
        (nnx.SGD, "learning_rate", float("nan")),
        (nnx.Adagrad, "learning_rate", -1.0),
        (nnx.Adagrad, "epsilon", -1e-7),
        (nnx.RMSprop, "decay", -0.1),
        (nnx.RMSprop, "rho", -0.1),
        (nnx.RMSprop, "rho", 1.0),
        (nnx.Adam, "learning_rate", -0.001),
        (nnx.Adam, "beta_1", 1.0),
        (nnx.Adam, "beta_1", -0.1),
        (nnx.Adam, "beta_2", 1.5),
        (nnx.Adam, "beta_2", 1.0),
        (nnx.Adam, "decay", "0.1"),
    ],
)
def test_bad_hyperparameters_name_the_parameter(cls, name, value):
    pattern = rf"^{cls.__name__}: expected {name} .*got {name}={re.escape(repr(value))}\.$"
    with pytest.raises(ValueError, match=pattern):
        cls(**{name: value}, backend=NP)


@pytest.mark.parametrize(("name", "value"), [("beta_1", 0.0), ("beta_2", 0.0), ("rho", 0.0)])
def test_zero_fractions_are_allowed(name, value):
    cls = nnx.RMSprop if name == "rho" else nnx.Adam
    assert getattr(cls(**{name: value}, backend=NP), name) == 0.0


# In-place updates (mutable backends) against the pure form (immutable backends)


def _immutable_numpy():
    return dataclasses.replace(backends.load(NP), mutable=False)


def _three_steps(cls, backend):
    layer = nnx.Dense(2, 2, dtype="float64", backend=backend)
    layer.set_parameters(W0, B0)
    optimizer = cls(momentum=0.9, backend=backend) if cls is nnx.SGD else cls(backend=backend)
    for k in range(3):
        step(optimizer, layer, k)
    return layer, optimizer


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_in_place_update_equals_the_pure_form(cls):
    in_place, optimizer = _three_steps(cls, NP)
    pure, _ = _three_steps(cls, _immutable_numpy())
    names = ("weights", "biases", *optimizer.state_names(pure))
    assert all(hasattr(pure, name) for name in names)
    for name in names:
        np.testing.assert_allclose(getattr(in_place, name), getattr(pure, name), **TIGHT)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_update_leaves_the_gradients_alone(cls):
    layer, optimizer = _three_steps(cls, NP)
    # Kernels write into scratch arrays; the gradients a reader prints must stay as computed.
    np.testing.assert_array_equal(layer.dweights, DW[2])
    np.testing.assert_array_equal(layer.dbiases, DB[2])
