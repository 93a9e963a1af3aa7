"""ONNX graphs (``ndonnx``): arrays that record the operations done on them instead of computing.

An Array API namespace whose arrays are nodes of an ONNX graph: code written against the
standard, run on a symbolic input (``GraphBuilder.symbolic``), describes itself as a graph
that ``GraphBuilder.build`` writes as an ONNX model and ONNX Runtime runs
(``GraphBuilder.execute``). nnx exports a model this way, with the lines that train it.
Arrays made from host data hold their values (ndonnx propagates constants), so ``to_numpy``
reads those; a symbolic array has no values until the graph runs. Inference only: nothing
trains on it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import numpy as np

from backends._backend import Backend, BackendError, GraphBuilder, install_hint

_DTYPES = ("float32", "float64", "int32", "int64", "bool")


def make(device: Any = None) -> Backend:
    try:
        import ndonnx as ndx
    except ImportError as err:
        raise BackendError(f"ndonnx is not installed ({err}); {install_hint('onnx')}.") from err
    if device not in (None, "cpu"):
        raise BackendError(
            f"onnx builds graphs, it has no devices to choose from; got device={device!r}. "
            "Unset NNX_DEVICE (ONNX Runtime picks where an exported file runs)."
        )
    # ndonnx has one device object; any array reports it.
    dev = ndx.asarray(np.zeros(1, dtype=np.float32)).device
    dtypes = {name: getattr(ndx, name) for name in _DTYPES}

    def asarray(data: Any, dtype: Any = None) -> Any:
        if isinstance(data, ndx.Array):
            return data if dtype is None or data.dtype == dtype else ndx.astype(data, dtype)
        host = np.asarray(data)
        if dtype is not None:
            host = host.astype(_numpy_dtype(dtype, dtypes), copy=False)
        return ndx.asarray(host)

    def to_numpy(array: Any) -> np.ndarray:
        try:
            return np.asarray(array.unwrap_numpy())
        except ValueError as err:  # ndonnx: "no propagated value available"
            raise BackendError(
                "onnx: this array is a node of a graph whose inputs are symbolic: it has no "
                "values until the graph runs (its graph's build, then execute, or "
                "ONNX Runtime on the exported file)."
            ) from err

    def symbolic(shape: tuple[int | str | None, ...], dtype: Any) -> Any:
        # A string names a dimension given when the graph runs (the batch: "N").
        return ndx.argument(shape=tuple(shape), dtype=dtype)

    def build(inputs: Mapping[str, Any], outputs: Mapping[str, Any]) -> bytes:
        return bytes(ndx.build(dict(inputs), dict(outputs)).SerializeToString())

    return Backend(
        name="onnx",
        xp=ndx,
        device=dev,
        asarray=asarray,
        to_numpy=to_numpy,
        mutable=False,
        version=ndx.__version__,
        trains=False,
        graph=GraphBuilder(symbolic, build, execute),
    )


def execute(
    program: bytes, feeds: Mapping[str, np.ndarray], outputs: tuple[str, ...] | None = None
) -> dict[str, np.ndarray]:
    """Run a serialized ONNX model on host data with ONNX Runtime (CPU); outputs by name.

    Ctrl-C stops it (ONNX Runtime's own run ignores it until it returns)."""
    try:
        import onnxruntime
    except ImportError as err:
        raise BackendError(
            f"onnxruntime is not installed ({err}); {install_hint('onnx')}."
        ) from err
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only: its warnings are about the host, not the file
    session = onnxruntime.InferenceSession(program, options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()] if outputs is None else list(outputs)
    run_options, done = onnxruntime.RunOptions(), {}
    run_options.log_severity_level = 4  # a stop at Ctrl-C is not an error to print

    def run() -> None:  # in a thread: run() holds the main one, which must take Ctrl-C
        try:
            done["values"] = session.run(names, dict(feeds), run_options)
        except Exception as err:
            done["error"] = err

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.05)
    except KeyboardInterrupt:
        run_options.terminate = True  # ONNX Runtime stops before its next node (Loop's too)
        worker.join()
        raise
    if "error" in done:
        raise done["error"]
    return {name: np.asarray(v) for name, v in zip(names, done["values"], strict=True)}


def _numpy_dtype(dtype: Any, dtypes: Mapping[str, Any]) -> np.dtype[Any]:
    for name, candidate in dtypes.items():
        if dtype == candidate:
            return np.dtype(name)
    return np.dtype(dtype)  # a NumPy dtype, or its name
