"""Handwritten digits: scikit-learn's bundled 8x8 images (no download), mini-batch training.

The book's chapter-19 recipe on a data set that ships with scikit-learn: 1,797 images of 64
pixels scaled to [-1, 1], a fixed 80/20 split, batches of 32 reshuffled every epoch.
"""

from __future__ import annotations

import _common
import numpy as np

import nnx
from nnx.datasets import load_digits


def build() -> nnx.Model:
    model = nnx.Model(seed=0)
    model.add(nnx.Dense(64, 128, seed=0))
    model.add(nnx.ReLU())
    model.add(nnx.Dense(128, 128, seed=1))
    model.add(nnx.ReLU())
    model.add(nnx.Dense(128, 10, seed=2))
    model.add(nnx.Softmax())
    model.set(
        loss=nnx.CategoricalCrossentropy(),
        optimizer=nnx.Adam(learning_rate=0.005, decay=1e-3),
        accuracy=nnx.CategoricalAccuracy(),
    )
    model.finalize()
    return model


def split(X: np.ndarray, y: np.ndarray, seed: int = 0):
    """80% for training, 20% for validation, shuffled with ``seed``."""
    order = np.random.default_rng(seed).permutation(len(X))
    cut = int(0.8 * len(X))
    train, val = order[:cut], order[cut:]
    return X[train], y[train], X[val], y[val]


def run(args, backend, plt) -> None:
    X, y, X_val, y_val = split(*load_digits())
    model = build()
    clock = _common.Clock(backend)
    history = model.train(
        X,
        y,
        epochs=args.epochs,
        batch_size=32,
        shuffle=True,
        print_every=15,
        validation_data=(X_val, y_val),
    )
    seconds = clock.seconds()
    if plt is not None:
        figure, (ax_loss, ax_accuracy) = plt.subplots(1, 2, figsize=(10, 4.5))
        _common.plot_history(ax_loss, ax_accuracy, history)
        _common.save_figure(plt, figure, args.plot)
    _common.report("digits", backend, args.epochs, seconds, history)


if __name__ == "__main__":
    _common.main(run, _common.parser(__doc__, epochs=10))
