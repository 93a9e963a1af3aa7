"""Run every check on every backend, device and dtype; print the table (``nnx conformance``)."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import replace

from backends import BackendError
from nnx.testing._check import Check, Result, device_label
from nnx.testing.checks import CHECKS
from nnx.testing.targets import ENV, Target, targets

__all__ = ["DTYPES", "run", "run_target", "format_table", "add_arguments", "run_cli", "main"]

DTYPES = ("float32", "float64")
_COLUMNS = ("backend", "device", "dtype", "component", "check", "max abs err", "max rel err")


def run(
    backends: Sequence[str] | None = None,
    dtypes: Sequence[str] = DTYPES,
    checks: Sequence[Check] | None = None,
) -> list[Result]:
    """Every check on every backend x device x dtype.

    Parameters
    ----------
    backends : sequence of str, optional
        ``name`` or ``name:device`` entries to test; ``None`` reads ``NNX_TEST_BACKENDS``,
        else tests every registered backend. Named backends must load: one that cannot is a
        failure, where an unnamed one is a skip.
    dtypes : sequence of {"float32", "float64"}
        Finite-difference checks run in float64 only.
    checks : sequence of Check, optional
        Defaults to :data:`nnx.testing.CHECKS`.

    Returns
    -------
    list of Result
        One row per check run, or one row per backend or dtype that could not run.
    """
    for dtype in dtypes:
        if dtype not in DTYPES:
            raise ValueError(
                f"nnx.testing.run: expected dtypes among {DTYPES}, got dtype={dtype!r}. "
                "Pass 'float32', 'float64' or both."
            )
    chosen = CHECKS if checks is None else tuple(checks)
    return [row for target in targets(backends) for row in run_target(target, dtypes, chosen)]


def run_target(target: Target, dtypes: Sequence[str], checks: Sequence[Check]) -> list[Result]:
    """The checks on one backend and device; a row saying why when it cannot run."""
    try:
        backend = target.load()
    except (BackendError, ValueError) as err:
        if not target.required:
            return [_row(target.name, target.device or "-", "-", "skip", str(err))]
        reason = f"{err} It was asked for ({ENV} or --backend), so it must run here."
        return [_row(target.name, target.device or "-", "-", "fail", reason)]
    except Exception as err:  # a broken factory is a failure, whoever asked for it
        return [
            _row(target.name, target.device or "-", "-", "fail", f"{type(err).__name__}: {err}")
        ]
    device = device_label(backend.device)
    rows = []
    if not backend.trains:  # one row says why the rest of the table is not there
        why = f"{backend.name} is inference-only: forward checks only (no backward, no training)"
        rows.append(_row(backend.name, device, "-", "skip", why))
        checks = [c for c in checks if c.kind == "forward"]
    for dtype in dtypes:
        if dtype == "float64" and not backend.float64:
            why = f"no float64 on this device{backend.float64_hint}"
            rows.append(_row(backend.name, device, dtype, "skip", why))
            continue
        rows += [
            _known(c, c.run(backend, dtype))
            for c in checks
            if c.kind != "gradient" or dtype == "float64"
        ]
    return rows


def _known(check: Check, result: Result) -> Result:
    """A known bug's failure is expected (``xfail``); its passing means the note is stale."""
    if not check.known_bug or result.status not in ("pass", "fail"):
        return result
    if result.status == "fail":
        reason = f"known bug: {check.known_bug} [{result.reason}]"
        return replace(result, status="xfail", reason=reason)
    reason = f"passes although marked as a known bug ({check.known_bug}); remove known_bug."
    return replace(result, status="fail", reason=reason)


def _row(name: str, device: str, dtype: str, status: str, reason: str) -> Result:
    return Result(name, device, dtype, "-", "-", None, None, status, reason)


def format_table(results: Sequence[Result]) -> str:
    """The results as an aligned text table with a closing count of passes, failures, skips."""
    cells = [
        [
            r.backend,
            r.device,
            r.dtype,
            r.component,
            r.check,
            _err(r.max_abs_err),
            _err(r.max_rel_err),
            r.status.upper() if r.status == "fail" else r.status,
        ]
        for r in results
    ]
    header = [*_COLUMNS, "status"]
    widths = [max(len(row[i]) for row in [header, *cells]) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for row, result in zip(cells, results, strict=True):
        line = "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        lines.append(f"{line}  {result.reason}" if result.reason else line)
    counts = {s: sum(r.status == s for r in results) for s in ("pass", "fail", "skip", "xfail")}
    lines.append(
        f"{counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped, "
        f"{counts['xfail']} known bugs (xfail)"
    )
    return "\n".join(lines)


def _err(value: float | None) -> str:
    return "-" if value is None else f"{value:.1e}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``nnx conformance``: ``--backend`` (repeatable) and ``--dtype``."""
    parser.add_argument(
        "--backend",
        action="append",
        metavar="NAME[:DEVICE]",
        help=f"test only this backend (repeatable; default: {ENV}, else every registered one). "
        "A named backend that cannot load fails the run.",
    )
    parser.add_argument(
        "--dtype", choices=DTYPES, help="test only this dtype (default: float32 and float64)"
    )
    parser.add_argument(
        "--components-only",
        action="store_true",
        help="skip the end-to-end rows (training curves, initial weights, model files)",
    )


def run_cli(args: argparse.Namespace) -> int:
    """Run the suite for parsed ``args``, print the table; 1 when anything failed, else 0."""
    start = time.perf_counter()
    dtypes = (args.dtype,) if args.dtype else DTYPES
    results = run(backends=args.backend, dtypes=dtypes)
    if not getattr(args, "components_only", False):
        from nnx.testing.end_to_end import end_to_end  # trains models: only when asked

        results += end_to_end(args.backend, dtypes)
    print(format_table(results))
    print(f"conformance: {time.perf_counter() - start:.1f} s")
    return 1 if any(r.status == "fail" for r in results) else 0


def main(argv: Sequence[str] | None = None) -> int:
    """``nnx conformance [--backend NAME] [--dtype float32|float64]``; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="nnx conformance",
        description="Check every nnx component on every backend against NumPy float64.",
    )
    add_arguments(parser)
    return run_cli(parser.parse_args(argv))
