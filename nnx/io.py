"""Model files (host boundary: arrays travel as NumPy on their way to and from disk).

A model file is one safetensors file: tensors named after the layer list (``layers.0.weights``,
``layers.0.weight_momentums``, ...) and the architecture as JSON in the metadata key ``"nnx"``.
Reading executes nothing from a file: safetensors holds raw numbers, the metadata is plain JSON,
and class names are looked up in the fixed tables below. Writes are atomic.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from nnx._file import ModelFileError, read, write
from nnx._xp import resolve
from nnx.accuracy import CategoricalAccuracy, RegressionAccuracy
from nnx.activations import Linear, ReLU, Sigmoid, Softmax
from nnx.layers import Dense, Dropout, Layer
from nnx.losses import (
    BinaryCrossentropy,
    CategoricalCrossentropy,
    MeanAbsoluteError,
    MeanSquaredError,
)
from nnx.optimizers import OPTIMIZER_STATE, SGD, Adagrad, Adam, RMSprop

__all__ = [
    "ModelFileError",
    "load_checkpoint",
    "load_model",
    "load_parameters",
    "save_checkpoint",
    "save_model",
    "save_parameters",
]

_PARAMETERS = ("weights", "biases")
_STATE = OPTIMIZER_STATE
# Attributes that are state rather than constructor arguments, with their JSON conversion.
_RESTORED = {"iterations": int, "current_learning_rate": float, "precision": float}


def _table(*classes: type) -> dict[str, type]:
    return {cls.__name__: cls for cls in classes}


# The only classes a file can name; nothing else is ever looked up or imported.
_LAYERS = _table(Dense, Dropout, ReLU, Softmax, Sigmoid, Linear)
_LOSSES = _table(CategoricalCrossentropy, BinaryCrossentropy, MeanSquaredError, MeanAbsoluteError)
_OPTIMIZERS = _table(SGD, Adagrad, RMSprop, Adam)
_ACCURACIES = _table(CategoricalAccuracy, RegressionAccuracy)


def save_model(model: Any, path: str | os.PathLike[str]) -> None:
    """Write architecture, parameters and optimizer state of ``model`` to ``path``, atomically."""
    _save(model, Path(path), "model")


def save_parameters(model: Any, path: str | os.PathLike[str]) -> None:
    """Write only the weights and biases of ``model`` (the book's ``save_parameters``)."""
    _save(model, Path(path), "parameters")


def save_checkpoint(model: Any, path: str | os.PathLike[str], training: dict[str, Any]) -> None:
    """A model file plus where training stands (``training``: epoch, history, ...)."""
    _save(model, Path(path), "model", training)


def load_checkpoint(model: Any, path: str | os.PathLike[str]) -> dict[str, Any]:
    """Restore parameters and optimizer state of ``model`` from a checkpoint; return its
    training record. The file must describe the same architecture as ``model``."""
    path = Path(path)
    spec, tensors = read(path)
    training = spec.get("training")
    if not isinstance(training, dict):
        raise ModelFileError(f"{path}: a model file, not a checkpoint (no training record).")
    mine = [_part_spec(layer, _LAYERS, "layer") for layer in model.layers]
    if (
        spec.get("layers") != mine
        or spec.get("optimizer", {}).get("class") != type(model.optimizer).__name__
    ):
        raise ModelFileError(
            f"{path}: the checkpoint's layers or optimizer differ from this model's; resume "
            "with the model the checkpoint was written from (or nnx.Model.load(path))."
        )
    _restore(path, model, tensors, spec.get("tensors"))
    for key, value in spec["optimizer"].get("state", {}).items():
        setattr(model.optimizer, key, _RESTORED[key](value))
    return training


def _save(model: Any, path: Path, kind: str, training: dict[str, Any] | None = None) -> None:
    spec: dict[str, Any] = {"kind": kind}
    if training is not None:
        spec["training"] = training
    spec["layers"] = [_part_spec(layer, _LAYERS, "layer") for layer in model.layers]
    if kind == "model":
        spec["seed"] = model.seed
        spec["loss"] = _part_spec(model.loss, _LOSSES, "loss")
        spec["optimizer"] = _part_spec(model.optimizer, _OPTIMIZERS, "optimizer")
        spec["accuracy"] = _part_spec(model.accuracy, _ACCURACIES, "accuracy")
    tensors = _host_tensors(model.layers, _PARAMETERS + (_STATE if kind == "model" else ()))
    weights = [array for key, array in tensors.items() if key.endswith(".weights")]
    spec.update(dtype=str(weights[0].dtype) if weights else "float32", tensors=sorted(tensors))
    write(path, tensors, spec)


def _part_spec(part: Any, table: dict[str, type], what: str) -> dict[str, Any] | None:
    """Class name, constructor arguments and restorable state of a layer, loss, ..."""
    if part is None:
        return None
    name = type(part).__name__
    if table.get(name) is not type(part):
        raise TypeError(
            f"save: model files hold nnx's own classes only, got {what}={type(part).__qualname__} "
            f"from {type(part).__module__}. Expected one of: {', '.join(table)}."
        )
    config = part.config() if hasattr(part, "config") else {}
    if isinstance(part, CategoricalAccuracy):
        config = {"binary": bool(part.binary)}
    state = {key: getattr(part, key) for key in _RESTORED if hasattr(part, key)}
    return {"class": name, "config": config, "state": state}


def _host_tensors(layers: list[Layer], names: tuple[str, ...]) -> dict[str, Any]:
    tensors = {}
    for i, layer in enumerate(layers):
        for name in names if layer.trainable else ():
            if hasattr(layer, name):
                array = layer.backend.to_numpy(getattr(layer, name))
                tensors[f"layers.{i}.{name}"] = np.ascontiguousarray(array)
    return tensors


def load_model(
    path: str | os.PathLike[str], *, backend: Any = None, model_cls: type | None = None
) -> Any:
    """Rebuild a model saved by :func:`save_model`, optimizer state included, on ``backend``.

    ``backend`` defaults to the selected one (``nnx.get_backend()``); ``model_cls`` to
    ``nnx.Model``. Raises :class:`ModelFileError` for a truncated, corrupt, foreign or newer file.
    """
    path = Path(path)
    spec, tensors = read(path)
    if spec.get("kind") != "model":
        raise ModelFileError(
            f"{path}: holds parameters only (written by save_parameters), not a model. Build "
            "the model in code, then call model.load_parameters(path)."
        )
    if model_cls is None:
        from nnx.model import Model  # imported late: nnx.model imports this module

        model_cls = Model
    try:
        model = _build(spec, tensors, resolve(backend), model_cls)
    except (TypeError, ValueError, KeyError, AttributeError) as err:
        raise ModelFileError(
            f"{path}: cannot rebuild the model stored in it ({err}). The file is incomplete, "
            "was altered, or was written by another program; save the model again."
        ) from err
    _restore(path, model, tensors, spec.get("tensors"))
    if model.loss is not None:
        model.finalize()
    return model


def load_parameters(model: Any, path: str | os.PathLike[str]) -> None:
    """Set the weights and biases of ``model`` from a parameters or model file.

    Nothing changes unless the file has a pair of the right shapes for every trainable layer.
    """
    path = Path(path)
    _, tensors = read(path)
    indices = sorted(
        int(m[1]) for key in tensors if (m := re.fullmatch(r"layers\.(\d+)\.weights", key))
    )
    layers = [(i, layer) for i, layer in enumerate(model.layers) if layer.trainable]
    if len(indices) != len(layers):
        raise ModelFileError(
            f"{path}: the file has parameters for {len(indices)} trainable layers, the model "
            f"has {len(layers)}. Load it into a model with the architecture it was saved from."
        )
    pairs = []
    for file_index, (i, layer) in zip(indices, layers, strict=True):
        pair = [tensors.get(f"layers.{file_index}.{name}") for name in _PARAMETERS]
        for name, array in zip(_PARAMETERS, pair, strict=True):
            _check_array(path, i, layer, name, array)
        pairs.append(tuple(pair))
    model.set_parameters(pairs)


def _make(entry: Any, table: dict[str, type], what: str, backend: Any, **extra: Any) -> Any:
    """An instance of the class ``entry`` names in ``table``, with its saved state."""
    name, config, state = entry["class"], entry.get("config", {}), entry.get("state", {})
    if not isinstance(name, str) or name not in table:
        raise ValueError(f"unknown {what} class {name!r}; expected one of {', '.join(table)}")
    if not isinstance(config, dict) or not isinstance(state, dict):
        raise TypeError(f"expected the {what} config and state as JSON objects")
    part = table[name](**{**config, **extra}, backend=backend)
    for key, value in state.items():
        if key not in _RESTORED:
            raise ValueError(f"unknown {what} state {key!r}")
        setattr(part, key, None if value is None and key == "precision" else _RESTORED[key](value))
    return part


def _build(spec: dict[str, Any], tensors: dict[str, Any], backend: Any, model_cls: type) -> Any:
    """The model described by ``spec`` on ``backend``; parameters are filled in later."""
    model = model_cls()
    model.seed = spec.get("seed")
    for i, entry in enumerate(spec["layers"]):
        extra = {}
        if entry.get("class") == "Dense":
            # Sizes are checked against the file before anything is allocated; the first draw
            # uses a private generator (NumPy's global one is left alone) and is overwritten.
            weights, config = tensors.get(f"layers.{i}.weights"), entry.get("config", {})
            shape = (config.get("n_inputs"), config.get("n_neurons"))
            if weights is None or weights.shape != shape:
                got = "is missing" if weights is None else f"has shape {weights.shape}"
                raise ValueError(f"layer {i} is Dense{shape}, but tensor layers.{i}.weights {got}")
            extra = {"seed": 0, "dtype": str(weights.dtype)}
        model.add(_make(entry, _LAYERS, "layer", backend, **extra))
    for key, table in (("loss", _LOSSES), ("optimizer", _OPTIMIZERS), ("accuracy", _ACCURACIES)):
        if spec[key] is not None:
            model.set(**{key: _make(spec[key], table, key, backend)})
    return model


def _restore(path: Path, model: Any, tensors: dict[str, Any], listed: Any) -> None:
    """Put the file's parameters and optimizer state on the model's trainable layers."""
    slots = {
        f"layers.{i}.{name}": (i, layer, name)
        for i, layer in enumerate(model.layers)
        if layer.trainable
        for name in _PARAMETERS + _STATE
    }
    required = {key for key, slot in slots.items() if slot[2] in _PARAMETERS}
    missing = sorted((required | set(listed if isinstance(listed, list) else ())) - set(tensors))
    unexpected = sorted(set(tensors) - set(slots))
    if missing or unexpected:
        raise ModelFileError(
            f"{path}: the tensors do not match the architecture (missing: {missing or 'none'}; "
            f"unexpected: {unexpected or 'none'}). The file is incomplete or was altered."
        )
    for key, array in tensors.items():
        _check_array(path, *slots[key], array)
    for key, array in tensors.items():  # all checked: only now change the model
        _, layer, name = slots[key]
        setattr(layer, name, layer.backend.asarray(array, layer.dtype))


def _check_array(path: Path, index: int, layer: Any, name: str, array: Any) -> None:
    where = f"layer {index} (Dense(n_inputs={layer.n_inputs}, n_neurons={layer.n_neurons}))"
    if array is None:
        raise ModelFileError(f"{path}: no {name} for {where} in the file.")
    expected = (layer.n_inputs if name.startswith("weight") else 1, layer.n_neurons)
    if array.dtype.kind != "f" or tuple(array.shape) != expected:
        raise ModelFileError(
            f"{path}: {where} expects {name} of shape {expected} (floats), the file has shape "
            f"{tuple(array.shape)} ({array.dtype}). Load the file into a model with the "
            "architecture it was saved from."
        )
