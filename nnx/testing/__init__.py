"""The cross-backend conformance suite: every nnx component on every backend, against NumPy.

Each check runs one component (Dense, ReLU, ..., Adam) on seeded host inputs, on the backend
under test in float32 or float64, and compares with NumPy in float64 (tolerances: one table,
:mod:`nnx.testing.tolerances`) or, for gradients, with finite differences. It also asserts
what a value comparison misses: every result is an array of the backend's library, on its
device, of the requested dtype. Host boundary: checks build inputs with NumPy and compare
NumPy copies of the results.

Run it as ``nnx conformance [--backend NAME[:DEVICE]] [--dtype float32|float64]``, as
``nnx.testing.main([])``, or as ``pytest -p nnx.testing.plugin -m conformance`` (the opt-in
plugin :mod:`nnx.testing.plugin` provides the ``backend`` fixture). ``NNX_TEST_BACKENDS=cupy``
narrows the set and makes a backend that cannot load a failure rather than a skip.

A layer of your own is checked through its declarations: :func:`layer_checks` (forward,
backward and every parameter gradient against NumPy and finite differences) and
:func:`optimizer_checks` (every optimizer's steps on it) give checks to run on any backend.
"""

from nnx.testing._check import Check, Output, Result, array_problems
from nnx.testing._layers import layer_checks
from nnx.testing._optimizers import optimizer_checks
from nnx.testing.checks import CHECKS, MODULES, checks_for
from nnx.testing.runner import (
    DTYPES,
    add_arguments,
    format_table,
    main,
    run,
    run_cli,
    run_target,
)
from nnx.testing.targets import Target, targets
from nnx.testing.tolerances import TOLERANCES, Tolerance, tolerance

__all__ = [
    "CHECKS",
    "Check",
    "DTYPES",
    "MODULES",
    "Output",
    "Result",
    "TOLERANCES",
    "Target",
    "Tolerance",
    "add_arguments",
    "array_problems",
    "checks_for",
    "format_table",
    "layer_checks",
    "main",
    "optimizer_checks",
    "run",
    "run_cli",
    "run_target",
    "targets",
    "tolerance",
]
