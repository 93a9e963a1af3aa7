"""The ``nnx`` command: info, train, predict, summary, export, conformance.

Flags win over NNX_BACKEND / NNX_DEVICE. Every check of the command line runs before the first
line of output; errors print one line and exit 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import backends
from nnx._cli_common import CommandLineError, Parser, add_plugin_option, import_plugins
from nnx._cli_files import add_export_arguments, add_summary_arguments
from nnx._cli_files import export as _export
from nnx._cli_files import summary as _summary
from nnx._cli_info import add_info_arguments
from nnx._cli_info import info as _info
from nnx._cli_predict import add_predict_arguments
from nnx._cli_predict import predict as _predict
from nnx._cli_train import add_train_arguments
from nnx._cli_train import train as _train
from nnx._version import __version__

__all__ = ["main"]

_DESCRIPTION = (
    "The networks of Neural Networks from Scratch in Python, on any Array API backend: "
    "train a bundled data set, predict, summarize or export a model file, list the backends, "
    "run the conformance suite. nnx COMMAND --help describes each command."
)
# What a command failing at its work raises: ModelFileError is a ValueError, a diverging loss
# (NonFiniteLossError) arithmetic, a missing optional package (scikit-learn) an ImportError.
_FAILURES = (
    ValueError,
    TypeError,
    ArithmeticError,
    backends.BackendError,
    OSError,
    ImportError,
    CommandLineError,
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``nnx`` with ``argv`` (default: the program's arguments); returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        import_plugins(args.plugin)
        return int(args.run(args) or 0)
    except _FAILURES as err:
        print(f"nnx {args.command}: {' '.join(str(err).split())}", file=sys.stderr)
        return 1
    except MemoryError:
        print(f"nnx {args.command}: out of memory; use smaller sizes.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # a second Ctrl-C, after training's own stop at the first
        print(f"nnx {args.command}: interrupted.", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = Parser(prog="nnx", description=_DESCRIPTION)
    parser.add_argument(
        "--version",
        action="version",
        version=f"nnx {__version__} (the {backends.DISTRIBUTION} distribution)",
        help="print nnx's version and exit",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, run: object, text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        sub.set_defaults(run=run)
        add_plugin_option(sub)
        return sub

    add_info_arguments(
        command("info", _info, "the registered backends, installed here or not, and threads")
    )
    add_train_arguments(command("train", _train, "train a bundled data set and save the model"))
    add_predict_arguments(
        command("predict", _predict, "predictions of a model file, or of an exported .onnx file")
    )
    add_summary_arguments(
        command("summary", _summary, "layers, parameters and training of a model or ONNX file")
    )
    add_export_arguments(command("export", _export, "write a model file's inference graph as ONNX"))
    from nnx import testing

    conformance = command("conformance", _conformance, "the cross-backend conformance table")
    testing.add_arguments(conformance)
    return parser


def _conformance(args: argparse.Namespace) -> int:
    """The suite's table; a name nothing registered is refused first, with the way to add it
    (the suite would report it as a failed row, without saying how)."""
    from nnx import testing

    names = backends.registered()
    for wanted in args.backend or []:
        name = wanted.partition(":")[0]
        if name not in names:
            raise CommandLineError(
                f"--backend {name}: unknown backend; expected one of {', '.join(names)}. A "
                "backend your own code registers needs the module that registers it: "
                f"nnx conformance --plugin MODULE --backend {name}."
            )
    return testing.run_cli(args)


if __name__ == "__main__":
    raise SystemExit(main())
