"""End to end: the book's spiral model trained layer by layer; host boundary (NumPy copies)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from backends import Backend
from nnx._run.runners import materialize_state
from nnx._state import state_slots
from nnx.activations import ReLU
from nnx.datasets import spiral_data
from nnx.layers import Dense
from nnx.losses import SoftmaxCategoricalCrossentropy
from nnx.optimizers import SGD, Adagrad, Adam, Optimizer, RMSprop
from nnx.testing.tolerances import tolerance

__all__ = [
    "book_epoch",
    "EARLY_EPOCHS",
    "EPOCHS",
    "LAZY_EPOCHS",
    "OPTIMIZERS",
    "Training",
    "book_compiled_problems",
    "compiled_problems",
    "curve_problems",
    "epochs_for",
    "train_spiral",
]

EPOCHS = 200
# The opening epochs, before training amplifies rounding differences (see tolerances.py).
EARLY_EPOCHS = 20
# A lazy backend builds and runs a task graph per step (~0.1 s with Dask's local threads), so
# it trains for fewer epochs: the opening ones, where a wrong step shows, and some more.
LAZY_EPOCHS = 30

# Gentler than the book's chapter-10 settings (SGD at 1.0, Adam at 0.05), which make the
# loss spike: a spike turns rounding differences into different trajectories, and then
# nothing is left to compare. These train smoothly; the loss still drops with each.
OPTIMIZERS: dict[str, Callable[[Backend], Optimizer]] = {
    "SGD": lambda b: SGD(0.5, decay=1e-3, momentum=0.9, backend=b),
    "Adagrad": lambda b: Adagrad(0.05, decay=1e-3, backend=b),
    "RMSprop": lambda b: RMSprop(0.002, decay=1e-3, rho=0.9, backend=b),
    "Adam": lambda b: Adam(0.005, decay=1e-3, backend=b),
}


@dataclass(frozen=True)
class Training:
    """What one run leaves for comparison, on the host.

    Parameters
    ----------
    initial_weights : tuple of numpy.ndarray
        Weights of both Dense layers before the first step, as ``to_numpy`` gives them.
    losses : numpy.ndarray, shape (epochs,)
        Mean loss of every epoch, float64.
    final : tuple of array
        Weights and biases of both layers after training, arrays of the backend.
    """

    initial_weights: tuple[np.ndarray, np.ndarray]
    losses: np.ndarray
    final: tuple[object, ...]


def book_epoch(dense1, activation1, dense2, loss_activation, optimizer, X, y):  # type: ignore[no-untyped-def]
    """The book's chapter-10 epoch as a function of the parts it uses: forward, loss,
    backward, update; returns the loss and the probabilities. What the conformance curves
    train, and what ``nnx.compile`` compiles in its tests and ``benchmarks/book_loop.py``."""
    dense1.forward(X)
    activation1.forward(dense1.output)
    dense2.forward(activation1.output)
    loss = loss_activation.forward(dense2.output, y)
    loss_activation.backward(loss_activation.output, y)
    dense2.backward(loss_activation.dinputs)
    activation1.backward(dense2.dinputs)
    dense1.backward(activation1.dinputs)
    optimizer.pre_update_params()
    optimizer.update_params(dense1)
    optimizer.update_params(dense2)
    optimizer.post_update_params()
    return loss, loss_activation.output


def epochs_for(backend: Backend) -> int:
    """How long to train on ``backend``: :data:`EPOCHS`, or :data:`LAZY_EPOCHS` if lazy."""
    return LAZY_EPOCHS if backend.lazy is not None else EPOCHS


def train_spiral(backend: Backend, dtype: str, optimizer: str, epochs: int = EPOCHS) -> Training:
    """Train Dense(2, 64), ReLU, Dense(64, 3), Softmax+crossentropy on ``spiral_data(100, 3)``.

    The loop is the book's: forward, loss, backward, one optimizer step per epoch on the whole
    data set. Losses stay on the device until the run ends.
    """
    X, y = spiral_data(100, 3, seed=0)
    inputs, labels = backend.asarray(X, backend.dtype(dtype)), backend.asarray(y)
    dense1 = Dense(2, 64, seed=1, dtype=dtype, backend=backend)
    activation1 = ReLU(backend)
    dense2 = Dense(64, 3, seed=2, dtype=dtype, backend=backend)
    loss_activation = SoftmaxCategoricalCrossentropy(backend)
    step = OPTIMIZERS[optimizer](backend)
    # Copies: to_numpy may share memory, and optimizers may update weights in place.
    initial = (_host_copy(backend, dense1.weights), _host_copy(backend, dense2.weights))
    losses = []
    for _ in range(epochs):
        # nnx's calculate also keeps a sum over the pass; one step is one pass here.
        loss_activation.loss.new_pass()
        loss, _ = book_epoch(dense1, activation1, dense2, loss_activation, step, inputs, labels)
        if backend.lazy is not None:  # as Model does: no task graph outlives its step
            slots = list(state_slots([dense1, dense2], step).values())
            (loss,) = materialize_state(backend, slots, (loss,))
        losses.append(loss)
    curve = backend.to_numpy(backend.xp.stack(losses)) if losses else np.empty(0)
    curve = np.asarray(curve, dtype=np.float64)
    final = (dense1.weights, dense1.biases, dense2.weights, dense2.biases)
    return Training(initial, curve, final)


def _host_copy(backend: Backend, array: object) -> np.ndarray:
    return np.array(backend.to_numpy(array), copy=True)


def curve_problems(curve: np.ndarray, reference: np.ndarray, dtype: str) -> list[str]:
    """How ``curve`` strays from the ``reference`` loss curve beyond the training tolerances.

    Parameters
    ----------
    curve, reference : numpy.ndarray, shape (epochs,)
        Losses of the backend under test and of NumPy in float64.
    dtype : {"float32", "float64"}
        The dtype ``curve`` was trained in.

    Returns
    -------
    list of str
        Empty when the opening epochs and the whole curve are within their tolerances.
    """
    if curve.shape != reference.shape:
        return [f"loss curve of shape {curve.shape}, expected {reference.shape}"]
    problems = []
    for kind, stop in (("training-early", EARLY_EPOCHS), ("training", len(reference))):
        tol = tolerance(kind, dtype)
        got, want = curve[:stop], reference[:stop]
        diff = np.abs(got - want)
        if not np.all(diff <= tol.atol + tol.rtol * np.abs(want)):
            rel = diff / np.abs(want)
            epoch = int(np.nanargmax(rel)) if not np.isnan(rel).all() else 0
            problems.append(
                f"{kind} (epochs 0-{stop - 1}): max rel err {np.nanmax(rel, initial=0):.1e} at "
                f"epoch {epoch}, loss {got[epoch]:.6g} vs {want[epoch]:.6g}, beyond {tol}"
            )
    return problems


# Compiled against eager on one backend: float32 rounding grows over the steps (Adagrad at 0.5
# moved one weight by 3e-5 relative in 12 steps); a wrong mask, count or formula moves them by
# percents.
_COMPILED_RTOL = {"float32": 1e-4, "float64": 1e-9}


def compiled_problems(
    backend: Backend, dtype: str, steps_per_execution: int = 1
) -> tuple[float, list[str]]:
    """The largest relative difference between a model trained with the backend's compiled
    step and the same model trained eagerly on the same backend, and what is wrong.

    Batches, shuffling, dropout, L1/L2 penalties and Adam with decay: everything the step
    carries or draws. The compiled run must also trace its step once. With
    ``steps_per_execution`` K > 1, K steps a call (calls that end inside an epoch and span
    epochs, the masks of their steps in one table) and a ragged last batch: one trace per
    batch shape.
    """
    import nnx  # the Model, which this module's layer-by-layer runs do not need

    X, y = spiral_data(40, 3, seed=0)
    many = steps_per_execution > 1
    states, traces = [], 0
    for compile in (False, True):
        with nnx.use_backend(backend):
            model = nnx.Model(seed=7)
            model.add(nnx.Dense(2, 32, seed=1, dtype=dtype, weight_regularizer_l2=5e-4))
            model.add(nnx.ReLU())
            model.add(nnx.Dropout(0.2, seed=3))
            model.add(nnx.Dense(32, 3, seed=2, dtype=dtype, bias_regularizer_l1=1e-4))
            model.add(nnx.Softmax())
            model.set(
                loss=nnx.CategoricalCrossentropy(),
                optimizer=nnx.Adam(learning_rate=0.02, decay=1e-3),
                accuracy=nnx.CategoricalAccuracy(),
            )
        model.finalize()
        model.train(
            X, y, epochs=3, batch_size=50 if many else 40, shuffle=True, verbose=0,
            compile=compile, steps_per_execution=steps_per_execution,
        )  # fmt: skip
        states.append({key: _host_copy(backend, a) for key, a in model.get_state().items()})
        if compile:
            traces = model.compiled_step.traces
    shapes = 2 if many else 1  # 50, 50 and 20 rows an epoch: two programs
    eager, compiled = states
    problems = [] if traces == shapes else [f"the step was traced {traces} times, not {shapes}"]
    worst = 0.0
    for key, want in eager.items():
        got = compiled[key].astype(np.float64)
        error = np.abs(got - want) / np.maximum(np.abs(want), 1e-3)
        worst = max(worst, float(error.max()))
        if not np.isfinite(got).all() or error.max() > _COMPILED_RTOL[dtype]:
            problems.append(f"{key} differs from the eager steps by {error.max():.1e} relative")
    return worst, problems


def many_steps_problems(backend: Backend, dtype: str) -> tuple[float, list[str]]:
    """:func:`compiled_problems` with 4 steps a call (``steps_per_execution=4``)."""
    return compiled_problems(backend, dtype, steps_per_execution=4)


def book_compiled_problems(backend: Backend, dtype: str) -> tuple[float, list[str]]:
    """The largest relative difference between the book's chapter-10 epoch run through
    ``nnx.compile`` and the same epochs run eagerly on the backend (SGD with momentum and
    decay, 12 epochs: the losses and the final parameters), and what is wrong. The compiled
    function must trace once, and leave the optimizer's counter a Python int."""
    import nnx  # nnx.compile, which this module's layer-by-layer runs do not need

    X, y = spiral_data(100, 3, seed=0)
    runs = []
    for function in (book_epoch, nnx.compile(book_epoch)):
        dense1 = Dense(2, 64, seed=1, dtype=dtype, backend=backend)
        dense2 = Dense(64, 3, seed=2, dtype=dtype, backend=backend)
        parts = (dense1, ReLU(backend), dense2, SoftmaxCategoricalCrossentropy(backend))
        optimizer = SGD(learning_rate=1.0, decay=1e-3, momentum=0.9, backend=backend)
        inputs, labels = backend.asarray(X, backend.dtype(dtype)), backend.asarray(y)
        losses = [function(*parts, optimizer, inputs, labels)[0] for _ in range(12)]
        final = [dense1.weights, dense1.biases, dense2.weights, dense2.biases]
        runs.append(([float(backend.to_numpy(loss)) for loss in losses], final, optimizer))
    (eager, eager_final, _), (compiled, compiled_final, optimizer) = runs
    problems = [] if getattr(function, "traces", 1) == 1 else ["traced more than once"]
    if type(optimizer.iterations) is not int or optimizer.iterations != 12:
        problems.append(f"optimizer.iterations is {optimizer.iterations!r}, not the int 12")
    pairs = [(np.asarray(compiled), np.asarray(eager))]
    pairs += [(_host_copy(backend, a), _host_copy(backend, b)) for a, b in
              zip(compiled_final, eager_final, strict=True)]  # fmt: skip
    worst = 0.0
    for got, want in pairs:
        # The output layer's biases stay within 1e-3 of zero for epochs: below 1e-2 the
        # difference counts as absolute (rounding leaves ~1e-7 there; a wrong step, 1e-3).
        error = np.abs(got - want) / np.maximum(np.abs(want), 1e-2)
        worst = max(worst, float(error.max()))
    if worst > _COMPILED_RTOL[dtype]:
        problems.append(f"differs from the eager epochs by {worst:.1e} relative")
    return worst, problems
