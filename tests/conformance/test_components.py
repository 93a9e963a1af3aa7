"""Conformance of every nnx component on every backend: layers, activations, losses,
accuracies and optimizers, and the fused optimizer kernels a backend offers.

The checks live in nnx.testing (so ``nnx conformance`` runs them too), one list per nnx
module; ids are ``module-component`` (``-k layers`` selects the layers). The ``backend``
fixture comes from the nnx.testing.plugin pytest plugin.
"""

from __future__ import annotations

import pytest

from backends import Backend
from nnx.testing import DTYPES, Check
from nnx.testing.plugin import check_params, expect_pass


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("check", check_params())
def test_matches_numpy_float64(backend: Backend, dtype: str, check: Check) -> None:
    """Values within the tolerance table; namespace, device and dtype of every result."""
    expect_pass(check.run(backend, dtype))


@pytest.mark.parametrize("check", check_params(kind="gradient"))
def test_gradients_match_finite_differences(backend: Backend, check: Check) -> None:
    """Analytic gradients (penalties included) against central differences, in float64."""
    expect_pass(check.run(backend, "float64"))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("check", check_params(kind="kernel"))
def test_fused_kernels_match_the_plain_formulas(backend: Backend, dtype: str, check: Check) -> None:
    """A backend's fused optimizer kernels against nnx's plain formulas, same backend and dtype,
    over many steps (skipped where a backend offers none)."""
    expect_pass(check.run(backend, dtype))


@pytest.mark.inference
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("check", check_params(kind="forward"))
def test_forward_passes_match_numpy(backend: Backend, dtype: str, check: Check) -> None:
    """Inference passes on batches of 1, 7 and 64 rows; on a backend that builds programs
    (ONNX), one program with a free batch dimension, run on each batch."""
    expect_pass(check.run(backend, dtype))
