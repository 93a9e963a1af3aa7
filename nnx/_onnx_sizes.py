"""Host boundary: the sizes an ONNX file makes, measured before ONNX Runtime makes them
(``nnx._onnx_door`` calls :func:`check_sizes`).

Two kinds are known without running the graph: values of a fixed shape (ONNX's shape
inference gives them), and values computed from the file's constants alone, which ONNX
Runtime computes when it loads the file (constant folding): a Range to 2**40 costs its memory
before a single sample is seen. Those are computed here with onnx's reference operators, each
sized first. ONNX's own value propagation (``data_prop``) is not used: it would run such a
Range itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["check_sizes"]

Refuse = Callable[[Path, str], Exception]  # the door's error for a file, with the reason


def check_sizes(path: Path, proto: Any, budget: int, refuse: Refuse) -> None:
    """Intermediates whose size is known without running the graph must fit the budget: those
    of a fixed shape (two constant vectors broadcast into a square), and every value computed
    from constants alone (ONNX Runtime computes those when it loads the file: a Range to
    2**40, an Expand to 27000 x 27000). ONNX's own value propagation is not used: it runs
    such a Range itself."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(proto)
    except Exception as err:  # onnx raises its own InferenceError and plain RuntimeErrors
        raise refuse(path, f"ONNX's shape inference fails on it ({err})") from err
    for value in [*inferred.graph.value_info, *inferred.graph.output]:
        dims = [d.dim_value for d in value.type.tensor_type.shape.dim if d.HasField("dim_value")]
        if dims and math.prod(dims) > budget:
            raise refuse(
                path,
                f"its value {value.name!r} has the fixed shape {dims}, "
                f"{math.prod(dims)} numbers, expected at most {budget}",
            )
    _fold(path, proto.graph, budget, {}, refuse)


def _fold(
    path: Path, graph: Any, budget: int, known: dict[str, np.ndarray], refuse: Refuse
) -> None:
    """Compute what ``graph`` computes from constants alone, as ONNX Runtime will, refusing
    any value larger than ``budget`` before it is made (``known``: the values so far)."""
    from onnx import numpy_helper
    from onnx.reference import ReferenceEvaluator

    known = {**known, **{t.name: numpy_helper.to_array(t) for t in graph.initializer}}
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("g"):  # an If's branch sees the values around it
                _fold(path, attribute.g, budget, known, refuse)
        inputs = [name for name in node.input if name]
        if node.op_type == "If" or any(name not in known for name in inputs):
            continue  # depends on the samples (or a branch): sized when it runs
        if node.op_type == "Constant":
            known[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
            continue
        values = [known[name] for name in inputs]
        try:
            size = _size_from(node, values)
        except (TypeError, ValueError, OverflowError, IndexError) as err:  # inf, NaN, shapes
            raise refuse(path, f"node {node.name!r} ({node.op_type}) has no size ({err})") from err
        if size > budget:
            raise refuse(
                path,
                f"node {node.name!r} ({node.op_type}) makes {size} numbers from constants "
                f"alone, expected at most {budget}",
            )
        try:
            feeds = dict(zip(node.input, values, strict=False))
            with np.errstate(all="ignore"):  # x / 0 in the file: ONNX Runtime's business
                outputs = ReferenceEvaluator(node).run(None, feeds)
        except Exception as err:  # noqa: BLE001  (onnx's reference raises anything)
            raise refuse(path, f"node {node.name!r} ({node.op_type}) fails ({err})") from err
        known.update(zip(node.output, (np.asarray(v) for v in outputs), strict=False))


_BROADCAST = {"Add", "Sub", "Mul", "Div", "Max", "Equal", "Greater", "GreaterOrEqual", "Less"}


def _size_from(node: Any, values: list[np.ndarray]) -> int:
    """An upper bound of the numbers ``node`` makes from the input ``values`` (known)."""
    sizes = [int(v.size) for v in values]
    if node.op_type == "Range":
        start, limit, delta = (float(v) for v in values)
        return max(math.ceil((limit - start) / delta), 0) if delta else 0
    if node.op_type == "Expand":
        return _broadcast([values[0].shape, tuple(int(d) for d in values[1].ravel())])
    if node.op_type in _BROADCAST or node.op_type == "Where":
        return _broadcast([v.shape for v in values])
    if node.op_type == "MatMul":
        return _broadcast(
            [values[0].shape[:-1] + (1,), values[1].shape[:-2] + values[1].shape[-1:]]
        )
    return sum(sizes) if node.op_type == "Concat" else max(sizes, default=1)


def _broadcast(shapes: list[tuple[int, ...]]) -> int:
    """The numbers in the broadcast of ``shapes`` (as Python ints: no overflow)."""
    width = max((len(s) for s in shapes), default=0)
    padded = [(1,) * (width - len(s)) + tuple(s) for s in shapes]
    return math.prod(max(abs(int(d)) for d in column) for column in zip(*padded, strict=True))
