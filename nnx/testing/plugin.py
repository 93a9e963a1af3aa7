"""pytest plugin of the conformance suite: the ``backend`` fixture over every backend and device.

Opt-in, so that installing nnx puts no fixture into other projects' test sessions: load it with
``pytest -p nnx.testing.plugin`` or ``pytest_plugins = ["nnx.testing.plugin"]`` in a
``conftest.py`` (as nnx's own tests do). A test that takes ``backend`` runs once per
target of :func:`nnx.testing.targets` (ids ``numpy``, ``array_api_strict-device1``, ``torch``,
``cupy``, ...) and carries the ``conformance`` marker, so ``pytest -m conformance`` selects it.
A backend that cannot run here is skipped with the reason; under ``NNX_TEST_BACKENDS`` it fails.
An inference-only backend (ONNX) runs only the tests marked ``inference``, which use nothing but
forward passes; the others skip there with that reason.
"""

from __future__ import annotations

from typing import Any

import pytest

from backends import Backend, BackendError
from nnx.testing._check import Result
from nnx.testing.checks import MODULES, checks_for
from nnx.testing.targets import Target, targets

__all__ = ["backend", "check_params", "expect_pass"]

_TARGETS = pytest.StashKey[list[Target]]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "conformance: cross-backend conformance checks (nnx.testing)"
    )
    config.addinivalue_line(
        "markers", "inference: a conformance test of forward passes only (runs on ONNX too)"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" not in metafunc.fixturenames:
        return
    if _TARGETS not in metafunc.config.stash:
        metafunc.config.stash[_TARGETS] = targets()
    found = metafunc.config.stash[_TARGETS]
    metafunc.parametrize("backend", found, ids=[t.id for t in found], indirect=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and isinstance(callspec.params.get("backend"), Target):
            item.add_marker(pytest.mark.conformance)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> Backend:
    """The backend under test on its device: skipped where it cannot run (failed if asked for)."""
    target: Any = getattr(request, "param", None)
    if not isinstance(target, Target):
        raise pytest.UsageError("the backend fixture is parametrized by nnx.testing.plugin only.")
    try:
        loaded = target.load()
    except (BackendError, ValueError) as err:
        reason = str(err) if str(err).startswith(target.name) else f"{target.id}: {err}"
        if target.required:
            pytest.fail(f"{target.id} was asked for but cannot run. {reason}", pytrace=False)
        pytest.skip(reason)
    if not loaded.trains and request.node.get_closest_marker("inference") is None:
        pytest.skip(f"{target.id} is inference-only: this test trains or runs backward passes")
    return loaded


def expect_pass(result: Result) -> None:
    """Skip on a skipped result; fail with the component and error magnitudes on a failure."""
    if result.status == "skip":
        pytest.skip(result.describe())
    if result.status != "pass":
        pytest.fail(result.describe(), pytrace=False)


def check_params(module: str | None = None, kind: str = "reference") -> list[Any]:
    """The checks of an nnx module (``None``: of every module) as pytest parameters, with ids
    ``module-component``; a known bug is ``xfail(strict=True)``."""
    return [
        pytest.param(
            check,
            id=f"{check.module}-{check.component}",
            marks=[pytest.mark.xfail(strict=True, reason=check.known_bug)]
            if check.known_bug
            else [],
        )
        for name in (MODULES if module is None else (module,))
        for check in checks_for(name, kind)
    ]
