"""The book's spiral classifier: 2 inputs, 64 ReLU neurons, 3 softmax outputs, trained with Adam.

Chapters 10-14: 100 points for each of 3 classes, full-batch training with L2 regularization
on the hidden layer, then the accuracy on a fresh spiral drawn with another seed.
"""

from __future__ import annotations

import _common

import nnx
from nnx.datasets import spiral_data


def build() -> nnx.Model:
    model = nnx.Model(seed=0)
    model.add(nnx.Dense(2, 64, weight_regularizer_l2=5e-4, bias_regularizer_l2=5e-4, seed=0))
    model.add(nnx.ReLU())
    model.add(nnx.Dense(64, 3, seed=1))
    model.add(nnx.Softmax())
    model.set(
        loss=nnx.CategoricalCrossentropy(),
        optimizer=nnx.Adam(learning_rate=0.05, decay=5e-7),
        accuracy=nnx.CategoricalAccuracy(),
    )
    model.finalize()
    return model


def run(args, backend, plt) -> None:
    X, y = spiral_data(100, 3, seed=0)
    X_val, y_val = spiral_data(100, 3, seed=100)
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
    _common.report("spiral", backend, args.epochs, seconds, history, val_accuracy)


if __name__ == "__main__":
    _common.main(run, _common.parser(__doc__, epochs=10000))
