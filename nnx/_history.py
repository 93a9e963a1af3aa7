"""What ``Model.train`` returns: the history of one call, kept while the epochs run.

Numbers the host has anyway (a resumed run's earlier epochs, the learning rate, validation)
are kept as they come. An epoch's four figures are kept as the runner gives them (anything
indexed 0 to 3; a compiled runner's stay on the device until read) and turned into floats
once they have reached the host, in order: the loop asks for that before it waits for the
device (``collect``), so that at the end of a long call the host has only the last epochs
left to convert instead of every one, while the device runs the last steps.
"""

from __future__ import annotations

from typing import Any

from nnx._step import Figures

__all__ = ["FIGURES", "History"]

# The history's keys for a runner's epoch figures, in their order there.
FIGURES = ("loss", "data_loss", "reg_loss", "accuracy")


class History:
    """One ``train`` call's history (see the module's text); ``numbers``: the host's lists,
    keyed as the returned history is; ``epochs``: this call's figures not yet turned into
    floats, as given; ``last``: the last epoch's (the progress bar shows them)."""

    def __init__(self, backend: Any, earlier: dict[str, list[Any]] | None = None) -> None:
        self.backend = backend
        self.numbers: dict[str, list[Any]] = {} if earlier is None else earlier
        for key in (*FIGURES, "learning_rate"):  # the history's order of keys
            self.numbers.setdefault(key, [])
        self._earlier = len(self.numbers["loss"])  # epochs of the run before this call
        self.epochs: list[Any] = []
        self.last: Any = None
        self._columns: list[list[float]] = [[] for _ in FIGURES]  # of the epochs collected

    def add(self, figures: Any, learning_rate: float) -> None:
        """An epoch's figures (as the runner gives them) and the learning rate it ended with."""
        self.epochs.append(figures)
        self.last = figures
        self.numbers["learning_rate"].append(learning_rate)

    def validation(self, loss: float, accuracy: float) -> None:
        self.numbers.setdefault("val_loss", []).append(loss)
        self.numbers.setdefault("val_accuracy", []).append(accuracy)

    def collect(self) -> None:
        """Turn the epochs whose figures are on the host already into floats, in order (a
        compiled many-steps run fills a call's epochs once the next call has started)."""
        epochs, at = self.epochs, 0
        while at < len(epochs) and isinstance(epochs[at], Figures) and epochs[at].host is not None:
            at += 1
        if at:  # into columns now, while the device works: the end has less to do
            rows = [figures.host for figures in epochs[:at]]
            for column, values in zip(self._columns, zip(*rows, strict=True), strict=True):
                column.extend(values)
            del epochs[:at]  # freed now too, not all at once when the call returns

    def drop(self, first: int) -> None:
        """Forget the epochs from the ``first``-th of the run on (0 is the run's first epoch,
        a resumed run's included): those after a diverged step."""
        for values in self.numbers.values():
            del values[first:]
        mine, done = max(first - self._earlier, 0), len(self._columns[0])
        del self.epochs[max(mine - done, 0) :]
        for column in self._columns:
            del column[mine:]
        self.last = self.epochs[-1] if self.epochs else None

    def floats(self) -> dict[str, list[float]]:
        """The history as floats: the host's numbers, then this call's epochs (read from the
        device where they are still there: one transfer per call or epoch)."""
        self.collect()
        rest, on_device = [], False
        for figures in self.epochs:
            if isinstance(figures, Figures):  # not read by anyone yet: read now
                figures[0]  # noqa: B018
                rest.append(figures.host)
            else:  # the eager runner's (or one's own): numbers or device scalars
                on_device = True
                rest.append([figures[i] for i in range(len(FIGURES))])
        history = {key: list(values) for key, values in self.numbers.items()}
        columns = zip(*rest, strict=True) if rest else [()] * len(FIGURES)
        for key, done, column in zip(FIGURES, self._columns, columns, strict=True):
            history[key] += done
            history[key] += self._on_host(column) if on_device else column
        return {key: values for key, values in history.items() if values}  # none: no epoch

    def _on_host(self, values: Any) -> list[float]:
        """Numbers and device scalars (the eager runner's figures) as floats, the scalars
        stacked into one transfer. The compiled runners' figures never come here: there a
        ``stack`` of a thousand arrays would be a thousand-input function to compile."""
        arrays = [v for v in values if not isinstance(v, (int, float))]
        if not arrays:
            return list(map(float, values))
        host = iter(self.backend.to_numpy(self.backend.xp.stack(arrays)).tolist())
        return [float(v) if isinstance(v, (int, float)) else next(host) for v in values]
