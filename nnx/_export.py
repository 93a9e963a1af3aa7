"""Export to ONNX: the model's own inference pass, run on a backend whose arrays build a graph.

No layer is described twice. The layers are copied onto the ``onnx`` backend (their parameters
become constants of the graph), ``Model.forward`` runs on a symbolic input whose batch
dimension is named ``"N"``, and the arrays that come out are the graph's outputs. A layer whose
forward pass can be traced (no Python branch on a value, no trip to the host) exports, nnx's
and yours alike. Host boundary: :func:`run_exported` runs a file on NumPy data.
"""

from __future__ import annotations

import copy
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from backends import Backend, BackendError, load
from nnx._component import Component
from nnx._door import formula
from nnx._file import ModelFileError, atomic_write, check_writable
from nnx._onnx_door import check_batch, check_file, check_samples
from nnx._rebuild import layer_specs
from nnx._version import __version__
from nnx._xp import dtype_name, plain_operations

__all__ = ["ExportError", "INPUT", "OUTPUT", "LABELS", "export", "program", "run_exported"]

# The names of the graph's input and outputs (ONNX Runtime feeds and fetches by name).
INPUT, OUTPUT, LABELS = "X", "output", "labels"
METADATA_KEY = "nnx"  # the file's metadata: JSON under this key


class ExportError(ValueError):
    """A model that cannot be exported: a part whose forward pass cannot become a graph."""


def export(model: Any, path: str | os.PathLike[str], *, labels: bool = False) -> dict[str, Any]:
    """Write ``model``'s inference graph to ``path`` as an ONNX file; returns its metadata.

    Everything is checked, and the graph built, before the file is written (atomically): a
    model that cannot be exported leaves no file behind.
    """
    if not getattr(model, "_finalized", False):
        raise ValueError("Model.export: call model.finalize() after add() and set() first.")
    check_writable(path, "path")
    payload, metadata = program(model, labels=labels)
    atomic_write(Path(path), payload)
    return metadata


def program(
    model: Any, *, labels: bool = False, backend: Backend | None = None
) -> tuple[bytes, dict[str, Any]]:
    """The serialized ONNX model of ``model``'s inference pass, and the metadata it holds.

    ``backend``: the backend whose arrays build the graph (default: ``onnx``)."""
    onnx = backend if backend is not None else load("onnx")
    graph = onnx.graph
    assert graph is not None  # a backend that builds graphs
    if labels and model.loss.targets not in ("classes", "binary"):
        raise ValueError(
            f"Model.export: labels=True adds class labels, but this model's loss "
            f"({type(model.loss).__name__}) fits values, not classes: its predictions are its "
            "outputs. Export without labels."
        )
    if labels and not hasattr(model.layers[-1], "predictions"):
        raise ExportError(
            f"Model.export: labels=True takes the last layer's predictions, but "
            f"{model.layers[-1]} makes none; end the model with Softmax or Sigmoid."
        )
    dtype = dtype_name(model.backend.xp, model.dtype)
    layers = [_onto(onnx, layer, i) for i, layer in enumerate(model.layers)]
    X = graph.symbolic(("N", model.n_inputs), onnx.dtype(dtype))
    # The plain reductions (ReduceSum, ReduceMax) instead of the tricks that make
    # eager libraries fast, and no constants of this graph left in nnx's cache.
    with plain_operations():
        # The copied layers' own forward formulas, in turn, as Model.forward runs them when
        # the model trains: the graph is the code that computes.
        output = X
        for i, layer in enumerate(layers):
            output = _traced(i, layer, formula(layer, "forward"))(output, False)
        outputs = {OUTPUT: output}
        if labels:
            predictions = _traced(len(layers) - 1, layers[-1], formula(layers[-1], "predictions"))
            outputs[LABELS] = predictions(outputs[OUTPUT])
    payload = graph.build({INPUT: X}, outputs)
    return _described(payload, model, dtype, list(outputs))


def _described(
    payload: bytes, model: Any, dtype: str, outputs: list[str]
) -> tuple[bytes, dict[str, Any]]:
    """The file's header filled in: nnx as its producer, and what a reader of the file needs
    (input, outputs, opset, nnx's version, the layers) as JSON under the metadata key "nnx"."""
    import onnx as onnx_format  # the file format's own package, of the onnx extra

    proto = onnx_format.load_from_string(payload)
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    metadata = {
        "format": "nnx-onnx",
        "nnx_version": __version__,
        "input": {"name": INPUT, "shape": ["N", model.n_inputs], "dtype": dtype},
        "outputs": outputs,
        "opset": opset,
        "layers": layer_specs(model),
        # What the layers hold, counted: the file's front door (nnx._onnx_door) refuses
        # constants beyond it, for layers of a reader's own too.
        "parameters": sum(
            math.prod(p.shape) for l in model.trainable_layers for p in l.get_parameters()
        ),
    }
    proto.producer_name, proto.producer_version = "nnx", __version__
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(metadata)
    return proto.SerializeToString(), metadata


def _onto(onnx: Backend, layer: Component, index: int) -> Any:
    """A copy of ``layer`` on the onnx backend; the model's own layer is left as it was."""
    clone = copy.copy(layer)  # a __dict__ of its own: moving it rebinds the copy's attributes
    for name in clone.parts:  # a part inside the layer: copied too, not shared
        setattr(clone, name, _onto(onnx, getattr(clone, name), index))
    try:
        clone.to(onnx)
    except Exception as err:
        raise ExportError(
            f"Model.export: layer {index} ({layer}) cannot move its arrays into a "
            f"graph ({type(err).__name__}: {err})."
        ) from err
    return clone


def _traced(index: int, layer: Any, method: Any) -> Any:
    """``method`` of the copied layer, with any failure of the trace named after the layer."""

    def run(*args: Any) -> Any:
        try:
            return method(*args)
        except Exception as err:
            raise ExportError(
                f"Model.export: layer {index} ({layer}) cannot be exported: its "
                f"{method.__name__} pass does not trace into a graph ({type(err).__name__}: "
                f"{err}). A pass that exports uses only the array operations of its "
                "backend's xp: no float() or if on an array's values, no NumPy calls."
            ) from err

    return run


def run_exported(path: str | os.PathLike[str], X: Any) -> dict[str, np.ndarray]:
    """Run the ONNX file at ``path`` on the samples ``X`` with ONNX Runtime; outputs by name.

    Only files as nnx's export writes them run (``nnx._onnx_door`` checks the file before
    ONNX Runtime reads it), on samples checked as ``Model.predict`` checks them (the file's
    width, finite numbers), converted to the dtype of the file's input.
    """
    path = Path(path)
    try:
        payload = path.read_bytes()
    except FileNotFoundError as err:
        raise FileNotFoundError(f"no ONNX file at {path}; check the path.") from err
    except IsADirectoryError as err:
        raise IsADirectoryError(f"{path} is a folder, not an ONNX file; name the file.") from err
    found = check_file(path, payload)
    samples = check_samples(path, X, found)
    check_batch(path, found, samples.shape[0])
    builder = load("onnx").graph
    assert builder is not None  # the onnx backend builds graphs
    execute = builder.execute
    try:
        return execute(payload, {found["input"]: samples}, tuple(found["outputs"]))
    except BackendError:
        raise
    except Exception as err:  # onnxruntime's own exception types (Fail, InvalidGraph, ...)
        raise ModelFileError(
            f"{path}: ONNX Runtime could not run it ({type(err).__name__}: {err}). "
            "Export the model again with model.export(path)."
        ) from err
