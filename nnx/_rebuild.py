"""The classes a model file may name, and a model built from a file's description.

Only nnx's own classes (the tables below) and those a caller passes to ``Model.load(classes=)``
are ever looked up; nothing is imported by a name a file gives. Each layer's config is checked
against the file's tensors before the layer allocates anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nnx._component import Component
from nnx.accuracy import Accuracy, CategoricalAccuracy, RegressionAccuracy
from nnx.activations import Linear, ReLU, Sigmoid, Softmax
from nnx.layers import Dense, Dropout, Layer
from nnx.losses import (
    BinaryCrossentropy,
    CategoricalCrossentropy,
    Loss,
    MeanAbsoluteError,
    MeanSquaredError,
)
from nnx.optimizers import SGD, Adagrad, Adam, Optimizer, RMSprop

__all__ = [
    "KINDS",
    "LAYERS",
    "PARTS",
    "build",
    "layer_classes",
    "layer_specs",
    "part_spec",
    "tables",
]


def _table(*classes: type) -> dict[str, type]:
    return {cls.__name__: cls for cls in classes}


# The classes a file can name: nnx's own, and those a caller passes to load_model(classes=...).
# Nothing else is ever looked up or imported.
LAYERS = _table(Dense, Dropout, ReLU, Softmax, Sigmoid, Linear)
LOSSES = _table(CategoricalCrossentropy, BinaryCrossentropy, MeanSquaredError, MeanAbsoluteError)
OPTIMIZERS = _table(SGD, Adagrad, RMSprop, Adam)
ACCURACIES = _table(CategoricalAccuracy, RegressionAccuracy)
# What each kind of part is, and nnx's classes of it.
KINDS: dict[str, tuple[type[Component], dict[str, type]]] = {
    "layer": (Layer, LAYERS),
    "loss": (Loss, LOSSES),
    "optimizer": (Optimizer, OPTIMIZERS),
    "accuracy": (Accuracy, ACCURACIES),
}
PARTS = ("loss", "optimizer", "accuracy")  # the model's attributes besides its layers


def layer_classes() -> dict[str, type]:
    """nnx's own layer classes by name: what a file can name without ``classes=``."""
    return dict(LAYERS)


def layer_specs(model: Any) -> list[dict[str, Any] | None]:
    """Class name and constructor arguments of each of the model's layers, as files store them."""
    return [part_spec(layer, "layer") for layer in model.layers]


def part_spec(part: Any, what: str) -> dict[str, Any] | None:
    """Class name and constructor arguments of a layer, loss, optimizer or accuracy."""
    if part is None:
        return None
    base, table = KINDS[what]
    name = type(part).__name__
    if not isinstance(part, base) or (name in table and table[name] is not type(part)):
        raise TypeError(
            f"save: expected the {what} as an nnx {base.__name__} under a name of its own, got "
            f"{what}={type(part).__qualname__} from {type(part).__module__}"
            + (f", which shadows nnx's {name}; rename the class." if name in table else ".")
        )
    config: dict[str, Any] = part.config()
    return {"class": name, "config": config}


def tables(classes: Sequence[type]) -> dict[str, dict[str, type]]:
    """nnx's classes of each kind, with the caller's own added under their names."""
    tables = {what: dict(table) for what, (_, table) in KINDS.items()}
    for cls in classes:
        what = next((w for w, (base, _) in KINDS.items() if _is_subclass(cls, base)), None)
        if what is None or tables[what].get(cls.__name__, cls) is not cls:
            raise TypeError(
                f"load: expected classes of nnx layers, losses, optimizers or accuracies under "
                f"names of their own, got {cls!r}."
            )
        tables[what][cls.__name__] = cls
    return tables


def _is_subclass(cls: Any, base: type) -> bool:
    return isinstance(cls, type) and issubclass(cls, base)


def make(entry: Any, table: dict[str, type], what: str, backend: Any) -> Any:
    """An instance of the class ``entry`` names in ``table``, built from its config."""
    name, config = entry["class"], entry.get("config", {})
    if not isinstance(name, str) or name not in table:
        raise ValueError(
            f"unknown {what} class {name!r}; expected one of {', '.join(table)}, or pass your "
            "own class with Model.load(path, classes=[...])"
        )
    if not isinstance(config, dict):
        raise TypeError(f"expected the {what} config as a JSON object")
    return table[name](**config, backend=backend)


def build(
    spec: dict[str, Any],
    tensors: dict[str, Any],
    backend: Any,
    model_cls: type,
    tables: dict[str, dict[str, type]],
) -> Any:
    """The model described by ``spec`` on ``backend``; its state is filled in later."""
    model = model_cls()
    seed = spec.get("seed")
    if seed is not None and (type(seed) is not int or seed < 0):
        raise ValueError(f"seed={seed!r} is not a whole number >= 0")
    model.seed = seed
    for i, entry in enumerate(spec["layers"]):
        check_shapes(entry, i, tensors, tables["layer"])  # before anything is allocated
        model.add(make(entry, tables["layer"], "layer", backend))
    for key in PARTS:
        if spec[key] is not None:
            model.set(**{key: make(spec[key], tables[key], key, backend)})
    return model


def check_shapes(entry: Any, index: int, tensors: dict[str, Any], table: dict[str, type]) -> None:
    """The shapes the layer's config declares against the file's tensors, before building."""
    cls = table.get(entry.get("class"))
    config = entry.get("config")
    if cls is None or not issubclass(cls, Layer) or not isinstance(config, dict):
        return  # _make says what is wrong
    for name, shape in cls.shapes(config).items():
        tensor = tensors.get(f"layers.{index}.{name}")
        if tensor is None or tuple(tensor.shape) != tuple(shape):
            got = "is missing" if tensor is None else f"has shape {tuple(tensor.shape)}"
            raise ValueError(
                f"layer {index} is {entry['class']} with {name} of shape {tuple(shape)}, but "
                f"tensor layers.{index}.{name} {got}"
            )
