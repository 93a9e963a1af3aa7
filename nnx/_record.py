"""A checkpoint's training record: what a resumed run needs besides the model's state (the
epoch, the history, the arguments that fix the order of the batches; and in files written
before the state held them, the generators of the layers that draw their own random numbers),
written and read back checked."""

from __future__ import annotations

import math
from typing import Any

from nnx import io

__all__ = ["HISTORY_KEYS", "read", "write"]

# What an epoch records in the history (checkpoints keep it; a resume checks it).
HISTORY_KEYS = frozenset(
    ("loss", "data_loss", "reg_loss", "accuracy", "learning_rate", "val_loss", "val_accuracy")
)


def write(
    model: Any, path: Any, epoch: int, history: dict[str, list[float]], arguments: Any
) -> None:
    """Save ``model`` and the record of a run at the end of ``epoch`` to ``path``. The layers'
    own generators (a seeded Dropout) are in the model's state (``layers.<i>.random_state``);
    files written before that keep them in the record's ``dropout_rng``, still read."""
    # JSON has no NaN (a model without accuracy records NaN): store null instead.
    stored = {k: [None if math.isnan(v) else v for v in vs] for k, vs in history.items()}
    training = {"epoch": epoch, "history": stored, "arguments": arguments}
    io.save_checkpoint(model, path, training)


def read(model: Any, path: Any, arguments: dict[str, Any], epochs: int) -> tuple[int, Any]:
    """Load the checkpoint at ``path`` into ``model``: (the epochs done, the history). The
    record is checked whole before the model changes: ModelFileError for a damaged one,
    ValueError for a call with other ``arguments`` or fewer ``epochs`` than were run."""
    epoch, history, generators = io.load_checkpoint(
        model, path, lambda training: _checked(model, training, path, arguments, epochs)
    )
    for layer, state in generators:
        layer.set_random_state(state)
    return epoch, history


def _checked(
    model: Any, training: dict[str, Any], path: Any, now: dict[str, Any], epochs: int
) -> tuple[int, Any, Any]:
    try:
        epoch, history, generators, arguments = _parsed(model, training, now)
    except (TypeError, ValueError, LookupError, AttributeError, OverflowError) as err:
        raise io.ModelFileError(f"{path}: a damaged training record ({err}).") from err
    changed = [
        f"{name}={arguments.get(name)!r} (now {value!r})"
        for name, value in now.items()
        if arguments.get(name) != value
    ]
    if changed:
        raise ValueError(
            f"Model.train: resume={str(path)!r} was trained with {', '.join(changed)}; "
            "resume with the same arguments."
        )
    if epoch > epochs:
        raise ValueError(
            f"Model.train: resume={str(path)!r} has run {epoch} epochs already; pass "
            f"epochs >= {epoch} (more epochs go on to the new total)."
        )
    return epoch, history, generators


def _parsed(
    model: Any, training: dict[str, Any], now: dict[str, Any]
) -> tuple[int, Any, Any, dict[str, Any]]:
    """The record's parts, each checked; ValueError (TypeError, KeyError) if damaged."""
    epoch = training["epoch"]
    if type(epoch) is not int or epoch < 1:
        raise ValueError(f"epoch={epoch!r} is not a whole number >= 1")
    arguments = dict(training.get("arguments", now))  # older files: none
    history = {}
    for key, values in dict(training["history"]).items():
        if key not in HISTORY_KEYS:
            raise ValueError(f"history has an unknown key {key!r}")
        if type(values) is not list or len(values) != epoch:
            raise ValueError(f"history[{key!r}] is not a list of {epoch} figures")
        if not all(v is None or (type(v) in (int, float) and math.isfinite(v)) for v in values):
            raise ValueError(f"history[{key!r}] holds something other than finite numbers")
        history[key] = [math.nan if v is None else float(v) for v in values]
    generators = []
    layers = model.layers
    for index, state in dict(training.get("dropout_rng", {})).items():
        if not (str(index).isdigit() and int(index) < len(layers)):
            raise ValueError(f"dropout_rng names layer {index!r}, which the model has not")
        layer = layers[int(index)]
        if layer.random_state() is None:
            raise ValueError(f"dropout_rng names layer {index}, which has no generator")
        probe = layer.backend.rng(0)  # a generator to try the state on first
        probe.bit_generator.state = state
        generators.append((layer, state))
    return epoch, history, generators, arguments
