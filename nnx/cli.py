"""The ``nnx`` command: info, train, predict, summary, export, conformance (host boundary).

Flags win over NNX_BACKEND / NNX_DEVICE; errors print one line and exit 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

import backends

__all__ = ["main"]

_DATASETS = ("spiral", "vertical", "sine", "digits")
_OPTIMIZERS = ("sgd", "adagrad", "rmsprop", "adam")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except (ValueError, TypeError, ArithmeticError, backends.BackendError, OSError) as err:
        # ModelFileError is a ValueError, a diverging loss (NonFiniteLossError) arithmetic.
        print(f"nnx {args.command}: {err}", file=sys.stderr)
        return 1
    except MemoryError:
        print(f"nnx {args.command}: out of memory; use smaller sizes.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # a second Ctrl-C, after training's own stop at the first
        print(f"nnx {args.command}: interrupted.", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nnx", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    info = commands.add_parser("info", help="table of registered backends, usable here or not")
    info.set_defaults(run=_info)

    train = commands.add_parser("train", help="train a bundled data set and save the model")
    _backend_flags(train)
    train.add_argument("--dataset", choices=_DATASETS, default="spiral")
    train.add_argument("--hidden", type=int, default=64, help="width of the hidden layer(s)")
    train.add_argument("--layers", type=int, default=1, help="number of hidden layers")
    train.add_argument("--optimizer", choices=_OPTIMIZERS, default="adam")
    train.add_argument("--learning-rate", type=float, default=None)
    train.add_argument("--epochs", type=int, default=1000)
    train.add_argument("--batch-size", type=int, default=None)
    train.add_argument("--print-every", type=int, default=100)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--output", "-o", default="model.nnx", help="model file to write")
    train.set_defaults(run=_train)

    predict = commands.add_parser(
        "predict", help="predictions of a saved model, or of an exported .onnx file"
    )
    _backend_flags(predict)
    predict.add_argument(
        "model_file", help="a model file, or an ONNX file (.onnx: run by ONNX Runtime)"
    )
    source = predict.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", choices=_DATASETS)
    source.add_argument("--input", help="a .npy file of samples, shape (n, features)")
    predict.add_argument("--limit", type=int, default=10, help="rows to print (0: all)")
    predict.add_argument("--output", "-o", help="write every prediction to this .npy file")
    predict.set_defaults(run=_predict)

    summary = commands.add_parser("summary", help="layers, parameters and training of a model file")
    _backend_flags(summary)
    summary.add_argument("model_file")
    summary.set_defaults(run=_summary)

    export = commands.add_parser("export", help="write a model file's inference graph as ONNX")
    export.add_argument("model_file")
    export.add_argument("onnx_file", help="the ONNX file to write (e.g. model.onnx)")
    export.add_argument(
        "--labels",
        action="store_true",
        help="add the class labels (the last layer's predictions) as a second output",
    )
    export.set_defaults(run=_export)

    conformance = commands.add_parser("conformance", help="cross-backend conformance table")
    from nnx import testing

    testing.add_arguments(conformance)
    conformance.set_defaults(run=testing.run_cli)
    return parser


def _backend_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", help="backend name (default: NNX_BACKEND, else numpy)")
    parser.add_argument("--device", help="device of the backend (default: NNX_DEVICE)")


def _select(args: argparse.Namespace) -> backends.Backend:
    if args.backend is None and args.device is None:
        return backends.set_backend(None)
    return backends.set_backend(args.backend or "numpy", args.device)


def _info(args: argparse.Namespace) -> int:
    rows = [("backend", "usable", "version", "device", "default dtype", "reason")]
    for status in backends.available():
        dtype = "float32" if status.usable else ""
        rows.append(
            (
                status.name,
                "yes" if status.usable else "no",
                status.version,
                status.device,
                dtype,
                status.reason,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[-1]]).rstrip())
    return 0


def _load_dataset(name: str, seed: int) -> tuple[Any, Any]:
    from nnx import datasets

    if name == "sine":
        return datasets.sine_data(1000)
    if name == "digits":
        return datasets.load_digits()
    make = datasets.spiral_data if name == "spiral" else datasets.vertical_data
    return make(100, 3, seed=seed)


def _train(args: argparse.Namespace) -> int:
    import nnx
    from nnx import io

    for flag, least in (("hidden", 1), ("layers", 1), ("epochs", 1), ("print_every", 1),
                        ("seed", 0)):  # fmt: skip
        if getattr(args, flag) < least:
            name = "--" + flag.replace("_", "-")
            raise ValueError(f"expected {name} >= {least}, got {name} {getattr(args, flag)}.")
    io.check_writable(args.output, "--output")  # before training, not after every epoch
    backend = _select(args)
    if not backend.trains:
        raise backends.BackendError(
            f"the {backend.name} backend is inference-only (it builds graphs for export); "
            "train on numpy, cupy, torch or jax, then nnx export MODEL.nnx MODEL.onnx."
        )
    X, y = _load_dataset(args.dataset, args.seed)
    regression = args.dataset == "sine"
    n_out = 1 if regression else int(np.max(y)) + 1
    model = nnx.Model(seed=args.seed)
    width = X.shape[1]
    for i in range(args.layers):
        model.add(nnx.Dense(width, args.hidden, seed=args.seed + i))
        model.add(nnx.ReLU())
        width = args.hidden
    model.add(nnx.Dense(width, n_out, seed=args.seed + args.layers))
    model.add(nnx.Linear() if regression else nnx.Softmax())
    model.set(
        loss=nnx.MeanSquaredError() if regression else nnx.CategoricalCrossentropy(),
        optimizer=_optimizer(args.optimizer, args.learning_rate),
        accuracy=nnx.RegressionAccuracy() if regression else nnx.CategoricalAccuracy(),
    )
    model.finalize()
    where = backends.device_name(backend.device)
    print(f"training on {backend.name} ({where}): {args.dataset}, {len(X)} samples")
    # A diverging run is reported once, by the loss check, not by NumPy's warnings before it.
    with np.errstate(all="ignore"):
        history = model.train(
            X,
            y,
            epochs=args.epochs,
            batch_size=args.batch_size,
            print_every=args.print_every,
            shuffle=args.batch_size is not None,
        )
    model.save(args.output)
    print(
        f"final accuracy {history['accuracy'][-1]:.3f}, loss {history['loss'][-1]:.3f}; "
        f"saved {args.output}"
    )
    return 0


def _optimizer(name: str, learning_rate: float | None) -> Any:
    import nnx

    cls = {"sgd": nnx.SGD, "adagrad": nnx.Adagrad, "rmsprop": nnx.RMSprop, "adam": nnx.Adam}[name]
    defaults = {"sgd": 1.0, "adagrad": 1.0, "rmsprop": 0.02, "adam": 0.05}
    return cls(learning_rate=defaults[name] if learning_rate is None else learning_rate)


def _predict(args: argparse.Namespace) -> int:
    import nnx
    from nnx import io

    if args.limit < 0:
        raise ValueError(f"expected --limit >= 0 (0 prints every row), got --limit {args.limit}.")
    if args.output is not None:
        io.check_writable(args.output, "--output")  # before predicting, not after
    if args.model_file.lower().endswith(".onnx"):
        return _predict_onnx(args)
    backend = _select(args)
    model = nnx.Model.load(args.model_file, backend=backend)
    X, y = _samples(args)
    outputs = model.predict(X)
    predictions = backend.to_numpy(model.output_layer_activation.predictions(outputs))
    _show(args, predictions)
    if y is not None:  # a bundled data set: its labels are known
        loss, accuracy = model.evaluate(X, y, verbose=0)
        print(f"{args.dataset}: accuracy {accuracy:.3f}, loss {loss:.3f} on {len(X)} rows")
    return 0


def _samples(args: argparse.Namespace) -> tuple[Any, Any]:
    """The samples ``predict`` runs on (``--input`` or ``--dataset``), and their labels if known."""
    if args.input is None:
        return _load_dataset(args.dataset, 0)
    try:
        return np.load(args.input, allow_pickle=False), None
    except ValueError as err:  # NumPy's message speaks of allow_pickle, which nnx refuses
        raise ValueError(
            f"--input {args.input}: not a .npy file of numbers (text, objects or pickles, "
            "which nnx never loads); save the samples with np.save(path, X)."
        ) from err


def _show(args: argparse.Namespace, predictions: np.ndarray) -> None:
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
        raise ValueError(
            f"{args.model_file} is an ONNX file: ONNX Runtime runs it, so --backend and "
            "--device do not apply; leave them out."
        )
    X, y = _samples(args)
    results = run_exported(args.model_file, X)
    predictions = results.get("labels", results["output"])
    _show(args, predictions)
    if y is not None and "labels" in results:
        accuracy = float(np.mean(predictions.reshape(y.shape) == y))
        print(f"{args.dataset}: accuracy {accuracy:.3f} on {len(X)} rows (ONNX Runtime)")
    return 0


def _export(args: argparse.Namespace) -> int:
    import nnx

    model = nnx.Model.load(args.model_file, backend="numpy")
    metadata = model.export(args.onnx_file, labels=args.labels)
    outputs = ", ".join(metadata["outputs"])
    print(
        f"wrote {args.onnx_file}: input X (N, {metadata['input']['shape'][1]}) "
        f"{metadata['input']['dtype']} -> {outputs}; ONNX opset {metadata['opset']}"
    )
    return 0


def _summary(args: argparse.Namespace) -> int:
    import nnx

    nnx.Model.load(args.model_file, backend=_select(args)).summary()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
