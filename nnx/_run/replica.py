"""What the workers run for ``nnx._run.distributed``: nnx's own passes on a copy of the model.

Every function here is a task: it gets the model's copy (:class:`Replica`, rebuilt once per
worker on its own backend), the arrays of a future (parameters, optimizer state) and a chunk
of the data, all of the worker's array library, and returns the same.
"""

from __future__ import annotations

import math
import threading
from typing import Any

from backends import BackendError
from nnx._version import __version__

__all__ = [
    "Replica",
    "add_gradients",
    "add_sums",
    "gradients",
    "losses",
    "nnx_version",
    "outputs",
    "update",
]

# The backend each worker runs its chunks on (their chunks are NumPy arrays).
WORKER_BACKEND = "numpy"


def nnx_version() -> str:
    return __version__


class Replica:
    """The model's parts as classes and configs, rebuilt on the worker's backend on arrival.

    ``where`` names each state array by (layer index, attribute): the parameters first
    (``n_params``), then the optimizer's state.
    """

    def __init__(self, model: Any, where: list[tuple[int, str]], n_params: int) -> None:
        parts = [*model.layers, model.loss, model.optimizer, model.accuracy]
        self.spec = [(type(p), p.config()) if p is not None else None for p in parts]
        # nnx's Model (pickled by name, so the worker imports it), not a subclass of the
        # user's, whose constructor may want more: the workers run the passes only.
        self.model_class = next(c for c in type(model).__mro__ if c.__module__ == "nnx.model")
        self.where, self.n_params = where, n_params
        self.version = __version__
        self.lock = threading.Lock()  # tasks of one worker's threads share one model
        self.model: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {"spec": self.spec, "model_class": self.model_class, "where": self.where,
                "n_params": self.n_params, "version": self.version}  # fmt: skip

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.spec, self.model_class, self.where = (
            state["spec"],
            state["model_class"],
            state["where"],
        )
        self.n_params, self.version = state["n_params"], state["version"]
        self.lock, self.model = threading.Lock(), None

    def load(self, params: list[Any], extra: list[Any] = ()) -> Any:  # type: ignore[assignment]
        """The rebuilt model holding ``params`` (and the optimizer state ``extra``)."""
        if self.model is None:
            self.model = self._build()
        layers = self.model.layers
        for (i, name), array in zip(self.where, [*params, *extra]):  # noqa: B905
            setattr(layers[i], name, array)
        return self.model

    def _build(self) -> Any:
        if self.version != __version__:
            raise BackendError(
                f"this worker has nnx=={__version__}, the client nnx=={self.version}; "
                "install the same nnx on every worker."
            )
        *layers, loss, optimizer, accuracy = [
            None if entry is None else entry[0](**entry[1], backend=WORKER_BACKEND)
            for entry in self.spec
        ]
        model = self.model_class()
        for layer in layers:
            model.add(layer)  # type: ignore[arg-type]  # the client's layers: never None
        model.set(loss=loss, optimizer=optimizer, accuracy=accuracy)
        model.finalize()
        return model


def gradients(replica: Replica, params: list[Any], X: Any, y: Any, weight: float) -> Any:
    """One chunk's forward and backward pass: its gradients times ``weight`` (its share of
    the batch), and its figures (see :func:`_sums`)."""
    with replica.lock:
        model = replica.load(params)
        output = _forward(model, X, y, training=True)
        model.backward(output, y)
        gradients = [
            getattr(layer, gradient) * weight
            for layer in model.trainable_layers
            for gradient in layer.parameters.values()
        ]
        return gradients, _sums(model, weight)


def losses(replica: Replica, params: list[Any], X: Any, y: Any) -> tuple[float, ...]:
    """One chunk's figures (see :func:`_sums`) with dropout off."""
    with replica.lock:
        model = replica.load(params)
        _forward(model, X, y, training=False)
        return _sums(model, 0.0)


def outputs(replica: Replica, params: list[Any], X: Any) -> Any:
    with replica.lock:
        return replica.load(params).forward(X, training=False)


def _forward(model: Any, X: Any, y: Any, training: bool) -> Any:
    """The forward pass, with the loss's and the accuracy's sums over this chunk alone."""
    model.loss.new_pass()
    if model.accuracy is not None:
        model.accuracy.new_pass()
    output = model.forward(X, training=training)
    model.score(output, y)
    return output


def _sums(model: Any, weight: float) -> tuple[float, ...]:
    """(sum of losses, rows, hits, comparisons, penalty times ``weight``): sums over chunks
    give the batch's (the weights add up to 1, so the penalty counts once)."""
    loss, accuracy = model.loss, model.accuracy
    hits = (float(accuracy.accumulated_sum), accuracy.accumulated_count) if accuracy else (0, 0)
    reg = float(loss.regularization_loss()) * weight if weight else 0.0
    return float(loss.accumulated_sum), loss.accumulated_count, *hits, reg


def add_gradients(*parts: Any) -> Any:
    gradients = [sum(arrays[1:], arrays[0]) for arrays in zip(*(p[0] for p in parts))]  # noqa: B905
    return gradients, add_sums(*(p[1] for p in parts))


def add_sums(*parts: tuple[float, ...]) -> tuple[float, ...]:
    return tuple(math.fsum(column) for column in zip(*parts))  # noqa: B905


def _figures(xp: Any, sums: tuple[float, ...], previous: Any) -> Any:
    """The step's (data loss, penalty, accuracy), then the epoch's running sums: of losses,
    and of the accuracy times rows (so that, over the rows, it gives the epoch's accuracy
    whatever an accuracy counts per row). ``previous``: the step before in the epoch, or None.
    """
    loss_sum, rows, hits, compared, reg = sums
    before = previous[5:] if previous is not None else (0.0, 0.0, 0.0, 0.0)
    epoch = [a + b for a, b in zip(before, (loss_sum, rows, hits, compared))]  # noqa: B905
    share = epoch[2] / max(epoch[3], 1)
    figures = [loss_sum / rows, reg, hits / max(compared, 1), epoch[0], share * epoch[1], *epoch]
    # An array, so that the client can read each figure as a 0-d dask array.
    return xp.asarray(figures, dtype=xp.float64)


def update(
    replica: Replica,
    params: list[Any],
    extra: list[Any],
    previous: Any,
    factors: dict[str, float],
    guard: bool,
    *parts: Any,
) -> tuple[list[Any], list[Any], Any]:
    """The sum of the chunks' ``parts`` and the optimizer's update from it: new (parameters,
    optimizer state, figures of the step).

    A step whose loss is not finite leaves the state as it was when ``guard`` is set (the
    client raises and drops the step). The optimizer updates in place: the parameters are
    copied first, as other tasks may still read them (an evaluation); the optimizer's state
    is read by this task alone."""
    gradients, sums = add_gradients(*parts)
    with replica.lock:
        model = replica.load(params)
        figures = _figures(model.backend.xp, sums, previous)
        if guard and not math.isfinite(float(figures[0] + figures[1])):
            return params, extra, figures
        model = replica.load([a.copy() for a in params], extra)
        named = [(layer, g) for layer in model.trainable_layers for g in layer.parameters.values()]
        for (layer, name), gradient in zip(named, gradients, strict=True):
            setattr(layer, name, gradient)
        optimizer = model.optimizer
        for name, value in factors.items():  # this step's, as the client's optimizer has them
            setattr(optimizer, name, value)
        optimizer.update_layers(model.trainable_layers)
        layers, n = model.layers, replica.n_params
        state = [getattr(layers[i], name) for i, name in replica.where]
        return state[:n], state[n:], figures
