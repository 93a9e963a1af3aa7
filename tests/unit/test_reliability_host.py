"""Host data at every door: NumPy subclasses that change what operators mean (np.matrix) or
hide values (masked arrays), and labels checked as they are at each direct call, not as they
were at the first one or inside a model."""

from __future__ import annotations

import numpy as np
import pytest

import nnx
from nnx.datasets import spiral_data

X, Y = spiral_data(20, 3, seed=0)
pytestmark = pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
MASKED = "masked array.*masked values would be used as numbers.*filled"


def _model() -> nnx.Model:
    with nnx.use_backend("numpy"):
        model = nnx.Model(seed=0)
        model.add(nnx.Dense(2, 8, seed=1))
        model.add(nnx.ReLU())
        model.add(nnx.Dense(8, 3, seed=2))
        model.add(nnx.Softmax())
        model.set(
            loss=nnx.CategoricalCrossentropy(),
            optimizer=nnx.Adam(learning_rate=0.05),
            accuracy=nnx.CategoricalAccuracy(),
        )
        model.finalize()
    return model


def _state(model: nnx.Model) -> dict[str, np.ndarray]:
    return {k: np.asarray(v).copy() for k, v in model.get_state().items()}


# -- np.matrix: converted to the plain array of the same numbers ----------------------------


def test_a_matrix_gives_the_numbers_of_the_plain_array_in_every_part() -> None:
    y_pred, y_true = np.array([[0.25], [1.0]]), np.array([[1.0], [1.0]])
    mse = nnx.MeanSquaredError(backend="numpy")
    want = float(mse.calculate(y_pred, y_true))
    assert want == pytest.approx(0.28125)
    assert float(mse.calculate(np.matrix(y_pred), np.matrix(y_true))) == want
    np.testing.assert_array_equal(
        mse.backward(np.matrix(y_pred), np.matrix(y_true)), mse.backward(y_pred, y_true)
    )
    relu = nnx.ReLU(backend="numpy")
    inputs, grads = np.array([[1.0, -2.0], [3.0, 4.0]]), np.array([[5.0, 6.0], [7.0, 8.0]])
    relu.forward(np.matrix(inputs))
    got = relu.backward(np.matrix(grads))  # a matrix's * would be the matrix product
    assert type(got) is np.ndarray and type(relu.inputs) is np.ndarray
    np.testing.assert_array_equal(got, [[5.0, 0.0], [7.0, 8.0]])
    dense = nnx.Dense(2, 2, seed=0, backend="numpy")
    dense.weights = np.matrix(np.eye(2, dtype=np.float32))  # set by hand, as in chapter 6
    out = dense.forward(np.matrix(inputs))
    assert type(out) is np.ndarray and type(dense.weights) is np.ndarray
    np.testing.assert_array_equal(out, inputs)


def test_a_matrix_into_the_model_trains_as_the_plain_array() -> None:
    plain = _model().train(X, Y, epochs=3, verbose=0)
    matrix = _model().train(np.matrix(X), Y, epochs=3, verbose=0)
    assert plain == matrix


# -- masked arrays: refused, saying how to fill or drop them ---------------------------------


def _masked(data: np.ndarray) -> np.ma.MaskedArray:
    mask = np.zeros(data.shape, dtype=bool)
    mask.flat[0] = True
    return np.ma.masked_array(data, mask=mask)


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.train(_masked(X), Y, epochs=1, verbose=0),
        lambda m: m.train(X, _masked(Y), epochs=1, verbose=0),
        lambda m: m.train(X, Y, epochs=1, verbose=0, validation_data=(_masked(X), Y)),
        lambda m: m.evaluate(X, _masked(Y), verbose=0),
        lambda m: m.predict(_masked(X)),
    ],
    ids=["train X", "train y", "validation X", "evaluate y", "predict X"],
)
def test_masked_data_is_refused_by_the_model_before_any_step(call) -> None:
    model = _model()
    before = _state(model)
    with pytest.raises(TypeError, match=MASKED):
        call(model)
    after = _state(model)
    assert all(np.array_equal(after[k], before[k]) for k in before)


def test_masked_data_is_refused_by_every_part() -> None:
    probs = np.full((4, 3), 1 / 3)
    labels = np.array([0, 1, 2, 0])
    calls = [
        lambda: nnx.ReLU(backend="numpy").forward(_masked(probs)),
        lambda: nnx.Dense(3, 2, backend="numpy").forward(_masked(probs)),
        lambda: nnx.CategoricalCrossentropy(backend="numpy").calculate(probs, _masked(labels)),
        lambda: nnx.MeanSquaredError(backend="numpy").backward(_masked(probs), probs),
        lambda: nnx.CategoricalAccuracy(backend="numpy").calculate(labels, _masked(labels)),
    ]
    for call in calls:
        with pytest.raises(TypeError, match=MASKED):
            call()


def test_a_masked_gradient_set_by_hand_is_refused_by_the_optimizer() -> None:
    dense = nnx.Dense(2, 2, seed=0, backend="numpy")
    dense.forward(np.ones((3, 2)))
    dense.backward(np.ones((3, 2)))
    before = dense.weights.copy()
    dense.dweights = _masked(np.ones((2, 2), dtype=np.float32))
    with pytest.raises(TypeError, match=MASKED):
        nnx.SGD(backend="numpy").update_params(dense)
    np.testing.assert_array_equal(dense.weights, before)


# -- labels: checked as they are now, at every direct call -----------------------------------


@pytest.mark.parametrize("method", ["forward", "calculate", "backward"])
def test_labels_changed_in_place_are_checked_again(method) -> None:
    loss = nnx.CategoricalCrossentropy(backend="numpy")
    probs, labels = np.full((4, 3), 1 / 3), np.array([0, 1, 2, 0])
    getattr(loss, method)(probs, labels)  # accepted once
    labels[1] = 3  # the same array, now out of range
    with pytest.raises(ValueError, match="got labels from 0 to 3"):
        getattr(loss, method)(probs, labels)
    labels[1] = -1
    with pytest.raises(ValueError, match="got labels from -1 to 2"):
        getattr(loss, method)(probs, labels)


def test_the_fused_loss_checks_labels_changed_in_place() -> None:
    fused = nnx.SoftmaxCategoricalCrossentropy(backend="numpy")
    logits, labels = np.zeros((4, 3)), np.array([0, 1, 2, 0])
    fused.forward(logits, labels)
    fused.backward(fused.output, labels)
    labels[0] = 5
    with pytest.raises(ValueError, match="labels must lie in"):
        fused.forward(logits, labels)
    with pytest.raises(ValueError, match="labels must lie in"):
        fused.backward(fused.output, labels)


def test_a_loss_that_was_in_a_model_checks_direct_calls_again() -> None:
    model = _model()
    model.train(X, Y, epochs=2, verbose=0)
    probs = np.full((4, 3), 1 / 3)
    for call in (model.loss.forward, model.loss.calculate, model.loss.backward):
        with pytest.raises(ValueError, match="labels must lie in"):
            call(probs, np.array([0, 1, 2, 3]))
        with pytest.raises(TypeError, match="labels as integers"):
            call(probs, np.array([0.0, 1, 2, 0]))
    model.train(X, Y, epochs=1, verbose=0)  # and the model still trains with it


def test_the_model_path_never_runs_the_direct_call_checks(monkeypatch) -> None:
    """Model checks y once at its door and calls the formulas: the per-step path reads no
    labels on the host (and a compiled step could not)."""
    calls = []

    def spy(self, *args):
        calls.append(type(self).__name__)

    for cls in (nnx.Loss, nnx.CategoricalCrossentropy, nnx.SoftmaxCategoricalCrossentropy,
                nnx.Accuracy):  # fmt: skip
        monkeypatch.setattr(cls, "_check_pair", spy)
    monkeypatch.setattr(nnx.Layer, "_check_dvalues", spy)
    model = _model()
    model.train(X, Y, epochs=3, verbose=0, validation_data=(X, Y))
    model.evaluate(X, Y, verbose=0)
    assert calls == []
    with pytest.raises(ValueError, match="labels must lie in"):
        model.train(X, np.where(Y == 2, 3, Y), epochs=1, verbose=0)  # the model's own door
