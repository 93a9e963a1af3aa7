"""End to end: the book's spiral model trained on every backend follows NumPy's loss curve.

Dense(2, 64), ReLU, Dense(64, 3), Softmax+crossentropy on ``spiral_data(100, 3, seed=0)``,
200 epochs (30 on lazy backends) of the book's layer-by-layer loop with each optimizer
(nnx.testing.training).
"""

from __future__ import annotations

import numpy as np
import pytest

from backends import Backend, BackendError, load
from nnx.testing import DTYPES, array_problems
from nnx.testing.training import (
    OPTIMIZERS,
    Training,
    compiled_problems,
    curve_problems,
    epochs_for,
    train_spiral,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def reference() -> dict[str, Training]:
    """NumPy float64 runs, once per optimizer."""
    return {name: train_spiral(load("numpy"), "float64", name) for name in OPTIMIZERS}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_loss_curve_matches_numpy_float64(
    backend: Backend, dtype: str, optimizer: str, reference: dict[str, Training]
) -> None:
    if dtype == "float64" and not backend.float64:
        pytest.skip(f"{backend.name} on {backend.device} has no float64{backend.float64_hint}")
    run = train_spiral(backend, dtype, optimizer, epochs_for(backend))
    expected = reference[optimizer].losses[: len(run.losses)]
    problems = curve_problems(run.losses, expected, dtype)
    assert not problems, f"{optimizer} on {backend.name} ({backend.device}, {dtype}): {problems}"
    assert run.losses[-1] < run.losses[0] - 1e-3, f"{optimizer}: the loss did not drop"
    for array in run.final:
        assert not array_problems(backend, array, dtype), array_problems(backend, array, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_initial_weights_are_bit_identical(backend: Backend, dtype: str) -> None:
    """One seed gives the same bits on every backend: drawn on the host, moved once."""
    if dtype == "float64" and not backend.float64:
        pytest.skip(f"{backend.name} on {backend.device} has no float64{backend.float64_hint}")
    got = train_spiral(backend, dtype, "SGD", epochs=0).initial_weights
    want = train_spiral(load("numpy"), dtype, "SGD", epochs=0).initial_weights
    for layer, (ours, numpy) in enumerate(zip(got, want, strict=True), start=1):
        assert ours.dtype == numpy.dtype == np.dtype(dtype), f"dense{layer}: {ours.dtype}"
        assert np.array_equal(ours, numpy), f"dense{layer} weights differ from NumPy's"


@pytest.mark.parametrize("per_call", [1, 4], ids=["one step a call", "4 steps a call"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_compiled_step_equals_eager_step(backend: Backend, dtype: str, per_call: int) -> None:
    """Where a backend compiles (JAX, torch), Model.train's compiled step gives the eager numbers,
    one step a call or K steps a call (``steps_per_execution``)."""
    if backend.compiler is None:
        pytest.skip(f"{backend.name} does not compile functions (Backend.compiler is None)")
    if dtype == "float64" and not backend.float64:
        pytest.skip(f"{backend.name} on {backend.device} has no float64{backend.float64_hint}")
    try:
        worst, problems = compiled_problems(backend, dtype, steps_per_execution=per_call)
    except BackendError as err:  # torch.compile without a C++ compiler says so
        pytest.skip(str(err))
    assert not problems, f"{backend.name} ({backend.device}, {dtype}): {problems}"
