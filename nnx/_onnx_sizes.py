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


def check_sizes(
    path: Path, proto: Any, budget: int, refuse: Refuse, batch: int | None = None
) -> None:
    """Intermediates whose size is known without running the graph must fit the budget: those
    of a fixed shape (two constant vectors broadcast into a square), and every value computed
    from constants alone (ONNX Runtime computes those when it loads the file: a Range to
    2**40, an Expand to 27000 x 27000). ONNX's own value propagation is not used: it runs
    such a Range itself.

    ``batch``: the samples about to run. The input's batch size is then fixed, so shapes
    computed from it (``Shape`` of the input, sliced, multiplied) are known too, and a Range
    of ``N * 2**30`` is measured before ONNX Runtime makes it; the budget grows by what a
    batch legitimately adds (index ranges as long as the batch)."""
    import onnx

    if batch is not None:
        proto = _with_batch(proto, batch)
        budget += _PER_SAMPLE * batch
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
    shapes = _static_shapes(inferred.graph) if batch is not None else {}
    _fold(path, proto.graph, budget, {}, refuse, shapes, batch)


# What one sample may add to the numbers a shape computation makes: export's own Ranges span
# at most a dimension of the batch's arrays (a few of them: index helpers of a slice).
_PER_SAMPLE = 64


def _with_batch(proto: Any, batch: int) -> Any:
    """A copy of ``proto`` whose input X has the batch size ``batch``, not a free N."""
    import onnx

    fixed = onnx.ModelProto()
    fixed.CopyFrom(proto)
    dim = fixed.graph.input[0].type.tensor_type.shape.dim[0]
    dim.Clear()
    dim.dim_value = batch
    return fixed


def _static_shapes(graph: Any) -> dict[str, tuple[int, ...]]:
    """Every value of ``graph`` (and its branches) whose shape inference found all dims."""
    shapes = {}
    for value in [*graph.input, *graph.value_info, *graph.output]:
        dims = value.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            shapes[value.name] = tuple(d.dim_value for d in dims)
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("g"):
                shapes.update(_static_shapes(attribute.g))
    return shapes


def _fold(
    path: Path,
    graph: Any,
    budget: int,
    known: dict[str, np.ndarray],
    refuse: Refuse,
    shapes: dict[str, tuple[int, ...]] | None = None,
    batch: int | None = None,
) -> None:
    """Compute what ``graph`` computes from constants alone, as ONNX Runtime will, refusing
    any value larger than ``budget`` before it is made (``known``: the values so far;
    ``shapes``: values of a known shape, whose ``Shape`` is then a constant too)."""
    from onnx import numpy_helper
    from onnx.reference import ReferenceEvaluator

    known = {**known, **{t.name: numpy_helper.to_array(t) for t in graph.initializer}}
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("g"):  # an If's branch sees the values around it
                _fold(path, attribute.g, budget, known, refuse, shapes, batch)
        if node.op_type == "Shape" and node.input[0] in (shapes or {}):
            known[node.output[0]] = _shape_of(node, shapes[node.input[0]])  # type: ignore[index]
            continue
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
            alone = "constants alone" if batch is None else f"the shape of {batch} samples"
            raise refuse(
                path,
                f"node {node.name!r} ({node.op_type}) makes {size} numbers from {alone}, "
                f"expected at most {budget}",
            )
        try:
            feeds = dict(zip(node.input, values, strict=False))
            with np.errstate(all="ignore"):  # x / 0 in the file: ONNX Runtime's business
                outputs = ReferenceEvaluator(node).run(None, feeds)
        except Exception as err:  # noqa: BLE001  (onnx's reference raises anything)
            raise refuse(path, f"node {node.name!r} ({node.op_type}) fails ({err})") from err
        known.update(zip(node.output, (np.asarray(v) for v in outputs), strict=False))


def _shape_of(node: Any, dims: tuple[int, ...]) -> np.ndarray:
    """What ``Shape`` gives for a value of shape ``dims`` (its ``start``/``end``, opset 15+)."""
    attributes = {a.name: a.i for a in node.attribute}
    start, end = attributes.get("start", 0), attributes.get("end", len(dims))
    return np.asarray(dims[start:end], dtype=np.int64)


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
