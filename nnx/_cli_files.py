"""``nnx summary`` (of a model file or of an ONNX file nnx exported) and ``nnx export``."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from backends import install_hint
from nnx._cli_common import (
    CommandLineError,
    add_backend_options,
    refuse_overwrite,
    same_file,
    select_backend,
)
from nnx._export import METADATA_KEY

__all__ = ["add_export_arguments", "add_summary_arguments", "export", "summary"]


def add_summary_arguments(parser: argparse.ArgumentParser) -> None:
    add_backend_options(parser)
    parser.add_argument("model_file", help="a model file (nnx train), or an ONNX file (nnx export)")


def summary(args: argparse.Namespace) -> int:
    import nnx

    path = Path(args.model_file)
    if not path.is_file() or _is_model_file(path):
        nnx.Model.load(path, backend=select_backend(args)).summary()  # its own messages
        return 0
    metadata = _onnx_metadata(path)
    if metadata is None:
        raise CommandLineError(
            f"{path}: neither an nnx model file (written by nnx train or model.save) nor an ONNX "
            "file written by nnx export; expected one of these."
        )
    _print_onnx(path, *metadata)
    return 0


def _is_model_file(path: Path) -> bool:
    """Whether ``path`` starts as a safetensors file does: a header length, then JSON."""
    with open(path, "rb") as file:
        start = file.read(9)
    return len(start) == 9 and start[8:9] == b"{"


def _onnx_metadata(path: Path) -> tuple[dict[str, Any], int] | None:
    """The JSON nnx wrote into an ONNX file, and how many numbers its graph stores; None for a
    file that is not an ONNX file nnx wrote."""
    try:
        import onnx
    except ImportError as err:
        raise CommandLineError(
            f"{path}: reading an ONNX file needs the onnx package; {install_hint('onnx')}."
        ) from err
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:  # protobuf's DecodeError, or anything else a foreign file provokes
        return None
    text = next((p.value for p in proto.metadata_props if p.key == METADATA_KEY), None)
    try:
        metadata = json.loads(text) if text is not None else None
    except ValueError:
        return None
    if not isinstance(metadata, dict) or "input" not in metadata:
        return None
    # Parameters are stored as initializers or as Constant nodes, as the graph's builder chose.
    tensors = [*proto.graph.initializer]
    tensors += [a.t for n in proto.graph.node if n.op_type == "Constant" for a in n.attribute]
    return metadata, sum(math.prod(tensor.dims) for tensor in tensors)


def _print_onnx(path: Path, metadata: dict[str, Any], stored: int) -> None:
    source = metadata.get("input", {})
    shape = ", ".join(str(d) for d in source.get("shape", []))
    print(
        f"{path}: ONNX file written by nnx {metadata.get('nnx_version', '?')}, "
        f"ONNX opset {metadata.get('opset', '?')}"
    )
    print(f"input: {source.get('name', 'X')} ({shape}) {source.get('dtype', '')}")
    print(f"outputs: {', '.join(metadata.get('outputs', []))}")
    print("#  layer")
    for i, spec in enumerate(metadata.get("layers", [])):
        print(f"{i:<2} {_layer(spec)}")
    print(f"numbers stored in the graph: {stored:,} (the parameters, and the graph's constants)")
    print(f"run it: nnx predict {path} --input X.npy (ONNX Runtime)")


def _layer(spec: dict[str, Any] | None) -> str:
    """``Dense(n_inputs=2, n_neurons=64)``: a layer's class and its settings that are set."""
    if not spec:
        return "(a layer nnx cannot describe)"
    config = spec.get("config", {})
    shown = [
        f"{key}={value!r}"
        for key, value in config.items()
        if key not in ("dtype", "init") and value not in (0, 0.0, None)
    ]
    return f"{spec.get('class', '?')}({', '.join(shown)})" if shown else str(spec.get("class"))


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_file", help="the model file to export (from nnx train)")
    parser.add_argument("onnx_file", help="the ONNX file to write (e.g. model.onnx)")
    parser.add_argument(
        "--labels",
        action="store_true",
        help="add the class labels (the last layer's predictions) as a second output",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace onnx_file if it exists")


def export(args: argparse.Namespace) -> int:
    import nnx

    if same_file(args.model_file, args.onnx_file):
        raise CommandLineError(
            f"{args.onnx_file} is the model file being read ({args.model_file}): writing there "
            f"would destroy it; name another file, e.g. {Path(args.model_file).stem}.onnx."
        )
    refuse_overwrite(args.onnx_file, args.onnx_file, args.overwrite)
    model = nnx.Model.load(args.model_file, backend="numpy")
    metadata = model.export(args.onnx_file, labels=args.labels)
    outputs = ", ".join(metadata["outputs"])
    print(
        f"wrote {args.onnx_file}: input X (N, {metadata['input']['shape'][1]}) "
        f"{metadata['input']['dtype']} -> {outputs}; ONNX opset {metadata['opset']}"
    )
    return 0
