"""The book's binary logistic regression: one sigmoid output tells two spiral arms apart.

Chapter 16: 100 points for each of 2 classes, labels as a column (n, 1), binary crossentropy,
and accuracy that compares each output, rounded at 0.5, with its 0/1 target.
"""

from __future__ import annotations

import _common

import nnx
from nnx.datasets import spiral_data


def build() -> nnx.Model:
    model = nnx.Model(seed=0)
    model.add(nnx.Dense(2, 64, weight_regularizer_l2=5e-4, bias_regularizer_l2=5e-4, seed=0))
    model.add(nnx.ReLU())
    model.add(nnx.Dense(64, 1, seed=1))
    model.add(nnx.Sigmoid())
    model.set(
        loss=nnx.BinaryCrossentropy(),
        optimizer=nnx.Adam(decay=5e-7),
        accuracy=nnx.CategoricalAccuracy(binary=True),
    )
    model.finalize()
    return model


def run(args, backend, plt) -> None:
    X, y = spiral_data(100, 2, seed=1)
    X_val, y_val = spiral_data(100, 2, seed=101)
    # One output per sample: the targets become a column, as in the book.
    y, y_val = y.reshape(-1, 1), y_val.reshape(-1, 1)
    model = build()
    clock = _common.Clock(backend)
    history = model.train(X, y, epochs=args.epochs, print_every=100)
    seconds = clock.seconds()
    _, val_accuracy = model.evaluate(X_val, y_val)
    if plt is not None:
        figure, (ax_boundary, ax_loss, ax_accuracy) = plt.subplots(1, 3, figsize=(15, 4.5))
        _common.plot_boundary(ax_boundary, model, X, y)
        _common.plot_history(ax_loss, ax_accuracy, history)
        _common.save_figure(plt, figure, args.plot)
    _common.report("binary", backend, args.epochs, seconds, history, val_accuracy)


if __name__ == "__main__":
    _common.main(run, _common.parser(__doc__, epochs=10000))
