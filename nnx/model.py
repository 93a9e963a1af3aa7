"""Model: the book's add / set / finalize / train / evaluate / predict, on any backend.

Model only wires the math modules together. Host data enters once, at ``train``,
``evaluate`` or ``predict``; batches, activations, gradients and optimizer state then stay
on the backend, and only the printed figures come back to the host.
"""

from __future__ import annotations

from typing import Any

from tqdm import tqdm

from backends import Backend, BackendError
from nnx import _summary, data
from nnx._component import common_backend
from nnx._model_state import ModelState
from nnx._run.choose import choose
from nnx._step import Passes
from nnx._train import TrainLoop
from nnx._xp import Array
from nnx.accuracy import Accuracy
from nnx.layers import Input, Layer
from nnx.losses import Loss
from nnx.optimizers import Optimizer

__all__ = ["Model"]


class Model(Passes, ModelState):
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
        _summary.check_model(self, "Model.finalize")
        self.backend: Backend = common_backend(
            [*self.layers, self.loss, self.optimizer, self.accuracy]
        )
        self.input_layer = Input(self.backend)
        self.trainable_layers = [layer for layer in self.layers if layer.trainable]
        self.loss.remember_trainable_layers(self.trainable_layers)
        self.output_layer_activation: Any = self.layers[-1]
        self._prepare_passes()
        inputs = [layer.n_inputs for layer in self.layers if layer.n_inputs is not None]
        outputs = [layer.n_outputs for layer in self.layers if layer.n_outputs is not None]
        dtypes = [layer.dtype for layer in self.layers if layer.dtype is not None]
        # What the model takes and gives, from its layers: the width of a row of X (None
        # when no layer fixes it), of an output, and the float dtype of its arrays.
        self.n_inputs: int | None = inputs[0] if inputs else None
        self.n_outputs = outputs[-1] if outputs else 0
        self.dtype = dtypes[0] if dtypes else self.backend.dtype("float32")
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
        steps_per_execution: int | None = None,
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

        ``compile``: on a backend that compiles (JAX, torch), the training step (forward,
        loss, backward, update) is traced once and compiled, and every step runs that code;
        ``None`` (the default) compiles where the backend's compiler pays from the start (JAX;
        torch.compile takes seconds per batch shape, so torch compiles with ``True`` only),
        ``False`` runs the step eagerly, as on NumPy. Both give the same numbers within float
        rounding. A compiled step reads nothing
        from the device: the NaN check looks at the loss when the loop prints, validates,
        saves or ends, else one epoch late (a diverged step and all after it leave the model
        as it was, so the result is the same). The arrays of one step (``inputs``,
        ``dweights``, ...) stay inside the compiled code: after a compiled ``train`` the layers
        do not hold them; ``model.compiled_step.traces`` counts the traces.
        ``steps_per_execution=K`` (Keras's name) runs K compiled steps per call of the
        compiled code, across batches and epochs, so the host's work per step goes (at most
        128 a call; the history, printing, validation and checkpoints are as with one);
        ``None`` picks K: up to the next line, validation or checkpoint, and about half a
        second of work, so Ctrl-C stays prompt (one step a call in a call of under 20 steps).
        Eager steps ignore it.

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
            choose=lambda X, guard: choose(
                self,
                X,
                compile=compile,
                guard=guard,
                runner=runner,
                steps_per_execution=steps_per_execution,
            ),
        )
        X, y = data.to_backend(self, X, y)
        validation = None
        if validation_data is not None:
            validation = data.to_backend(self, *data.check_validation(validation_data), "X_val")
        if self.accuracy is not None:
            self.accuracy.init(y)
        return loop.run(X, y, validation, resume)

    def evaluate(
        self, X_val: Any, y_val: Any, *, batch_size: int | None = None, verbose: int = 1
    ) -> tuple[float, float]:
        """Loss and accuracy over ``(X_val, y_val)`` with dropout off; prints the book's line."""
        self._require(training=False)
        data.check_batch_size(batch_size)
        X, y = data.to_backend(self, X_val, y_val, "X_val")
        loss, accuracy = choose(self, X).evaluate(X, y, batch_size)
        if verbose:
            tqdm.write(f"validation, acc: {accuracy:.3f}, loss: {loss:.3f}")
        return loss, accuracy

    def predict(self, X: Any, *, batch_size: int | None = None) -> Array:
        """The model's outputs (e.g. class probabilities) for ``X``, on the model's backend."""
        self._require(training=False)
        data.check_batch_size(batch_size)
        X, _ = data.to_backend(self, X, None)
        return choose(self, X).predict(X, batch_size)

    def summary(self) -> str:
        """Print and return a table of the layers (output shape, parameter count, trainable),
        the totals, the backend, device and dtype, and the loss, optimizer and accuracy."""
        text = _summary.summary(self)
        print(text)
        return text
