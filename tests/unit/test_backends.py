"""The backend registry: precedence, env-var parsing, errors, registration, import hygiene."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import backends
import nnx
from backends import Backend, BackendError, BackendStatus

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _clean_registry(monkeypatch):
    """No NNX_* variables from the caller; registry state restored after every test."""
    monkeypatch.delenv("NNX_BACKEND", raising=False)
    monkeypatch.delenv("NNX_DEVICE", raising=False)
    factories = dict(backends._FACTORIES)
    instances = dict(backends._instances)
    selected = backends.get_backend()
    yield
    backends._FACTORIES.clear()
    backends._FACTORIES.update(factories)
    backends._instances.clear()
    backends._instances.update(instances)
    backends.set_backend(selected)


def _fake_factory(name="fake", calls=None):
    """A factory that records the devices it is asked for and returns a NumPy-based Backend."""

    def make(device):
        if calls is not None:
            calls.append(device)
        return Backend(
            name=name, xp=np, device=device or "cpu", asarray=np.asarray, to_numpy=np.asarray
        )

    return make


def _strict_device(name):
    import array_api_strict

    return array_api_strict.Device(name)


# Precedence: explicit argument > NNX_BACKEND (+ NNX_DEVICE) > "numpy".


def test_default_is_numpy():
    assert backends.load().name == "numpy"
    assert backends.get_backend().name == "numpy"
    assert backends.get_backend().device == "cpu"


def test_env_var_selects_backend(monkeypatch):
    monkeypatch.setenv("NNX_BACKEND", "array_api_strict")
    assert backends.load().name == "array_api_strict"
    backends.set_backend(None)  # as in a fresh process: nothing chosen, the variables decide
    assert backends.get_backend().name == "array_api_strict"
    assert nnx.Dense(2, 3, seed=0).backend.name == "array_api_strict"


def test_env_device_goes_with_env_backend(monkeypatch):
    monkeypatch.setenv("NNX_BACKEND", "array_api_strict")
    monkeypatch.setenv("NNX_DEVICE", "device1")
    assert backends.load().device == _strict_device("device1")


def test_empty_env_vars_mean_unset(monkeypatch):
    monkeypatch.setenv("NNX_BACKEND", "")
    monkeypatch.setenv("NNX_DEVICE", "")
    backend = backends.load()
    assert (backend.name, backend.device) == ("numpy", "cpu")


def test_env_device_alone_applies_to_default_numpy(monkeypatch):
    monkeypatch.setenv("NNX_DEVICE", "cuda")
    with pytest.raises(BackendError, match="numpy runs on the CPU only, got device='cuda'"):
        backends.load()


def test_explicit_name_beats_env(monkeypatch):
    monkeypatch.setenv("NNX_BACKEND", "array_api_strict")
    monkeypatch.setenv("NNX_DEVICE", "device1")  # belongs to NNX_BACKEND, so it is ignored too
    backend = backends.load("numpy")
    assert (backend.name, backend.device) == ("numpy", "cpu")
    assert nnx.Dense(2, 3, seed=0, backend="numpy").backend.name == "numpy"


def test_explicit_device_beats_env_device(monkeypatch):
    monkeypatch.setenv("NNX_BACKEND", "array_api_strict")
    monkeypatch.setenv("NNX_DEVICE", "device2")
    assert backends.load(device="device1").device == _strict_device("device1")


def test_set_backend_beats_env_and_explicit_beats_set_backend(monkeypatch):
    monkeypatch.setenv("NNX_BACKEND", "array_api_strict")
    selected = backends.set_backend("numpy")
    assert backends.get_backend() is selected
    assert nnx.Dense(2, 3, seed=0).backend.name == "numpy"
    assert nnx.Dense(2, 3, seed=0, backend="array_api_strict").backend.name == "array_api_strict"


def test_load_caches_one_instance_per_name_and_device():
    assert backends.load("numpy") is backends.load("numpy")
    strict1 = backends.load("array_api_strict", "device1")
    assert strict1 is backends.load("array_api_strict", "device1")
    assert strict1 is not backends.load("array_api_strict")


# Errors: unknown names, missing libraries and devices.


def test_unknown_backend_from_env_lists_names_and_fix(monkeypatch):
    monkeypatch.setenv("NNX_BACKEND", "nosuch")
    names = ", ".join(backends.registered())
    expected = (
        f"Unknown backend 'nosuch' from NNX_BACKEND. Available: {names}. "
        "Set NNX_BACKEND to one of these or call backends.register()."
    )
    with pytest.raises(ValueError, match=re.escape(expected)):
        backends.load()
    with pytest.raises(ValueError, match="nosuch"):
        backends.set_backend(None)  # as in a fresh process: nothing chosen, the variables decide
    with pytest.raises(ValueError, match="nosuch"):  # never a silent fallback to numpy
        backends.get_backend()
    with pytest.raises(ValueError, match="nosuch"):
        nnx.Dense(2, 3)


def test_unknown_backend_from_argument_says_argument():
    with pytest.raises(ValueError, match=r"Unknown backend 'nosuch' from argument\. Available: "):
        backends.load("nosuch")
    with pytest.raises(ValueError, match="numpy, array_api_strict"):
        backends.set_backend("nosuch")


def test_cupy_without_cuda_device_raises_backend_error():
    cupy = pytest.importorskip("cupy", reason="cupy is not installed")
    try:
        has_device = cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        has_device = False
    if has_device:
        pytest.skip("a CUDA device exists here; this test is about machines without one")
    with pytest.raises(BackendError, match="no CUDA device") as info:
        backends.load("cupy")
    assert isinstance(info.value, RuntimeError)
    assert info.value.__cause__ is not None  # the library error is chained


def test_numpy_rejects_cuda_device():
    with pytest.raises(BackendError, match=r"CPU only, got device='cuda'; unset NNX_DEVICE"):
        backends.load("numpy", "cuda")


def test_array_api_strict_second_device():
    pytest.importorskip("array_api_strict")
    backend = backends.load("array_api_strict", "device1")
    assert backend.device == _strict_device("device1")
    layer = nnx.Dense(2, 3, seed=0, backend=backend)
    assert layer.weights.device == backend.device
    assert layer.forward(np.ones((4, 2))).device == backend.device


def test_array_api_strict_bad_device_names_choices():
    pytest.importorskip("array_api_strict")
    with pytest.raises(
        BackendError, match=r"array_api_strict has no device 'nosuch'; expected"
    ) as info:
        backends.load("array_api_strict", "nosuch")
    assert "device1" in str(info.value)


def test_array_api_strict_no_float64_device_reports_capability():
    strict = pytest.importorskip("array_api_strict")
    if "no_float64" not in str(strict.__array_namespace_info__().devices()):
        pytest.skip("this array_api_strict has no 'no_float64' device")
    backend = backends.load("array_api_strict", "no_float64")
    assert backend.float64 is False
    with pytest.raises(BackendError, match="float64"):
        backend.dtype("float64")


def test_dtype_names():
    backend = backends.load("numpy")
    assert backend.dtype("float32") == np.float32
    assert backend.dtype("float64") == np.float64
    assert backend.dtype(np.float32) is np.float32  # dtype objects pass unchanged
    with pytest.raises(
        ValueError, match=r"expected dtype 'float32' or 'float64', got dtype='float16'"
    ):
        backend.dtype("float16")


def test_dtype_float64_on_backend_without_it():
    backend = Backend(
        name="half", xp=np, device="cpu", asarray=np.asarray, to_numpy=np.asarray, float64=False
    )
    with pytest.raises(BackendError, match="does not support float64; use dtype='float32'"):
        backend.dtype("float64")


def test_rng_seeded_generator_or_global_module():
    backend = backends.load("numpy")
    assert isinstance(backend.rng(3), np.random.Generator)
    assert backend.rng(None) is np.random


# available(), register()


def test_available_lists_every_registered_backend():
    rows = backends.available()
    assert [row.name for row in rows] == backends.registered()
    assert all(isinstance(row, BackendStatus) for row in rows)
    numpy_row = rows[[row.name for row in rows].index("numpy")]
    assert numpy_row == BackendStatus("numpy", True, "", np.__version__, "cpu")
    for row in rows:
        assert row.usable == (row.reason == ""), row


def test_available_reports_unusable_backends_with_reason():
    def broken(device):
        raise BackendError("broken: the driver is missing; install it.")

    backends.register("broken", broken)
    backends.register("ghost", "nnx_no_such_module:make")
    rows = {row.name: row for row in backends.available()}
    assert rows["broken"] == BackendStatus(
        "broken", False, "broken: the driver is missing; install it."
    )
    assert not rows["ghost"].usable
    assert "cannot be imported" in rows["ghost"].reason
    if "cupy" in rows and not rows["cupy"].usable:
        assert rows["cupy"].reason


def test_unimportable_module_raises_backend_error():
    backends.register("ghost", "nnx_no_such_module:make")
    with pytest.raises(BackendError, match="Backend 'ghost' cannot be imported") as info:
        backends.load("ghost")
    assert isinstance(info.value.__cause__, ImportError)


def test_register_custom_factory_receives_device():
    calls = []
    backends.register("fake", _fake_factory(calls=calls))
    assert "fake" in backends.registered()
    assert backends.load("fake", "dev0").device == "dev0"
    assert backends.load("fake", "dev0") is backends.load("fake", "dev0")
    assert calls == ["dev0"]


def test_register_selected_through_env(monkeypatch):
    backends.register("fake", _fake_factory())
    monkeypatch.setenv("NNX_BACKEND", "fake")
    monkeypatch.setenv("NNX_DEVICE", "dev1")
    backend = backends.set_backend(None)  # nothing chosen: the variables decide
    assert backends.get_backend() is backend
    assert (backend.name, backend.device) == ("fake", "dev1")


def test_register_duplicate_name_needs_replace():
    with pytest.raises(ValueError, match=r"backend 'numpy' exists; pass replace=True"):
        backends.register("numpy", _fake_factory())
    backends.register("fake", _fake_factory("first"))
    old = backends.load("fake")
    with pytest.raises(ValueError, match="'fake' exists"):
        backends.register("fake", _fake_factory("second"))
    backends.register("fake", _fake_factory("second"), replace=True)
    new = backends.load("fake")  # the cached instance of the old factory is dropped
    assert (old.name, new.name) == ("first", "second")


@pytest.mark.parametrize("name", ["my-backend", "", "2d"])
def test_register_rejects_non_identifiers(name):
    with pytest.raises(ValueError, match=re.escape(f"got name={name!r}")):
        backends.register(name, _fake_factory())


def test_register_rejects_uppercase_names():
    with pytest.raises(ValueError, match="lowercase"):
        backends.register("MyBackend", _fake_factory())


# set_backend, get_backend, use_backend


def test_set_backend_and_get_backend():
    strict = backends.set_backend("array_api_strict", "device1")
    assert backends.get_backend() is strict
    assert strict.device == _strict_device("device1")
    custom = Backend(name="mine", xp=np, device="cpu", asarray=np.asarray, to_numpy=np.asarray)
    assert backends.set_backend(custom) is custom
    assert backends.get_backend() is custom


def test_use_backend_restores_previous_selection():
    numpy_backend = backends.set_backend("numpy")
    with backends.use_backend("array_api_strict") as inner:
        assert backends.get_backend() is inner
        assert inner.name == "array_api_strict"
        with backends.use_backend("numpy"):
            assert backends.get_backend().name == "numpy"
        assert backends.get_backend() is inner
    assert backends.get_backend() is numpy_backend


def test_use_backend_restores_when_block_raises():
    before = backends.set_backend(None)
    with pytest.raises(KeyError):
        with backends.use_backend("array_api_strict"):
            raise KeyError("boom")
    assert backends.get_backend() is before
    assert before.name == "numpy"


def test_set_backend_inside_a_block_lasts_beyond_it():
    with backends.use_backend("array_api_strict"):
        chosen = backends.set_backend("numpy")
        assert backends.get_backend() is chosen
    assert backends.get_backend() is chosen


def _build_in_thread(name, barrier, results):
    """Build a layer inside a use_backend block while the other thread is inside its own."""
    with backends.use_backend(name):
        barrier.wait()  # both blocks are open now
        layer = nnx.Dense(2, 3, seed=0)
        barrier.wait()  # neither block closes before both layers exist
        results[name] = (layer.backend.name, backends.get_backend().name)


def test_use_backend_in_threads_stays_in_its_thread():
    main = backends.set_backend("numpy")
    barrier = threading.Barrier(2, timeout=30)
    results = {}
    threads = [
        threading.Thread(target=_build_in_thread, args=(name, barrier, results))
        for name in ("array_api_strict", "torch" if _has("torch") else "numpy")
    ]
    for thread in threads:
        thread.start()
    with backends.use_backend("numpy"):
        for thread in threads:
            thread.join()
    assert {name: got for name, got in results.items()} == {name: (name, name) for name in results}
    assert len(results) == 2
    assert backends.get_backend() is main
    assert nnx.Dense(2, 3, seed=0).backend is main


def test_threads_see_the_program_default():
    chosen = backends.set_backend("array_api_strict")
    seen = []
    thread = threading.Thread(target=lambda: seen.append(backends.get_backend()))
    thread.start()
    thread.join()
    assert seen == [chosen]


def test_use_backend_in_asyncio_tasks_stays_in_its_task():
    main = backends.set_backend("numpy")

    async def build(name, started, release):
        with backends.use_backend(name):
            started.set()
            await release.wait()  # the other task runs its block meanwhile
            return nnx.ReLU().backend.name

    async def both():
        started = [asyncio.Event(), asyncio.Event()]
        release = asyncio.Event()
        tasks = [
            asyncio.create_task(build(name, event, release))
            for name, event in zip(("array_api_strict", "numpy"), started, strict=True)
        ]
        for event in started:
            await event.wait()
        outside = backends.get_backend()
        release.set()
        return await asyncio.gather(*tasks), outside

    names, outside = asyncio.run(both())
    assert names == ["array_api_strict", "numpy"]
    assert outside is main


def _has(module):
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def test_use_backend_with_unknown_name_changes_nothing():
    selected = backends.set_backend("numpy")
    with pytest.raises(ValueError, match="Unknown backend 'nosuch'"):
        with backends.use_backend("nosuch"):
            pass  # pragma: no cover
    assert backends.get_backend() is selected


# Import hygiene (fresh interpreters).


def _python(code, **env):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("NNX_")}
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_import_nnx_with_unknown_env_backend_does_not_fail():
    result = _python("import nnx; print('imported')", NNX_BACKEND="nosuch")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "imported"


@pytest.mark.parametrize("module", ["backends", "nnx"])
def test_import_does_not_pull_in_gpu_or_torch_libraries(module):
    code = (
        f"import sys, {module}\n"
        "print(sorted(m for m in ('cupy', 'torch', 'array_api_strict') if m in sys.modules))"
    )
    result = _python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
