"""Checkpoints: an interrupted run, resumed, ends with the bits of an uninterrupted one."""

from __future__ import annotations

import numpy as np
import pytest

import nnx
from nnx.datasets import spiral_data


def model(optimizer: str = "adam") -> nnx.Model:
    m = nnx.Model(seed=3)
    m.add(nnx.Dense(2, 16, seed=1))
    m.add(nnx.ReLU())
    m.add(nnx.Dropout(0.1, seed=7))
    m.add(nnx.Dense(16, 3, seed=2))
    m.add(nnx.Softmax())
    opt = (
        nnx.Adam(learning_rate=0.02, decay=1e-3)
        if optimizer == "adam"
        else nnx.SGD(learning_rate=0.5, decay=1e-3, momentum=0.9)
    )
    m.set(loss=nnx.CategoricalCrossentropy(), optimizer=opt, accuracy=nnx.CategoricalAccuracy())
    m.finalize()
    return m


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_resume_gives_the_uninterrupted_bits(tmp_path, optimizer):
    X, y = spiral_data(40, 3, seed=0)
    options = dict(batch_size=32, shuffle=True, verbose=0)
    whole = model(optimizer)
    expected = whole.train(X, y, epochs=6, **options)

    path = tmp_path / "run.nnx"
    first = model(optimizer)
    first.train(X, y, epochs=3, checkpoint=path, checkpoint_every=1, **options)
    resumed = model(optimizer)  # a fresh process would build the model the same way
    history = resumed.train(X, y, epochs=6, resume=path, **options)

    assert history == expected
    for (w1, b1), (w2, b2) in zip(whole.get_parameters(), resumed.get_parameters(), strict=True):
        np.testing.assert_array_equal(w1, w2)
        np.testing.assert_array_equal(b1, b2)
    assert resumed.optimizer.iterations == whole.optimizer.iterations


def test_checkpoint_is_a_model_file(tmp_path):
    X, y = spiral_data(20, 3, seed=0)
    path = tmp_path / "run.nnx"
    trained = model()
    trained.train(X, y, epochs=2, checkpoint=path, verbose=0)
    loaded = nnx.Model.load(path)
    np.testing.assert_array_equal(loaded.predict(X), trained.predict(X))


def test_resume_refuses_another_architecture_and_plain_model_files(tmp_path):
    X, y = spiral_data(20, 3, seed=0)
    path, plain = tmp_path / "run.nnx", tmp_path / "plain.nnx"
    trained = model()
    trained.train(X, y, epochs=1, checkpoint=path, verbose=0)
    trained.save(plain)
    other = nnx.Model()
    other.add(nnx.Dense(2, 3, seed=0))
    other.add(nnx.Softmax())
    other.set(loss=nnx.CategoricalCrossentropy(), optimizer=nnx.Adam())
    other.finalize()
    with pytest.raises(nnx.ModelFileError, match="differ from this model"):
        other.train(X, y, epochs=2, resume=path, verbose=0)
    with pytest.raises(nnx.ModelFileError, match="not a checkpoint"):
        model().train(X, y, epochs=2, resume=plain, verbose=0)
    with pytest.raises(ValueError, match="checkpoint_every=0"):
        model().train(X, y, checkpoint=path, checkpoint_every=0)


def test_unseeded_dropout_and_no_accuracy_checkpoint_and_resume(tmp_path):
    X, y = spiral_data(20, 3, seed=0)
    m = nnx.Model(seed=0)
    m.add(nnx.Dense(2, 8, seed=1))
    m.add(nnx.ReLU())
    m.add(nnx.Dropout(0.1))  # draws from NumPy's global generator: not saved, still resumable
    m.add(nnx.Dense(8, 3, seed=2))
    m.add(nnx.Softmax())
    m.set(loss=nnx.CategoricalCrossentropy(), optimizer=nnx.Adam())
    m.finalize()
    path = tmp_path / "run.nnx"
    first = m.train(X, y, epochs=2, checkpoint=path, verbose=0)
    assert np.isnan(first["accuracy"]).all()
    history = m.train(X, y, epochs=4, resume=path, verbose=0)
    assert len(history["loss"]) == 4 and np.isnan(history["accuracy"]).all()
