"""The book's Fashion-MNIST model: 784-128-128-10, trained in batches of 128 for 10 epochs.

Chapters 19-21. Reads the four IDX files of Fashion-MNIST (train-images-idx3-ubyte,
train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, gzip-compressed or
not) from the folder given on the command line; it never downloads anything. Get the files from
https://github.com/zalandoresearch/fashion-mnist (data/fashion).
"""

from __future__ import annotations

from pathlib import Path

import _common

import nnx
from nnx.datasets import load_fashion_mnist

LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat"]
LABELS += ["Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def build(n_inputs: int) -> nnx.Model:
    model = nnx.Model(seed=0)
    model.add(nnx.Dense(n_inputs, 128, seed=0))
    model.add(nnx.ReLU())
    model.add(nnx.Dense(128, 128, seed=1))
    model.add(nnx.ReLU())
    model.add(nnx.Dense(128, 10, seed=2))
    model.add(nnx.Softmax())
    model.set(
        loss=nnx.CategoricalCrossentropy(),
        optimizer=nnx.Adam(decay=1e-3),
        accuracy=nnx.CategoricalAccuracy(),
    )
    model.finalize()
    return model


def run(args, backend, plt) -> None:
    X, y, X_test, y_test = load_fashion_mnist(args.folder)
    model = build(X.shape[1])
    clock = _common.Clock(backend)
    history = model.train(
        X,
        y,
        epochs=args.epochs,
        batch_size=128,
        shuffle=True,
        print_every=100,
        validation_data=(X_test, y_test),
    )
    seconds = clock.seconds()
    if args.save is not None:
        model.save(args.save)
        print(f"model saved to {args.save}; load it with nnx.Model.load({str(args.save)!r})")
    if plt is not None:
        figure, (ax_loss, ax_accuracy) = plt.subplots(1, 2, figsize=(10, 4.5))
        _common.plot_history(ax_loss, ax_accuracy, history)
        _common.save_figure(plt, figure, args.plot)
    first = int(backend.to_numpy(model.predict(X_test[:1])).argmax())
    print(f"first test image: predicted {LABELS[first]!r}, labelled {LABELS[int(y_test[0])]!r}")
    _common.report("fashion_mnist", backend, args.epochs, seconds, history, val_name="test")


if __name__ == "__main__":
    parse = _common.parser(__doc__, epochs=10)
    parse.add_argument("folder", type=Path, help="folder holding the four Fashion-MNIST IDX files")
    parse.add_argument("--save", metavar="FILE", type=Path, help="save the trained model there")
    _common.main(run, parse)
