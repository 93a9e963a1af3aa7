"""``nnx train``: a bundled data set trained with settings that suit it, saved, and scored on
the rows it was not trained on (host boundary: NumPy arrays in, printed figures out)."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

import backends
from nnx import _cli_data as data
from nnx._cli_common import (
    CommandLineError,
    add_backend_options,
    at_least,
    figure,
    positive_number,
    refuse_overwrite,
    select_backend,
)
from nnx._run.choose import cannot_compile

__all__ = ["add_train_arguments", "train"]


def _per(values: dict[str, Any]) -> str:
    return ", ".join(f"{key} {value}" for key, value in values.items())


def _optimizer_help(index: int) -> str:
    """The defaults of one optimizer setting (0: rate, 1: decay, 2: momentum), per data set."""
    common = {name: data.optimizer_defaults("spiral", name)[index] for name in data.OPTIMIZERS}
    special = [
        f"{name} on {dataset} {setting[index]}"
        for dataset, recipe in data.RECIPES.items()
        for name, setting in recipe.optimizers.items()
    ]
    return f"{_per(common)}; {', '.join(special)}"


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    add_backend_options(parser)
    _network_options(parser.add_argument_group("the data and the network"))
    _optimizer_options(parser.add_argument_group("the optimizer"))
    _run_options(parser.add_argument_group("the run"))


def _network_options(group: Any) -> None:
    recipes = data.RECIPES
    held_out = _per({name: recipe.held_out for name, recipe in recipes.items()})
    held_out = held_out.replace("%", "%%")  # argparse formats help with %
    layers = _per({name: recipe.layers for name, recipe in recipes.items()})
    group.add_argument(
        "--dataset",
        choices=data.DATASETS,
        default="spiral",
        help=f"the data set to learn (default: spiral); held out for the score: {held_out}",
    )
    group.add_argument(
        "--hidden",
        type=at_least(1, "--hidden"),
        default=64,
        metavar="N",
        help="width of each hidden layer (default: 64)",
    )
    group.add_argument(
        "--layers",
        type=at_least(1, "--layers"),
        metavar="N",
        help=f"number of hidden layers (default: {layers})",
    )
    group.add_argument(
        "--init",
        choices=("glorot", "he", "book"),
        default="glorot",
        help="how the first weights are drawn (default: glorot, which trains deeper networks "
        "too; book: 0.01 x normal, as in the book)",
    )


def _optimizer_options(group: Any) -> None:
    group.add_argument(
        "--optimizer", choices=data.OPTIMIZERS, default="adam", help="(default: adam)"
    )
    group.add_argument(
        "--learning-rate",
        type=positive_number("--learning-rate"),
        metavar="LR",
        help=f"the optimizer's learning rate (default: {_optimizer_help(0)})",
    )
    group.add_argument(
        "--decay",
        type=positive_number("--decay", zero=True),
        help=f"learning-rate decay per step (default: {_optimizer_help(1)})",
    )
    momentum = data.optimizer_defaults("spiral", "sgd")[2]
    group.add_argument(
        "--momentum",
        type=positive_number("--momentum", zero=True),
        help=f"SGD's momentum (default: {momentum})",
    )


def _run_options(group: Any) -> None:
    epochs = _per({name: recipe.epochs for name, recipe in data.RECIPES.items()})
    group.add_argument(
        "--epochs",
        type=at_least(1, "--epochs"),
        metavar="N",
        help=f"passes over the training rows (default: {epochs})",
    )
    group.add_argument(
        "--batch-size",
        type=at_least(1, "--batch-size"),
        metavar="N",
        help="samples per step, shuffled every epoch (default: all the training rows in one "
        "step, as in the book)",
    )
    group.add_argument(
        "--print-every",
        type=at_least(1, "--print-every"),
        default=100,
        metavar="N",
        help="epochs between progress lines (default: 100)",
    )
    group.add_argument(
        "--seed",
        type=at_least(0, "--seed"),
        default=0,
        metavar="N",
        help="seed of the first weights and of the shuffling; the data sets' rows stay the "
        "same (default: 0)",
    )
    group.add_argument(
        "--output",
        "-o",
        default="model.nnx",
        metavar="FILE",
        help="the model file to write (default: model.nnx)",
    )
    group.add_argument("--overwrite", action="store_true", help="replace an existing --output file")
    group.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        help="compile the training step with the backend's compiler (default: where that pays "
        "from the start, as on jax; torch.compile takes seconds per batch shape, so torch "
        "compiles with --compile); --no-compile runs it eagerly",
    )


def train(args: argparse.Namespace) -> int:
    from nnx import io

    if args.momentum is not None and args.optimizer != "sgd":
        raise CommandLineError(
            f"--momentum applies to --optimizer sgd, got --optimizer {args.optimizer}; "
            "leave --momentum out or use --optimizer sgd."
        )
    io.check_writable(args.output, "--output")  # before training, not after every epoch
    refuse_overwrite(args.output, f"--output {args.output}", args.overwrite)
    backend = select_backend(args)
    if not backend.trains:
        raise CommandLineError(
            f"the {backend.name} backend is inference-only (it builds graphs for export); "
            "train on numpy, cupy, torch or jax, then nnx export MODEL.nnx MODEL.onnx."
        )
    if args.compile and (why := cannot_compile(backend)):  # before the first line prints
        raise CommandLineError(f"--compile: {why}; leave --compile out.")
    recipe = data.RECIPES[args.dataset]
    X, y = data.load(args.dataset, "train")
    X_test, y_test = data.load(args.dataset, "test")
    model = _model(args, recipe, X.shape[1], 1 if recipe.regression else int(np.max(y)) + 1)
    print(
        f"training on {backend.name} ({backends.device_name(backend.device)}): "
        f"{args.dataset}, {len(X)} rows ({len(X_test)} more held out)"
    )
    # A diverging run is reported once, by the loss check, not by NumPy's warnings before it.
    with np.errstate(all="ignore"):
        history = model.train(X, y, epochs=args.epochs or recipe.epochs,
                              batch_size=args.batch_size, print_every=args.print_every,
                              shuffle=args.batch_size is not None,
                              compile=args.compile)  # fmt: skip
        loss, accuracy = model.evaluate(X_test, y_test, verbose=0)
    model.save(args.output)
    print(f"final accuracy {history['accuracy'][-1]:.3f}, loss {figure(history['loss'][-1])} "
          f"on the {len(X)} training rows")  # fmt: skip
    print(f"held-out: accuracy {accuracy:.3f}, loss {figure(loss)} on {len(X_test)} rows")
    print(f"saved {args.output}")
    return 0


def _model(args: argparse.Namespace, recipe: data.Recipe, width: int, n_out: int) -> Any:
    """The network ``args`` describe, for ``width`` features and ``n_out`` outputs, finalized."""
    import nnx

    rate, decay, momentum = data.optimizer_defaults(args.dataset, args.optimizer)
    rate = rate if args.learning_rate is None else args.learning_rate
    decay = decay if args.decay is None else args.decay
    optimizer: Any
    if args.optimizer == "sgd":
        optimizer = nnx.SGD(rate, decay, momentum if args.momentum is None else args.momentum)
    else:
        optimizers = {"adagrad": nnx.Adagrad, "rmsprop": nnx.RMSprop, "adam": nnx.Adam}
        optimizer = optimizers[args.optimizer](rate, decay)
    model = nnx.Model(seed=args.seed)
    layers = args.layers or recipe.layers
    for i in range(layers):
        model.add(nnx.Dense(width, args.hidden, init=args.init, seed=args.seed + i))
        model.add(nnx.ReLU())
        width = args.hidden
    model.add(nnx.Dense(width, n_out, init=args.init, seed=args.seed + layers))
    model.add(nnx.Linear() if recipe.regression else nnx.Softmax())
    regression = recipe.regression
    model.set(
        loss=nnx.MeanSquaredError() if regression else nnx.CategoricalCrossentropy(),
        optimizer=optimizer,
        accuracy=nnx.RegressionAccuracy() if regression else nnx.CategoricalAccuracy(),
    )
    model.finalize()
    return model
