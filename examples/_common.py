"""What every example shares: its command line, a one-line exit when the backend or the data is
missing, a warning when a busy machine would slow it down, the closing line (which says so when
Ctrl-C stopped training), and the ``--plot`` figures (matplotlib is imported only when a figure
is asked for).

Examples run as ``python examples/NAME.py``, so Python finds this module next to them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn, TextIO

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
    warn_if_oversubscribed()
    try:
        backend = backends.get_backend()
    except (ValueError, backends.BackendError) as err:
        fail(f"cannot use the backend: {err}")
    pyplot = _pyplot(args.plot) if args.plot else None
    try:
        run(args, backend, pyplot)
    except (FileNotFoundError, ImportError) as err:  # the data loaders' clear messages
        fail(str(err))
    except KeyboardInterrupt:  # outside training, or a second Ctrl-C inside a step
        print(f"{Path(sys.argv[0]).name}: interrupted.", file=sys.stderr)
        raise SystemExit(130) from None


# Each library's thread count, and what sets it: torch reads OMP_NUM_THREADS, NumPy's OpenBLAS
# reads OPENBLAS_NUM_THREADS (or OMP_NUM_THREADS), MKL reads MKL_NUM_THREADS, JAX on CPU reads
# XLA_FLAGS. Whoever set one of them has chosen already.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "XLA_FLAGS")
ONE_THREAD = (
    "OMP_NUM_THREADS=1 (torch, and NumPy's OpenBLAS), or for JAX on CPU "
    'XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"'
)


def warn_if_oversubscribed(
    environ: Mapping[str, str] = os.environ, stream: TextIO | None = None
) -> bool:
    """Say once, on stderr, that the machine is busier than its cores and no thread variable is
    set: each library then starts a thread per core, and on small matrices they wait for each
    other (1000 torch epochs of the spiral: 8.6 s, against 0.8 s with one thread). True when
    it warned."""
    if any(name in environ for name in THREAD_VARIABLES):
        return False
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # Windows has no load average
        return False
    try:
        cores = len(os.sched_getaffinity(0))  # the cores this process may use
    except AttributeError:  # macOS
        cores = os.cpu_count() or 1
    if load <= cores:
        return False
    print(
        f"{Path(sys.argv[0]).name}: this machine is busy (load {load:.1f} on {cores} cores) and "
        f"no thread count is set, so training may run several times slower than it could. "
        f"Small networks train faster with one thread: {ONE_THREAD}.",
        file=sys.stderr if stream is None else stream,
    )
    return True


def report(
    name: str,
    backend: Any,
    epochs: int,
    seconds: float,
    history: Mapping[str, list[float]],
    val_accuracy: float | None = None,
    val_name: str = "validation",
) -> str:
    """Print and return the closing line: what ran, how long, and the accuracy reached (on the
    held-out data: ``val_accuracy``, or the history's last ``val_accuracy``). ``history`` holds
    one entry per epoch that ran, so a run that Ctrl-C stopped says after how many."""
    ran = len(history["loss"])
    if ran < epochs:
        done = f"interrupted after {ran} of {epochs} epochs, {seconds:.1f} s"
    else:
        done = f"{epochs} epochs in {seconds:.1f} s"
    accuracy = history["accuracy"][-1] if ran else float("nan")
    if val_accuracy is None:
        val_accuracy = history["val_accuracy"][-1] if history.get("val_accuracy") else float("nan")
    line = (
        f"{name} on {backend.name}: {done}, training accuracy {accuracy:.3f}, "
        f"{val_name} accuracy {val_accuracy:.3f}"
    )
    print(line)
    return line


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
