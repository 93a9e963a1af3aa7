"""Where a training step's time goes: cProfile over many steps of one workload.

    python benchmarks/profile_step.py [S|M|L] [--impl loop|model|book] [--backend NAME]

Prints the functions with the most own time (tottime); NumPy ufuncs and matmuls show up
under the Python function that calls them, so read it together with the call counts.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats

from implementations import book_step, host_data, host_params, nnx_loop, nnx_model
from step import SPECS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload", nargs="?", default="S", choices=[s.name for s in SPECS])
    parser.add_argument("--impl", default="model", choices=["loop", "model", "book"])
    parser.add_argument("--backend", default="numpy")
    parser.add_argument("--steps", type=int, default=0, help="default: 2000 for S, 40 otherwise")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    spec = next(s for s in SPECS if s.name == args.workload)
    X, y = host_data(spec)
    params = host_params(spec)
    if args.impl == "book":
        impl = book_step(spec, X, y, params)
    else:
        build = nnx_loop if args.impl == "loop" else nnx_model
        impl = build(spec, X, y, params, args.backend)
    steps = args.steps or (2000 if spec.name == "S" else 40)
    impl.run(2)
    profiler = cProfile.Profile()
    profiler.runcall(impl.run, steps)
    stats = pstats.Stats(profiler)
    print(f"{spec.name} {args.impl} on {args.backend}: {stats.total_tt / steps * 1e6:.1f} us/step")
    stats.sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
