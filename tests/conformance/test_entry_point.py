"""A third-party backend, installed with an ``nnx.backends`` entry point, joins the suite.

The package is written into a temporary folder (a module and its ``.dist-info``) and put on
``sys.path``; nothing in nnx or backends changes for it to appear and pass.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import backends
from nnx.testing import format_table, run, targets

pytestmark = pytest.mark.conformance

_MODULE = '''
"""nnx_thirdparty: NumPy under another name, as a third party would ship a backend."""

import array_api_compat.numpy as xp
import numpy as np

from backends import Backend, BackendError


def make(device=None):
    if device not in (None, "cpu"):
        raise BackendError(f"thirdparty runs on the CPU only, got device={device!r}.")
    return Backend(
        name="thirdparty",
        xp=xp,
        device="cpu",
        asarray=lambda data, dtype=None: np.asarray(data, dtype=dtype),
        to_numpy=np.asarray,
        version="0.0",
    )
'''


def _install(root: Path) -> None:
    """The module and the metadata pip would write for ``nnx-thirdparty 0.0``."""
    (root / "nnx_thirdparty.py").write_text(textwrap.dedent(_MODULE))
    info = root / "nnx_thirdparty-0.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: nnx-thirdparty\nVersion: 0.0\n")
    (info / "entry_points.txt").write_text("[nnx.backends]\nthirdparty = nnx_thirdparty:make\n")


def test_entry_point_backend_is_listed_and_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("NNX_TEST_BACKENDS", raising=False)
    # A registry that has not read the entry points yet, as in a fresh process; restored after.
    monkeypatch.setattr(backends, "_FACTORIES", dict(backends._FACTORIES))
    monkeypatch.setattr(backends, "_instances", dict(backends._instances))
    monkeypatch.setattr(backends, "_entry_points_read", False)
    backends._FACTORIES.pop("thirdparty", None)

    assert "thirdparty" in [target.id for target in targets()]
    results = run(backends=["thirdparty"])
    table = format_table(results)
    assert results and {r.backend for r in results} == {"thirdparty"}, table
    # It offers no fused optimizer kernels: those checks skip, and say why.
    assert all(r.status == "pass" or (r.check, r.status) == ("kernel", "skip") for r in results)
    assert any(r.status == "pass" for r in results), table
    assert {r.dtype for r in results} == {"float32", "float64"}
    assert "thirdparty" in table
