"""``nnx conformance`` prints end-to-end rows too: training curves, initial weights, files."""

from __future__ import annotations

import pytest

import backends
from nnx.testing.end_to_end import end_to_end
from nnx.testing.runner import main


def test_end_to_end_rows_pass_on_numpy_and_strict() -> None:
    rows = end_to_end(["numpy", "array_api_strict:device1"], ("float64",))
    components = {row.component for row in rows}
    assert {"training (Adam)", "initial weights (bits)", "model file round trip"} <= components
    assert all(row.status == "pass" for row in rows), [r.describe() for r in rows]


def test_a_broken_backend_fails_its_training_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    import array_api_compat.numpy as np_xp
    import numpy as np

    # The numpy namespace with maximum (ReLU's) off by one part in a thousand. (A skewed exp
    # would prove nothing here: softmax cancels a constant factor.)
    class Skewed:
        def __getattr__(self, name: str) -> object:
            return getattr(np_xp, name)

        @staticmethod
        def maximum(x1: object, x2: object) -> object:
            return np.maximum(x1, x2) * (1 + 1e-3)

    def make(device: object = None) -> backends.Backend:
        base = backends.load("numpy")
        return backends.Backend("skewed", Skewed(), "cpu", base.asarray, base.to_numpy)

    monkeypatch.setattr(backends, "_FACTORIES", {**backends._FACTORIES, "skewed": make})
    monkeypatch.setattr(backends, "_instances", {})
    rows = end_to_end(["skewed"], ("float64",))
    failed = {row.component for row in rows if row.status == "fail"}
    assert {f"training ({name})" for name in ("SGD", "Adagrad", "RMSprop", "Adam")} <= failed
    assert "initial weights (bits)" not in failed


def test_components_only_skips_them(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--backend", "numpy", "--dtype", "float64", "--components-only"]) == 0
    assert "end-to-end" not in capsys.readouterr().out
