"""Numbers before and after a speed change: a few float64 training steps, saved and compared.

    python benchmarks/equivalence.py --save before.npz    # on the old code
    python benchmarks/equivalence.py --compare before.npz # on the new code: max abs diff
    python benchmarks/equivalence.py --book               # nnx against the book's own code

Covers every optimizer, the fused and unfused softmax crossentropy, the other losses and
activations, the regularizers and Model.train, on NumPy float64 (differences ~1e-12 expected).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import numpy as np

import nnx

B = "numpy"
STEPS = 8


def _dense(n_in: int, n_out: int, rng: np.random.Generator, **reg: float) -> nnx.Dense:
    layer = nnx.Dense(n_in, n_out, dtype="float64", backend=B, **reg)
    weights, biases = rng.standard_normal((n_in, n_out)), rng.standard_normal((1, n_out))
    layer.set_parameters(0.1 * weights, 0.1 * biases)
    return layer


def _run(layers: list, loss: Any, optimizer: Any, X: Any, y: Any, fused: bool) -> dict[str, Any]:
    """The book's loop for STEPS steps; records losses, gradients and final parameters."""
    out: dict[str, Any] = {}
    for step in range(STEPS):
        inputs = X
        for layer in layers:
            inputs = layer.forward(inputs, training=True)
        value = loss.forward(inputs, y) if fused else loss.calculate(inputs, y)
        out[f"loss{step}"] = np.asarray(value) + np.asarray(loss.regularization_loss())
        dvalues = loss.backward(loss.output if fused else inputs, y)
        for i, layer in enumerate(reversed(layers)):
            dvalues = layer.backward(dvalues)
            out[f"d{step}_{i}"] = np.array(dvalues, copy=True)
        optimizer.pre_update_params()
        for layer in layers:
            if layer.trainable:
                optimizer.update_params(layer)
        optimizer.post_update_params()
    for i, layer in enumerate(layers):
        if layer.trainable:
            out[f"w{i}"], out[f"b{i}"] = np.asarray(layer.weights), np.asarray(layer.biases)
    return out


def cases() -> dict[str, dict[str, Any]]:
    rng = np.random.default_rng(7)
    X = rng.standard_normal((64, 6))
    labels = rng.integers(0, 4, 64)
    onehot = np.eye(4)[labels]
    binary = (rng.random((64, 3)) > 0.5).astype(np.float64)
    target = rng.standard_normal((64, 2))
    optimizers = {
        "sgd": lambda: nnx.SGD(0.5, backend=B),
        "momentum": lambda: nnx.SGD(1.0, decay=1e-2, momentum=0.9, backend=B),
        "adagrad": lambda: nnx.Adagrad(0.5, decay=1e-3, backend=B),
        "rmsprop": lambda: nnx.RMSprop(0.01, decay=1e-3, backend=B),
        "adam": lambda: nnx.Adam(0.01, decay=1e-3, backend=B),
    }
    results = {}
    for name, make_optimizer in optimizers.items():
        layers = [
            _dense(6, 16, rng, weight_regularizer_l1=1e-3, bias_regularizer_l2=1e-3),
            nnx.ReLU(backend=B),
            _dense(16, 4, rng, weight_regularizer_l2=1e-3, bias_regularizer_l1=1e-3),
        ]
        loss = nnx.SoftmaxCategoricalCrossentropy(backend=B)
        loss.remember_trainable_layers([layers[0], layers[2]])
        results[f"fused_{name}"] = _run(layers, loss, make_optimizer(), X, labels, True)
    unfused = [
        ("softmax_cce", nnx.Softmax, nnx.CategoricalCrossentropy, 4, onehot),
        ("sigmoid_bce", nnx.Sigmoid, nnx.BinaryCrossentropy, 3, binary),
        ("linear_mse", nnx.Linear, nnx.MeanSquaredError, 2, target),
        ("linear_mae", nnx.Linear, nnx.MeanAbsoluteError, 2, target),
    ]
    for name, activation, loss_cls, n_out, y in unfused:
        layers = [
            _dense(6, 16, rng),
            nnx.ReLU(backend=B),
            _dense(16, n_out, rng),
            activation(backend=B),
        ]
        results[name] = _run(layers, loss_cls(backend=B), optimizers["adam"](), X, y, False)
    results["model"] = _model_case(rng, X, labels)
    return results


def _model_case(rng: np.random.Generator, X: Any, labels: Any) -> dict[str, Any]:
    if not hasattr(nnx, "Model"):
        return {}
    model = nnx.Model()
    for layer in (
        _dense(6, 16, rng),
        nnx.ReLU(backend=B),
        _dense(16, 4, rng),
        nnx.Softmax(backend=B),
    ):
        model.add(layer)
    model.set(
        loss=nnx.CategoricalCrossentropy(backend=B),
        optimizer=nnx.Adam(0.01, backend=B),
        accuracy=nnx.CategoricalAccuracy(backend=B),
    )
    model.finalize()
    history = model.train(X, labels, epochs=3, batch_size=16, print_every=10**9, verbose=0)
    out = {f"w{i}": np.asarray(p) for i, (w, b) in enumerate(model.get_parameters()) for p in (w,)}
    out.update({f"h_{k}": np.asarray(v, dtype=np.float64) for k, v in history.items()})
    return out


def book_vs_nnx() -> float:
    """The spiral network of chapter 10 in the book's code and in nnx, float64."""
    from implementations import Spec, _loop_step, book_step, host_data, host_params

    spec = Spec("S", (2, 64, 3), 300, "sgd")
    X, y = host_data(spec)
    params = [(w.astype(np.float64) * 10, b.astype(np.float64)) for w, b in host_params(spec)]
    reference = book_step(spec, X.astype(np.float64), y, params)
    reference.run(STEPS)
    layers = [
        _dense(2, 64, np.random.default_rng(0)),
        nnx.ReLU(backend=B),
        _dense(64, 3, np.random.default_rng(0)),
    ]
    for dense, (w, b) in zip(layers[::2], params, strict=True):
        dense.set_parameters(w, b)
    loss = nnx.SoftmaxCategoricalCrossentropy(backend=B)
    optimizer = nnx.SGD(1.0, momentum=0.9, backend=B)
    for _ in range(STEPS):
        _loop_step(layers, loss, optimizer, layers[::2], X.astype(np.float64), y)
    ours = [np.asarray(a) for d in layers[::2] for a in (d.weights, d.biases)]
    theirs = [a for d in reference.denses for a in (d.weights, d.biases)]
    return max(float(np.max(np.abs(o - r))) for o, r in zip(ours, theirs, strict=True))


def compare(saved: dict[str, Any], now: dict[str, dict[str, Any]]) -> float:
    worst = 0.0
    for case, arrays in now.items():
        diffs = [float(np.max(np.abs(a - saved[f"{case}/{k}"]))) for k, a in arrays.items()]
        worst = max([worst, *diffs])
        print(f"{case:<16} max abs diff {max(diffs, default=0.0):.3e} over {len(diffs)} arrays")
    return worst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--save")
    parser.add_argument("--compare")
    parser.add_argument("--book", action="store_true")
    args = parser.parse_args()
    if args.book:
        print(f"book vs nnx, {STEPS} spiral steps: max abs diff {book_vs_nnx():.3e}")
    if args.save:
        flat = {f"{c}/{k}": a for c, arrays in cases().items() for k, a in arrays.items()}
        np.savez(args.save, **flat)
        print(f"saved {len(flat)} arrays to {args.save}")
    if args.compare:
        worst = compare(dict(np.load(args.compare)), cases())
        print(f"worst {worst:.3e}")
        return 0 if worst < 1e-10 else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
