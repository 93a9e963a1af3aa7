"""The training step, once: the model's passes and ``train_step`` (forward, loss, accuracy,
the NaN guard, backward, update), which every runner runs; the batches they run it on, and the
error a step whose loss is not finite raises."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

from nnx._door import formula
from nnx.activations import Softmax
from nnx.losses import CategoricalCrossentropy, SoftmaxCategoricalCrossentropy

__all__ = [
    "CallFigures",
    "EpochFigures",
    "Figures",
    "NonFiniteLossError",
    "Passes",
    "StepFigures",
    "batches",
    "loss_diverged",
    "state_diverged",
]


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite (training stopped before that step's update), or the
    training state did while the loss stayed finite (found where the loop reads figures)."""


def loss_diverged(loss: Any, epoch: int, step: int, optimizer: Any) -> str:
    """What training says when a step's loss is not finite (``on_nan``)."""
    return (
        f"Model.train: the loss became {loss} in epoch {epoch}, step {step}; training stopped "
        "before that step's update, so the model holds the parameters that gave this loss. "
        f"Lower the learning rate (now {optimizer.current_learning_rate}) or scale the inputs, "
        "and train again or resume from a checkpoint; on_nan='warn' turns this error into a "
        "warning."
    )


def state_diverged(epoch: int, key: str) -> str:
    """What training says when an array of the state (a parameter, an optimizer's cache),
    ``key``, holds NaN or infinity while the loss stayed finite (inputs of 1e30 overflow
    Adam's cache): found where the loop reads the device anyway, not every step."""
    return (
        f"Model.train: after epoch {epoch}, {key} holds NaN or infinity although the loss "
        "stayed finite: the inputs or the gradients are too large for the model's dtype. "
        "Training stopped; the model's state is not finite now: scale the inputs or lower "
        "the learning rate, and train again or resume from a checkpoint."
    )


class Passes:
    """The passes of :class:`nnx.Model` and its one training step (``Model`` gets them from
    here): the book's forward and backward over the layers, the loss and accuracy of a batch,
    and the chapter-10 step that runs them with the optimizer's update."""

    # Model's, which the passes read.
    layers: list[Any]
    loss: Any
    optimizer: Any
    accuracy: Any
    backend: Any
    trainable_layers: list[Any]

    def _prepare_passes(self) -> None:
        """What the passes call, worked out once (``finalize``)."""
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
                _as_they_are
                if self.accuracy.takes == "outputs"
                else formula(self.layers[-1], "predictions")
            )
            self._accuracy = formula(self.accuracy, "calculate")
        # Nothing consumes the gradient of the inputs of the first trainable layer.
        self._backward_stop = next(
            (i for i, layer in enumerate(self.layers) if layer.trainable), len(self.layers)
        )
        for i, layer in enumerate(self.layers):
            layer.needs_dinputs = i > self._backward_stop

    def forward(self, X: Any, training: bool) -> Any:
        """The outputs of every layer in turn, for arrays of the model's backend."""
        output = X
        for forward in self._forwards:
            output = forward(output, training)
        return output

    def backward(self, output: Any, y: Any) -> None:
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

    def score(self, output: Any, y: Any) -> tuple[Any, Any]:
        """The data loss and the accuracy of ``output`` for ``y`` (the batch's, as 0-d arrays;
        NaN without an accuracy), each added to its epoch's running sums: what the training
        step, ``evaluate`` and every runner count, in one place."""
        data_loss = self._calculate(output, y)
        if self._accuracy is None:
            return data_loss, math.nan
        return data_loss, self._accuracy(self._predictions(output), y)

    def train_step(
        self, batch_X: Any, batch_y: Any, guard: Any = True, counted: bool = True
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


def _as_they_are(output: Any) -> Any:
    """What an accuracy that takes the outputs (``Accuracy.takes = "outputs"``) compares."""
    return output


class Figures:
    """The figures of an epoch that a compiled step returns together in one array (the running
    sums, then the penalty), brought to the host once, when one of them is first read, and
    divided there by the counts the host keeps. ``read()`` gives (those numbers, the counts):
    ``source()``, or a subclass's own."""

    __slots__ = ("host", "source")

    def __init__(self, source: Callable[[], tuple[list[float], list[int]]] | None) -> None:
        self.source = source
        self.host: list[float] | None = None

    def read(self) -> tuple[list[float], list[int]]:
        assert self.source is not None  # a subclass without one reads for itself
        return self.source()

    def __getitem__(self, index: int) -> float:
        """(loss, data loss, regularization loss, accuracy)[index]."""
        if self.host is None:
            self.fill(*self.read())
        return self.host[index]  # type: ignore[index]

    def fill(self, numbers: list[float], counts: list[int]) -> None:
        """The figures from ``numbers`` (the loss's running sum, the accuracy's if there is
        one, then the penalty) and the ``counts`` (run once an epoch: written out, no loop)."""
        loss, reg = numbers[0] / (counts[0] or 1), numbers[-1]
        accuracy = numbers[1] / (counts[1] or 1) if len(counts) > 1 else math.nan
        self.host = [loss + reg, loss, reg, accuracy]


def batches(
    xp: Any, X: Any, y: Any, batch_size: int | None, order: Any = None
) -> Iterator[tuple[Any, Any]]:
    """Slices of the data on the device, in ``order`` when shuffling."""
    if order is not None:
        X = xp.take(X, order, axis=0)
        y = None if y is None else xp.take(y, order, axis=0)
    n = X.shape[0]
    if batch_size is None or batch_size >= n:
        yield X, y
        return
    size = batch_size
    for start in range(0, n, size):
        stop = min(start + size, n)
        yield X[start:stop, ...], (None if y is None else y[start:stop, ...])


class CallFigures:
    """The per-step rows of one call of many steps (``nnx._run.many``: data loss, regularization
    loss, accuracy, running sums, penalty), read from the device once, when a figure of one of
    its steps is first read or the next call has started; ``epochs``: the epoch figures to
    fill in then. ``runner``: the runner that makes the call (``flush``, ``counts_after``,
    ``width``)."""

    __slots__ = ("epochs", "host", "rows", "runner")

    def __init__(self, runner: Any) -> None:
        self.runner, self.rows = runner, None
        self.host: Any = None  # the rows on the host, one array
        self.epochs: list[EpochFigures] = []

    def fetch(self) -> None:
        if self.host is not None or self.rows is None:
            return
        self.host = self.runner.model.backend.to_numpy(self.rows)
        # As lists only while the epochs are filled: a list per step kept until training ends
        # would be thousands of objects to free when the call returns.
        rows, counts = self.host.tolist(), self.runner.counts_after
        for epoch in self.epochs:
            epoch.fill(rows[epoch.j][3:], counts(epoch.progress))
        self.epochs = []

    def row(self, j: int) -> list[float]:
        if self.rows is None:
            self.runner.flush()  # the call has not run yet: it runs now
        self.fetch()
        if self.host is None:  # never ran (training stopped before it)
            return [math.nan] * self.runner.width
        return self.host[j].tolist()  # type: ignore[no-any-return]


class StepFigures:
    """One step's (data loss, regularization loss, accuracy) in a call, read when unpacked."""

    __slots__ = ("call", "j")

    def __init__(self, call: CallFigures, j: int) -> None:
        self.call, self.j = call, j

    def __getitem__(self, index: int) -> float:
        return self.call.row(self.j)[index]

    def __iter__(self) -> Iterator[float]:  # unpacked only to print the step's line
        return iter(self.call.row(self.j)[:3])


class EpochFigures(Figures):
    """An epoch's figures: those of step ``j`` of ``call`` (its last), after ``progress``."""

    __slots__ = ("call", "j", "progress")

    def __init__(self, call: CallFigures, j: int, progress: tuple[int, int]) -> None:
        super().__init__(None)
        self.call, self.j, self.progress = call, j, progress

    def read(self) -> tuple[list[float], list[int]]:
        return self.call.row(self.j)[3:], self.call.runner.counts_after(self.progress)
