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

import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from backends._backend import BackendError, Compiler

# Where Inductor looks for a C++ compiler on the CPU (its config's search list, and $CXX).
_CXX = ("g++", "c++", "clang++")


def torch_compiler(torch: Any, device: Any) -> Compiler:
    from torch._subclasses.fake_tensor import FakeTensor
    from torch.fx.experimental.proxy_tensor import make_fx

    tensor_type = torch.Tensor

    def kind(leaf: Any) -> Any:
        """What a program is made for: an array's shape and dtype, any number, else the value
        (None where the leaf is compiled in, not an input)."""
        if isinstance(leaf, (tensor_type, np.ndarray)):
            return (tuple(leaf.shape), leaf.dtype, getattr(leaf, "device", None))
        if isinstance(leaf, (int, float)) and not isinstance(leaf, bool):
            return float
        return None

    def as_input(leaf: Any) -> Any:
        # A number as a float64 0-d tensor: Python computes in doubles, and so does the
        # program (torch gives an int64 counter times 1e-3 its default dtype, float32: a
        # decayed learning rate of float32 precision); a 0-d tensor does not raise a float32
        # array's dtype. Host arrays move, as jax.jit takes NumPy's.
        if isinstance(leaf, tensor_type):
            return leaf
        if isinstance(leaf, np.ndarray):
            return torch.as_tensor(leaf, device=device)
        return torch.tensor(leaf, dtype=torch.float64, device=device)

    def compile(function: Callable[..., Any], donate: Sequence[int] = ()) -> Callable[..., Any]:
        _refuse_without_cxx(device)
        programs: dict[Any, tuple[Callable[..., Any], Any, list[Any]]] = {}

        def call(*args: Any) -> Any:
            leaves: list[Any] = []
            spec = _flatten(args, leaves)
            kinds = [kind(leaf) for leaf in leaves]
            key = (spec, *(k if k is not None else ("value", v) for k, v in zip(kinds, leaves)))  # noqa: B905
            arrays = [as_input(v) for k, v in zip(kinds, leaves) if k is not None]  # noqa: B905
            program = programs.get(key)
            if program is None:
                program = programs[key] = trace(function, leaves, kinds, spec, arrays)
            compiled, out_spec, constants = program
            results = iter(compiled(*arrays))
            return _unflatten(
                out_spec, iter([next(results) if c is _MADE else c for c in constants])
            )

        return call

    def trace(
        function: Callable[..., Any], leaves: list[Any], kinds: list[Any], spec: Any, arrays: Any
    ) -> tuple[Callable[..., Any], Any, list[Any]]:
        """The program for calls like this one: compiled, its results' structure, and the
        results that are not tensors (compiled in; ``_MADE`` marks the tensors' places)."""
        out: list[Any] = []

        def flat(*tensors: Any) -> list[Any]:
            given = iter(tensors)
            args = _unflatten(spec, iter([next(given) if k else v for k, v in zip(kinds, leaves)]))  # noqa: B905
            results: list[Any] = []
            out.append(_flatten(function(*args), results))
            out.append([_MADE if isinstance(r, tensor_type) else r for r in results])
            return [r for r in results if isinstance(r, tensor_type)]

        graph = make_fx(flat, tracing_mode="fake")(*arrays)
        return torch.compile(graph, fullgraph=True, dynamic=False), out[0], out[1]

    return Compiler(compile, traced_types=(FakeTensor,), by_default=False)


# Where a result is a tensor the program returns (in a program's list of results).
_MADE = object()


def _flatten(tree: Any, leaves: list[Any]) -> Any:
    """The structure of nested lists, tuples and dicts (hashable), their leaves appended to
    ``leaves``: torch's pytree does this too, at 100 us a step's arguments."""
    if isinstance(tree, (list, tuple)):
        return (type(tree), tuple(_flatten(item, leaves) for item in tree))
    if isinstance(tree, dict):
        return (dict, tuple(tree), tuple(_flatten(item, leaves) for item in tree.values()))
    leaves.append(tree)
    return None


def _unflatten(spec: Any, leaves: Iterator[Any]) -> Any:
    if spec is None:
        return next(leaves)
    if spec[0] is dict:
        return dict(zip(spec[1], [_unflatten(s, leaves) for s in spec[2]]))  # noqa: B905
    return spec[0](_unflatten(s, leaves) for s in spec[1])


def _refuse_without_cxx(device: Any) -> None:
    """Inductor builds CPU kernels with a C++ compiler: say so in one line where none is."""
    if device.type != "cpu" or os.environ.get("CXX") or any(map(shutil.which, _CXX)):
        return
    raise BackendError(
        "torch: compiling needs a C++ compiler on the CPU (torch.compile's Inductor builds its "
        f"kernels with one; none of {', '.join(_CXX)} is on PATH); install g++, or run eagerly "
        "(Model.train without compile=True, the function without nnx.compile)."
    )
