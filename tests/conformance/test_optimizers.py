"""Conformance of nnx.optimizers on every backend.

SGD (plain and with momentum), Adagrad, RMSprop and Adam, three decayed steps each.

The checks live in nnx.testing (so ``nnx conformance`` runs them too); the ``backend``
fixture comes from the nnx.testing.plugin pytest plugin.
"""

from __future__ import annotations

import pytest

from backends import Backend
from nnx.testing import DTYPES, Check
from nnx.testing.plugin import check_params, expect_pass


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("check", check_params("optimizers"))
def test_matches_numpy_float64(backend: Backend, dtype: str, check: Check) -> None:
    """Values within the tolerance table; namespace, device and dtype of every result."""
    expect_pass(check.run(backend, dtype))
