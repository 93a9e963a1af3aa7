"""The training loop behind ``Model.train``: batches, the book's printed lines, progress, history.

Figures stay on the device as 0-d arrays while training runs; they come to the host only
to be printed, saved in a checkpoint or shown on the progress bar (twice a second), and all
together when training ends.
"""

from __future__ import annotations

import math
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

from tqdm import tqdm

from nnx import _record as record
from nnx import io
from nnx._checks import whole_number
from nnx._history import History
from nnx._interrupt import CtrlC, say_stopped
from nnx._step import NonFiniteLossError, loss_diverged, state_diverged
from nnx.data import check_batch_size, shuffled_order

__all__ = ["TrainLoop"]

_ON_NAN = ("raise", "warn", "ignore")
# Seconds between the progress bar's loss and accuracy: reading them waits for the device, so
# not every step (and not at all where no bar shows: output to a file or a pipe).
_BAR_FIGURES_EVERY = 0.5
# Lines a run prints when print_every is left out (the book's 10000 epochs print every 1000).
_LINES_PER_RUN = 10


class TrainLoop:
    """One call of ``Model.train``: runs the epochs and returns the history."""

    def __init__(
        self,
        model: Any,
        *,
        epochs: int,
        batch_size: int | None,
        print_every: int | None,
        shuffle: bool,
        verbose: int,
        on_nan: str = "raise",
        checkpoint: Any = None,
        checkpoint_every: int = 1,
        choose: Callable[[Any, bool], Any],
    ) -> None:
        counts = {
            "epochs": epochs,
            "print_every": 1 if print_every is None else print_every,
            "checkpoint_every": checkpoint_every,
        }
        for name, value in counts.items():
            count = whole_number(value)
            if count is None or count < 1:
                raise ValueError(f"Model.train: expected {name} >= 1, got {name}={value!r}.")
            counts[name] = count
        epochs, every, checkpoint_every = counts.values()
        self.print_every = None if print_every is None else every
        batch_size = check_batch_size(batch_size)
        if checkpoint is not None:  # checked before training, not after the first epochs
            try:
                io.check_writable(checkpoint, "checkpoint")
            except OSError as err:
                raise type(err)(f"Model.train: {err}") from None
        if on_nan not in _ON_NAN:
            raise ValueError(f"Model.train: expected on_nan in {_ON_NAN}, got on_nan={on_nan!r}.")
        self.on_nan, self.choose = on_nan, choose
        self.model, self.epochs = model, epochs
        self.batch_size = batch_size
        self.shuffle, self.verbose = shuffle, verbose
        self.checkpoint, self.checkpoint_every = checkpoint, checkpoint_every
        self.history = History(model.backend)
        self.ctrl_c = CtrlC()

    def run(
        self, X: Any, y: Any, validation: tuple[Any, Any] | None, resume: Any = None
    ) -> dict[str, list[float]]:
        model, epochs = self.model, self.epochs
        self.X, self.y, self.validation = X, y, validation is not None
        n = X.shape[0]
        self.steps = 1 if self.batch_size is None else math.ceil(n / self.batch_size)
        # print_every counts epochs when an epoch is one batch (the book's chapters), steps
        # when it has several; left out, about ten epochs of the run print, without step lines.
        self.epochs_every, self.steps_every = math.ceil(epochs / _LINES_PER_RUN), 0
        if self.print_every is not None and self.steps == 1:
            self.epochs_every = self.print_every
        elif self.print_every is not None:
            self.epochs_every, self.steps_every = 1, self.print_every
        guard = self.on_nan != "ignore"
        self.runner = self.choose(X, guard)  # how the steps run: Model.train's choice
        first = 1 if resume is None else self._resume(resume)
        self.runner.steps_in_call = (epochs - first + 1) * self.steps
        self.runner.prepare(self.steps)
        # The epoch and the iteration count the run began at: a divergence found later (a
        # compiled run's) is placed from them.
        self._first, self._start = first, model.optimizer.iterations
        seed = model.seed if model.seed is not None else 0
        bar = tqdm(
            initial=(first - 1) * self.steps,
            total=epochs * self.steps,
            disable=None if self.verbose else True,
            unit="step",
            file=sys.stderr,
        )
        self._bar_figures_at = 0.0
        with self.ctrl_c, bar:
            for epoch in range(first, epochs + 1):
                if not self._one_epoch(epoch, seed, validation, bar):
                    break
            self._show_figures(bar, last=True)
        return self.history.floats()

    def _one_epoch(self, epoch: int, seed: int, validation: Any, bar: Any) -> bool:
        """An epoch, its validation, Ctrl-C and its checkpoint; False when training stops."""
        model = self.model
        order = None
        if self.shuffle:  # one generator per epoch, so a resumed run sees the same order
            order = shuffled_order(model.backend.rng((seed, epoch)), self.X.shape[0])
        if not self._epoch(epoch, order, bar):
            return False
        if validation is not None:
            self._validation(epoch, *self.runner.evaluate(*validation, self.batch_size))
        if self.ctrl_c.pressed:
            say_stopped(epoch)
            return False
        every, last = self.checkpoint_every, epoch == self.epochs
        if self.checkpoint is not None and (not epoch % every or last):
            self._save_checkpoint(epoch)
        return True

    def _epoch(self, epoch: int, order: Any, bar: Any) -> bool:
        """One pass over the data; False when the loss diverged and training must stop."""
        model, runner, ctrl_c = self.model, self.runner, self.ctrl_c
        model.loss.new_pass()
        if model.accuracy is not None:
            model.accuracy.new_pass()
        printed = bool(self.verbose and self._printed(epoch))
        if self.steps > 1 and printed:
            tqdm.write(f"epoch: {epoch}")
        every, last = self.steps_every if printed else 0, self.steps - 1
        for step, (batch_X, batch_y) in enumerate(
            runner.batches(self.X, self.y, self.batch_size, order)
        ):
            try:  # (data loss, regularization loss, accuracy): unpacked only to print
                figures = runner.step(batch_X, batch_y)
            except NonFiniteLossError as err:
                self._diverged(loss_diverged(err.args[0], epoch, step, model.optimizer))
                return False
            bar.update(1)
            printing = bool(every and (not step % every or step == last))
            if not (printing or ctrl_c.pressed):  # the quiet step: nothing to read
                continue
            if self._diverged_late(epoch, now=True):
                return False
            if printing:
                data_loss, reg_loss, accuracy = figures
                lr = model.optimizer.current_learning_rate
                tqdm.write(_line(f"step: {step}", accuracy, data_loss, reg_loss, lr))
            if ctrl_c.pressed:
                break
        boundary = self._must_read(epoch, printed)
        if boundary:  # before the wait for the device: the figures that arrived become floats
            self.history.collect()
        if self._diverged_late(epoch, now=boundary):
            return False
        if boundary:
            last_epoch = epoch == self.epochs or ctrl_c.pressed
            bad = runner.boundary(last_epoch, check=self.on_nan != "ignore")
            if bad is not None:
                self._diverged(state_diverged(epoch, bad))
                return False
        # The epoch's four figures as one object, read (from the device, where they are) to
        # print, to save a checkpoint, on the progress bar, and when training ends.
        figures = runner.epoch_figures()
        lr = model.optimizer.current_learning_rate
        self.history.add(figures, lr)
        if printed:
            head = "training" if self.steps > 1 else f"epoch: {epoch}"
            tqdm.write(_line(head, figures[3], figures[1], figures[2], lr))
        self._show_figures(bar)
        return True

    def _show_figures(self, bar: Any, last: bool = False) -> None:
        """The last epoch's loss and accuracy on the progress bar, as Keras's progbar shows
        them, at most every ``_BAR_FIGURES_EVERY`` seconds (each read waits for the device)
        and once more at the end, so the bar left on screen shows the final figures."""
        clock = time.perf_counter()
        figures = self.history.last
        if bar.disable or figures is None or (clock < self._bar_figures_at and not last):
            return
        self._bar_figures_at = clock + _BAR_FIGURES_EVERY
        loss, accuracy = float(figures[0]), float(figures[3])
        bar.set_postfix_str(f"loss: {loss:.3f}, acc: {accuracy:.3f}", refresh=last)

    def _must_read(self, epoch: int, printed: bool) -> bool:
        """Whether the host reads from the device after this epoch anyway (or the run ends)."""
        return bool(
            epoch == self.epochs
            or self.ctrl_c.pressed
            or printed
            or self.checkpoint is not None
            and (not epoch % self.checkpoint_every)
            or self.validation
        )

    def _diverged_late(self, epoch: int, now: bool) -> bool:
        """Whether a step the runner did not stop at once (a compiled one's) had a loss that
        was not finite; then its epoch and those after it leave the history, and the error
        (or warning) says which step it was. ``now=False`` lets the runner look only at what
        the device has finished."""
        found = self.runner.divergence(now)
        if found is None:
            return False
        loss, at = found
        done = at - self._start  # steps of this run before the one that diverged
        bad_epoch, step = self._first + done // self.steps, done % self.steps
        self.history.drop(bad_epoch - 1)
        self.model.optimizer.restore_iterations(at)
        self._diverged(loss_diverged(loss, bad_epoch, step, self.model.optimizer))
        return True

    def _diverged(self, message: str) -> None:
        """Training stops for a value that is not finite: raise, or warn (``on_nan``)."""
        if self.on_nan == "raise":
            raise NonFiniteLossError(message) from None
        warnings.warn(message, RuntimeWarning, stacklevel=4)

    def _save_checkpoint(self, epoch: int) -> None:
        history, arguments = self.history.floats(), self._arguments()
        record.write(self.model, self.checkpoint, epoch, history, arguments)

    def _resume(self, path: Any) -> int:
        """Load a checkpoint into the model; the first epoch still to run."""
        epoch, earlier = record.read(self.model, path, self._arguments(), self.epochs)
        self.history = History(self.model.backend, earlier)
        return epoch + 1

    def _arguments(self) -> dict[str, Any]:
        """What a resumed run must repeat to give the bits of an uninterrupted one."""
        return {"batch_size": self.batch_size, "shuffle": bool(self.shuffle)}

    def _printed(self, epoch: int) -> bool:
        """Whether an epoch prints its lines: every ``epochs_every`` epochs, and the last."""
        return not epoch % self.epochs_every or epoch == self.epochs

    def _validation(self, epoch: int, loss: float, accuracy: float) -> None:
        """The epoch's validation figures into the history, and the book's line for them."""
        self.history.validation(loss, accuracy)
        if self.verbose and self._printed(epoch):
            tqdm.write(f"validation, acc: {accuracy:.3f}, loss: {loss:.3f}")


def _line(head: str, accuracy: Any, data_loss: Any, reg_loss: Any, lr: float) -> str:
    accuracy, data_loss, reg_loss = float(accuracy), float(data_loss), float(reg_loss)
    return (
        f"{head}, acc: {accuracy:.3f}, loss: {data_loss + reg_loss:.3f} "
        f"(data_loss: {data_loss:.3f}, reg_loss: {reg_loss:.3f}), lr: {lr}"
    )
