"""The book's class names over nnx, and NumPy for the book's bookkeeping: a reader of *Neural
Networks from Scratch in Python* changes only the imports. A host-boundary module (it imports
NumPy, for the bookkeeping lines).

.. code-block:: python

    from nnx.book import numpy as np  # was: import numpy as np
    from nnx.book import Layer_Dense, Activation_ReLU, Optimizer_Adam  # was: the book's classes

Every class is nnx's own class under the book's name, so the signatures are the book's:
``Layer_Dense(n_inputs, n_neurons, weight_regularizer_l1=0, ...)``, ``forward(inputs, training)``,
``Loss.calculate(output, y)``, ``Loss.regularization_loss(layer)``, ``Optimizer_Adam(
learning_rate=0.001, decay=0., epsilon=1e-7, beta_1=0.9, beta_2=0.999)``,
``Accuracy_Categorical(binary=False)`` and ``Model.load(path)``. The classes run on the selected
backend (``NNX_BACKEND``, ``nnx.set_backend`` or ``nnx.use_backend``); every method takes NumPy
arrays and lists (and arrays set by hand, as chapter 9 sets ``activation.output``), and its
outputs live on that backend.

``numpy`` is NumPy itself, except that its functions first bring arrays of any backend to the
host: ``np.argmax(loss_activation.output, axis=1)`` and ``np.mean(predictions == y)`` give
NumPy results on torch, CuPy or array-api-strict as they do on NumPy. Use it for the book's
bookkeeping (accuracy, printing); the training itself stays on the backend. Operators do not
pass through it: ``activation2.output > 0.5`` is the backend's own comparison, so write
``np.asarray(activation2.output) > 0.5`` where the book mixes a layer's output with NumPy
arrays by operators. Functions that write into their arguments (``np.copyto``,
``np.random.shuffle``) write into the host copy off NumPy; ``out=`` with a backend array is
refused. Its functions are wrappers, not NumPy's objects (``np.maximum`` is no ``np.ufunc``).

``nnfs.init()`` seeds NumPy's global generator, which ``Layer_Dense`` draws from when no
``seed=`` is given, so the book's seeded runs start from the book's numbers.
"""

from __future__ import annotations

import types
from typing import Any

import array_api_compat
import numpy as _numpy

from backends import to_numpy
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
    "numpy",
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


def _on_host(value: Any) -> Any:
    """``value`` with every array of a non-NumPy backend in it (in lists and tuples too)
    brought to the host."""
    if type(value) in (list, tuple):
        return type(value)(_on_host(item) for item in value)
    if array_api_compat.is_array_api_obj(value) and not array_api_compat.is_numpy_array(value):
        return to_numpy(value)
    return value


class _HostFunction:
    """A NumPy function (or ufunc) that brings its array arguments to the host first."""

    def __init__(self, function: Any) -> None:
        self._function = function
        self.__name__ = getattr(function, "__name__", repr(function))
        self.__doc__ = getattr(function, "__doc__", None)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        out = kwargs.get("out")
        outs: Any = out if type(out) in (list, tuple) else [out]
        if any(_on_host(array) is not array for array in outs):
            # The result would be written into a host copy and lost.
            raise TypeError(
                f"nnx.book.numpy.{self.__name__}: out= is an array of another backend; "
                "NumPy can write only into NumPy arrays. Drop out= and assign the result."
            )
        args = _on_host(args)
        kwargs = {name: _on_host(value) for name, value in kwargs.items()}
        return self._function(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:  # a ufunc's methods: np.maximum.reduce(...)
        if name.startswith("__") or name == "_function":  # copy and pickle look these up
            raise AttributeError(name)
        return _host_view(getattr(self._function, name))

    def __reduce__(self) -> Any:
        return (_HostFunction, (self._function,))

    def __repr__(self) -> str:
        return f"<{self.__name__} of nnx.book.numpy>"


class _HostNumPy(types.ModuleType):
    """A module (NumPy or one of its submodules) whose functions take arrays of any backend."""

    def __init__(self, module: types.ModuleType) -> None:
        super().__init__(module.__name__, module.__doc__)
        self._module = module
        self._views: dict[str, tuple[Any, Any]] = {}

    def __getattr__(self, name: str) -> Any:
        if name in ("_module", "_views"):  # copy and pickle look these up before __init__
            raise AttributeError(name)
        value = getattr(self._module, name)
        # Looked up each time, not copied once: nnfs.init() replaces np.dot after import.
        cached = self._views.get(name)
        if cached is None or cached[0] is not value:
            cached = self._views[name] = (value, _host_view(value))
        return cached[1]

    def __dir__(self) -> list[str]:
        return dir(self._module)

    def __repr__(self) -> str:
        return f"<NumPy for the book's bookkeeping (nnx.book.numpy), over {self._module!r}>"


def _host_view(value: Any) -> Any:
    """Functions and submodules that bring arrays to the host; types and constants as they are."""
    if isinstance(value, types.ModuleType):
        return _HostNumPy(value)
    if callable(value) and not isinstance(value, type):
        return _HostFunction(value)
    return value


numpy = _HostNumPy(_numpy)
