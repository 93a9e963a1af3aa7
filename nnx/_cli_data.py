"""The bundled data sets of ``nnx train``/``nnx predict``: their training and held-out rows, and
the settings that train each one well (host boundary: NumPy arrays).

The rows are fixed, whatever ``--seed`` says (it seeds the weights and the shuffling), so
``nnx predict`` scores exactly the rows a model was or was not trained on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["DATASETS", "OPTIMIZERS", "SPLITS", "Recipe", "RECIPES", "load", "optimizer_defaults"]

DATASETS = ("spiral", "vertical", "sine", "digits")
OPTIMIZERS = ("sgd", "adagrad", "rmsprop", "adam")
SPLITS = ("train", "test")

# (learning rate, decay per step, momentum) per optimizer: the book's chapter 10 settings,
# except SGD's rate (1.0 there), which sends networks deeper than the book's into a plateau.
_OPTIMIZER_DEFAULTS = {
    "sgd": (0.1, 1e-3, 0.9),
    "adagrad": (1.0, 1e-4, 0.0),
    "rmsprop": (0.02, 1e-5, 0.0),
    "adam": (0.05, 5e-7, 0.0),
}


@dataclass(frozen=True)
class Recipe:
    """What trains a data set well by default, and what its held-out rows are."""

    epochs: int
    layers: int
    held_out: str  # for --help: which rows are kept out of training
    regression: bool = False
    # (learning rate, decay, momentum) where the data set needs others than _OPTIMIZER_DEFAULTS
    optimizers: dict[str, tuple[float, float, float]] = field(default_factory=dict)


# Measured over seeds 0-4 (the figures are in the project's report of this change).
RECIPES = {
    "spiral": Recipe(1000, 1, "300 new points (another seed)"),
    "vertical": Recipe(1000, 1, "300 new points (another seed)"),
    # The book's chapter 17: two hidden layers of 64, Adam at 0.005; a stronger decay than
    # the book's 1e-3 stops Adam's late jumps, which its strict accuracy counts.
    "sine": Recipe(
        2000,
        2,
        "200 other points of the curve",
        regression=True,
        optimizers={"adam": (0.005, 1e-2, 0.0)},
    ),
    "digits": Recipe(300, 1, "a fixed 20% of the images (359)", optimizers={"adam": (0.01, 0, 0)}),
}


def optimizer_defaults(dataset: str, optimizer: str) -> tuple[float, float, float]:
    """(learning rate, decay, momentum) that ``optimizer`` trains ``dataset`` with by default."""
    return RECIPES[dataset].optimizers.get(optimizer, _OPTIMIZER_DEFAULTS[optimizer])


def load(name: str, split: str) -> tuple[Any, Any]:
    """The training (``split="train"``) or held-out (``"test"``) rows of a bundled data set."""
    from nnx import datasets

    test = split == "test"
    if name in ("spiral", "vertical"):
        make = datasets.spiral_data if name == "spiral" else datasets.vertical_data
        return make(100, 3, seed=1 if test else 0)  # as the book draws its test set anew
    if name == "sine":
        if not test:
            return datasets.sine_data(1000)
        # Random points of the same curve: almost surely none on the training grid (k / 1000).
        X = np.sort(np.random.default_rng(1).uniform(0, 1, 200)).reshape(-1, 1).astype(np.float32)
        return X, np.sin(2 * np.pi * X).astype(np.float32)
    X, y = (np.asarray(part) for part in datasets.load_digits())
    order = np.random.default_rng(0).permutation(len(X))
    n_test = len(X) // 5
    rows = order[:n_test] if test else order[n_test:]
    return X[rows], y[rows]
