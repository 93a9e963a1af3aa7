"""What every example shares: its command line, a one-line exit when the backend or the data is
missing, and the ``--plot`` figures (matplotlib is imported only when a figure is asked for).

Examples run as ``python examples/NAME.py``, so Python finds this module next to them.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

import backends
from backends import install_hint


def parser(doc: str, epochs: int) -> argparse.ArgumentParser:
    """The shared options: ``--epochs N`` and ``--plot FILE.png``."""
    summary = doc.strip().splitlines()[0]
    parse = argparse.ArgumentParser(
        description=f"{summary} Runs on the backend NNX_BACKEND names (default numpy)."
    )
    parse.add_argument(
        "--epochs", type=_positive, default=epochs, help=f"epochs to train (default {epochs})"
    )
    parse.add_argument(
        "--plot", metavar="FILE.png", type=Path, help="save figures of the run (needs matplotlib)"
    )
    return parse


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number of epochs, got {text}")
    return value


def fail(message: str) -> NoReturn:
    """Exit with status 2 and ``message`` as one line on stderr, without a traceback."""
    name = Path(sys.argv[0]).name
    print(f"{name}: {' '.join(str(message).split())}", file=sys.stderr)
    raise SystemExit(2)


def main(run: Callable[[argparse.Namespace, Any, Any], None], parse: argparse.ArgumentParser):
    """Parse the options, load the backend and matplotlib if asked, then ``run(args, backend,
    pyplot)``. A backend that cannot load, a missing data set or a missing matplotlib ends the
    program with one line and status 2."""
    args = parse.parse_args()
    try:
        backend = backends.get_backend()
    except (ValueError, backends.BackendError) as err:
        fail(f"cannot use the backend: {err}")
    pyplot = _pyplot(args.plot) if args.plot else None
    try:
        run(args, backend, pyplot)
    except (FileNotFoundError, ImportError) as err:  # the data loaders' clear messages
        fail(str(err))


def _pyplot(path: Path) -> Any:
    """matplotlib's pyplot (file output only), checked before any training starts."""
    try:
        import matplotlib
    except ImportError:
        fail(f"--plot needs matplotlib: pip install matplotlib (or {install_hint('plot')}).")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not path.parent.is_dir():
        fail(f"--plot {path}: the folder {path.parent} does not exist.")
    formats = plt.figure().canvas.get_supported_filetypes()
    plt.close("all")
    if path.suffix.lstrip(".").lower() not in formats:
        fail(f"--plot {path}: expected a file name ending in one of .{', .'.join(formats)}.")
    return plt


def plot_history(ax_loss: Any, ax_accuracy: Any, history: dict[str, list[float]]) -> None:
    """Loss and accuracy per epoch (training, and validation when present)."""
    epochs = np.arange(1, len(history["loss"]) + 1)
    for key, label in (("loss", "training"), ("val_loss", "validation")):
        if key in history:
            ax_loss.plot(epochs, history[key], label=label)
    for key, label in (("accuracy", "training"), ("val_accuracy", "validation")):
        if key in history:
            ax_accuracy.plot(epochs, history[key], label=label)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss", yscale="log")
    ax_accuracy.set(xlabel="epoch", ylabel="accuracy", title="accuracy", ylim=(0, 1.02))
    ax_loss.legend()
    ax_accuracy.legend()


def plot_boundary(ax: Any, model: Any, X: np.ndarray, y: np.ndarray) -> None:
    """The classes ``model`` predicts over the plane, with the samples on top."""
    low, high = X.min(axis=0) - 0.1, X.max(axis=0) + 0.1
    xx, yy = np.meshgrid(np.linspace(low[0], high[0], 200), np.linspace(low[1], high[1], 200))
    grid = np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.float32)
    outputs = model.backend.to_numpy(model.predict(grid))
    classes = (outputs[:, 0] > 0.5) if outputs.shape[1] == 1 else outputs.argmax(axis=1)
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"]
    levels = np.arange(int(max(classes.max(), y.max())) + 2) - 0.5
    ax.contourf(xx, yy, classes.reshape(xx.shape), levels=levels, colors=colors, alpha=0.3)
    point_colors = [colors[int(label)] for label in y.ravel()]
    ax.scatter(X[:, 0], X[:, 1], c=point_colors, s=12, edgecolors="k", linewidths=0.3)
    ax.set(title="decision boundary", xlabel="x1", ylabel="x2")


def save_figure(plt: Any, figure: Any, path: Path) -> None:
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    print(f"figure saved to {path}")


class Clock:
    """Seconds of training, measured after the backend finished its queued work."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.start = time.perf_counter()

    def seconds(self) -> float:
        self.backend.synchronize()
        return time.perf_counter() - self.start
