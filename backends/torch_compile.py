"""torch's compiler as a :class:`~backends._backend.Compiler`: a function traced once per
argument shapes into a graph of torch operations, which ``torch.compile`` (Inductor) compiles.

``torch.compile`` on its own watches the Python it runs (dynamo): every dict, context variable
and attribute the function reads becomes a guard, and a function that reads many of them (nnx's
step reads its parts' tables) recompiles until it hits dynamo's cache limit. So the function is
first traced the way ``jax.jit`` traces one, with ``make_fx`` on fake tensors: the Python runs
once, and what is left is a graph of tensor operations with nothing to guard but its inputs'
shapes. ``torch.compile`` then compiles that graph, ``fullgraph=True``.

As with ``jax.jit``, the arguments and results are nested lists, tuples and dicts of tensors;
Python numbers among the arguments are inputs (float64 0-d tensors, so a learning rate that
changes every step does not compile again, and keeps every digit), and other values (None,
flags, strings) are compiled in.
A value read on the host while tracing (``float(x)``, ``if x > 0``) fails the trace, as under
``jax.jit``; ``traced_types`` are the fake tensors that stand for arrays then.

In-place updates (``params += updates``) stay in place: the graph writes into its inputs, as
the eager step does, so nothing is donated.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from backends._backend import BackendError, Compiler

# Where Inductor looks for a C++ compiler on the CPU (its config's search list, and $CXX).
_CXX = ("g++", "c++", "clang++")


def torch_compiler(torch: Any, device: Any) -> Compiler:
    from torch._subclasses.fake_tensor import FakeTensor
    from torch.fx.experimental.proxy_tensor import make_fx
    from torch.utils import _pytree as pytree

    def compile(function: Callable[..., Any], donate: Sequence[int] = ()) -> Callable[..., Any]:
        _refuse_without_cxx(torch, device)
        programs: dict[Any, tuple[list[int], Callable[..., Any], dict[str, Any]]] = {}

        def call(*args: Any) -> Any:
            leaves, spec = pytree.tree_flatten(args)
            key = (spec, tuple(_kind(torch, leaf) for leaf in leaves))
            program = programs.get(key)
            inputs = [i for i, leaf in enumerate(leaves) if _is_input(torch, leaf)]
            arrays = [_tensor(torch, leaves[i], device) for i in inputs]
            if program is None:
                program = programs[key] = _trace(function, leaves, spec, inputs, arrays)
            _, compiled, out = program
            results = iter(compiled(*arrays))
            flat = [next(results) if made else value for made, value in out["leaves"]]
            return pytree.tree_unflatten(flat, out["spec"])

        return call

    def _trace(
        function: Callable[..., Any], leaves: list[Any], spec: Any, inputs: list[int], arrays: Any
    ) -> tuple[list[int], Callable[..., Any], dict[str, Any]]:
        out: dict[str, Any] = {}

        def flat(*tensors: Any) -> list[Any]:
            given = list(leaves)
            for i, tensor in zip(inputs, tensors, strict=True):
                given[i] = tensor
            results, out["spec"] = pytree.tree_flatten(
                function(*pytree.tree_unflatten(given, spec))
            )
            made = [isinstance(r, torch.Tensor) for r in results]
            out["leaves"] = [(m, None if m else r) for m, r in zip(made, results, strict=True)]
            return [r for r, m in zip(results, made, strict=True) if m]

        graph = make_fx(flat, tracing_mode="fake")(*arrays)
        return inputs, torch.compile(graph, fullgraph=True, dynamic=False), out

    return Compiler(compile, traced_types=(FakeTensor,), by_default=False)


def _is_input(torch: Any, leaf: Any) -> bool:
    return isinstance(leaf, (torch.Tensor, np.ndarray)) or (
        isinstance(leaf, (int, float)) and not isinstance(leaf, bool)
    )


def _kind(torch: Any, leaf: Any) -> Any:
    """What a program is made for: an array's shape and dtype, any number, else the value."""
    if isinstance(leaf, (torch.Tensor, np.ndarray)):
        return (tuple(leaf.shape), str(leaf.dtype), getattr(leaf, "device", "host"))
    return "number" if _is_input(torch, leaf) else ("value", leaf)


def _tensor(torch: Any, leaf: Any, device: Any) -> Any:
    # A number as a float64 0-d tensor: Python computes in doubles, and so does the program
    # (torch would give an int64 counter times 1e-3 its default dtype, float32, and a decayed
    # learning rate of float32 precision); a 0-d tensor does not raise a float32 array's dtype.
    # Host arrays move, as jax.jit takes NumPy's.
    if isinstance(leaf, torch.Tensor):
        return leaf
    if isinstance(leaf, np.ndarray):
        return torch.as_tensor(leaf, device=device)
    return torch.tensor(leaf, dtype=torch.float64, device=device)


def _refuse_without_cxx(torch: Any, device: Any) -> None:
    """Inductor builds CPU kernels with a C++ compiler: say so in one line where none is."""
    import os

    if device.type != "cpu" or os.environ.get("CXX") or any(map(shutil.which, _CXX)):
        return
    raise BackendError(
        "torch: compile=True needs a C++ compiler for torch.compile on the CPU (Inductor "
        f"builds its kernels with one; none of {', '.join(_CXX)} is on PATH); install g++, or "
        "leave compile out to train eagerly."
    )
