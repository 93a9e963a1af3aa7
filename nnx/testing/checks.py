"""The conformance checks, one or two per nnx component, grouped by nnx module."""

from __future__ import annotations

from nnx.testing import _accuracy, _activations, _forward, _layers, _losses, _optimizers
from nnx.testing._check import Check

__all__ = ["CHECKS", "MODULES", "checks_for"]

MODULES = ("layers", "activations", "losses", "optimizers", "accuracy", "model")
KINDS = ("reference", "gradient", "kernel", "forward")

# "reference" checks compare with NumPy in float64; "gradient" checks compare analytic
# gradients with finite differences (float64 only); "forward" checks run inference passes
# (the rows of an inference-only backend, ONNX).
CHECKS: tuple[Check, ...] = (
    _layers.CHECKS
    + _activations.CHECKS
    + _losses.CHECKS
    + _optimizers.CHECKS
    + _accuracy.CHECKS
    + _forward.CHECKS
)


def checks_for(module: str, kind: str = "reference") -> list[Check]:
    """The checks of one nnx module (``"layers"``, ...), of one kind (``"reference"``, ...)."""
    if module not in MODULES or kind not in KINDS:
        raise ValueError(
            f"checks_for: expected module in {MODULES} and kind in {KINDS}, "
            f"got module={module!r}, kind={kind!r}."
        )
    return [c for c in CHECKS if c.module == module and c.kind == kind]
