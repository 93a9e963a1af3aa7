"""A trainable layer defined here alone, not in nnx, goes through everything nnx does.

``Scale`` multiplies each feature by a learned factor. It declares its one parameter
(``gamma``, gradient ``dgamma``) and nothing else: the optimizers, the L1/L2 penalties, model
files, checkpoints, moving between backends and the conformance checks all read that
declaration. If any of them names Dense's ``weights`` or ``biases`` again, a test here fails.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import nnx
from backends import Backend, load
from nnx.datasets import spiral_data
from nnx.testing import DTYPES, Check, layer_checks, optimizer_checks
from nnx.testing.plugin import expect_pass


class Scale(nnx.Layer):
    """``output = inputs * gamma``: one learned factor per feature, starting at 1."""

    parameters = {"gamma": "dgamma"}

    def __init__(
        self,
        n: int,
        gamma_regularizer_l1: float = 0.0,
        gamma_regularizer_l2: float = 0.0,
        *,
        dtype: str = "float32",
        backend: Backend | str | None = None,
    ) -> None:
        super().__init__(backend)
        self.n_inputs = self.n_outputs = n
        self.gamma_regularizer_l1 = gamma_regularizer_l1
        self.gamma_regularizer_l2 = gamma_regularizer_l2
        self.dtype = self.backend.dtype(dtype)
        self.gamma = self.xp.ones((1, n), dtype=self.dtype, device=self.device)

    def forward(self, inputs: Any, training: bool = False) -> Any:
        self.inputs = inputs
        self.output = inputs * self.gamma
        return self.output

    def backward(self, dvalues: Any) -> Any:
        self.dgamma = self.xp.sum(dvalues * self.inputs, axis=0, keepdims=True)
        self.add_penalty_gradients()
        self.dinputs = dvalues * self.gamma
        return self.dinputs

    def config(self) -> dict[str, Any]:
        return {
            "n": self.n_inputs,
            "gamma_regularizer_l1": self.gamma_regularizer_l1,
            "gamma_regularizer_l2": self.gamma_regularizer_l2,
            "dtype": "float64" if self.dtype == self.xp.float64 else "float32",
        }


def _scale(backend: Backend, dtype: str) -> Scale:
    return Scale(
        5, gamma_regularizer_l1=0.01, gamma_regularizer_l2=0.02, dtype=dtype, backend=backend
    )


OPTIMIZERS = {
    "SGD": lambda: nnx.SGD(0.5, decay=1e-3, momentum=0.9),
    "Adagrad": lambda: nnx.Adagrad(0.5, decay=1e-3),
    "RMSprop": lambda: nnx.RMSprop(0.01, decay=1e-3),
    "Adam": lambda: nnx.Adam(0.02, decay=1e-3),
}
STATE = {"SGD": ["gamma_momentums"], "Adagrad": ["gamma_cache"], "RMSprop": ["gamma_cache"]}
STATE["Adam"] = ["gamma_momentums", "gamma_cache"]


def _model(backend: Backend, optimizer: str = "Adam") -> nnx.Model:
    with nnx.use_backend(backend):
        model = nnx.Model(seed=4)
        model.add(nnx.Dense(2, 16, seed=1))
        model.add(Scale(16, gamma_regularizer_l2=1e-3))
        model.add(nnx.ReLU())
        model.add(nnx.Dense(16, 3, seed=2))
        model.add(nnx.Softmax())
        model.set(
            loss=nnx.CategoricalCrossentropy(),
            optimizer=OPTIMIZERS[optimizer](),
            accuracy=nnx.CategoricalAccuracy(),
        )
    model.finalize()
    return model


def _host_state(model: nnx.Model) -> dict[str, np.ndarray]:
    return {k: np.asarray(model.backend.to_numpy(v)) for k, v in model.get_state().items()}


def _assert_same_state(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert list(got) == list(want)
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)


DATA = spiral_data(30, 3, seed=0)


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_trains_under_every_optimizer(backend: Backend, optimizer: str) -> None:
    model = _model(backend, optimizer)
    history = model.train(*DATA, epochs=15, verbose=0)
    scale = model.layers[1]
    gamma = backend.to_numpy(scale.gamma)
    assert not np.array_equal(gamma, np.ones((1, 16))), "gamma never moved"
    assert history["loss"][-1] < history["loss"][0]
    for name in STATE[optimizer]:
        assert backend.to_numpy(getattr(scale, name)).shape == (1, 16), name
    keys = [key for key in model.get_state() if key.startswith("layers.1.")]
    assert keys == ["layers.1.gamma", *[f"layers.1.{name}" for name in STATE[optimizer]]]


def test_is_regularized(backend: Backend) -> None:
    model = _model(backend)
    scale = model.layers[1]
    gamma = np.linspace(-1.0, 1.0, 16, dtype=np.float32)[None, :]
    scale.set_parameters(gamma)
    expected = 1e-3 * float(np.sum(gamma.astype(np.float64) ** 2))
    penalty = float(backend.to_numpy(model.loss.regularization_loss(scale)))
    assert penalty == pytest.approx(expected, rel=1e-5)
    history = model.train(*DATA, epochs=1, verbose=0)
    # Recorded after the step: the penalty of the updated gamma (the Dense layers add none).
    trained = backend.to_numpy(scale.gamma).astype(np.float64)
    assert history["reg_loss"][0] == pytest.approx(1e-3 * float(np.sum(trained**2)), rel=1e-5)


def test_saves_and_loads(backend: Backend, tmp_path: Any) -> None:
    model = _model(backend)
    model.train(*DATA, epochs=3, verbose=0)
    model.save(tmp_path / "scale.nnx")
    with pytest.raises(nnx.ModelFileError, match=r"unknown layer class 'Scale'.*classes=\["):
        nnx.Model.load(tmp_path / "scale.nnx", backend=backend)
    loaded = nnx.Model.load(tmp_path / "scale.nnx", backend=backend, classes=[Scale])
    _assert_same_state(_host_state(loaded), _host_state(model))
    np.testing.assert_array_equal(
        backend.to_numpy(loaded.predict(DATA[0])), backend.to_numpy(model.predict(DATA[0]))
    )
    model.save_parameters(tmp_path / "parameters.nnx")
    fresh = _model(backend)
    fresh.load_parameters(tmp_path / "parameters.nnx")
    _assert_same_state(
        {k: np.asarray(backend.to_numpy(v)) for k, v in fresh.get_state(optimizer=False).items()},
        {k: np.asarray(backend.to_numpy(v)) for k, v in model.get_state(optimizer=False).items()},
    )


def test_checkpoint_resumes_bit_for_bit(backend: Backend, tmp_path: Any) -> None:
    options = dict(batch_size=32, shuffle=True, verbose=0)
    whole = _model(backend)
    expected = whole.train(*DATA, epochs=4, **options)
    _model(backend).train(*DATA, epochs=2, checkpoint=tmp_path / "run.nnx", **options)
    resumed = _model(backend)
    history = resumed.train(*DATA, epochs=4, resume=tmp_path / "run.nnx", **options)
    assert history == expected
    _assert_same_state(_host_state(resumed), _host_state(whole))


def test_moves_between_backends(backend: Backend) -> None:
    model = _model(load("numpy"))
    model.train(*DATA, epochs=2, verbose=0)
    before = _host_state(model)
    model.to(backend)
    assert model.layers[1].backend is backend
    _assert_same_state(_host_state(model), before)
    model.train(*DATA, epochs=1, verbose=0)  # the state it trains on is the backend's own
    assert model.layers[1].gamma_cache is not None
    model.to("numpy")
    assert set(_host_state(model)) == set(before)


CHECKS = [*layer_checks("Scale", _scale), *optimizer_checks(_scale, "Scale")]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("check", CHECKS, ids=lambda c: f"{c.component}-{c.kind}")
def test_passes_the_conformance_checks(backend: Backend, dtype: str, check: Check) -> None:
    if check.kind == "gradient" and dtype != "float64":
        pytest.skip("finite differences run in float64 only")
    expect_pass(check.run(backend, dtype))


class _NoPenalty(Scale):
    """Forgets the penalty's gradient: what a layer author might get wrong."""

    def add_penalty_gradients(self) -> None:
        pass


class _HalfGradient(Scale):
    def backward(self, dvalues: Any) -> Any:
        super().backward(dvalues)
        self.dgamma = self.dgamma / 2
        return self.dinputs


@pytest.mark.parametrize("broken", [_NoPenalty, _HalfGradient], ids=lambda c: c.__name__)
def test_the_checks_catch_a_wrong_gradient(broken: type[Scale]) -> None:
    def make(backend: Backend, dtype: str) -> Scale:
        return broken(5, 0.01, 0.02, dtype=dtype, backend=backend)

    _, gradient = layer_checks("Broken", make)
    result = gradient.run(load("numpy"), "float64")
    assert result.status == "fail" and "dgamma" in result.reason, result.describe()
