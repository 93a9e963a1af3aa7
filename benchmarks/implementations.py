"""The implementations that benchmarks/step.py races: one training step each, same start.

Every builder takes a :class:`Spec` and host data (NumPy, float32) and returns an
:class:`Impl` whose ``run(k)`` performs ``k`` training steps (forward, loss, backward,
optimizer update) on the same batch. All start from the same host-drawn parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import book_reference as book
import numpy as np

import backends
import nnx
from nnx.datasets import spiral_data


@dataclass(frozen=True)
class Spec:
    """A workload: layer widths, batch size and optimizer ("sgd" or "adam")."""

    name: str
    sizes: tuple[int, ...]
    batch: int
    optimizer: str
    per_epoch: int = 1  # batches in an epoch: the data holds batch * per_epoch rows

    def matmul_flops(self) -> int:
        """Flops of the forward and backward matmuls (no dinputs for the first layer)."""
        pairs = list(zip(self.sizes[:-1], self.sizes[1:], strict=True))
        per_pair = [2 * self.batch * a * b for a, b in pairs]
        return 3 * sum(per_pair) - per_pair[0]


@dataclass
class Impl:
    """``run(k)`` does k steps; ``sync`` waits for the device; ``state`` lists held arrays.

    ``library`` names the array library whose thread pool does the work (see step.py).
    ``parameters`` gives ``[W1, b1, W2, b2, ...]`` on the host in the book's layout, so a
    test can check that every implementation trains the same network.
    """

    name: str
    library: str
    run: Callable[[int], None]
    sync: Callable[[], None] = lambda: None
    state: Callable[[], list[Any]] = field(default=lambda: [])
    denses: list[Any] = field(default_factory=list)
    parameters: Callable[[], list[np.ndarray]] = field(default=lambda: [])


_STATE_NAMES = (
    "weights",
    "biases",
    "weight_momentums",
    "bias_momentums",
    "weight_cache",
    "bias_cache",
)


def layer_state(layers: list[Any]) -> list[Any]:
    """Parameters and optimizer state held by the given layers (for memory accounting)."""
    return [getattr(lay, n) for lay in layers for n in _STATE_NAMES if hasattr(lay, n)]


def _wait_for(b: Any, arrays: Callable[[], list[Any]]) -> Callable[[], None]:
    """How a timed sample waits for nnx's work: on JAX, for the model's own state, as the
    hand-written anchors wait for theirs (``Backend.synchronize`` must walk every live array
    of the process, about 0.1 ms a sample that is the harness's, not the step's); elsewhere
    the backend's synchronize (a no-op on NumPy, the device's on CUDA)."""
    if b.name != "jax":
        return b.synchronize  # type: ignore[no-any-return]
    import jax

    return lambda: jax.block_until_ready(arrays())


def _library(backend: Any) -> str:
    """The library behind a backend; array_api_strict computes with NumPy."""
    return "numpy" if backend.name == "array_api_strict" else backend.name


def _host_parameters(to_numpy: Callable[[Any], np.ndarray], denses: list[Any]) -> list[Any]:
    return [np.array(to_numpy(a)) for d in denses for a in (d.weights, d.biases)]


def host_data(spec: Spec, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """S: the book's spiral data; otherwise random features and labels of the right shape."""
    if spec.name == "S":
        return spiral_data(100, 3, seed=seed)
    rng = np.random.default_rng(seed)
    rows = spec.batch * spec.per_epoch
    X = rng.standard_normal((rows, spec.sizes[0]), dtype=np.float32)
    y = rng.integers(0, spec.sizes[-1], size=rows)
    return X, y


def host_params(spec: Spec, seed: int = 1) -> list[tuple[np.ndarray, np.ndarray]]:
    """The book's initialisation (0.01 x standard normal, zero biases), in float32."""
    rng = np.random.default_rng(seed)
    return [
        ((0.01 * rng.standard_normal((a, b))).astype(np.float32), np.zeros((1, b), np.float32))
        for a, b in zip(spec.sizes[:-1], spec.sizes[1:], strict=True)
    ]


def book_step(spec: Spec, X: np.ndarray, y: np.ndarray, params: list) -> Impl:
    """(c) The book's classes, used as in its chapter-10 training loop."""
    layers: list[Any] = []
    for i, (W, b) in enumerate(params):
        dense = book.Layer_Dense(*W.shape)
        dense.weights, dense.biases = W.copy(), b.copy()
        layers += [dense] if i == len(params) - 1 else [dense, book.Activation_ReLU()]
    loss_activation = book.Activation_Softmax_Loss_CategoricalCrossentropy()
    if spec.optimizer == "sgd":
        optimizer: Any = book.Optimizer_SGD(learning_rate=1.0, momentum=0.9)
    else:
        optimizer = book.Optimizer_Adam(learning_rate=0.001)
    denses = layers[::2]

    def run(k: int) -> None:
        for _ in range(k):
            _loop_step(layers, loss_activation, optimizer, denses, X, y)

    return Impl(
        "book",
        "numpy",
        run,
        state=lambda: layer_state(denses),
        denses=denses,
        parameters=lambda: _host_parameters(np.asarray, denses),
    )


def _loop_step(layers, loss_activation, optimizer, denses, X, y) -> None:
    """The book's loop: forward, loss, backward through every layer, then update."""
    inputs = X
    for layer in layers:
        layer.forward(inputs, training=True)
        inputs = layer.output
    loss_activation.forward(inputs, y)
    loss_activation.backward(loss_activation.output, y)
    dvalues = loss_activation.dinputs
    for layer in reversed(layers):
        layer.backward(dvalues)
        dvalues = layer.dinputs
    optimizer.pre_update_params()
    for dense in denses:
        optimizer.update_params(dense)
    optimizer.post_update_params()


def _nnx_optimizer(spec: Spec, backend: Any) -> Any:
    if spec.optimizer == "sgd":
        return nnx.SGD(learning_rate=1.0, momentum=0.9, backend=backend)
    return nnx.Adam(learning_rate=0.001, backend=backend)


def _nnx_layers(params: list, backend: Any, dtype: str) -> list[Any]:
    layers: list[Any] = []
    for i, (W, b) in enumerate(params):
        dense = nnx.Dense(*W.shape, dtype=dtype, backend=backend)
        dense.set_parameters(W, b)
        layers += [dense] if i == len(params) - 1 else [dense, nnx.ReLU(backend=backend)]
    return layers


def nnx_loop(
    spec: Spec, X: np.ndarray, y: np.ndarray, params: list, backend: str, dtype: str = "float32"
) -> Impl:
    """(a) nnx objects driven by the book's loop, on ``backend``."""
    b = backends.load(backend)
    Xb, yb = b.asarray(X, b.dtype(dtype)), b.asarray(y)
    layers = _nnx_layers(params, b, dtype)
    loss_activation = nnx.SoftmaxCategoricalCrossentropy(backend=b)
    optimizer = _nnx_optimizer(spec, b)
    denses = layers[::2]

    def run(k: int) -> None:
        for _ in range(k):
            _loop_step(layers, loss_activation, optimizer, denses, Xb, yb)

    return Impl(
        "nnx loop",
        _library(b),
        run,
        b.synchronize,
        lambda: layer_state(denses),
        parameters=lambda: _host_parameters(b.to_numpy, denses),
    )


def nnx_compiled_loop(spec: Spec, X: np.ndarray, y: np.ndarray, params: list) -> Impl:
    """(a) on JAX, each step through ``nnx.compile``: the book's own loop, compiled."""
    b = backends.load("jax")
    Xb, yb = b.asarray(X, b.dtype("float32")), b.asarray(y)
    layers = _nnx_layers(params, b, "float32")
    loss_activation = nnx.SoftmaxCategoricalCrossentropy(backend=b)
    optimizer = _nnx_optimizer(spec, b)
    denses = layers[::2]

    @nnx.compile
    def step(*args: Any) -> Any:  # the parts are arguments: nnx.compile carries their state
        *parts, loss_activation, optimizer, X, y = args
        _loop_step(parts, loss_activation, optimizer, parts[::2], X, y)
        return loss_activation.output  # what the book's accuracy line reads

    def run(k: int) -> None:
        for _ in range(k):
            step(*layers, loss_activation, optimizer, Xb, yb)

    return Impl(
        "nnx.compile(book loop)",
        "jax",
        run,
        _wait_for(b, lambda: layer_state(denses)),
        lambda: layer_state(denses),
        parameters=lambda: _host_parameters(b.to_numpy, denses),
    )


def build_model(spec: Spec, params: list, b: Any, dtype: str = "float32") -> Any:
    """The workload as a finalized ``nnx.Model``: Dense/ReLU layers, Softmax, crossentropy."""
    model = nnx.Model()
    for layer in _nnx_layers(params, b, dtype):
        model.add(layer)
    model.add(nnx.Softmax(backend=b))
    model.set(
        loss=nnx.CategoricalCrossentropy(backend=b),
        optimizer=_nnx_optimizer(spec, b),
        accuracy=nnx.CategoricalAccuracy(backend=b),
    )
    model.finalize()
    return model


def nnx_model(
    spec: Spec,
    X: np.ndarray,
    y: np.ndarray,
    params: list,
    backend: str,
    dtype: str = "float32",
    compile: bool | None = None,
    name: str = "nnx Model",
    on_nan: str = "raise",
    steps_per_execution: int | None = 1,
) -> Impl:
    """(b) ``nnx.Model.train``: ``k`` steps are ``k / spec.per_epoch`` epochs of one train
    call (accuracy included). ``compile``, ``on_nan`` and ``steps_per_execution`` as
    ``Model.train`` takes them (compile=None: compiled where the backend can; one step per
    call unless asked, the per-step columns' meaning)."""
    b = backends.load(backend)
    model = build_model(spec, params, b, dtype)
    layers = model.layers
    batch_size = None if spec.name == "S" else spec.batch

    def run(k: int) -> None:
        model.train(
            X,
            y,
            epochs=max(1, k // spec.per_epoch),
            batch_size=batch_size,
            print_every=10**9,
            verbose=0,
            compile=compile,
            on_nan=on_nan,
            steps_per_execution=steps_per_execution,
        )

    return Impl(
        name,
        _library(b),
        run,
        _wait_for(b, lambda: layer_state(layers[::2])),
        lambda: layer_state(layers[::2]),
        parameters=lambda: _host_parameters(b.to_numpy, layers[::2]),
    )


def first_compiled_step(spec: Spec, X: np.ndarray, y: np.ndarray, params: list) -> float:
    """Seconds of a fresh model's first compiled ``train`` call on JAX (one epoch, the
    defaults): trace and compile."""
    import time

    model = build_model(spec, params, backends.load("jax"))
    batch_size = None if spec.name == "S" else spec.batch
    start = time.perf_counter()
    model.train(X, y, epochs=1, batch_size=batch_size, verbose=0)
    model.backend.synchronize()
    return time.perf_counter() - start


def matmul_floor(
    spec: Spec,
    X: np.ndarray,
    params: list,
    backend: str,
    device: str | None = None,
    name: str = "matmul floor",
) -> Impl:
    """(e) Only the step's matmuls: x @ W forward; x.T @ d and d @ W.T backward.

    On nnx's backend this is the floor under nnx; on torch next to another backend it
    shows what torch's own BLAS takes for the same products, the floor under torch.
    """
    b = backends.load(backend, device)
    f32 = b.dtype("float32")
    inputs = [b.asarray(X, f32)] + [
        b.asarray(np.ones((spec.batch, W.shape[0]), np.float32), f32) for W, _ in params[1:]
    ]
    weights = [b.asarray(W, f32) for W, _ in params]
    grads = [b.asarray(np.ones((spec.batch, W.shape[1]), np.float32), f32) for W, _ in params]

    def run(k: int) -> None:
        for _ in range(k):
            for x, w in zip(inputs, weights, strict=True):
                x @ w
            for i, (x, w, d) in enumerate(zip(inputs, weights, grads, strict=True)):
                x.T @ d
                if i:
                    d @ w.T

    return Impl(name, _library(b), run, b.synchronize, lambda: weights)
