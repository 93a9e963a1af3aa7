"""Model: the book's add / set / finalize / train / evaluate / predict, on any backend.

Model only wires the math modules together. Host data enters once, at ``train``,
``evaluate`` or ``predict``; batches, activations, gradients and optimizer state then stay
on the backend, and only the printed figures come back to the host.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from tqdm import tqdm

from backends import Backend, BackendError, load
from nnx import _export, _state, _summary, data, io
from nnx._choose import choose
from nnx._component import common_backend, resolve
from nnx._door import formula
from nnx._step import NonFiniteLossError
from nnx._train import TrainLoop
from nnx._xp import Array, dtype_name
from nnx.accuracy import Accuracy
from nnx.activations import Softmax
from nnx.layers import Input, Layer
from nnx.losses import CategoricalCrossentropy, Loss, SoftmaxCategoricalCrossentropy
from nnx.optimizers import Optimizer

__all__ = ["Model"]


class Model:
    """A stack of layers trained with one loss and one optimizer (the book's chapter 18 on).

    Parameters
    ----------
    seed : int, optional
        Seed of the host generator that shuffles batches; the same on every backend.
    """

    # The compiled step of the last compiled train call (its ``traces``), set by its runner.
    compiled_step: Any

    def __init__(self, *, seed: int | None = None) -> None:
        self.layers: list[Layer] = []
        # Any: set() fills these in; finalize() checks that loss (and train() that optimizer) exist.
        self.loss: Any = None
        self.optimizer: Any = None
        self.accuracy: Any = None
        self.seed = seed
        self._fused: Any = None
        self._finalized = False

    def add(self, layer: Layer) -> None:
        if not isinstance(layer, Layer):
            raise TypeError(f"Model.add: expected a Layer, got layer={type(layer).__name__}.")
        self.layers.append(layer)
        self._finalized = False

    def set(
        self,
        *,
        loss: Loss | None = None,
        optimizer: Optimizer | None = None,
        accuracy: Accuracy | None = None,
    ) -> None:
        """Choose the loss, optimizer and accuracy (keywords, as in the book)."""
        for name, value, kind in (("loss", loss, Loss), ("optimizer", optimizer, Optimizer),
                                  ("accuracy", accuracy, Accuracy)):  # fmt: skip
            if value is not None and not isinstance(value, kind):
                raise TypeError(
                    f"Model.set: expected {name} as an instance of nnx's {kind.__name__}, got "
                    f"{name}={value!r}. Build it first, e.g. {name}={kind.__name__}(...)."
                )
        self.loss = loss if loss is not None else self.loss
        if optimizer is not None and optimizer is not self.optimizer:
            # State on the layers belongs to the optimizer that made it (Adam's momentums
            # are not SGD's): a new optimizer starts from zeros, as a fresh one would.
            for layer in self.layers:
                for old in (self.optimizer, optimizer):
                    for name in old.state_names(layer) if old is not None else ():
                        if hasattr(layer, name):
                            delattr(layer, name)
        self.optimizer = optimizer if optimizer is not None else self.optimizer
        self.accuracy = accuracy if accuracy is not None else self.accuracy
        self._finalized = False

    def finalize(self) -> None:
        """Check the pieces fit together and prepare the fast paths."""
        if not self.layers:
            raise ValueError("Model.finalize: the model has no layers; call model.add(...).")
        if self.loss is None:
            raise ValueError("Model.finalize: no loss; call model.set(loss=..., optimizer=...).")
        if isinstance(self.loss, SoftmaxCategoricalCrossentropy):
            raise TypeError(
                "Model.finalize: SoftmaxCategoricalCrossentropy is the book's chapter-10 helper; "
                "in a model, end with Softmax() and set loss=CategoricalCrossentropy(): the "
                "model takes the same fused backward pass by itself."
            )
        takes_outputs = getattr(self.accuracy, "takes", "") == "outputs"
        if (
            self.accuracy is not None
            and not takes_outputs
            and not hasattr(self.layers[-1], "predictions")
        ):
            raise TypeError(
                f"Model.finalize: the last layer, {type(self.layers[-1]).__name__}, makes no "
                "predictions for the accuracy; end the model with an activation (Softmax, "
                "Sigmoid, Linear, ReLU)."
            )
        _summary.check_widths(self.layers, "Model.finalize")
        self.backend: Backend = common_backend(
            [*self.layers, self.loss, self.optimizer, self.accuracy]
        )
        self.input_layer = Input(self.backend)
        self.trainable_layers = [layer for layer in self.layers if layer.trainable]
        self.loss.remember_trainable_layers(self.trainable_layers)
        self.output_layer_activation: Any = self.layers[-1]
        # Softmax followed by crossentropy has the short gradient (softmax - y) / n.
        fused = isinstance(self.layers[-1], Softmax) and type(self.loss) is CategoricalCrossentropy
        self._fused = SoftmaxCategoricalCrossentropy(self.backend) if fused else None
        # Inside the model every array came through train/evaluate/predict's door already: the
        # parts' own doors would check each again (0.3-0.8 us a call), so the passes call the
        # formulas behind them.
        self._forwards = [formula(layer, "forward") for layer in self.layers]
        self._backwards = [formula(layer, "backward") for layer in self.layers]
        self._loss_backward = formula(self.loss, "backward")
        self._fused_backward = formula(self._fused, "backward") if fused else None
        self._calculate = formula(self.loss, "calculate")
        self._predictions: Any = None
        self._accuracy: Any = None
        if self.accuracy is not None:
            self._predictions = (
                _as_they_are if takes_outputs else formula(self.layers[-1], "predictions")
            )
            self._accuracy = formula(self.accuracy, "calculate")
        # Nothing consumes the gradient of the inputs of the first trainable layer.
        self._backward_stop = next(
            (i for i, layer in enumerate(self.layers) if layer.trainable), len(self.layers)
        )
        for i, layer in enumerate(self.layers):
            layer.needs_dinputs = i > self._backward_stop
        inputs = [layer.n_inputs for layer in self.layers if layer.n_inputs is not None]
        outputs = [layer.n_outputs for layer in self.layers if layer.n_outputs is not None]
        dtypes = [layer.dtype for layer in self.layers if layer.dtype is not None]
        # What the model takes and gives, from its layers: the width of a row of X (None
        # when no layer fixes it), of an output, and the float dtype of its arrays.
        self.n_inputs: int | None = inputs[0] if inputs else None
        self.n_outputs = outputs[-1] if outputs else 0
        self.dtype = dtypes[0] if dtypes else self.backend.dtype("float32")
        self._targets = self.loss.targets
        self._finalized = True

    def parts(self) -> list[Any]:
        """Every part the model runs: its layers, loss, optimizer and accuracy (those set),
        and the fused loss its backward pass takes where the model ends in Softmax."""
        parts = [*self.layers, self.loss, self.optimizer, self.accuracy, self._fused]
        return [part for part in parts if part is not None]

    def _require(self, training: bool) -> None:
        if not self._finalized:
            raise ValueError("Model: call model.finalize() after add() and set().")
        if training and not self.backend.trains:
            raise BackendError(
                f"Model.train: the {self.backend.name} backend is inference-only: it describes "
                "the model's forward pass as a graph, for export. Train on numpy (or cupy, "
                "torch, jax), then write the trained model with model.export(path)."
            )
        if training and self.optimizer is None:
            raise ValueError("Model.train: no optimizer; call model.set(optimizer=...).")

    def _to_backend(self, X: Any, y: Any, name: str = "X") -> tuple[Array, Any]:
        """Check host data once, then move it to the model's backend once."""
        single = dtype_name(self.backend.xp, self.dtype) == "float32"
        X = data.check_features(X, self.n_inputs, name, single)
        # Plain data: a torch X that requires grad would grow an autograd graph every step.
        X = self.backend.detach(self.input_layer.adopt(X, name, self.dtype))
        if y is None:
            return X, None
        y_name = "y" if name == "X" else f"y{name[1:]}"  # y_val for X_val
        y = data.check_targets(y, X.shape[0], self._targets, self.n_outputs, y_name, single)
        if self._targets == "classes" and y.ndim == 1:  # whole-number labels, any dtype
            y = self.input_layer.adopt(y, y_name, self.backend.xp.int64)
        else:
            y = self.input_layer.adopt(y, y_name, self.dtype)
        return X, self.backend.detach(y)

    # -- the passes ---------------------------------------------------------------------------
    def forward(self, X: Array, training: bool) -> Array:
        """The outputs of every layer in turn, for arrays of the model's backend."""
        output = X
        for forward in self._forwards:
            output = forward(output, training)
        return output

    def backward(self, output: Array, y: Array) -> None:
        """Gradients of every layer back to the first trainable one."""
        backwards = self._backwards
        if self._fused is not None:
            dvalues = self._fused_backward(output, y)  # type: ignore[misc]
            self.layers[-1].dinputs = dvalues
            backwards = backwards[:-1]
        else:
            dvalues = self._loss_backward(output, y)
        for backward in reversed(backwards[self._backward_stop :]):
            # None only from the first trainable layer, the last one here (needs_dinputs).
            dvalues = backward(dvalues)

    def score(self, output: Array, y: Array) -> tuple[Any, Any]:
        """The data loss and the accuracy of ``output`` for ``y`` (the batch's, as 0-d arrays;
        NaN without an accuracy), each added to its epoch's running sums: what the training
        step, ``evaluate`` and every runner count, in one place."""
        data_loss = self._calculate(output, y)
        if self._accuracy is None:
            return data_loss, math.nan
        return data_loss, self._accuracy(self._predictions(output), y)

    def train_step(
        self, batch_X: Array, batch_y: Array, guard: Any = True, counted: bool = True
    ) -> tuple[Any, Any, Any]:
        """One training step on a batch of the model's backend: forward, loss, the NaN guard,
        accuracy, backward and the optimizer's update (the book's chapter-10 epoch, once).
        Every runner runs this method; returns (data loss, regularization loss, accuracy).

        ``guard``: True checks the loss on the host before the update and raises
        :class:`NonFiniteLossError`; a callable gets the loss instead (a compiled runner keeps
        or drops the update without a host read); False checks nothing. ``counted=False``
        leaves ``pre_update_params``/``post_update_params`` (the step's factors, the counter)
        to the caller, as a runner that works them out on the host does."""
        output = self.forward(batch_X, training=True)
        data_loss, accuracy = self.score(output, batch_y)
        reg_loss = self.loss.regularization_loss()
        # Checked before the update, so a diverging step never reaches the parameters.
        if callable(guard):
            guard(data_loss + reg_loss)
        elif guard and not math.isfinite(float(data_loss + reg_loss)):
            raise NonFiniteLossError(float(data_loss + reg_loss))
        self.backward(output, batch_y)
        if counted:
            self.optimizer.pre_update_params()
        self.optimizer.update_layers(self.trainable_layers)  # one fused call where offered
        if counted:
            self.optimizer.post_update_params()
        return data_loss, reg_loss, accuracy

    def train(
        self,
        X: Any,
        y: Any,
        *,
        epochs: int = 1,
        batch_size: int | None = None,
        print_every: int | None = None,
        validation_data: tuple[Any, Any] | None = None,
        shuffle: bool = False,
        verbose: int = 1,
        on_nan: str = "raise",
        checkpoint: Any = None,
        checkpoint_every: int = 1,
        resume: Any = None,
        compile: bool | None = None,
        runner: type | None = None,
    ) -> dict[str, list[float]]:
        """Train for ``epochs`` passes over ``(X, y)``; returns the history per epoch.

        Lines in the book's format are printed every ``print_every`` epochs (or steps, when an
        epoch has several batches); left out, about ten epochs of the run print their lines. On
        a terminal a progress bar shows the steps, the loss and the accuracy, and stays when
        done. ``verbose=0`` is silent.
        ``shuffle=True`` reorders the samples every epoch, with the model's seed. A loss that
        turns NaN or infinite stops training before it spoils the parameters: ``on_nan="raise"``
        raises :class:`NonFiniteLossError`, ``"warn"`` warns and returns the history so far,
        ``"ignore"`` skips the check (it costs one device-to-host read per step).

        ``checkpoint=PATH`` saves model, optimizer state and progress atomically every
        ``checkpoint_every`` epochs; ``resume=PATH`` loads such a file into this model and runs
        the remaining epochs, giving the parameters an uninterrupted run would have.

        ``compile``: on a backend that compiles (JAX), the training step (forward, loss,
        backward, update) is traced once and compiled, and every step runs that code; ``None``
        (the default) compiles where the backend can, ``False`` runs the step eagerly, as on
        NumPy. Both give the same numbers within float rounding. A compiled step reads nothing
        from the device: the NaN check looks at the loss when the loop prints, validates,
        saves or ends, else one epoch late (a diverged step and all after it leave the model
        as it was, so the result is the same). The arrays of one step (``inputs``,
        ``dweights``, ...) stay inside the compiled code: after a compiled ``train`` the layers
        do not hold them; ``model.compiled_step.traces`` counts the traces.

        ``runner``: a subclass of :class:`nnx.Runner` that runs the steps instead of the one
        nnx picks (eager, compiled, or coarse tasks on a Dask cluster): its ``step(X, y)`` is
        called for every batch, and the eager runner's ``step`` calls :meth:`train_step`.
        """
        self._require(training=True)
        loop = TrainLoop(
            self,
            epochs=epochs,
            batch_size=batch_size,
            print_every=print_every,
            shuffle=shuffle,
            verbose=verbose,
            on_nan=on_nan,
            checkpoint=checkpoint,
            checkpoint_every=checkpoint_every,
            compile=compile,
            runner=runner,
        )
        X, y = self._to_backend(X, y)
        validation = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError(
                    "Model.train: expected validation_data=(X_val, y_val), a pair, got "
                    f"validation_data of type {type(validation_data).__name__}."
                )
            if validation_data[1] is None:
                raise ValueError(
                    "Model.train: expected validation_data=(X_val, y_val) with both arrays, "
                    "got y_val=None; pass the validation targets, or leave validation_data out."
                )
            validation = self._to_backend(*validation_data, name="X_val")
        if self.accuracy is not None:
            self.accuracy.init(y)
        return loop.run(X, y, validation, resume)

    def evaluate(
        self, X_val: Any, y_val: Any, *, batch_size: int | None = None, verbose: int = 1
    ) -> tuple[float, float]:
        """Loss and accuracy over ``(X_val, y_val)`` with dropout off; prints the book's line."""
        self._require(training=False)
        data.check_batch_size(batch_size)
        X, y = self._to_backend(X_val, y_val, name="X_val")
        loss, accuracy = choose(self, X, compile=False).evaluate(X, y, batch_size)
        if verbose:
            tqdm.write(f"validation, acc: {accuracy:.3f}, loss: {loss:.3f}")
        return loss, accuracy

    def predict(self, X: Any, *, batch_size: int | None = None) -> Array:
        """The model's outputs (e.g. class probabilities) for ``X``, on the model's backend."""
        self._require(training=False)
        data.check_batch_size(batch_size)
        X, _ = self._to_backend(X, None)
        return choose(self, X, compile=False).predict(X, batch_size)

    def summary(self) -> str:
        """Print and return a table of the layers (output shape, parameter count, trainable),
        the totals, the backend, device and dtype, and the loss, optimizer and accuracy."""
        text = _summary.summary(self)
        print(text)
        return text

    # -- parameters and state ------------------------------------------------------------------
    def get_parameters(self) -> list[tuple[Array, ...]]:
        """Copies of the parameters of every trainable layer (``(weights, biases)`` of each
        Dense), in order.

        Copies, so that a snapshot (say, of the best epoch) does not follow the in-place
        updates of further training.
        """
        return [
            tuple(layer.xp.asarray(array, copy=True) for array in layer.get_parameters())
            for layer in self.layers
            if layer.trainable
        ]

    def set_parameters(self, parameters: list[tuple[Any, ...]]) -> None:
        """Replace every trainable layer's parameters (host or backend arrays)."""
        layers = [layer for layer in self.layers if layer.trainable]
        if len(parameters) != len(layers):
            raise ValueError(
                f"Model.set_parameters: the model has {len(layers)} trainable layers, "
                f"got parameters for {len(parameters)}."
            )
        for layer, values in zip(layers, parameters, strict=True):
            layer.set_parameters(*values)

    def get_state(self, *, optimizer: bool = True) -> dict[str, Array]:
        """The whole training state as one flat, ordered mapping of the model's own arrays:
        ``layers.0.weights``, ``layers.0.weight_momentums``, ..., ``optimizer.iterations``.

        ``optimizer=False`` gives the parameters only. Model files, checkpoints and
        :meth:`to` are built on this and :meth:`set_state`.
        """
        return _state.get_state(self.layers, self.optimizer if optimizer else None)

    def set_state(self, state: dict[str, Any]) -> None:
        """Put a mapping from :meth:`get_state` back (host or backend arrays, copied in).

        Every parameter is required; optimizer state and the counter are taken where present.
        An unknown key, a missing parameter or a wrong shape raises ValueError, and then
        nothing has changed.
        """
        try:
            _state.set_state(self.layers, self.optimizer, state)
        except ValueError as err:
            raise ValueError(f"Model.set_state: {err}") from None

    def to(self, backend: Backend | str, device: Any = None) -> Model:
        """Move parameters and optimizer state to another backend (in place); returns self."""
        if device is None:
            target = resolve(backend)
        else:
            target = load(backend.name if isinstance(backend, Backend) else backend, device)
        parts = [part for part in [*self.layers, self.loss, self.optimizer, self.accuracy] if part]
        host = _state.host_state(self.layers, self.optimizer)
        source = [(part, part.backend) for part in parts]
        try:
            for part in parts:
                part.to(target)
            self.set_state(host)  # the optimizer's state, which the layers do not declare
        except BaseException:  # put everything back where it was, then say why
            for part, backend_before in source:
                part.to(backend_before)
            self.set_state(host)
            raise
        if self._finalized:
            self.finalize()
        return self

    # -- model files (nnx.io) ----------------------------------------------------------------
    def save(self, path: Any) -> None:
        """Architecture, parameters and optimizer state, as one safetensors file."""
        io.save_model(self, path)

    @classmethod
    def load(
        cls, path: Any, *, backend: Backend | str | None = None, classes: Sequence[type] = ()
    ) -> Model:
        """A model saved with :meth:`save`, rebuilt on ``backend`` (default: the selected one).

        ``classes``: your own layers (losses, ...) that the file names, e.g. ``[Scale]``.
        """
        return io.load_model(path, backend=backend, model_cls=cls, classes=classes)

    def save_parameters(self, path: Any) -> None:
        io.save_parameters(self, path)

    def load_parameters(self, path: Any) -> None:
        io.load_parameters(self, path)

    # -- export ------------------------------------------------------------------------------
    def export(self, path: Any, *, labels: bool = False) -> dict[str, Any]:
        """Write the model's inference pass (dropout off) as an ONNX file, for ONNX Runtime.

        The graph is the model's own ``forward``, run on the ``onnx`` backend (``ndonnx``) on a
        symbolic input ``"X"`` of shape ``(N, n_inputs)`` in the model's dtype, with ``N``, the
        batch, left free; its output is ``"output"`` (what :meth:`predict` returns).
        ``labels=True`` adds ``"labels"``, the last layer's ``predictions`` (Softmax: the class
        index, int64; Sigmoid: 0/1 per output), for classifiers. The file holds the inference
        graph only, not the optimizer; its metadata key ``"nnx"`` holds JSON with the input,
        outputs, opset, nnx's version and the layers. Written atomically, after the whole graph
        was built: a model that cannot be exported leaves no file. Returns that metadata.
        Needs the onnx extra (``pip install -e ".[onnx]"`` in a clone).
        """
        return _export.export(self, path, labels=labels)


def _as_they_are(output: Array) -> Array:
    """What an accuracy that takes the outputs (``Accuracy.takes = "outputs"``) compares."""
    return output
