"""Host boundary: the front door of ONNX files, checked before ONNX Runtime sees one byte.

ONNX Runtime runs whatever a file asks: it reads tensors stored "externally" from any path
the file names (resolved against the current folder), loops for as long as a ``Loop`` says,
and allocates what a ``ConstantOfShape`` asks for. ``nnx predict FILE.onnx`` hands it files
from anywhere, so only what nnx's export writes passes: nnx's metadata, the graph's input and
outputs as export makes them, the standard operators export emits (``If`` as ndonnx uses it,
its branches held to the same rules), tensors stored in the file itself, and no constant or
statically known intermediate larger than the parameters the metadata's layers account for.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from nnx._file import ModelFileError
from nnx._onnx_sizes import check_sizes
from nnx._rebuild import layer_classes

__all__ = ["ALLOWED_OPS", "check_batch", "check_file", "check_samples"]

# The operators Model.export emits (ndonnx 0.23+, opset 21) for Dense, ReLU, Softmax,
# Sigmoid, Linear and Dropout, for classifiers, binary and regression models, with and
# without labels: tests/unit/test_reliability_onnx.py exports each and checks that this set
# covers them. Nothing here loops, reads files or makes shapes from nothing (no Loop, Scan,
# ConstantOfShape, Tile).
ALLOWED_OPS = frozenset(
    {
        "Abs", "Add", "ArgMax", "Cast", "Concat", "Constant", "Div", "Equal", "Exp",
        "Expand", "Greater", "GreaterOrEqual", "Identity", "If", "IsNaN", "Less", "MatMul",
        "Max", "Mul", "Neg", "Range", "ReduceMax", "ReduceSum", "Reshape", "ScatterND",
        "Shape", "Size", "Slice", "Squeeze", "Sub", "Unsqueeze", "Where",
    }
)  # fmt: skip
_STANDARD = ("", "ai.onnx")
_ELEMENT_TYPES = {1: "float32", 11: "float64"}  # TensorProto's numbers for the input's dtype
# Index constants ndonnx writes beside the parameters (a few hundred per layer), and room for
# shapes: 64 Ki elements (256 KiB of float32) is all a file may hold or make beyond them.
_SLACK = 65_536
_MAX_METADATA = 1_000_000  # characters of the JSON under "nnx": a few KiB in practice

_REEXPORT = "nnx runs the ONNX files it exported; export the model again with model.export(path)"


def _refuse(path: Path, what: str) -> ModelFileError:
    return ModelFileError(f"{path}: refused before running it: {what}. {_REEXPORT}.")


def check_file(path: Path, payload: bytes) -> dict[str, Any]:
    """``payload`` (the bytes of ``path``) checked as nnx's export writes it; returns what
    running it needs: ``input`` (name), ``dtype``, ``n_inputs`` and ``outputs``, and for
    :func:`check_batch` the size ``budget`` and the parsed ``proto``."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        proto = onnx.load_from_string(payload)
    except (DecodeError, ValueError, RuntimeError) as err:
        raise ValueError(f"{path}: not an ONNX file ({err}).") from err
    metadata = _metadata(path, proto)
    found = _signature(path, proto.graph, metadata)
    for entry in proto.opset_import:
        if entry.domain not in _STANDARD:
            raise _refuse(
                path,
                f"it imports the operator domain {entry.domain!r}, expected "
                "only the standard one (ai.onnx)",
            )
    if len(proto.functions) or len(proto.training_info):
        raise _refuse(path, "it holds functions or training programs, which export never writes")
    declared = _parameters(path, metadata)
    budget = declared + _SLACK
    held = _check_graph(path, proto.graph, budget)
    if held > budget:
        raise _refuse(
            path,
            f"its constants hold {held} numbers, expected at most {budget} "
            "(the parameters its layers account for, and index constants)",
        )
    # Intermediates of a fixed size: no larger than what the file really holds, whatever its
    # metadata claims (a Dense of 10**12 inputs in the metadata makes no Expand that large).
    budget = min(declared, held) + _SLACK
    check_sizes(path, proto, budget, _refuse)
    return {**found, "budget": budget, "proto": proto}


def check_batch(path: Path, found: dict[str, Any], batch: int) -> None:
    """The sizes the file makes for ``batch`` samples, measured before they run: a shape
    computed from the batch (a Range of ``N * 2**30``) is known once ``N`` is (``found``:
    what :func:`check_file` returned, the parsed file among it)."""
    check_sizes(path, found["proto"], found["budget"], _refuse, batch)


def _metadata(path: Path, proto: Any) -> dict[str, Any]:
    raw = {p.key: p.value for p in proto.metadata_props}.get("nnx")
    if raw is None:
        raise _refuse(path, "it has no nnx metadata (key 'nnx'): it was not written by nnx")
    try:
        metadata = json.loads(raw) if len(raw) <= _MAX_METADATA else None
    except (ValueError, RecursionError):
        metadata = None
    if not isinstance(metadata, dict) or metadata.get("format") != "nnx-onnx":
        raise _refuse(path, "its metadata under 'nnx' is not nnx's JSON with format='nnx-onnx'")
    return metadata


def _signature(path: Path, graph: Any, metadata: dict[str, Any]) -> dict[str, Any]:
    """The graph's input and outputs against what export makes (and its metadata says)."""
    if [i.name for i in graph.input] != ["X"]:
        got = [i.name for i in graph.input]
        raise _refuse(path, f"expected one graph input named 'X', got inputs={got}")
    tensor = graph.input[0].type.tensor_type
    dtype = _ELEMENT_TYPES.get(tensor.elem_type)
    dims = list(tensor.shape.dim)
    width = dims[1].dim_value if len(dims) == 2 and dims[1].HasField("dim_value") else None
    stated: dict[str, Any] = metadata["input"] if isinstance(metadata.get("input"), dict) else {}
    if dtype is None or width is None or len(dims) != 2 or dims[0].HasField("dim_value"):
        shape = [d.dim_value if d.HasField("dim_value") else d.dim_param or "?" for d in dims]
        raise _refuse(
            path,
            f"expected input X of shape (N, n_inputs) with a free batch size N, "
            f"float32 or float64, got shape={shape}, elem_type={tensor.elem_type}",
        )
    if stated.get("dtype") != dtype or stated.get("shape") != ["N", width]:
        raise _refuse(
            path,
            f"its metadata says input={stated!r}, but the graph's input X is "
            f"{dtype} of shape (N, {width})",
        )
    outputs = [o.name for o in graph.output]
    if outputs not in (["output"], ["output", "labels"]) or metadata.get("outputs") != outputs:
        raise _refuse(
            path,
            f"expected the outputs ['output'] or ['output', 'labels'], as in its "
            f"metadata, got outputs={outputs} (metadata: "
            f"{metadata.get('outputs')!r})",
        )
    return {"input": "X", "dtype": dtype, "n_inputs": width, "outputs": outputs}


def _parameters(path: Path, metadata: dict[str, Any]) -> int:
    """How many parameters the file may hold: what its nnx layers declare (Dense's shapes),
    plus what export counted for layers of a reader's own (``parameters`` in the metadata)."""

    table, known, unknown = layer_classes(), 0, False
    layers = metadata.get("layers")
    if not isinstance(layers, list) or not layers:
        raise _refuse(path, "its metadata lists no layers")
    for spec in layers:
        name = spec.get("class") if isinstance(spec, dict) else None
        cls: Any = table.get(name) if isinstance(name, str) else None
        config = spec.get("config") if isinstance(spec, dict) else None
        if cls is None or not isinstance(config, dict):
            unknown = True
            continue
        try:
            shapes = cls.shapes(config)
            known += sum(math.prod(int(n) for n in shape) for shape in shapes.values())
        except (TypeError, ValueError, KeyError, OverflowError) as err:
            raise _refuse(path, f"its metadata describes a layer it cannot be ({err})") from err
    declared = metadata.get("parameters", None if unknown else known)
    if type(declared) is not int or declared < known or (not unknown and declared != known):
        raise _refuse(
            path, f"its metadata says parameters={declared!r}, but its layers account for {known}"
        )
    return declared


def _check_graph(path: Path, graph: Any, budget: int, depth: int = 0) -> int:
    """Operators, tensors and branches of ``graph`` (recursively); the numbers it holds."""
    if depth > 4 or len(graph.sparse_initializer):
        raise _refuse(
            path, "its graph nests branches deeper than export does, or holds sparse tensors"
        )
    held = sum(_tensor_size(path, t) for t in graph.initializer)
    for node in graph.node:
        if node.domain not in _STANDARD:
            raise _refuse(
                path,
                f"node {node.name!r} uses the custom domain {node.domain!r}; "
                "expected only standard operators (ai.onnx)",
            )
        if node.op_type not in ALLOWED_OPS:
            raise _refuse(
                path,
                f"node {node.name!r} is a {node.op_type}, an operator nnx's "
                f"export never writes (allowed: {', '.join(sorted(ALLOWED_OPS))})",
            )
        for attribute in node.attribute:
            if len(attribute.graphs) or attribute.HasField("sparse_tensor"):
                raise _refuse(path, f"node {node.name!r} has an attribute export never writes")
            if attribute.HasField("g"):
                if node.op_type != "If":
                    raise _refuse(path, f"node {node.name!r} ({node.op_type}) holds a subgraph")
                held += _check_graph(path, attribute.g, budget, depth + 1)
            if attribute.HasField("t"):
                held += _tensor_size(path, attribute.t)
            held += sum(_tensor_size(path, t) for t in attribute.tensors)
            if held > budget:
                return held
    return held


def _tensor_size(path: Path, tensor: Any) -> int:
    """The numbers a tensor holds, all of them in the file itself (never external data)."""
    from onnx import TensorProto, helper

    if tensor.data_location == TensorProto.EXTERNAL or len(tensor.external_data):
        where = {e.key: e.value for e in tensor.external_data}.get("location", "?")
        raise _refuse(
            path,
            f"tensor {tensor.name!r} is stored outside the file (external data, "
            f"location={where!r}); nnx's export writes every tensor into the file, and nnx "
            "never reads other files for one",
        )
    size = math.prod(tensor.dims)
    try:
        itemsize = np.dtype(helper.tensor_dtype_to_np_dtype(tensor.data_type)).itemsize
    except (KeyError, TypeError, ValueError):
        itemsize = 0
    fields = ("float_data", "double_data", "int32_data", "int64_data", "uint64_data")
    stored = (
        len(tensor.raw_data) // itemsize
        if tensor.raw_data and itemsize
        else sum(len(getattr(tensor, field)) for field in fields)
    )
    if itemsize == 0 or stored != size:  # a shape without its numbers: made when loaded
        raise _refuse(
            path,
            f"tensor {tensor.name!r} of shape {list(tensor.dims)} stores {stored} numbers of "
            f"data_type={tensor.data_type}, expected its {size} numbers in the file",
        )
    return size


def check_samples(path: Path, X: Any, found: dict[str, Any]) -> np.ndarray:
    """``X`` checked as the ``.nnx`` path checks it (2-D, the file's width, finite numbers),
    in the file's dtype."""
    from nnx.data import check_features

    n_inputs, dtype = found["n_inputs"], found["dtype"]
    samples = np.asarray(X) if not isinstance(X, np.ma.MaskedArray) else X
    if getattr(samples, "ndim", 0) != 2 or samples.shape[1] != n_inputs:
        got = getattr(samples, "shape", None)
        raise ValueError(f"{path}: expected samples of shape (n, {n_inputs}), got {got}.")
    try:
        samples = check_features(samples, n_inputs, "X", single=dtype == "float32")
    except (TypeError, ValueError) as err:
        raise type(err)(f"{path}: {err}") from err
    return np.asarray(samples).astype(dtype, copy=False)
