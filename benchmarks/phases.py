"""Where one nnx training step's time goes, and its optimizer against torch.optim's.

    python benchmarks/phases.py [S|M|L] [--reps N] [--backend numpy|torch]

Part by part, for nnx Model (on NumPy, or the backend named): forward, loss and accuracy,
backward, optimizer update (medians over the repetitions). Then the optimizer update alone,
many steps back to back, for nnx as Model runs it (the backend's fused kernel where it offers
one), for nnx's plain formulas (``fused=False``) and for ``torch.optim`` on the same
parameters (torch with as many threads as NumPy's BLAS), with the ratio to ``torch.optim``.
Timing torch part by part is not meaningful on the CPU: its worker threads sleep between
parts and waking them dominates. benchmarks/step.py has the whole steps and the matmul
floors of both libraries.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from implementations import build_model, host_data, host_params
from step import SPECS, blas_threads, quiet_thread_pools

import backends
from nnx.data import to_backend


def nnx_parts(
    spec, X, y, params, backend: str = "numpy", fused: bool = True
) -> dict[str, Callable[[], None]]:
    b = backends.load(backend)
    model = build_model(spec, params, b)
    model.optimizer.fused = fused
    Xb, yb = to_backend(model, X, y)
    state: dict = {}

    def forward() -> None:
        state["out"] = model.forward(Xb, training=True)

    def loss_and_accuracy() -> None:
        model.loss.calculate(state["out"], yb, include_regularization=True)
        predictions = model.output_layer_activation.predictions(state["out"])
        model.accuracy.calculate(predictions, yb)

    def backward() -> None:
        model.backward(state["out"], yb)

    def optimizer() -> None:  # as Model.train_step runs it
        model.optimizer.pre_update_params()
        model.optimizer.update_layers(model.trainable_layers)
        model.optimizer.post_update_params()

    return {
        "forward": forward,
        "loss+accuracy": loss_and_accuracy,
        "backward": backward,
        "optimizer": optimizer,
    }


def torch_optimizer(spec, X, y, params, fused: bool = False) -> Callable[[], None]:
    """``torch.optim``'s step on the workload's parameters, with gradients from one step;
    ``fused=True``: the same optimizer with ``fused=True`` (Adam only)."""
    import torch
    from torch_eager import torch_module

    torch.set_num_threads(blas_threads())
    model, loss_fn, optimizer = torch_module(spec, params, torch.device("cpu"))
    if fused:
        optimizer = type(optimizer)(model.parameters(), **optimizer.defaults | {"fused": True})
    loss_fn(model(torch.from_numpy(X)), torch.from_numpy(y)).backward()
    return optimizer.step


def median_times(parts: dict[str, Callable[[], None]], reps: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in parts}
    for _ in range(reps):
        for name, part in parts.items():  # in order: each part needs the one before
            start = time.perf_counter()
            part()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload", nargs="?", default="M", choices=[s.name for s in SPECS])
    parser.add_argument("--reps", type=int, default=0, help="default: 2000 for S, 60 otherwise")
    parser.add_argument("--backend", default="numpy", help="nnx backend (default numpy)")
    args = parser.parse_args()
    quiet_thread_pools()
    spec = next(s for s in SPECS if s.name == args.workload)
    reps = args.reps or (2000 if spec.name == "S" else 60)
    X, y = host_data(spec)
    params = host_params(spec)
    parts = nnx_parts(spec, X, y, params, args.backend)
    plain = nnx_parts(spec, X, y, params, args.backend, fused=False)
    plain["forward"]()
    plain["backward"]()
    median_times(parts, 3)  # warm up: optimizer state, caches
    figures = {part: seconds * 1e6 for part, seconds in median_times(parts, reps).items()}
    print(
        f"{spec.name}: sizes {'-'.join(map(str, spec.sizes))}, batch {spec.batch}, "
        f"{spec.optimizer}; medians over {reps} steps, in microseconds"
    )
    line = "  ".join(f"{part} {us:.1f}" for part, us in figures.items())
    print(f"  nnx Model on {args.backend}: {line}  (sum {sum(figures.values()):.1f})")
    updates = {"nnx": parts["optimizer"], "nnx plain": plain["optimizer"]}
    try:
        updates["torch.optim"] = torch_optimizer(spec, X, y, params)
        if spec.optimizer == "adam":  # what torch users get by asking for it
            updates["torch.optim fused"] = torch_optimizer(spec, X, y, params, fused=True)
    except ImportError:
        print("  torch not installed: torch.optim is skipped.")
    per_update: dict[str, list[float]] = {name: [] for name in updates}
    for _ in range(11):  # alternate the libraries in runs of reps steps
        for name, update in updates.items():
            time.sleep(0.1)  # let the other library's threads go idle (see step.py)
            update()
            start = time.perf_counter()
            for _ in range(reps):
                update()
            per_update[name].append((time.perf_counter() - start) / reps)
    medians = {name: statistics.median(values) for name, values in per_update.items()}
    line = "  ".join(f"{n} {seconds * 1e6:.1f}" for n, seconds in medians.items())
    print(f"  optimizer update alone, {reps} back to back, in microseconds: {line}")
    if "torch.optim" in medians:
        ratios = "  ".join(
            f"{n} / torch.optim = {medians[n] / medians['torch.optim']:.2f}"
            for n in ("nnx", "nnx plain")
        )
        print(f"  {ratios}")


if __name__ == "__main__":
    main()
