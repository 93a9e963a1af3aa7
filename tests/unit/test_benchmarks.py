"""The benchmark races implementations of one training step; they must train the same network.

A faster column that computed something else (a missing bias gradient, another optimizer
formula) would make every ratio in benchmarks/RESULTS.md meaningless.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from implementations import (  # noqa: E402
    Spec,
    book_step,
    host_data,
    host_params,
    nnx_compiled_loop,
    nnx_loop,
    nnx_model,
)
from jax_hand import jax_scan, jax_step  # noqa: E402
from step import SPECS as BENCHMARK_SPECS  # noqa: E402

SPECS = [
    BENCHMARK_SPECS[0],  # S as benchmarked
    # M's shape of network, narrower, so the test stays fast.
    dataclasses.replace(BENCHMARK_SPECS[1], sizes=(784, 32, 32, 10), batch=64),
]
STEPS = 5


def _builders(spec: Spec) -> dict:
    X, y = host_data(spec)
    params = host_params(spec)
    builders = {
        "book": lambda: book_step(spec, X, y, params),
        "nnx loop": lambda: nnx_loop(spec, X, y, params, "numpy"),
        "nnx Model": lambda: nnx_model(spec, X, y, params, "numpy"),
    }
    try:
        import torch  # noqa: F401
        from torch_eager import torch_autograd_step, torch_step

        builders["torch eager"] = lambda: torch_step(spec, X, y, params, "cpu")
        builders["torch autograd"] = lambda: torch_autograd_step(spec, X, y, params, "cpu")
    except ImportError:
        pass
    try:
        import jax  # noqa: F401

        builders["nnx jax compiled"] = lambda: nnx_model(spec, X, y, params, "jax")
        builders["nnx jax eager"] = lambda: nnx_model(spec, X, y, params, "jax", compile=False)
        builders["jax.jit step"] = lambda: jax_step(spec, X, y, params)
        # STEPS steps in calls of 2 and one of the rest: the scan's cut batches and the calls'
        # counting are what is checked.
        builders["jax lax.scan"] = lambda: jax_scan(spec, X, y, params, 2)
        builders["nnx.compile(book loop)"] = lambda: nnx_compiled_loop(spec, X, y, params)
        builders["nnx jax, 2 steps a call"] = lambda: nnx_model(
            spec, X, y, params, "jax", steps_per_execution=2
        )
    except ImportError:
        pass
    return builders


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_every_implementation_trains_the_same_network(spec: Spec) -> None:
    results = {}
    for name, build in _builders(spec).items():
        impl = build()
        impl.run(STEPS)
        impl.sync()
        results[name] = impl.parameters()
    reference = results.pop("book")
    assert len(reference) == 2 * (len(spec.sizes) - 1)
    start = [a for pair in host_params(spec) for a in pair]
    # The steps moved the weights (a no-op implementation would match a no-op book).
    assert all(not np.allclose(a, b) for a, b in zip(reference[::2], start[::2], strict=True))
    for name, params in results.items():
        assert len(params) == len(reference), name
        for index, (ours, theirs) in enumerate(zip(params, reference, strict=True)):
            # float32 over a few steps; Adam's normalised steps amplify rounding near 0.
            np.testing.assert_allclose(
                ours, theirs, rtol=2e-3, atol=2e-5, err_msg=f"{name}, array {index}"
            )


def test_the_epoch_columns_take_the_same_batches() -> None:
    """Several batches an epoch (step.py's E): the hand-written JAX anchors cut the batches
    on the device in the order nnx's Model takes them; all train what NumPy trains."""
    pytest.importorskip("jax")
    spec = dataclasses.replace(SPECS[1], name="E", per_epoch=4)
    X, y = host_data(spec)
    params = host_params(spec)
    impls = {
        "numpy": nnx_model(spec, X, y, params, "numpy"),
        "jax.jit step": jax_step(spec, X, y, params),
        "jax lax.scan": jax_scan(spec, X, y, params, 3),
        "nnx jax, 3 steps a call": nnx_model(spec, X, y, params, "jax", steps_per_execution=3),
    }
    results = {}
    for name, impl in impls.items():
        impl.run(8)  # two epochs
        impl.sync()
        results[name] = impl.parameters()
    reference = results.pop("numpy")
    assert not np.allclose(reference[0], params[0][0])
    for name, found in results.items():
        for index, (ours, theirs) in enumerate(zip(found, reference, strict=True)):
            np.testing.assert_allclose(
                ours, theirs, rtol=2e-3, atol=2e-5, err_msg=f"{name}, array {index}"
            )


def test_the_gpu_table_wiring_runs_on_the_cpu() -> None:
    """``step.py --gpu`` builds its columns with build_all(..., book=False) on cupy and
    CUDA; here the same call on numpy and the CPU, so a GPU run does not meet its bugs first."""
    pytest.importorskip("torch")
    from step import build_all

    spec = dataclasses.replace(SPECS[1], name="G")
    impls = build_all(spec, "numpy", "cpu", book=False)
    assert [impl.name for impl in impls] == [
        "nnx loop",
        "nnx Model",
        "torch eager",
        "torch autograd",
        "matmul floor",
        "torch matmul floor",
    ]
    for impl in impls:
        impl.run(2)
        impl.sync()


def test_gpu_run_without_a_gpu_fails_and_says_why() -> None:
    import backends

    if any(status.name == "cupy" and status.usable for status in backends.available()):
        pytest.skip("a CUDA device is here: run benchmarks/gpu_run.sh itself")
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_run.sh"
    result = subprocess.run(
        ["bash", str(script)],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "no CUDA device" in result.stdout or "cannot import" in result.stdout
