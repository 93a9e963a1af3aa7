"""The book's class names over nnx: a reader of *Neural Networks from Scratch in Python* changes
only the imports.

.. code-block:: python

    from nnx.book import Layer_Dense, Activation_ReLU, Optimizer_Adam  # was: the book's classes

Every name is nnx's own class under the book's name, so the signatures are the book's:
``Layer_Dense(n_inputs, n_neurons, weight_regularizer_l1=0, ...)``, ``forward(inputs, training)``,
``Loss.calculate(output, y)``, ``Loss.regularization_loss(layer)``, ``Optimizer_Adam(
learning_rate=0.001, decay=0., epsilon=1e-7, beta_1=0.9, beta_2=0.999)``,
``Accuracy_Categorical(binary=False)`` and ``Model.load(path)``. The classes run on the selected
backend (``NNX_BACKEND``, ``nnx.set_backend`` or ``nnx.use_backend``) and accept NumPy inputs;
outputs live on that backend, so turn them into NumPy with ``backend.to_numpy`` before using
NumPy functions on them. Model files written from these classes are ordinary nnx model files.

``nnfs.init()`` seeds NumPy's global generator, which ``Layer_Dense`` draws from when no
``seed=`` is given, so the book's seeded runs start from the book's numbers.
"""

from __future__ import annotations

from nnx.accuracy import CategoricalAccuracy as Accuracy_Categorical
from nnx.accuracy import RegressionAccuracy as Accuracy_Regression
from nnx.activations import Linear as Activation_Linear
from nnx.activations import ReLU as Activation_ReLU
from nnx.activations import Sigmoid as Activation_Sigmoid
from nnx.activations import Softmax as Activation_Softmax
from nnx.layers import Dense as Layer_Dense
from nnx.layers import Dropout as Layer_Dropout
from nnx.layers import Input as Layer_Input
from nnx.losses import BinaryCrossentropy as Loss_BinaryCrossentropy
from nnx.losses import CategoricalCrossentropy as Loss_CategoricalCrossentropy
from nnx.losses import Loss
from nnx.losses import MeanAbsoluteError as Loss_MeanAbsoluteError
from nnx.losses import MeanSquaredError as Loss_MeanSquaredError
from nnx.losses import (
    SoftmaxCategoricalCrossentropy as Activation_Softmax_Loss_CategoricalCrossentropy,
)
from nnx.model import Model
from nnx.optimizers import SGD as Optimizer_SGD
from nnx.optimizers import Adagrad as Optimizer_Adagrad
from nnx.optimizers import Adam as Optimizer_Adam
from nnx.optimizers import RMSprop as Optimizer_RMSprop

__all__ = [
    "Accuracy_Categorical",
    "Accuracy_Regression",
    "Activation_Linear",
    "Activation_ReLU",
    "Activation_Sigmoid",
    "Activation_Softmax",
    "Activation_Softmax_Loss_CategoricalCrossentropy",
    "Layer_Dense",
    "Layer_Dropout",
    "Layer_Input",
    "Loss",
    "Loss_BinaryCrossentropy",
    "Loss_CategoricalCrossentropy",
    "Loss_MeanAbsoluteError",
    "Loss_MeanSquaredError",
    "Model",
    "Optimizer_Adagrad",
    "Optimizer_Adam",
    "Optimizer_RMSprop",
    "Optimizer_SGD",
]
