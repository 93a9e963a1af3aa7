"""nnx.book: the book's class names and signatures, and a chapter-10 script run unchanged."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from nnfs.datasets import spiral_data

import backends
import nnx
from nnx import book, datasets


@pytest.fixture(autouse=True)
def _global_state(monkeypatch):
    """The book seeds NumPy's global generator; restore it and the backend choice afterwards."""
    monkeypatch.delenv("NNX_BACKEND", raising=False)
    state, selected = np.random.get_state(), backends.get_backend()
    yield
    np.random.set_state(state)
    backends.set_backend(selected)


def _chapter_10(epochs: int) -> list[float]:
    """The book's Adam chapter loop, with nothing changed but the imports (book.*)."""
    np.random.seed(0)  # what nnfs.init() does, without its global NumPy patches
    X, y = spiral_data(samples=100, classes=3)

    dense1 = book.Layer_Dense(2, 64)
    activation1 = book.Activation_ReLU()
    dense2 = book.Layer_Dense(64, 3)
    loss_activation = book.Activation_Softmax_Loss_CategoricalCrossentropy()
    optimizer = book.Optimizer_Adam(learning_rate=0.05, decay=5e-7)

    losses = []
    for epoch in range(epochs + 1):
        dense1.forward(X)
        activation1.forward(dense1.output)
        dense2.forward(activation1.output)
        loss = loss_activation.forward(dense2.output, y)
        # The book's accuracy uses NumPy; the output lives on the backend, so bring it home.
        output = nnx.get_backend().to_numpy(loss_activation.output)
        accuracy = np.mean(np.argmax(output, axis=1) == y)
        if not epoch % 50:
            print(f"epoch: {epoch}, acc: {accuracy:.3f}, loss: {float(loss):.3f}")
        losses.append(float(loss))

        loss_activation.backward(loss_activation.output, y)
        dense2.backward(loss_activation.dinputs)
        activation1.backward(dense2.dinputs)
        dense1.backward(activation1.dinputs)

        optimizer.pre_update_params()
        optimizer.update_params(dense1)
        optimizer.update_params(dense2)
        optimizer.post_update_params()
    return losses


@pytest.mark.parametrize("name", ["numpy", "array_api_strict"])
def test_chapter_10_script_learns(name, capsys):
    pytest.importorskip(name)
    with backends.use_backend(name):
        losses = _chapter_10(epochs=150)
    assert losses[0] == pytest.approx(1.0986, abs=1e-3)  # log(3): the untrained guess
    assert losses[-1] < 0.8 * losses[0]
    assert "epoch: 150, acc:" in capsys.readouterr().out


def test_chapter_10_same_on_both_backends():
    with backends.use_backend("numpy"):
        reference = _chapter_10(epochs=20)
    with backends.use_backend("array_api_strict"):
        strict = _chapter_10(epochs=20)
    np.testing.assert_allclose(strict, reference, rtol=1e-5)


def test_names_are_the_nnx_classes():
    assert book.Layer_Dense is nnx.Dense
    assert (
        book.Activation_Softmax_Loss_CategoricalCrossentropy is nnx.SoftmaxCategoricalCrossentropy
    )
    assert book.Model is nnx.Model
    assert set(book.__all__) >= {
        "Layer_Dense", "Layer_Dropout", "Layer_Input", "Activation_ReLU", "Activation_Softmax",
        "Activation_Sigmoid", "Activation_Linear", "Loss_CategoricalCrossentropy",
        "Loss_BinaryCrossentropy", "Loss_MeanSquaredError", "Loss_MeanAbsoluteError",
        "Optimizer_SGD", "Optimizer_Adagrad", "Optimizer_RMSprop", "Optimizer_Adam",
        "Accuracy_Categorical", "Accuracy_Regression", "Model",
    }  # fmt: skip


def test_signatures_match_the_book():
    def params(cls):
        return list(inspect.signature(cls).parameters)

    assert params(book.Layer_Dense)[:6] == [
        "n_inputs", "n_neurons", "weight_regularizer_l1", "weight_regularizer_l2",
        "bias_regularizer_l1", "bias_regularizer_l2",
    ]  # fmt: skip
    assert params(book.Layer_Dropout)[0] == "rate"
    assert params(book.Optimizer_SGD)[:3] == ["learning_rate", "decay", "momentum"]
    assert params(book.Optimizer_Adagrad)[:3] == ["learning_rate", "decay", "epsilon"]
    assert params(book.Optimizer_RMSprop)[:4] == ["learning_rate", "decay", "epsilon", "rho"]
    assert params(book.Optimizer_Adam)[:5] == [
        "learning_rate", "decay", "epsilon", "beta_1", "beta_2"
    ]  # fmt: skip
    assert book.Accuracy_Categorical(binary=True).binary is True
    dense = book.Layer_Dense(2, 3, 0, 0.5, seed=0)
    assert dense.weight_regularizer_l2 == 0.5


def test_book_loss_and_regularization_calls():
    dense = book.Layer_Dense(2, 3, weight_regularizer_l2=0.1, seed=0)
    softmax = book.Activation_Softmax()
    dense.forward(np.ones((4, 2), dtype=np.float32), training=True)
    softmax.forward(dense.output, training=True)
    loss_function = book.Loss_CategoricalCrossentropy()
    data_loss = loss_function.calculate(softmax.output, np.array([0, 1, 2, 0]))
    penalty = loss_function.regularization_loss(dense)
    weights = nnx.get_backend().to_numpy(dense.weights)
    assert float(data_loss) > 0
    assert float(penalty) == pytest.approx(0.1 * float(np.sum(weights * weights)), rel=1e-5)


def test_book_model_chapter_style(tmp_path):
    X, y = datasets.spiral_data(50, 3, seed=0)
    model = book.Model()
    model.add(book.Layer_Dense(2, 16, seed=0))
    model.add(book.Activation_ReLU())
    model.add(book.Layer_Dense(16, 3, seed=1))
    model.add(book.Activation_Softmax())
    model.set(
        loss=book.Loss_CategoricalCrossentropy(),
        optimizer=book.Optimizer_Adam(learning_rate=0.05, decay=5e-7),
        accuracy=book.Accuracy_Categorical(),
    )
    model.finalize()
    model.train(X, y, epochs=5, print_every=5, verbose=0)
    model.save(tmp_path / "book.model")
    loaded = book.Model.load(tmp_path / "book.model")
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
