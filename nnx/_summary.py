"""``Model.summary()``: one table of the layers, their output widths and parameter counts, then
the totals, where the model lives and what trains it (Keras users look there first)."""

from __future__ import annotations

import math
from typing import Any

from nnx._xp import dtype_name
from nnx.losses import SoftmaxCategoricalCrossentropy

__all__ = ["check_model", "check_widths", "summary"]


def check_model(model: Any, caller: str) -> None:
    """Raise a clear error where the model's parts do not fit together: no layers or loss,
    the chapter-10 helper as a model's loss, an accuracy without predictions to compare,
    widths that do not chain."""
    if not model.layers:
        raise ValueError(f"{caller}: the model has no layers; call model.add(...).")
    if model.loss is None:
        raise ValueError(f"{caller}: no loss; call model.set(loss=..., optimizer=...).")
    if isinstance(model.loss, SoftmaxCategoricalCrossentropy):
        raise TypeError(
            f"{caller}: SoftmaxCategoricalCrossentropy is the book's chapter-10 helper; in a "
            "model, end with Softmax() and set loss=CategoricalCrossentropy(): the model "
            "takes the same fused backward pass by itself."
        )
    takes_outputs = getattr(model.accuracy, "takes", "") == "outputs"
    if (
        model.accuracy is not None
        and not takes_outputs
        and not hasattr(model.layers[-1], "predictions")
    ):
        raise TypeError(
            f"{caller}: the last layer, {type(model.layers[-1]).__name__}, makes no "
            "predictions for the accuracy; end the model with an activation (Softmax, "
            "Sigmoid, Linear, ReLU)."
        )
    check_widths(model.layers, caller)


def check_widths(layers: list[Any], caller: str) -> None:
    """Raise ValueError, naming both layers, where a layer's inputs are not the width the last
    width-fixing layer before it (a Dense; activations keep the width) gives."""
    given: tuple[int, Any] | None = None
    for i, layer in enumerate(layers):
        if layer.n_inputs is not None and given is not None:
            j, before = given
            if before.n_outputs != layer.n_inputs:
                raise ValueError(
                    f"{caller}: layer {i}, {layer}, expects {layer.n_inputs} inputs, "
                    f"but layer {j}, {before}, gives {before.n_outputs}. Make them "
                    f"agree: n_inputs={before.n_outputs} for layer {i}, or "
                    f"n_neurons={layer.n_inputs} for layer {j}."
                )
        if layer.n_outputs is not None:
            given = (i, layer)


def summary(model: Any) -> str:
    """The text of ``model.summary()`` (see :meth:`nnx.Model.summary`)."""
    check_widths(model.layers, "Model.summary")
    rows: list[tuple[str, ...]] = [("#", "layer", "output shape", "parameters", "trainable")]
    width: int | None = None
    total = trainable = 0
    for i, layer in enumerate(model.layers):
        # A layer that fixes its width (Dense) sets it; the others (activations) keep it.
        width = layer.n_outputs if layer.n_outputs is not None else width
        count = sum(math.prod(array.shape) for array in layer.get_parameters())
        total += count
        trainable += count if layer.trainable else 0
        rows.append(
            (
                str(i),
                str(layer),
                f"(batch, {'?' if width is None else width})",
                f"{count:,}",
                "yes" if layer.trainable else "no",
            )
        )
    lines = _table(rows, right=(0, 3))
    lines.append(f"parameters: {total:,} ({trainable:,} trainable)")
    if model.layers:
        lines.append(_where(model.layers))
    for role in ("loss", "optimizer", "accuracy"):
        part = getattr(model, role)
        lines.append(f"{role}: {'-' if part is None else _described(part)}")
    iterations = getattr(model.optimizer, "iterations", 0)
    if iterations:
        lines.append(f"trained: {iterations:,} optimizer steps")
    return "\n".join(lines)


def _table(rows: list[tuple[str, ...]], right: tuple[int, ...]) -> list[str]:
    """Columns padded to their widest cell; the columns in ``right`` aligned right."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [
            cell.rjust(w) if i in right else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def _where(layers: list[Any]) -> str:
    backend = layers[0].backend
    dtypes = [layer.dtype for layer in layers if layer.dtype is not None]
    dtype = dtype_name(backend.xp, dtypes[0]) if dtypes else "float32"
    return f"backend: {backend.name} on {backend.device}, {dtype}"


def _described(part: Any) -> str:
    """``Adam(learning_rate=0.05, decay=5e-07, ...)``: the class and what rebuilds it."""
    config = {k: v for k, v in part.config().items() if k != "fused" and v is not None}
    arguments = ", ".join(f"{name}={value!r}" for name, value in config.items())
    return f"{type(part).__name__}({arguments})"
