"""Forward-only checks: what a backend that only describes computations (ONNX) must get right.

Every layer and activation, and a whole model, in inference (dropout off), on batches of 1, 7
and 64 rows. On an eager backend the pass runs on the arrays; on one that builds programs
(``Backend.graph``) it runs once on a symbolic input whose batch dimension is free, the
program is built, and the same program is executed on each batch: what an exported model
does. Host boundary: inputs are NumPy arrays, results come back as NumPy copies.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from backends import Backend
from nnx._xp import plain_operations
from nnx.activations import Linear, ReLU, Sigmoid, Softmax
from nnx.layers import Dense, Dropout
from nnx.testing._check import Check, Output, Scenario
from nnx.testing._data import generator, normal, put, representable

__all__ = ["BATCHES", "CHECKS", "forward_outputs"]

BATCHES = (1, 7, 64)

# A pass: arrays in, named arrays out (the output, and the predictions where there are some).
Pass = Callable[[Any], dict[str, Any]]


def forward_outputs(
    backend: Backend, dtype: str, run: Pass, inputs: np.ndarray
) -> dict[str, list[Any]]:
    """``run`` on each batch of ``BATCHES`` rows of ``inputs``: per name, the results in order.

    Eager backends give arrays of their own; a backend that builds programs gives NumPy arrays
    from one program, built once with the batch dimension left free and run on every batch.
    """
    batches = [inputs[:n] for n in BATCHES]
    graph = backend.graph
    if graph is None:
        results = [run(put(backend, batch, dtype)) for batch in batches]
        return {name: [r[name] for r in results] for name in results[0]}
    x = graph.symbolic(("N", inputs.shape[1]), backend.dtype(dtype))
    with plain_operations():  # the plain reductions a graph wants, as Model.export builds it
        outputs = run(x)
    program = graph.build({"x": x}, outputs)
    host = np.dtype(dtype)
    executed = [graph.execute(program, {"x": batch.astype(host)}) for batch in batches]
    return {name: [e[name] for e in executed] for name in outputs}


def _inputs(width: int) -> np.ndarray:
    """O(1) values with a row of large ones (Softmax must subtract the row maximum), large
    magnitudes (Sigmoid saturates) and exact zeros (ReLU's kink)."""
    values = normal(generator(31), max(BATCHES), width, scale=2.0)
    values[0, :2] = 0.0
    values[1] = representable(1000.0 + np.arange(width) / 8)
    values[2, :3] = representable([-40.0, 20.0, 40.0])
    return values


def _scenario(make: Callable[[Backend, str], Any], width: int, kinds: tuple[str, str]) -> Scenario:
    """Forward (and predictions, where the part makes some) of the part ``make`` builds."""

    def scenario(backend: Backend, dtype: str) -> list[Output]:
        part = make(backend, dtype)

        def run(x: Any) -> dict[str, Any]:
            output = part.forward(x)
            found = {"output": output}
            if hasattr(part, "predictions"):
                found["predictions"] = part.predictions(output)
            return found

        return _outputs(backend, dtype, run, width, kinds)

    return scenario


def _outputs(
    backend: Backend, dtype: str, run: Pass, width: int, kinds: tuple[str, str]
) -> list[Output]:
    results = forward_outputs(backend, dtype, run, _inputs(width))
    host = backend.graph is not None
    return [
        Output(
            f"{name} (batch {n})",
            value,
            kinds[0] if name == "output" else "exact",
            dtype=None if name == "predictions" else "requested",
            host=host,
        )
        for name, values in results.items()
        for n, value in zip(BATCHES, values, strict=True)
    ]


def _model(backend: Backend, dtype: str) -> list[Output]:
    """The spiral model's inference pass (Dense, ReLU, Dropout off, Dense, Softmax), as
    ``Model.forward`` runs it, with the class labels."""
    from nnx.model import Model  # the model imports what the checks import

    model = Model(seed=0)
    model.add(Dense(4, 16, seed=1, dtype=dtype, backend=backend))
    model.add(ReLU(backend))
    model.add(Dropout(0.2, seed=2, backend=backend))
    model.add(Dense(16, 3, seed=3, dtype=dtype, backend=backend))
    model.add(Softmax(backend))
    # O(1) weights: the book's 0.01 scale would leave every output near 1/3.
    rng = generator(32)
    for layer in model.layers:
        if layer.trainable:
            layer.set_parameters(*[normal(rng, *p.shape) for p in layer.get_parameters()])
    from nnx.losses import CategoricalCrossentropy

    model.set(loss=CategoricalCrossentropy(backend))
    model.finalize()

    def run(x: Any) -> dict[str, Any]:
        output = model.forward(x, training=False)
        return {"output": output, "predictions": model.output_layer_activation.predictions(output)}

    return _outputs(backend, dtype, run, 4, ("reduction", "exact"))


def _part(cls: Any) -> Callable[[Backend, str], Any]:
    return lambda backend, dtype: cls(backend)


_WIDTH = 5
CHECKS = (
    Check(
        "Dense",
        "layers",
        _scenario(
            lambda b, d: Dense(_WIDTH, 4, seed=3, dtype=d, backend=b),
            _WIDTH,
            ("reduction", "exact"),
        ),
        kind="forward",
    ),
    Check(
        "Dropout",
        "layers",
        _scenario(lambda b, d: Dropout(0.3, seed=7, backend=b), _WIDTH, ("exact", "exact")),
        kind="forward",
    ),
    Check("ReLU", "activations", _scenario(_part(ReLU), _WIDTH, ("exact", "exact")), "forward"),
    Check(
        "Softmax",
        "activations",
        _scenario(_part(Softmax), _WIDTH, ("reduction", "exact")),
        "forward",
    ),
    Check(
        "Sigmoid",
        "activations",
        _scenario(_part(Sigmoid), _WIDTH, ("elementwise", "exact")),
        "forward",
    ),
    Check("Linear", "activations", _scenario(_part(Linear), _WIDTH, ("exact", "exact")), "forward"),
    Check("Model", "model", _model, kind="forward"),
)
