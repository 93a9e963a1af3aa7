"""What the ``nnx`` commands share: checked option types, the backend and plugin options, and
the refusal to write over a file.

Every check here runs while the command line is parsed, before the first line of output, and
names the option as the user typed it.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path

import backends

__all__ = [
    "CommandLineError",
    "Parser",
    "add_backend_options",
    "add_plugin_option",
    "at_least",
    "figure",
    "import_plugins",
    "positive_number",
    "refuse_overwrite",
    "same_file",
    "select_backend",
]


class CommandLineError(Exception):
    """A mistake on the command line: one line, exit status 1, like every other error."""


class Parser(argparse.ArgumentParser):
    """argparse with errors in one line (what failed, and where the help is), exit status 1."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(1, f"{self.prog}: {message}; {self.prog} --help lists the options.\n")


def at_least(least: int, flag: str) -> Callable[[str], int]:
    """An option type: a whole number >= ``least``; the message names ``flag``."""

    def whole(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {flag} as a whole number >= {least}, got {flag} {text}"
            ) from None
        if value < least:
            raise argparse.ArgumentTypeError(f"expected {flag} >= {least}, got {flag} {text}")
        return value

    return whole


def positive_number(flag: str, *, zero: bool = False) -> Callable[[str], float]:
    """An option type: a finite number > 0 (>= 0 with ``zero``); the message names ``flag``."""

    def number(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
            bound = ">= 0" if zero else "> 0"
            raise argparse.ArgumentTypeError(
                f"expected {flag} as a finite number {bound}, got {flag} {text}"
            )
        return value

    return number


def add_plugin_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE first, e.g. one that calls backends.register() (repeatable; looked "
        "up on PYTHONPATH, then in the current folder). Backends from installed packages' "
        "entry points need no plugin. (default: none)",
    )


def add_backend_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend", metavar="NAME", help="backend name (default: NNX_BACKEND, else numpy)"
    )
    parser.add_argument(
        "--device", help="device of the backend, e.g. cpu or cuda:0 (default: NNX_DEVICE)"
    )


def import_plugins(modules: list[str]) -> None:
    """Import each ``--plugin`` module; the current folder is searched last, as a fallback."""
    here = os.getcwd()
    if modules and here not in sys.path:
        sys.path.append(here)  # after the installed packages: a plugin never shadows them
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as err:  # a plugin can fail any way; say which one, in one line
            raise CommandLineError(
                f"--plugin {name}: importing it failed ({type(err).__name__}: {err}); expected "
                "a module name (no .py) on PYTHONPATH or in the current folder."
            ) from err


def select_backend(args: argparse.Namespace) -> backends.Backend:
    """The backend ``--backend``/``--device`` name, else NNX_BACKEND/NNX_DEVICE's.

    A failure names the option the value came from: the backends' own messages speak of the
    variables, which a user who typed ``--device`` never set.
    """
    if args.backend is None and args.device is None:
        return backends.set_backend(None)
    name = args.backend or os.environ.get("NNX_BACKEND") or "numpy"
    if name not in backends.registered():
        source = "--backend" if args.backend else "NNX_BACKEND"
        raise CommandLineError(
            f"{source} {name}: unknown backend; expected one of "
            f"{', '.join(backends.registered())}. Use one of these, or --plugin MODULE for a "
            "backend your own code registers."
        )
    try:
        return backends.set_backend(name, args.device)
    except backends.BackendError as err:
        raise backends.BackendError(_as_options(str(err), args)) from err


def _as_options(message: str, args: argparse.Namespace) -> str:
    """A backend's advice about NNX_BACKEND/NNX_DEVICE, re-worded for the options typed."""
    if args.device is not None:
        message = message.replace("unset NNX_DEVICE", "leave out --device (or try --device cpu)")
        message = message.replace("NNX_DEVICE", "--device")
    if args.backend is not None:
        message = message.replace("NNX_BACKEND=", "--backend ").replace("NNX_BACKEND", "--backend")
    chosen = " ".join(
        f"{flag} {value}"
        for flag, value in (("--backend", args.backend), ("--device", args.device))
        if value is not None
    )
    return f"{chosen}: {message}"


def refuse_overwrite(path: str | os.PathLike[str], what: str, overwrite: bool) -> None:
    """Refuse, before any work, to replace an existing ``path`` (``what``: how the user named
    it) unless ``--overwrite`` was given."""
    if not overwrite and os.path.lexists(path):
        raise CommandLineError(
            f"{what}: the file exists, and nnx does not write over a file unless asked; "
            "pass --overwrite to replace it, or name another file."
        )


def same_file(first: str | os.PathLike[str], second: str | os.PathLike[str]) -> bool:
    """Whether two paths name one file (through links and relative paths too)."""
    try:
        return os.path.samefile(first, second)
    except OSError:  # one of them does not exist (yet)
        return Path(os.path.realpath(first)) == Path(os.path.realpath(second))


def figure(loss: float) -> str:
    """A loss as text: three decimals, or three digits where those would all be zeros."""
    return f"{loss:.3f}" if not math.isfinite(loss) or abs(loss) >= 0.01 else f"{loss:.2e}"
