"""``nnx predict``: a model file's (or an exported ONNX file's) predictions for a bundled data
set's training or held-out rows, or for a .npy file (host boundary: NumPy arrays)."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from nnx import _cli_data as data
from nnx._cli_common import (
    CommandLineError,
    add_backend_options,
    at_least,
    figure,
    refuse_overwrite,
    select_backend,
)

__all__ = ["add_predict_arguments", "predict"]

_SPLIT_WORDS = {"train": "training rows", "test": "held-out rows"}


def add_predict_arguments(parser: argparse.ArgumentParser) -> None:
    add_backend_options(parser)
    parser.add_argument(
        "model_file",
        help="a model file (nnx train), or an ONNX file (nnx export; .onnx: run by ONNX Runtime)",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--dataset",
        choices=data.DATASETS,
        help="the rows of a bundled data set; their labels are known, so the accuracy and "
        "loss follow (required: this or --input)",
    )
    source.add_argument(
        "--input",
        metavar="FILE.npy",
        help="a .npy file of samples, shape (n, features) (required: this or --dataset)",
    )
    parser.add_argument(
        "--split",
        choices=data.SPLITS,
        help="with --dataset: the rows nnx train held out (test) or trained on (train) "
        "(default: test)",
    )
    parser.add_argument(
        "--limit",
        type=at_least(0, "--limit"),
        default=10,
        metavar="N",
        help="rows to print, 0 for all (default: 10)",
    )
    parser.add_argument(
        "--output",
        "-o",
        metavar="FILE.npy",
        help="also write every prediction to this file (default: none)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the --output file if it exists"
    )


def predict(args: argparse.Namespace) -> int:
    import nnx
    from nnx import io

    if args.split is not None and args.input is not None:
        raise CommandLineError(
            f"--split {args.split} picks rows of a bundled data set, got --input {args.input}; "
            "leave --split out, or use --dataset."
        )
    if args.output is not None:
        io.check_writable(args.output, "--output")  # before predicting, not after
        refuse_overwrite(args.output, f"--output {args.output}", args.overwrite)
    if args.model_file.lower().endswith(".onnx"):
        return _predict_onnx(args)
    backend = select_backend(args)
    model = nnx.Model.load(args.model_file, backend=backend)
    X, y = _samples(args)
    outputs = model.predict(X)
    predictions = backend.to_numpy(model.output_layer_activation.predictions(outputs))
    _show(args, predictions)
    if y is not None:  # a bundled data set: its labels are known
        loss, accuracy = model.evaluate(X, y, verbose=0)
        print(f"{_scored(args)}: accuracy {accuracy:.3f}, loss {figure(loss)} on {len(X)} rows")
    return 0


def _scored(args: argparse.Namespace) -> str:
    return f"{args.dataset}, {_SPLIT_WORDS[args.split or 'test']}"


def _samples(args: argparse.Namespace) -> tuple[Any, Any]:
    """The samples ``predict`` runs on (``--input`` or ``--dataset``), and their labels if known."""
    if args.input is None:
        return data.load(args.dataset, args.split or "test")
    try:
        return np.load(args.input, allow_pickle=False), None
    except ValueError as err:  # NumPy's message speaks of allow_pickle, which nnx refuses
        raise ValueError(
            f"--input {args.input}: not a .npy file of numbers (text, objects or pickles, "
            "which nnx never loads); save the samples with np.save(path, X)."
        ) from err


def _show(args: argparse.Namespace, predictions: Any) -> None:
    """Print the first ``--limit`` rows, and write every row to ``--output`` if given."""
    if args.output is not None:
        np.save(args.output, predictions, allow_pickle=False)
    shown = predictions if args.limit == 0 else predictions[: args.limit]
    for row in shown:
        print(" ".join(str(v) for v in np.atleast_1d(row)))
    if len(shown) < len(predictions):
        print(f"(the first {len(shown)} of {len(predictions)} rows; --limit 0 prints all)")
    if args.output is not None:
        print(f"wrote all {len(predictions)} rows to {args.output}")


def _predict_onnx(args: argparse.Namespace) -> int:
    """An exported file run by ONNX Runtime: its labels where it has them, else its outputs."""
    from nnx._export import run_exported

    if args.backend is not None or args.device is not None:
        raise CommandLineError(
            f"{args.model_file} is an ONNX file: ONNX Runtime runs it, so --backend and "
            "--device do not apply; leave them out."
        )
    X, y = _samples(args)
    results = run_exported(args.model_file, X)
    predictions = results.get("labels", results["output"])
    _show(args, predictions)
    if y is not None and "labels" in results:
        accuracy = float(np.mean(predictions.reshape(y.shape) == y))
        print(f"{_scored(args)}: accuracy {accuracy:.3f} on {len(X)} rows (ONNX Runtime)")
    return 0
