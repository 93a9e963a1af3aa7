"""Chapter 10's training loop, as the book prints it, with each of the chapter's optimizers.

    python examples/book/chapter10.py adam                   # on NumPy
    NNX_BACKEND=torch python examples/book/chapter10.py adam  # the same loop on torch
    python examples/book/chapter10.py all --epochs 300       # every optimizer in turn
    python examples/book/chapter10.py adam --dtype float64   # layers in float64

The spiral data (100 samples of 3 classes), a 2-64-3 network, softmax with crossentropy, and
the book's settings for SGD, SGD with decay and momentum, AdaGrad, RMSProp and Adam. Changed
from the book's scripts, and nothing else:

- the imports: the classes and ``numpy`` come from ``nnx.book`` (the classes run on the
  backend ``NNX_BACKEND`` names; its ``numpy`` brings their arrays to the host for the
  accuracy lines);
- ``float(loss)`` in the print line: array-api-strict's arrays take no format specification
  (the standard defines none), so ``{loss:.3f}`` fails there alone;
- the loop sits in a function, and ``np.random.seed(0)`` (what ``nnfs.init()`` does to the
  generator) starts every optimizer from the same weights when one run trains several;
- ``--dtype float64`` builds the layers as ``Layer_Dense(..., dtype="float64")``, to compare
  backends without float32's rounding (the book's layers are float32).
"""

from __future__ import annotations

import argparse
import functools

import nnfs
from nnfs.datasets import spiral_data

from nnx.book import (
    Activation_ReLU,
    Activation_Softmax_Loss_CategoricalCrossentropy,
    Layer_Dense,
    Optimizer_Adagrad,
    Optimizer_Adam,
    Optimizer_RMSprop,
    Optimizer_SGD,
)
from nnx.book import numpy as np

# The chapter's optimizers, with the settings the book settles on for each.
OPTIMIZERS = {
    "sgd": lambda: Optimizer_SGD(),
    "sgd_momentum": lambda: Optimizer_SGD(decay=1e-3, momentum=0.9),
    "adagrad": lambda: Optimizer_Adagrad(decay=1e-4),
    "rmsprop": lambda: Optimizer_RMSprop(learning_rate=0.02, decay=1e-5, rho=0.999),
    "adam": lambda: Optimizer_Adam(learning_rate=0.05, decay=5e-7),
}


def train(optimizer_name: str, epochs: int) -> None:
    np.random.seed(0)
    # Create dataset
    X, y = spiral_data(samples=100, classes=3)

    # Create Dense layer with 2 input features and 64 output values
    dense1 = Layer_Dense(2, 64)
    # Create ReLU activation (to be used with Dense layer)
    activation1 = Activation_ReLU()
    # Create second Dense layer with 64 input features and 3 output values
    dense2 = Layer_Dense(64, 3)
    # Create Softmax classifier's combined loss and activation
    loss_activation = Activation_Softmax_Loss_CategoricalCrossentropy()
    # Create optimizer
    optimizer = OPTIMIZERS[optimizer_name]()

    # Train in loop
    for epoch in range(epochs + 1):
        # Forward pass: dense, ReLU, dense, then softmax and the loss
        dense1.forward(X)
        activation1.forward(dense1.output)
        dense2.forward(activation1.output)
        loss = loss_activation.forward(dense2.output, y)

        # Calculate accuracy from output of activation2 and targets
        predictions = np.argmax(loss_activation.output, axis=1)
        if len(y.shape) == 2:
            y = np.argmax(y, axis=1)
        accuracy = np.mean(predictions == y)

        if not epoch % 100:
            print(
                f"epoch: {epoch}, "
                + f"acc: {accuracy:.3f}, "
                + f"loss: {float(loss):.3f}, "
                + f"lr: {optimizer.current_learning_rate}"
            )

        # Backward pass
        loss_activation.backward(loss_activation.output, y)
        dense2.backward(loss_activation.dinputs)
        activation1.backward(dense2.dinputs)
        dense1.backward(activation1.dinputs)

        # Update weights and biases
        optimizer.pre_update_params()
        optimizer.update_params(dense1)
        optimizer.update_params(dense2)
        optimizer.post_update_params()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("optimizer", choices=[*OPTIMIZERS, "all"])
    parser.add_argument("--epochs", type=int, default=10000, help="the book runs 10000")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    args = parser.parse_args(argv)
    if args.dtype != "float32":
        global Layer_Dense
        Layer_Dense = functools.partial(Layer_Dense, dtype=args.dtype)
    nnfs.init()
    for name in OPTIMIZERS if args.optimizer == "all" else [args.optimizer]:
        print(f"# {name}")
        train(name, args.epochs)


if __name__ == "__main__":
    main()
