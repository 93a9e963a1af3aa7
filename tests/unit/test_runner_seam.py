"""A runner of one's own, from public names only: the seam every runner of nnx uses.

``nnx.Runner`` is the eager runner and the base of every runner; ``Model.train(runner=...)``
runs the steps with the one given. This one records the whole state after every step, and
the run it makes is the eager run, bit for bit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import backends
import nnx
from nnx.datasets import spiral_data

X, Y = spiral_data(40, 3, seed=0)


class Recording(nnx.Runner):
    """The eager step, and a host copy of the model's whole state after each one."""

    def prepare(self, steps: int) -> None:
        super().prepare(steps)
        self.states: list[dict[str, np.ndarray]] = []

    def step(self, X: Any, y: Any) -> tuple[Any, Any, Any]:
        figures = super().step(X, y)
        state = self.model.get_state()
        self.states.append({key: backends.to_numpy(value).copy() for key, value in state.items()})
        return figures


class Remembered(Recording):
    """The same runner each time it is asked for one, so a test can read what it recorded."""

    made: list[Recording] = []

    @classmethod
    def make(cls, model: Any, guard: bool = True) -> Any:
        runner = super().make(model, guard)
        cls.made.append(runner)
        return runner


def _model() -> nnx.Model:
    model = nnx.Model(seed=3)
    model.add(nnx.Dense(2, 16, seed=1, weight_regularizer_l2=1e-4))
    model.add(nnx.ReLU())
    model.add(nnx.Dropout(0.1, seed=4))
    model.add(nnx.Dense(16, 3, seed=2))
    model.add(nnx.Softmax())
    model.set(
        loss=nnx.CategoricalCrossentropy(),
        optimizer=nnx.Adam(learning_rate=0.02, decay=1e-3),
        accuracy=nnx.CategoricalAccuracy(),
    )
    model.finalize()
    return model


def _state(model: nnx.Model) -> dict[str, np.ndarray]:
    return {key: backends.to_numpy(value) for key, value in model.get_state().items()}


def test_a_runner_of_ones_own_trains_bit_for_bit_as_the_eager_one():
    arguments = {"epochs": 4, "batch_size": 32, "shuffle": True, "verbose": 0}
    eager = _model()
    expected = eager.train(X, Y, **arguments)
    mine = _model()
    history = mine.train(X, Y, runner=Remembered, **arguments)
    assert history == expected
    for key, value in _state(eager).items():
        np.testing.assert_array_equal(_state(mine)[key], value, err_msg=key)
    (runner,) = Remembered.made
    assert len(runner.states) == 4 * 4  # 120 rows in batches of 32: four steps an epoch
    assert [int(s["optimizer.iterations"]) for s in runner.states] == list(range(1, 17))
    for key, value in runner.states[-1].items():
        np.testing.assert_array_equal(_state(mine)[key], value, err_msg=key)


def test_a_runner_that_is_not_one_is_refused_before_training():
    model = _model()
    before = _state(model)
    with pytest.raises(TypeError, match=r"expected runner as a subclass of nnx.Runner"):
        model.train(X, Y, runner=object, verbose=0)
    for key, value in before.items():
        np.testing.assert_array_equal(_state(model)[key], value)
