"""``nnx info``: the registered backends, whether their libraries are installed (found without
importing them, so it answers at once), and the variables that set each library's threads.
``nnx info --check`` imports each library and tries its device."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

import backends

__all__ = ["add_info_arguments", "info"]

# Which variable sets which library's CPU threads; read once, when the library starts.
_THREADS = (
    ("OMP_NUM_THREADS", "torch's CPU threads, and NumPy's BLAS (OpenBLAS) where the next is unset"),
    ("OPENBLAS_NUM_THREADS", "NumPy's BLAS (OpenBLAS): matrix products on numpy"),
    (
        "XLA_FLAGS",
        "JAX on the CPU; one thread: --xla_cpu_multi_thread_eigen=false "
        "intra_op_parallelism_threads=1",
    ),
)


def add_info_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--check",
        action="store_true",
        help="import each library and try its device (slower; default: only look whether "
        "each library is installed)",
    )


def info(args: argparse.Namespace) -> int:
    if args.check:
        _table(_checked_rows())
    else:
        _table(_installed_rows())
        print("(installed is not usable yet: nnx info --check imports each and tries its device)")
    print()
    print(
        "threads (each library reads its variable as it starts; unset: it picks, often all cores):"
    )
    width = max(len(f"{name}={os.environ.get(name, 'unset')}") for name, _ in _THREADS)
    for name, governs in _THREADS:
        print(f"  {name + '=' + os.environ.get(name, 'unset'):<{width}}  {governs}")
    return 0


def _installed_rows() -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = [("backend", "installed", "version", "note")]
    for status in backends.installed():
        rows.append((status.name, "yes" if status.usable else "no", status.version, status.reason))
    return rows


def _checked_rows() -> list[tuple[str, ...]]:
    """Each backend loaded: usable or not, and why. A library can fail in its own ways (CuPy
    without a GPU raises CUDARuntimeError): every failure is a row, never a crash."""
    rows: list[tuple[str, ...]] = [
        ("backend", "usable", "version", "device", "default dtype", "reason")
    ]
    for name in backends.registered():
        try:
            backend = backends.load(name)
        except Exception as err:
            reason = " ".join(str(err).split()) or type(err).__name__
            rows.append((name, "no", "", "", "", reason))
        else:
            device = backends.device_name(backend.device)
            rows.append((name, "yes", backend.version, device, "float32", ""))
    return rows


def _table(rows: Sequence[tuple[str, ...]]) -> None:
    """Columns padded to their widest cell; the last one, free text, is not."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[-1]]).rstrip())
