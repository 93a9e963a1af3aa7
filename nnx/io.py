"""Model files (host boundary: arrays travel as NumPy on their way to and from disk).

A model file is one safetensors file: the tensors are the model's state as ``Model.get_state``
gives it (``layers.0.weights``, ``layers.0.weight_momentums``, ..., ``optimizer.iterations``),
and the architecture is JSON in the metadata key ``"nnx"``: each part's class and ``config()``.
Reading executes nothing from a file: safetensors holds raw numbers, the metadata is plain JSON,
and class names are looked up in the fixed tables below. Writes are atomic. Files of format 1
(before parts declared their state) are read through :func:`_upgrade_v1`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nnx._component import Component, resolve
from nnx._file import ModelFileError, check_ranges, check_writable, read, write
from nnx._state import ITERATIONS, host_state, set_state
from nnx._xp import dtype_name
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
    "ModelFileError",
    "check_writable",
    "layer_classes",
    "layer_specs",
    "load_checkpoint",
    "load_model",
    "load_parameters",
    "save_checkpoint",
    "save_model",
    "save_parameters",
]


def _table(*classes: type) -> dict[str, type]:
    return {cls.__name__: cls for cls in classes}


# The classes a file can name: nnx's own, and those a caller passes to load_model(classes=...).
# Nothing else is ever looked up or imported.
_LAYERS = _table(Dense, Dropout, ReLU, Softmax, Sigmoid, Linear)
_LOSSES = _table(CategoricalCrossentropy, BinaryCrossentropy, MeanSquaredError, MeanAbsoluteError)
_OPTIMIZERS = _table(SGD, Adagrad, RMSprop, Adam)
_ACCURACIES = _table(CategoricalAccuracy, RegressionAccuracy)
# What each kind of part is, and nnx's classes of it.
_KINDS: dict[str, tuple[type[Component], dict[str, type]]] = {
    "layer": (Layer, _LAYERS),
    "loss": (Loss, _LOSSES),
    "optimizer": (Optimizer, _OPTIMIZERS),
    "accuracy": (Accuracy, _ACCURACIES),
}
_PARTS = ("loss", "optimizer", "accuracy")  # the model's attributes besides its layers


def save_model(model: Any, path: str | os.PathLike[str]) -> None:
    """Write architecture, parameters and optimizer state of ``model`` to ``path``, atomically."""
    _save(model, Path(path), "model")


def save_parameters(model: Any, path: str | os.PathLike[str]) -> None:
    """Write only the parameters of ``model`` (the book's ``save_parameters``)."""
    _save(model, Path(path), "parameters")


def save_checkpoint(model: Any, path: str | os.PathLike[str], training: dict[str, Any]) -> None:
    """A model file plus where training stands (``training``: epoch, history, ...)."""
    _save(model, Path(path), "model", training)


def load_checkpoint(
    model: Any, path: str | os.PathLike[str], check: Callable[[dict[str, Any]], Any] = dict
) -> Any:
    """Restore parameters and optimizer state of ``model`` from a checkpoint; return
    ``check(training record)``. The file must describe the same architecture and optimizer
    settings as ``model``, and ``check`` (the training loop's) must accept the record: all of
    that, and every tensor, is checked before anything in the model changes."""
    path = Path(path)
    spec, tensors = _read(path)
    training = spec.get("training")
    if not isinstance(training, dict):
        raise ModelFileError(f"{path}: a model file, not a checkpoint (no training record).")
    mine = layer_specs(model)
    optimizer = _part_spec(model.optimizer, "optimizer") or {}
    theirs = spec.get("optimizer") or {}
    if spec.get("layers") != mine or theirs.get("class") != optimizer.get("class"):
        raise ModelFileError(
            f"{path}: the checkpoint's layers or optimizer differ from this model's; resume "
            "with the model the checkpoint was written from (or nnx.Model.load(path))."
        )
    if "arguments" in training:  # written by an nnx that records what a resume must repeat
        changed = _changed(theirs.get("config") or {}, optimizer.get("config") or {})
        if changed:
            raise ValueError(
                f"Model.train: resume={str(path)!r} was trained with other optimizer settings "
                f"({changed}); resume with the optimizer the run started with."
            )
    record = check(training)  # raises what it finds (a damaged record, other arguments)
    _set_state(path, model.layers, model.optimizer, tensors)
    return record


def layer_classes() -> dict[str, type]:
    """nnx's own layer classes by name: what a file can name without ``classes=``."""
    return dict(_LAYERS)


def layer_specs(model: Any) -> list[dict[str, Any] | None]:
    """Class name and constructor arguments of each of the model's layers, as files store them."""
    return [_part_spec(layer, "layer") for layer in model.layers]


def _changed(theirs: dict[str, Any], mine: dict[str, Any]) -> str:
    """``name: file value -> this value`` for every setting that differs; empty if none."""
    names = sorted(set(theirs) | set(mine))
    return ", ".join(
        f"{name}: {theirs.get(name)!r} -> {mine.get(name)!r}"
        for name in names
        if theirs.get(name) != mine.get(name)
    )


def _save(model: Any, path: Path, kind: str, training: dict[str, Any] | None = None) -> None:
    spec: dict[str, Any] = {"kind": kind}
    if training is not None:
        spec["training"] = training
    spec["layers"] = layer_specs(model)
    if kind == "model":
        spec["seed"] = model.seed
        for key in _PARTS:
            spec[key] = _part_spec(getattr(model, key), key)
    tensors = host_state(model.layers, model.optimizer if kind == "model" else None)
    write(path, tensors, {**spec, "tensors": list(tensors)})


def _part_spec(part: Any, what: str) -> dict[str, Any] | None:
    """Class name and constructor arguments of a layer, loss, optimizer or accuracy."""
    if part is None:
        return None
    base, table = _KINDS[what]
    name = type(part).__name__
    if not isinstance(part, base) or (name in table and table[name] is not type(part)):
        raise TypeError(
            f"save: expected the {what} as an nnx {base.__name__} under a name of its own, got "
            f"{what}={type(part).__qualname__} from {type(part).__module__}"
            + (f", which shadows nnx's {name}; rename the class." if name in table else ".")
        )
    config: dict[str, Any] = part.config()
    return {"class": name, "config": config}


def load_model(
    path: str | os.PathLike[str],
    *,
    backend: Any = None,
    model_cls: type,
    classes: Sequence[type] = (),
) -> Any:
    """Rebuild a model saved by :func:`save_model`, optimizer state included, on ``backend``.

    ``backend`` defaults to the selected one (``nnx.get_backend()``); ``model_cls`` is the
    class to build (``nnx.Model.load`` passes its own). ``classes`` are your own layers,
    losses, optimizers or accuracies that the file may name besides nnx's
    (``classes=[Scale]``); no other class is ever looked up.
    Raises :class:`ModelFileError` for a truncated, corrupt, foreign or newer file.
    """
    path = Path(path)
    tables = _tables(classes)  # the caller's mistake, not the file's: checked first
    spec, tensors = _read(path)
    if spec.get("kind") != "model":
        raise ModelFileError(
            f"{path}: holds parameters only (written by save_parameters), not a model. Build "
            "the model in code, then call model.load_parameters(path)."
        )
    try:
        model = _build(spec, tensors, resolve(backend), model_cls, tables)
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError, RecursionError) as err:
        raise ModelFileError(
            f"{path}: cannot rebuild the model stored in it ({err}). The file is incomplete, "
            "was altered, or was written by another program; save the model again."
        ) from err
    _set_state(path, model.layers, model.optimizer, tensors)
    if model.loss is not None:
        model.finalize()
    return model


def load_parameters(model: Any, path: str | os.PathLike[str]) -> None:
    """Set the parameters of ``model`` from a parameters or model file.

    The file's trainable layers are matched in order with the model's (a model without its
    Dropout layers takes the parameters of one with them). Nothing changes unless the file has
    parameters of the right shapes for every trainable layer.
    """
    path = Path(path)
    _, tensors = _read(path)
    in_file = sorted(
        {int(m[1]) for key in tensors if (m := re.fullmatch(r"layers\.(\d+)\.(\w+)", key))}
    )
    layers = [(i, layer) for i, layer in enumerate(model.layers) if layer.trainable]
    if len(in_file) != len(layers):
        raise ModelFileError(
            f"{path}: the file has parameters for {len(in_file)} trainable layers, the model "
            f"has {len(layers)}. Load it into a model with the architecture it was saved from."
        )
    state = {}
    for file_index, (i, layer) in zip(in_file, layers, strict=True):
        for name in layer.parameters:
            key = f"layers.{file_index}.{name}"
            if key not in tensors:
                raise ModelFileError(f"{path}: no {name} for layer {i} ({layer}).")
            state[f"layers.{i}.{name}"] = tensors[key]
    _set_state(path, model.layers, None, state)


def _read(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The header and tensors of a model file, in today's format whatever its version."""
    spec, tensors = read(path)
    listed = spec.get("tensors")
    missing = sorted(set(listed) - set(tensors)) if isinstance(listed, list) else []
    if not isinstance(listed, list) or not all(isinstance(key, str) for key in listed) or missing:
        raise ModelFileError(
            f"{path}: the header lists other tensors than the file holds (missing: "
            f"{missing or 'the list itself'}). The file is incomplete or was altered."
        )
    return _upgrade_v1(path, spec, tensors) if spec["format_version"] == 1 else (spec, tensors)


def _upgrade_v1(
    path: Path, spec: dict[str, Any], tensors: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A format-1 file in format 2's terms.

    Format 1 kept the optimizer's counters and a regression accuracy's precision as "state"
    beside each part's config, and a Dense layer's dtype only in its tensors. Format 2 keeps
    the counter as the tensor ``optimizer.iterations`` (the learning rate follows from it),
    the precision and the dtype in the configs.
    """
    spec, tensors = dict(spec), dict(tensors)
    try:
        layers = []
        for i, entry in enumerate(spec.get("layers") or []):
            entry = {"class": entry["class"], "config": dict(entry.get("config") or {})}
            cls: Any = _LAYERS.get(entry["class"])
            first = next(iter(cls.parameters), None) if cls is not None else None
            tensor = tensors.get(f"layers.{i}.{first}")
            if tensor is not None:  # a trainable layer: its dtype is its tensors'
                entry["config"]["dtype"] = str(tensor.dtype)
            layers.append(entry)
        spec["layers"] = layers
        for key in _PARTS:
            entry = spec.get(key)
            if entry is None:
                continue
            state = entry.get("state") or {}
            spec[key] = {"class": entry["class"], "config": dict(entry.get("config") or {})}
            if "precision" in state:
                spec[key]["config"]["precision"] = state["precision"]
            if "iterations" in state:
                iterations = state["iterations"]
                if type(iterations) is not int or iterations < 0:
                    raise ValueError(f"iterations={iterations!r} is not a whole number >= 0")
                tensors[ITERATIONS] = np.asarray(iterations, dtype=np.int64)
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError, RecursionError) as err:
        raise ModelFileError(
            f"{path}: a format-1 model file that cannot be read ({err}). The file is "
            "incomplete or was altered."
        ) from err
    return spec, tensors


def _tables(classes: Sequence[type]) -> dict[str, dict[str, type]]:
    """nnx's classes of each kind, with the caller's own added under their names."""
    tables = {what: dict(table) for what, (_, table) in _KINDS.items()}
    for cls in classes:
        what = next((w for w, (base, _) in _KINDS.items() if _is_subclass(cls, base)), None)
        if what is None or tables[what].get(cls.__name__, cls) is not cls:
            raise TypeError(
                f"load: expected classes of nnx layers, losses, optimizers or accuracies under "
                f"names of their own, got {cls!r}."
            )
        tables[what][cls.__name__] = cls
    return tables


def _is_subclass(cls: Any, base: type) -> bool:
    return isinstance(cls, type) and issubclass(cls, base)


def _make(entry: Any, table: dict[str, type], what: str, backend: Any) -> Any:
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


def _build(
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
    # Building a layer draws initial weights (which the file's replace): from NumPy's global
    # generator where the layer has no seed. The book's nnfs.init() seeds that generator, so
    # loading a model must not move it.
    global_state = np.random.get_state()
    try:
        for i, entry in enumerate(spec["layers"]):
            _check_shapes(entry, i, tensors, tables["layer"])  # before anything is allocated
            model.add(_make(entry, tables["layer"], "layer", backend))
    finally:
        np.random.set_state(global_state)
    for key in _PARTS:
        if spec[key] is not None:
            model.set(**{key: _make(spec[key], tables[key], key, backend)})
    return model


def _check_shapes(entry: Any, index: int, tensors: dict[str, Any], table: dict[str, type]) -> None:
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


def _check_ranges(path: Path, layers: list[Any], tensors: dict[str, Any]) -> None:
    """Each layer's tensors against its dtype's range (1e300 would load as infinity)."""
    owners = {}
    for name in tensors:
        match = re.fullmatch(r"layers\.(\d+)\.\w+", name)
        layer = layers[int(match[1])] if match and int(match[1]) < len(layers) else None
        if layer is not None and layer.dtype is not None:
            label = f"layer {match[1]}, {layer}"  # type: ignore[index]
            owners[name] = (dtype_name(layer.xp, layer.dtype), label)
    check_ranges(path, tensors, owners)


def _set_state(path: Path, layers: list[Any], optimizer: Any, tensors: dict[str, Any]) -> None:
    """The file's tensors into the layers and optimizer, all checked (shapes, float dtypes, the
    counter, finite values, values the layers' dtype can hold) before any is set."""
    for name, tensor in tensors.items():
        if tensor.dtype.kind == "f" and not np.all(np.isfinite(tensor)):
            raise ModelFileError(
                f"{path}: {name} holds NaN or infinity; the file was saved from a diverged "
                "run or changed since. Load an earlier file, or train again."
            )
    _check_ranges(path, layers, tensors)
    try:
        set_state(layers, optimizer, tensors)
    except ValueError as err:
        raise ModelFileError(
            f"{path}: the tensors do not match the architecture: {err} Load the file into a "
            "model with the architecture it was saved from."
        ) from err
