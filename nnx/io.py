"""Model files (host boundary: arrays travel as NumPy on their way to and from disk).

A model file is one safetensors file: the tensors are the model's state as ``Model.get_state``
gives it (``layers.0.weights``, ``layers.0.weight_momentums``, ..., ``optimizer.iterations``,
and ``layers.<i>.random_state`` for a seeded Dropout's generator),
and the architecture is JSON in the metadata key ``"nnx"``: each part's class and ``config()``.
Reading executes nothing from a file: safetensors holds raw numbers, the metadata is plain JSON,
and class names are looked up in fixed tables (``nnx._rebuild``). Writes are atomic. Files of
format 1 (before parts declared their state) are read through :func:`_upgrade_v1`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nnx._component import resolve
from nnx._file import ModelFileError, check_ranges, check_writable, read, write
from nnx._rebuild import LAYERS, PARTS, build, layer_classes, layer_specs, part_spec, tables
from nnx._state import ITERATIONS, RANDOM, host_state, set_state
from nnx._xp import dtype_name

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
    optimizer = part_spec(model.optimizer, "optimizer") or {}
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
        for key in PARTS:
            spec[key] = part_spec(getattr(model, key), key)
    tensors = host_state(model.layers, model.optimizer if kind == "model" else None)
    for name, tensor in tensors.items():
        # A file that load and resume refuse is worse than none: the last good one stays.
        if tensor.dtype.kind == "f" and not np.all(np.isfinite(tensor)):
            where = "Model.save" if kind == "model" else "Model.save_parameters"
            where = "Model.train: checkpoint" if training is not None else where
            raise ValueError(
                f"{where}: {name} holds NaN or infinity (a diverged run); nothing was written, "
                f"and {path} is left as it was. Load an earlier file, or train again."
            )
    write(path, tensors, {**spec, "tensors": list(tensors)})


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
    named = tables(classes)  # the caller's mistake, not the file's: checked first
    spec, tensors = _read(path)
    if spec.get("kind") != "model":
        raise ModelFileError(
            f"{path}: holds parameters only (written by save_parameters), not a model. Build "
            "the model in code, then call model.load_parameters(path)."
        )
    # Building a layer draws initial weights (which the file's replace): from NumPy's global
    # generator where the layer has no seed. The book's nnfs.init() seeds that generator, so
    # loading a model must not move it.
    global_state = np.random.get_state()
    try:
        model = build(spec, tensors, resolve(backend), model_cls, named)
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError, RecursionError) as err:
        raise ModelFileError(
            f"{path}: cannot rebuild the model stored in it ({err}). The file is incomplete, "
            "was altered, or was written by another program; save the model again."
        ) from err
    finally:
        np.random.set_state(global_state)
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
    in_file = sorted(  # the layers with parameters: not a Dropout's generator
        {int(m[1]) for key in tensors if (m := re.fullmatch(r"layers\.(\d+)\.(\w+)", key))
         and m[2] != RANDOM}
    )  # fmt: skip
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
            cls: Any = LAYERS.get(entry["class"])
            first = next(iter(cls.parameters), None) if cls is not None else None
            tensor = tensors.get(f"layers.{i}.{first}")
            if tensor is not None:  # a trainable layer: its dtype is its tensors'
                entry["config"]["dtype"] = str(tensor.dtype)
            layers.append(entry)
        spec["layers"] = layers
        for key in PARTS:
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
