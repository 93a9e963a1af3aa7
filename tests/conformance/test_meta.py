"""The suite itself: deliberately wrong backends must fail, and at the right component.

Each wrong backend is a real one with one thing broken (a function of its namespace, its
array's ``@``), registered through ``backends.register`` like any third-party backend.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import array_api_compat.numpy as np_xp
import numpy as np
import pytest

import backends
from backends import Backend
from nnx.testing import Result, format_table, run, tolerance

try:
    import array_api_strict
except ImportError:  # the cases that need it are skipped
    array_api_strict = None
try:
    import array_api_compat.torch as torch_xp
except ImportError:
    torch_xp = None

pytestmark = pytest.mark.conformance


class _Namespace:
    """An Array API namespace that delegates to ``base`` except for ``overrides``."""

    def __init__(self, base: Any, **overrides: Callable[..., Any]) -> None:
        self._base, self._overrides = base, overrides

    def __getattr__(self, name: str) -> Any:
        return self._overrides[name] if name in self._overrides else getattr(self._base, name)


class _SkewedArray(np.ndarray):
    """NumPy arrays whose ``@`` is off by 1e-3 relative."""

    def __matmul__(self, other: Any) -> Any:
        return np.matmul(self, other) * (1 + 1e-3)

    def __rmatmul__(self, other: Any) -> Any:
        return np.matmul(other, self) * (1 + 1e-3)


def _skewed_asarray(data: Any, dtype: Any = None) -> Any:
    return np.asarray(data, dtype=dtype).view(_SkewedArray)


def _variant(base: str, name: str, device: Any = None, **changes: Any) -> Callable[[Any], Backend]:
    """A factory of backend ``base`` on ``device`` under a new name, with ``changes``."""

    def make(_device: Any = None) -> Backend:
        real = backends.load(base, device)
        return dataclasses.replace(real, name=name, **changes)

    return make


def _wrong_exp(x: Any) -> Any:
    # Off by up to 1e-3 relative, varying with x: a constant factor would cancel in Softmax.
    return np_xp.exp(x) * (1 + 1e-3 * np_xp.cos(x))


def _float64_ones_like(x: Any, **_: Any) -> Any:
    return np.ones(x.shape)  # ignores dtype: float64 leaks into float32 work


def _arange_on_default_device(*args: Any, device: Any = None, **kwargs: Any) -> Any:
    return array_api_strict.arange(*args, **kwargs)  # ignores device


def _maximum_to_numpy(x1: Any, x2: Any) -> Any:
    host = [x if isinstance(x, (int, float)) else x.numpy() for x in (x1, x2)]
    return np.maximum(*host)  # a NumPy array from a torch backend


def _wrong_kernel(_device: Any = None) -> Backend:
    real = backends.load("numpy")
    adam = real.kernels["adam"]

    def wrong_adam(*arrays: Any, beta_2: float, **hyper: Any) -> None:
        adam(*arrays, beta_2=beta_2 * 0.999, **hyper)

    kernels = {**real.kernels, "adam": wrong_adam}
    return dataclasses.replace(real, name="wrong_kernel", kernels=kernels)


_STRICT = array_api_strict is None
_TORCH = torch_xp is None
_BOTH = ("reference", "gradient")

# (name, factory, the (component, check) pairs that must fail; every other row must pass).
_CASES = [
    pytest.param(
        "wrong_exp",
        _variant("numpy", "wrong_exp", xp=_Namespace(np_xp, exp=_wrong_exp)),
        {(c, k) for c in ("Softmax", "Sigmoid", "SoftmaxCategoricalCrossentropy") for k in _BOTH}
        | {(c, "forward") for c in ("Softmax", "Sigmoid", "Model")},  # the model ends in Softmax
        id="exp",
    ),
    # Dense is made of matrix products, and so are Softmax's row sums and Dense's bias
    # gradient (products with a vector of ones): those fail, nothing else. The bias gradient
    # no longer matches a skewed forward pass, so Dense fails its gradient check too, and the
    # fused softmax-crossentropy's gradient check sees its skewed softmax.
    pytest.param(
        "wrong_matmul",
        _variant("numpy", "wrong_matmul", asarray=_skewed_asarray),
        {("Dense", k) for k in _BOTH}
        | {("Softmax", "reference")}
        | {("SoftmaxCategoricalCrossentropy", k) for k in _BOTH}
        | {(c, "forward") for c in ("Dense", "Softmax", "Model")},
        id="matmul",
    ),
    # Immutable, so no in-place add casts the float64 back (NumPy's += would hide the leak).
    pytest.param(
        "wrong_dtype",
        _variant(
            "numpy",
            "wrong_dtype",
            mutable=False,
            xp=_Namespace(np_xp, ones_like=_float64_ones_like),
        ),
        {("Dense", "reference")},
        id="dtype",
    ),
    pytest.param(
        "wrong_device",
        _variant(
            "array_api_strict",
            "wrong_device",
            "device1",
            xp=_Namespace(array_api_strict, arange=_arange_on_default_device),
        ),
        {
            (c, k)
            # arange builds the one-hot rows and the flat indices that pick the true class's
            # probability per row; Softmax uses none (its row maximum folds columns).
            for c in ("CategoricalCrossentropy", "SoftmaxCategoricalCrossentropy")
            for k in _BOTH
        },
        id="device",
        marks=pytest.mark.skipif(_STRICT, reason="array_api_strict is not installed"),
    ),
    pytest.param(
        "wrong_namespace",
        _variant("torch", "wrong_namespace", xp=_Namespace(torch_xp, maximum=_maximum_to_numpy)),
        {
            (c, k)
            for c in (
                "ReLU",
                "Softmax",  # its row maximum folds columns with maximum
                "CategoricalCrossentropy",
                "BinaryCrossentropy",
                "SoftmaxCategoricalCrossentropy",
            )
            for k in _BOTH
        }
        | {(c, "forward") for c in ("ReLU", "Softmax", "Model")},
        id="namespace",
        marks=pytest.mark.skipif(_TORCH, reason="torch is not installed"),
    ),
    # A fused Adam kernel whose cache decays a little too slowly: its kernel check fails, and
    # Adam's reference check, whose steps take the kernel too.
    pytest.param(
        "wrong_kernel",
        _wrong_kernel,
        {("Adam kernel", "kernel"), ("Adam", "reference")},
        id="kernel",
    ),
    # The control: nothing broken, only immutable (the path of backends like JAX).
    pytest.param("immutable", _variant("numpy", "immutable", mutable=False), set(), id="control"),
]


@pytest.fixture
def register(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """``backends.register`` into a copy of the registry, which is restored after the test."""
    backends.registered()  # read the entry points into the real registry first
    monkeypatch.setattr(backends, "_FACTORIES", dict(backends._FACTORIES))
    monkeypatch.setattr(backends, "_instances", dict(backends._instances))
    return backends.register


@pytest.mark.parametrize(("name", "factory", "must_fail"), _CASES)
def test_wrong_backend_fails_at_the_right_component(
    register: Callable[..., None], name: str, factory: Any, must_fail: set[tuple[str, str]]
) -> None:
    register(name, factory)
    results = run(backends=[name])
    failing = {(r.component, r.check) for r in results if r.status == "fail"}
    assert failing == must_fail, format_table([r for r in results if r.status != "pass"])
    others = [r for r in results if (r.component, r.check) not in must_fail]
    # A backend without fused kernels skips their checks, saying so; everything else passes.
    fine = [r.status == "pass" or (r.check, r.status) == ("kernel", "skip") for r in others]
    assert others and all(fine), format_table(others)


def test_failures_name_the_output_and_the_error(register: Callable[..., None]) -> None:
    """A value error reports its size; a dtype leak is caught where values agree."""
    register("wrong_exp", _variant("numpy", "wrong_exp", xp=_Namespace(np_xp, exp=_wrong_exp)))
    softmax = _row(run(backends=["wrong_exp"], dtypes=("float64",)), "Softmax", "reference")
    assert 1e-4 < softmax.max_rel_err < 1e-2
    assert "output: max abs err" in softmax.reason and "Softmax" in softmax.describe()
    leak = _Namespace(np_xp, ones_like=_float64_ones_like)
    register("wrong_dtype", _variant("numpy", "wrong_dtype", mutable=False, xp=leak))
    dense = _row(run(backends=["wrong_dtype"], dtypes=("float32",)), "Dense", "reference")
    assert dense.status == "fail" and "dweights: dtype float64, expected float32" in dense.reason
    assert dense.max_rel_err < tolerance("reduction", "float32").rtol  # values alone pass


@pytest.mark.skipif(_TORCH, reason="torch is not installed")
def test_numpy_results_on_a_torch_backend_fail_with_right_values(
    register: Callable[..., None],
) -> None:
    xp = _Namespace(torch_xp, maximum=_maximum_to_numpy)
    register("wrong_namespace", _variant("torch", "wrong_namespace", xp=xp))
    relu = _row(run(backends=["wrong_namespace"], dtypes=("float32",)), "ReLU", "reference")
    assert relu.status == "fail" and relu.max_abs_err == 0.0
    assert "output: an array of array_api_compat.numpy" in relu.reason


def _row(results: list[Result], component: str, check: str) -> Result:
    (row,) = [r for r in results if r.component == component and r.check == check]
    return row
