"""nnx.book: the book's class names and signatures, and a chapter-10 script run unchanged."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

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


# The chapter-10 loops themselves run on every backend in tests/conformance/test_book.py.


def test_book_numpy_brings_backend_arrays_to_the_host():
    pytest.importorskip("array_api_strict")
    strict = backends.load("array_api_strict", "device1")
    output = strict.asarray([[0.1, 0.7, 0.2], [0.8, 0.1, 0.1]])
    predictions = book.numpy.argmax(output, axis=1)  # the book's accuracy lines
    assert isinstance(predictions, np.ndarray) and predictions.tolist() == [1, 0]
    assert book.numpy.mean(predictions == np.array([1, 1])) == 0.5
    # Inside lists, by keyword, and through a ufunc's methods.
    assert book.numpy.concatenate([output, output], axis=0).shape == (4, 3)
    assert book.numpy.sum(a=output) == pytest.approx(2.0)
    assert book.numpy.maximum.reduce(output, axis=0).tolist() == [0.8, 0.7, 0.2]
    # Types, constants and submodules are NumPy's.
    assert book.numpy.float32 is np.float32 and book.numpy.pi == np.pi
    assert book.numpy.linalg.norm(strict.asarray([3.0, 4.0])) == 5.0


def test_book_numpy_follows_later_patches_of_numpy(monkeypatch):
    """nnfs.init() replaces np.dot after nnx.book is imported; the book's numpy sees it."""
    monkeypatch.setattr(np, "dot", lambda *args: "patched")
    assert book.numpy.dot(1, 2) == "patched"
    monkeypatch.undo()
    assert book.numpy.dot(2, 3) == 6


def test_book_numpy_refuses_arrays_it_cannot_place():
    class Foreign:
        __array_namespace__ = None  # looks like an array of a library no backend holds

    with pytest.raises(TypeError, match="expected an array of a loaded backend"):
        book.numpy.argmax(Foreign())


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


def test_book_numpy_pickles_and_refuses_out_of_another_backend():
    import copy
    import pickle

    assert pickle.loads(pickle.dumps(book.numpy.sum))([1, 2]) == 3
    assert copy.deepcopy(book.numpy.sum)([3]) == 3
    strict = backends.load("array_api_strict").asarray([1.0, 2.0])
    with pytest.raises(TypeError, match="out= is an array of another backend"):
        book.numpy.add(strict, strict, out=strict)
    host = np.zeros(2)
    book.numpy.add(strict, strict, out=host)  # a NumPy array may be written into
    assert host.tolist() == [2.0, 4.0]
