"""The runner, the table, ``nnx conformance`` and the pytest plugin around the checks."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import backends
from backends import Backend, BackendError
from nnx.testing import (
    CHECKS,
    DTYPES,
    Check,
    Output,
    Target,
    format_table,
    main,
    run,
    run_target,
    targets,
)

pytestmark = pytest.mark.conformance

_REFERENCE = [c for c in CHECKS if c.kind == "reference"]
_GRADIENT = [c for c in CHECKS if c.kind == "gradient"]
_KERNEL = [c for c in CHECKS if c.kind == "kernel"]
_FORWARD = [c for c in CHECKS if c.kind == "forward"]


def _unusable(device: Any = None) -> Backend:
    raise BackendError("unusable: no device here; install its driver.")


def _without_float64(device: Any = None) -> Backend:
    return dataclasses.replace(backends.load("numpy"), name="nofloat64", float64=False)


@pytest.fixture
def register(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """``backends.register`` into a copy of the registry, restored after the test."""
    backends.registered()
    monkeypatch.setattr(backends, "_FACTORIES", dict(backends._FACTORIES))
    monkeypatch.setattr(backends, "_instances", dict(backends._instances))
    monkeypatch.delenv("NNX_TEST_BACKENDS", raising=False)
    return backends.register


def test_run_gives_a_row_per_check_and_dtype() -> None:
    results = run(backends=["numpy"])
    assert len(results) == 2 * (len(_REFERENCE) + len(_KERNEL) + len(_FORWARD)) + len(_GRADIENT)
    assert all(r.status == "pass" and r.backend == "numpy" for r in results)
    assert {r.dtype for r in results if r.check == "kernel"} == {"float32", "float64"}
    assert {r.dtype for r in results if r.check == "gradient"} == {"float64"}


def test_every_registered_backend_and_strict_second_device_is_a_target(register: Any) -> None:
    ids = [t.id for t in targets()]
    assert set(backends.registered()) <= set(ids)
    assert "array_api_strict-device1" in ids


def test_unusable_backend_is_skipped_unless_asked_for(
    register: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    register("unusable", _unusable)
    assert Target("unusable") in targets()
    (row,) = run_target(Target("unusable"), DTYPES, CHECKS)
    assert row.status == "skip" and "no device here" in row.reason
    monkeypatch.setenv("NNX_TEST_BACKENDS", "unusable")
    (row,) = run()
    assert row.status == "fail" and "no device here" in row.reason
    assert main([]) == 1


def test_unknown_backend_name_fails() -> None:
    (row,) = run(backends=["nosuchbackend"])
    assert row.status == "fail" and "Unknown backend 'nosuchbackend'" in row.reason


def test_backend_without_float64_skips_float64(register: Callable[..., None]) -> None:
    register("nofloat64", _without_float64)
    results = run(backends=["nofloat64"])
    skipped = [r for r in results if r.status == "skip"]
    assert [(r.dtype, r.reason) for r in skipped] == [("float64", "no float64 on this device")]
    assert all(r.status == "pass" and r.dtype == "float32" for r in results if r not in skipped)


def _constant_check(expected: float, known_bug: str) -> Check:
    def scenario(backend: Backend, dtype: str) -> list[Output]:
        value = backend.asarray([1.0], backend.dtype(dtype))
        return [Output("x", value, "gradient", expected=np.array([expected]))]

    return Check("Constant", "layers", scenario, kind="gradient", known_bug=known_bug)


def test_known_bug_is_xfail_and_a_fixed_one_fails() -> None:
    (row,) = run(backends=["numpy"], dtypes=("float64",), checks=[_constant_check(2.0, "off")])
    assert row.status == "xfail" and "known bug: off" in row.reason
    (row,) = run(backends=["numpy"], dtypes=("float64",), checks=[_constant_check(1.0, "off")])
    assert row.status == "fail" and "remove known_bug" in row.reason


def test_run_rejects_unknown_dtype() -> None:
    with pytest.raises(ValueError, match="dtype='float16'"):
        run(backends=["numpy"], dtypes=("float16",))


def test_cli_prints_the_table_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--backend", "numpy", "--dtype", "float32", "--components-only"]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0].split()
    assert header[:5] == ["backend", "device", "dtype", "component", "check"]
    passed = len(_REFERENCE) + len(_KERNEL) + len(_FORWARD)  # NumPy offers every fused kernel
    assert f"{passed} passed, 0 failed" in out and "float64" not in out


_PLUGIN = ("-p", "no:cacheprovider", "-p", "nnx.testing.plugin")  # how a project opts in

_PLUGIN_TEST = """
def test_it(backend):
    assert backend.asarray([1.0]) is not None
"""


def test_plugin_skips_unusable_backends_and_fails_requested_ones(
    register: Callable[..., None], pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    register("unusable", _unusable)
    pytester.makepyfile(test_inner=_PLUGIN_TEST)
    result = pytester.runpytest_inprocess(*_PLUGIN, "-rs", "-k", "numpy or unusable")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*SKIPPED*unusable: no device here*"])
    monkeypatch.setenv("NNX_TEST_BACKENDS", "numpy,unusable")
    result = pytester.runpytest_inprocess(*_PLUGIN)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*unusable was asked for but cannot run*"])


def test_plugin_marks_backend_tests_conformance(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NNX_TEST_BACKENDS", "numpy")
    pytester.makepyfile(test_inner=_PLUGIN_TEST + "\n\ndef test_plain():\n    assert True\n")
    result = pytester.runpytest_inprocess(*_PLUGIN, "-m", "conformance", "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_it[[]numpy[]] PASSED*"])


_OWN_FIXTURE = """
import pytest


@pytest.fixture
def backend():
    return "the project's own"


def test_it(backend):
    assert backend == "the project's own"
"""


def test_without_opting_in_a_projects_backend_fixture_is_its_own(
    pytester: pytest.Pytester,
) -> None:
    """Installing nnx adds no plugin to other projects' sessions (no pytest11 entry point)."""
    pytester.makepyfile(test_inner=_OWN_FIXTURE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_it PASSED*"])


def test_an_inference_only_backend_runs_the_forward_rows_and_says_why_only_those() -> None:
    pytest.importorskip("ndonnx", reason='the onnx backend needs pip install -e ".[onnx]"')
    results = run(backends=["onnx"])
    (why,) = [r for r in results if r.status == "skip"]
    assert "inference-only" in why.reason
    rows = [r for r in results if r is not why]
    assert {(r.component, r.check) for r in rows} == {(c.component, "forward") for c in _FORWARD}
    assert {r.dtype for r in rows} == {"float32", "float64"}
    assert all(r.status == "pass" for r in rows), format_table(rows)
