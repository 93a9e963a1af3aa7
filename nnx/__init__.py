"""nnx: the networks of *Neural Networks from Scratch in Python* on any Array API backend."""

from backends import (
    Backend,
    BackendError,
    available,
    get_backend,
    register,
    set_backend,
    use_backend,
)
from nnx import datasets, io
from nnx._export import ExportError

# nnx.compile, as flax has nnx.jit; left out of __all__, so that `from nnx import *` keeps
# the builtin compile.
from nnx._run.function import compile as compile  # noqa: A004

# The eager runner, and the base of every runner of the training step (Model.train(runner=)).
from nnx._run.runners import Eager as Runner
from nnx._step import NonFiniteLossError
from nnx._version import __version__
from nnx._xp import Array
from nnx.accuracy import Accuracy, CategoricalAccuracy, RegressionAccuracy
from nnx.activations import Linear, ReLU, Sigmoid, Softmax
from nnx.io import ModelFileError
from nnx.layers import Dense, Dropout, Input, Layer
from nnx.losses import (
    BinaryCrossentropy,
    CategoricalCrossentropy,
    Loss,
    MeanAbsoluteError,
    MeanSquaredError,
    SoftmaxCategoricalCrossentropy,
)
from nnx.model import Model
from nnx.optimizers import SGD, Adagrad, Adam, Optimizer, RMSprop

__all__ = [
    "__version__",
    "Accuracy",
    "Adagrad",
    "Adam",
    "Array",
    "Backend",
    "BackendError",
    "BinaryCrossentropy",
    "CategoricalAccuracy",
    "CategoricalCrossentropy",
    "Dense",
    "Dropout",
    "ExportError",
    "Input",
    "Layer",
    "Linear",
    "Loss",
    "MeanAbsoluteError",
    "MeanSquaredError",
    "Model",
    "ModelFileError",
    "NonFiniteLossError",
    "Optimizer",
    "RMSprop",
    "Runner",
    "ReLU",
    "RegressionAccuracy",
    "SGD",
    "Sigmoid",
    "Softmax",
    "SoftmaxCategoricalCrossentropy",
    "available",
    "datasets",
    "io",
    "get_backend",
    "register",
    "set_backend",
    "use_backend",
]
