"""Time one training step of nnx against the book's NumPy code, PyTorch eager and the matmuls.

    python benchmarks/step.py [--backend NAME] [--quick] [--workloads SMLE] [--gpu] [--no-jax]

Workloads (float32): S spiral 300x2, 2-64-3, SGD momentum; M batch 128, 784-512-512-10, Adam;
L the same at batch 1024; E M's network over an epoch of 16 batches of 128 rows (JAX columns
only). All implementations run interleaved, round-robin, in one process; each figure is the
median over repetitions, so machine noise hits every column alike. With the JAX columns, S
times 1000 steps a sample (one train call: a tenth of the book's 10,000-epoch run) and E at
least 100, so that calls of 100 steps are timed whole and a train call's fixed cost (about
1 ms: the data's move, the checks, the last read) weighs as it does in a user's run.

Where JAX is installed, the JAX columns follow, side by side (XLA measured slower right after
torch's work): nnx's Model on the jax backend eager, compiled without the NaN gate
(``on_nan="ignore"``), the book's loop through ``nnx.compile``, compiled one step a call, 100
steps a call (``steps_per_execution``) and with Model.train's defaults (nnx picks K); a
hand-written JAX step under ``jax.jit`` with donated buffers, and a hand-written ``lax.scan``
of 100 steps (``jax_hand.py``); then the first compiled call (trace and compile) of a fresh
model, with the defaults.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import os
import platform
import statistics
import sys
import time
import tracemalloc
from typing import Any

import numpy as np
from implementations import (
    Impl,
    Spec,
    book_step,
    first_compiled_step,
    host_data,
    host_params,
    matmul_floor,
    nnx_compiled_loop,
    nnx_loop,
    nnx_model,
)
from jax_hand import jax_scan, jax_step

import backends
import nnx

SPECS = [
    Spec("S", (2, 64, 3), 300, "sgd"),
    Spec("M", (784, 512, 512, 10), 128, "adam"),
    Spec("L", (784, 512, 512, 10), 1024, "adam"),
    # M's network over an epoch of 16 batches in one train call, the way most users train:
    # JAX columns only (the others time one batch).
    Spec("E", (784, 512, 512, 10), 128, "adam", per_epoch=16),
]
GPU_SPEC = Spec("G", (4096, 4096, 4096, 10), 8192, "adam")


def environment(torch_threads: int | None) -> list[str]:
    """Date, CPU, library versions, BLAS and thread counts, for the report header."""
    lines = [
        f"date     {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"cpu      {_cpu_model()} ({len(os.sched_getaffinity(0))} usable cores)",
        f"python   {platform.python_version()}  numpy {np.__version__}  nnx {nnx.__version__}",
    ]
    try:
        from threadpoolctl import threadpool_info

        for pool in threadpool_info():
            lines.append(
                f"blas     {pool.get('internal_api')} {pool.get('version')} "
                f"({pool.get('architecture', '?')}, {pool.get('threading_layer', '?')}) "
                f"threads={pool.get('num_threads')} {os.path.basename(pool.get('filepath', ''))}"
            )
    except ImportError:
        lines.append(f"blas     {_numpy_blas_summary()} (threadpoolctl not installed)")
    for name in ("OPENBLAS_CORETYPE", "OMP_WAIT_POLICY", "OMP_NUM_THREADS"):
        if os.environ.get(name):
            lines.append(f"env      {name}={os.environ[name]}")
    if torch_threads is not None:
        import torch

        lines.append(f"torch    {torch.__version__} threads={torch.get_num_threads()}")
    return lines


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _numpy_blas_summary() -> str:
    config = np.show_config(mode="dicts")
    blas = config.get("Build Dependencies", {}).get("blas", {})
    return f"{blas.get('name', '?')} {blas.get('version', '')}"


def blas_threads() -> int:
    """Threads of NumPy's BLAS (what torch is given, so both use the same cores)."""
    try:
        from threadpoolctl import threadpool_info

        counts = [p["num_threads"] for p in threadpool_info() if p.get("user_api") == "blas"]
        return counts[0] if counts else 1
    except ImportError:
        return len(os.sched_getaffinity(0))


# Steps per timed sample, at the least: Model.train has a fixed cost per call (data checks,
# the move to the backend, the history), torch's thread pool needs a few steps to wake up,
# and the targets are about training over many steps. With 1-5 steps per sample, torch L
# measured 55 ms per step instead of 19-24 ms.
MIN_STEPS = 10


def quiet_thread_pools() -> None:
    """Call before torch is imported.

    Idle OpenMP workers (torch's) spin by default; next to NumPy's spinning OpenBLAS workers
    that oversubscribes a small machine and made torch up to 60x slower in the interleaved
    run. Passive waiting keeps the comparison about the step, not about the thread pools.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def steps_per_sample(impl: Impl, target_s: float) -> int:
    """How many steps one timed sample takes so that it lasts about ``target_s``."""
    impl.run(2)  # warm up: optimizer state, caches, first-call costs
    impl.sync()
    start = time.perf_counter()
    impl.run(2)
    impl.sync()
    per_step = (time.perf_counter() - start) / 2
    return max(MIN_STEPS, min(1000, round(target_s / per_step)))


# After a switch between array libraries, wait this long before timing: the previous
# library's worker threads spin for a while after their last call, and on a small machine
# they steal the cores of the next one (measured here: torch 60x slower right after NumPy).
SETTLE_S = 0.1


def interleaved(impls: list[Impl], steps: int, reps: int) -> dict[str, float]:
    """Median seconds per step of each implementation, timed round-robin with rotating order."""
    samples: dict[str, list[float]] = {impl.name: [] for impl in impls}
    previous = impls[-1].library
    for impl in impls:
        impl.run(1)
        impl.sync()
    gc.disable()
    try:
        for rep in range(reps):
            order = impls[rep % len(impls) :] + impls[: rep % len(impls)]
            for impl in order:
                if impl.library != previous:
                    time.sleep(SETTLE_S)
                    previous = impl.library
                impl.sync()
                start = time.perf_counter()
                impl.run(steps)
                impl.sync()
                samples[impl.name].append((time.perf_counter() - start) / steps)
            gc.collect()
    finally:
        gc.enable()
    return {name: statistics.median(values) for name, values in samples.items()}


def step_memory(build: Any) -> tuple[int, int]:
    """(peak bytes held during one step beyond parameters + optimizer state, those bytes).

    Everything is built under tracemalloc (NumPy reports its buffers there), two steps
    create the optimizer state, then the peak of a third step is read.
    """
    gc.collect()
    tracemalloc.start()
    try:
        impl = build()
        impl.run(2)
        gc.collect()
        tracemalloc.reset_peak()
        impl.run(1)
        peak = tracemalloc.get_traced_memory()[1]
        held = sum(int(a.nbytes) for a in impl.state())
    finally:
        tracemalloc.stop()
    return peak - held, held


def build_all(
    spec: Spec, backend: str, torch_device: str | None, book: bool = True, jax: bool = False
) -> list[Impl]:
    """Every column for ``spec``: nnx on ``backend``, torch on ``torch_device`` (None: no
    torch), the matmul floors, and the book's NumPy code unless ``book`` is False (the GPU
    table leaves it out: at GPU sizes it would take seconds per step on the host)."""
    X, y = host_data(spec)
    params = host_params(spec)
    if spec.per_epoch > 1:
        return jax_columns(spec, X, y, params)
    impls = [book_step(spec, X, y, params)] if book else []
    impls.append(nnx_loop(spec, X, y, params, backend))
    if hasattr(nnx, "Model"):
        impls.append(nnx_model(spec, X, y, params, backend))
    if torch_device is not None:
        from torch_eager import torch_autograd_step, torch_compiled_step, torch_step

        impls.append(torch_step(spec, X, y, params, torch_device))
        impls.append(torch_autograd_step(spec, X, y, params, torch_device))
        if spec.name in "ML":  # torch's compiler: nnx's step and torch's own, and eager
            if backend != "torch":  # else "nnx Model" is nnx's eager torch step
                impls.append(nnx_model(spec, X, y, params, "torch", name="nnx torch eager"))
            impls.append(
                nnx_model(spec, X, y, params, "torch", compile=True, name="nnx torch compiled")
            )
            impls.append(torch_compiled_step(spec, X, y, params, torch_device))
    impls.append(matmul_floor(spec, X, params, backend))
    if torch_device is not None and backend != "torch":
        impls.append(matmul_floor(spec, X, params, "torch", torch_device, "torch matmul floor"))
    if jax:  # together, last: XLA measured slower right after torch's work
        impls.append(nnx_model(spec, X, y, params, "jax", compile=False, name="nnx jax eager"))
        # The NaN gate's cost: the compiled step with on_nan="ignore" (no gate in the step).
        impls.append(
            nnx_model(spec, X, y, params, "jax", name="nnx jax, no NaN gate", on_nan="ignore")
        )
        impls += jax_columns(spec, X, y, params)
    return impls


def jax_columns(spec: Spec, X: Any, y: Any, params: list) -> list[Impl]:
    """nnx's compiled step on JAX, one step a call, K = 100 a call, and Model.train's
    defaults (nnx picks K); the hand-written per-step jax.jit and lax.scan of 100 steps."""
    return [
        *([nnx_compiled_loop(spec, X, y, params)] if spec.per_epoch == 1 else []),
        nnx_model(spec, X, y, params, "jax", name="nnx jax compiled"),
        nnx_model(spec, X, y, params, "jax", name="nnx jax, K=100", steps_per_execution=100),
        nnx_model(spec, X, y, params, "jax", name="nnx jax, defaults", steps_per_execution=None),
        jax_step(spec, X, y, params),
        jax_scan(spec, X, y, params, 100),
    ]


def jax_available() -> bool:
    try:
        backends.load("jax")
    except backends.BackendError:
        return False
    return True


def report(spec: Spec, times: dict[str, float]) -> list[str]:
    lines = [
        f"{spec.name}: sizes {'-'.join(map(str, spec.sizes))}, batch {spec.batch}, {spec.optimizer}"
    ]
    for name, seconds in times.items():
        lines.append(f"  {name:<18} {seconds * 1e6:10.1f} us/step")
    for nnx_name in ("nnx loop", "nnx Model"):
        if nnx_name not in times:
            continue
        ratios = [
            f"{nnx_name}/{ref} = {times[nnx_name] / times[ref]:.2f}"
            for ref in ("book", "torch eager", "torch autograd", "matmul floor")
            if ref in times
        ]
        lines.append("  " + "   ".join(ratios))
    for name, refs in (
        ("nnx jax compiled", ("jax.jit step", "nnx Model", "nnx jax eager")),
        ("nnx.compile(book loop)", ("nnx jax compiled",)),
        ("nnx jax, K=100", ("jax.jit step", "jax lax.scan 100")),
        ("nnx jax, defaults", ("jax.jit step", "jax lax.scan 100")),
        ("nnx torch compiled", ("torch.compile", "nnx torch eager", "nnx Model")),
    ):
        if name in times:
            ratios = [f"{name}/{r} = {times[name] / times[r]:.2f}" for r in refs if r in times]
            lines.append("  " + "   ".join(ratios))
    if "torch matmul floor" in times and "matmul floor" in times:
        # The part of the torch ratios that no nnx change can move: the two BLAS libraries.
        floor, torch_floor = times["matmul floor"], times["torch matmul floor"]
        lines.append(
            f"  torch matmul floor/matmul floor = {torch_floor / floor:.2f}   "
            f"torch eager/torch matmul floor = {times['torch eager'] / torch_floor:.2f}"
        )
    return lines


def memory_report(spec: Spec, backend: str) -> list[str]:
    if backend != "numpy":
        return [f"  memory: skipped (tracemalloc sees NumPy allocations only; backend={backend})"]
    X, y = host_data(spec)
    params = host_params(spec)
    builders = {
        "book": lambda: book_step(spec, X, y, params),
        "nnx loop": lambda: nnx_loop(spec, X, y, params, backend),
    }
    if hasattr(nnx, "Model"):
        builders["nnx Model"] = lambda: nnx_model(spec, X, y, params, backend)
    lines = [f"  peak memory of one {spec.name} step beyond parameters and optimizer state:"]
    for name, build in builders.items():
        extra, held = step_memory(build)
        lines.append(
            f"    {name:<12} {extra / 2**20:8.2f} MiB  (params+state {held / 2**20:.2f} MiB)"
        )
    return lines


def cpu_main(args: argparse.Namespace) -> int:
    threads = blas_threads()
    torch_device = None
    try:
        import torch

        torch.set_num_threads(threads)
        torch_device = "cpu"
    except ImportError:
        print("torch not installed: the torch column is skipped.")
    print("\n".join(environment(threads if torch_device else None)))
    print(
        f"nnx backend {args.backend}; medians of {args.reps} interleaved repetitions "
        f"of at least {MIN_STEPS} steps\n"
    )
    for spec in (spec for spec in SPECS if spec.name in args.workloads):
        jax = args.jax and jax_available()
        if spec.per_epoch > 1 and not jax:
            continue
        impls = build_all(spec, args.backend, torch_device, jax=jax)
        steps = steps_per_sample(impls[0], args.target)
        if jax and spec.name in "SE":  # where the host's work per step shows: K = 100 whole
            steps = max(1000 if spec.name == "S" else 100, steps)
        steps = -(-steps // spec.per_epoch) * spec.per_epoch  # whole epochs
        times = interleaved(impls, steps, args.reps)
        print("\n".join(report(spec, times)))
        if jax:
            X, y = host_data(spec)
            seconds = first_compiled_step(spec, X, y, host_params(spec))
            print(f"  first compiled call (trace + compile + one epoch): {seconds:.2f} s")
        if spec.name == "L":
            print("\n".join(memory_report(spec, args.backend)))
        print()
    return 0


def gpu_main(args: argparse.Namespace) -> int:
    """Throughput at scale: CuPy nnx vs torch CUDA vs the CuPy matmul floor."""
    try:
        backends.load("cupy")
    except backends.BackendError as err:
        print(f"--gpu skipped: no CUDA device for CuPy ({err})")
        return 0
    try:
        import torch

        torch_device = "cuda" if torch.cuda.is_available() else None
    except ImportError:
        torch_device = None
    if torch_device is None:
        print("torch with CUDA not installed: the torch columns are skipped.")
    print("\n".join(environment(None)))
    print(f"gpu      {_gpu_name()}")
    spec = GPU_SPEC
    impls = build_all(spec, "cupy", torch_device, book=False)
    steps = steps_per_sample(impls[0], args.target)
    times = interleaved(impls, steps, args.reps)
    print("\n".join(report(spec, times)))
    for name, seconds in times.items():
        print(
            f"  {name:<18} {spec.batch / seconds:12.0f} samples/s "
            f"{spec.matmul_flops() / seconds / 1e12:7.2f} matmul TFLOP/s"
        )
    return 0


def _gpu_name() -> str:
    try:
        import cupy

        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        name = props["name"]
        return name.decode() if isinstance(name, bytes) else str(name)
    except Exception as err:  # the name is for the report only
        return f"? ({type(err).__name__})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="numpy", help="nnx backend (default numpy)")
    parser.add_argument("--quick", action="store_true", help="fewer, shorter repetitions")
    parser.add_argument("--gpu", action="store_true", help="CUDA throughput at scale instead")
    parser.add_argument(
        "--workloads", default="SMLE", help="which CPU workloads, e.g. M or SL (default SMLE)"
    )
    parser.add_argument(
        "--no-jax", dest="jax", action="store_false", help="leave out the JAX columns"
    )
    args = parser.parse_args(argv)
    unknown = set(args.workloads) - {spec.name for spec in SPECS}
    if unknown:
        parser.error(f"--workloads: unknown {''.join(sorted(unknown))}; choose from S, M, L, E")
    if not args.gpu and backends.load(args.backend).lazy is not None:
        parser.error(
            f"--backend {args.backend}: a lazy backend builds task graphs that these step "
            "loops never compute; benchmarks/dask_step.py times dask properly."
        )
    args.reps, args.target = (5, 0.01) if args.quick else (21, 0.03)
    quiet_thread_pools()
    return gpu_main(args) if args.gpu else cpu_main(args)


if __name__ == "__main__":
    sys.exit(main())
