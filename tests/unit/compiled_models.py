"""The model and checks the compiled-step tests share (test_compiled, test_many_steps)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import backends
import nnx
from nnx.datasets import spiral_data

X, Y = spiral_data(40, 3, seed=0)  # 120 samples
# float32 rounding, grown over 12 steps (Adagrad at 0.5 moved one weight by 3e-5 relative);
# a wrong formula, mask or step count moves the numbers by far more (percents).
RTOL, ATOL = 1e-4, 1e-5


def model(backend: Any, optimizer: Any = None, dropout: bool = True) -> nnx.Model:
    with nnx.use_backend(backend):
        model = nnx.Model(seed=7)
        model.add(nnx.Dense(2, 32, seed=1, weight_regularizer_l2=5e-4, bias_regularizer_l1=1e-4))
        model.add(nnx.ReLU())
        if dropout:
            model.add(nnx.Dropout(0.2, seed=3))
        model.add(nnx.Dense(32, 3, seed=2))
        model.add(nnx.Softmax())
        model.set(
            loss=nnx.CategoricalCrossentropy(),
            optimizer=optimizer() if optimizer else nnx.Adam(learning_rate=0.02, decay=1e-3),
            accuracy=nnx.CategoricalAccuracy(),
        )
    model.finalize()
    return model


def host(model: nnx.Model) -> dict[str, np.ndarray]:
    return {key: backends.to_numpy(value) for key, value in model.get_state().items()}


def assert_close(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=RTOL, atol=ATOL, err_msg=key)


def assert_stop_alike(models: list[nnx.Model], **train: Any) -> None:
    """Each model's ``train(X, Y, **train)`` raises NonFiniteLossError: the same message, a
    finite state left behind, and the states close to the first (the eager reference)."""
    messages, states = [], []
    for each in models:
        with pytest.raises(nnx.NonFiniteLossError) as info:
            each.train(X, Y, **train)
        messages.append(str(info.value))
        states.append(host(each))
        assert all(np.isfinite(value).all() for value in states[-1].values())
    assert messages[0] == messages[1]
    assert_close(states[1], states[0])
