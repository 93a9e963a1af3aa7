"""Ctrl-C during ``Model.train``: the first press finishes the step in progress, then stops, so
the model holds the parameters of a whole step; a second press stops at once."""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

__all__ = ["CtrlC", "say_stopped"]


class CtrlC:
    """Catches Ctrl-C between ``__enter__`` and ``__exit__`` (in the main thread: signals
    reach no other); ``pressed`` says whether it came."""

    def __init__(self) -> None:
        self.pressed = False
        self._previous: Any = None

    def __enter__(self) -> CtrlC:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def _handler(self, signum: int, frame: Any) -> None:
        if self.pressed:  # pressed again: the user wants out now, inside the step
            raise KeyboardInterrupt(
                "Model.train: stopped inside a step, so some layers may hold updated "
                "parameters and others not; load a checkpoint or the saved model."
            )
        self.pressed = True
        print(
            "\nCtrl-C: training stops after the step in progress; press Ctrl-C again to "
            "stop at once (the model may then be left between two steps).",
            file=sys.stderr,
        )


def say_stopped(epoch: int) -> None:
    print(
        f"Training interrupted in epoch {epoch}, after a complete step: the model holds "
        "the parameters of that step. Save it with model.save(PATH) and go on with "
        "model.train(...); a run with checkpoint=PATH goes on from its last checkpoint "
        "with model.train(..., resume=PATH).",
        file=sys.stderr,
    )
