"""Hostile ONNX files for the front door's tests, built with onnx.helper (imported by
test_reliability_onnx.py and test_reliability_onnx_sizes.py after their skips)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper

FLOAT = TensorProto.FLOAT
SECRET = b"SECRET!!"  # 8 bytes: two float32 numbers, what a (1, 2) tensor reads
DENSE = {"class": "Dense", "config": {"n_inputs": 2, "n_neurons": 2}}


def _metadata(**change) -> dict:
    base = {
        "format": "nnx-onnx",
        "input": {"name": "X", "shape": ["N", 2], "dtype": "float32"},
        "outputs": ["output"],
        "layers": [DENSE],
    }
    return {**base, **change}


def _write(path: Path, nodes, *, inputs=None, outputs=None, initializers=(), metadata=None,
           opsets=(("", 21),)) -> Path:  # fmt: skip
    """A model file of ``nodes`` with nnx's metadata (unless ``metadata=False``)."""
    graph = helper.make_graph(
        nodes,
        "g",
        inputs or [helper.make_tensor_value_info("X", FLOAT, ["N", 2])],
        outputs or [helper.make_tensor_value_info("output", FLOAT, ["N", 2])],
        initializer=list(initializers),
    )
    opset_imports = [helper.make_opsetid(domain, version) for domain, version in opsets]
    model = helper.make_model(graph, opset_imports=opset_imports, ir_version=10)
    if metadata is not False:
        entry = model.metadata_props.add()
        entry.key, entry.value = "nnx", json.dumps(metadata or _metadata())
    path.write_bytes(model.SerializeToString())
    return path


def _external(name: str, location: str) -> TensorProto:
    """A (1, 2) float32 tensor whose bytes ONNX Runtime reads from ``location``."""
    tensor = helper.make_tensor(name, FLOAT, [1, 2], [0.0, 0.0])
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "8")):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return tensor


def _adds(tensor: TensorProto) -> list:
    return [helper.make_node("Add", ["X", tensor.name], ["output"])]


X = np.ones((3, 2), dtype=np.float32)
