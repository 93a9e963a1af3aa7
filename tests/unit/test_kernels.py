"""Fused optimizer kernels (backends/kernels.py and friends) against the plain formulas.

On NumPy the kernel runs the plain formulas' operations in their order, only into kept
scratch arrays: the results must be the very same bits, and so on torch for the ``_foreach``
kernels (one call per operation); torch's own fused Adam agrees to rounding. The conformance
suite runs the same comparison on every backend.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

import backends
import nnx
from nnx.testing._optimizers import kernel_steps

OPTIMIZERS = {
    "SGD": lambda fused, b: nnx.SGD(0.5, decay=0.01, fused=fused, backend=b),
    "SGD momentum": lambda fused, b: nnx.SGD(0.5, 0.01, momentum=0.8, fused=fused, backend=b),
    "Adagrad": lambda fused, b: nnx.Adagrad(0.3, 0.01, epsilon=1e-5, fused=fused, backend=b),
    "RMSprop": lambda fused, b: nnx.RMSprop(0.02, 0.01, 1e-6, rho=0.8, fused=fused, backend=b),
    "Adam": lambda fused, b: nnx.Adam(0.05, 0.01, 1e-6, 0.85, 0.99, fused=fused, backend=b),
}


def _run(name, fused, backend, dtype="float64", steps=25):
    """The steps of the conformance kernel check, as host arrays."""
    arrays = kernel_steps(backend, dtype, OPTIMIZERS[name](fused, backend), fused, steps)
    return {key: np.asarray(backend.to_numpy(value)) for key, value in arrays.items()}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_numpy_kernels_give_the_plain_formulas_bits(name, dtype):
    numpy = backends.load("numpy")
    assert nnx.SGD(backend=numpy).kernel in numpy.kernels
    fused, plain = _run(name, True, numpy, dtype), _run(name, False, numpy, dtype)
    assert list(fused) == list(plain)
    for key in plain:
        np.testing.assert_array_equal(fused[key], plain[key], err_msg=key)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_torch_kernels_match_the_plain_formulas(name):
    pytest.importorskip("torch")
    torch = backends.load("torch")
    fused, plain = _run(name, True, torch), _run(name, False, torch)
    for key in plain:
        if name == "Adam":  # torch's own fused kernel rounds in its own order
            np.testing.assert_allclose(fused[key], plain[key], rtol=1e-13, atol=1e-15)
        else:  # the same operations, one _foreach call each: the same bits
            np.testing.assert_array_equal(fused[key], plain[key], err_msg=key)
    reference = _run(name, False, backends.load("numpy"))
    for key in plain:
        np.testing.assert_allclose(fused[key], reference[key], rtol=1e-12, atol=1e-14)


def test_the_kernel_is_used_and_fused_false_keeps_the_plain_form(monkeypatch):
    numpy = backends.load("numpy")
    calls = []
    kernels = dict(numpy.kernels)
    adam = kernels["adam"]
    kernels["adam"] = lambda *a, **k: (calls.append(len(a[0])), adam(*a, **k))
    spy = backends.Backend(**{**vars(numpy), "kernels": kernels})
    model = nnx.Model(seed=0)
    for layer in (nnx.Dense(2, 8, seed=1, backend=spy), nnx.ReLU(backend=spy),
                  nnx.Dense(8, 3, seed=2, backend=spy), nnx.Softmax(backend=spy)):  # fmt: skip
        model.add(layer)
    model.set(loss=nnx.CategoricalCrossentropy(backend=spy), optimizer=nnx.Adam(backend=spy))
    model.finalize()
    X, y = nnx.datasets.spiral_data(10, 3, seed=0)
    model.train(X, y, epochs=2, verbose=0)
    assert calls == [4, 4]  # one call per step for all four arrays of the model
    model.set(optimizer=nnx.Adam(fused=False, backend=spy))
    model.finalize()
    model.train(X, y, epochs=2, verbose=0)
    assert calls == [4, 4]


def test_a_trace_never_runs_an_in_place_kernel():
    """Inside a compiler's trace (plain_operations) the optimizer runs its plain form: a
    kernel writing in place would bypass the step's NaN guard and the compiler's own state."""
    from nnx._fused import kernel_for
    from nnx._xp import plain_operations

    adam = nnx.Adam(backend=backends.load("numpy"))
    assert kernel_for(adam) is not None
    with plain_operations():
        assert kernel_for(adam) is None
    assert kernel_for(adam) is not None


def test_numpy_kernels_keep_scratch_arrays_per_thread():
    """Two threads updating different models at once: each gets the plain bits."""
    numpy = backends.load("numpy")
    results, expected = {}, {}
    for name in ("Adam", "RMSprop"):
        expected[name] = _run(name, False, numpy, steps=200)

    def work(name):
        results[name] = _run(name, True, numpy, steps=200)

    threads = [threading.Thread(target=work, args=(name,)) for name in expected]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name, arrays in expected.items():
        for key, array in arrays.items():
            np.testing.assert_array_equal(results[name][key], array, err_msg=f"{name} {key}")


def test_scratch_arrays_are_per_thread():
    from backends.kernels import _Work

    work, like = _Work(), np.zeros((3, 4), np.float32)
    mine = work.like(like)
    theirs = []
    thread = threading.Thread(target=lambda: theirs.append(work.like(like)))
    thread.start()
    thread.join()
    assert work.like(like) is mine  # kept between calls in one thread
    assert theirs[0] is not mine and theirs[0].shape == mine.shape


class _FrozenBiasesSGD(nnx.SGD):
    """A subclass that rewrites the update: the kernel (the parent's formula) must not run."""

    def update(self, layer, name, dparams):
        if name != "biases":
            super().update(layer, name, dparams)


def test_a_subclass_that_rewrites_update_runs_its_own_update():
    layer = nnx.Dense(2, 3, seed=0)
    layer.dweights, layer.dbiases = np.ones((2, 3), np.float32), np.ones((1, 3), np.float32)
    optimizer = _FrozenBiasesSGD(0.5)
    optimizer.update_params(layer)
    np.testing.assert_array_equal(layer.biases, np.zeros((1, 3)))
    assert nnx.SGD(0.5).kernel in backends.load("numpy").kernels  # nnx.SGD itself is fused
