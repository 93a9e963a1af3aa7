"""The ONNX front door against files that would make ONNX Runtime loop for ever or allocate
gigabytes from a few bytes: refused from the file, before anything runs (the files are built
here with onnx.helper; test_reliability_onnx.py has the rest of the door)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest

from nnx._export import run_exported
from nnx.io import ModelFileError

pytest.importorskip("ndonnx", reason='export needs the onnx extra: pip install -e ".[onnx]"')
pytest.importorskip("onnxruntime", reason='export needs the onnx extra: pip install -e ".[onnx]"')
from onnx import TensorProto, helper  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from onnx_files import (  # noqa: E402  (after the skips: the extra may be missing)
    FLOAT,
    X,
    _adds,
    _metadata,
    _write,
)


def test_a_loop_of_2_to_the_62_is_refused_at_once(tmp_path) -> None:
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond"], ["cond_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, [])],
    )  # fmt: skip
    nodes = [
        helper.make_node("Constant", [], ["n"], value=helper.make_tensor("n", 7, [], [2**62])),
        helper.make_node("Constant", [], ["t"], value=helper.make_tensor("t", 9, [], [True])),
        helper.make_node("Loop", ["n", "t"], [], body=body),
        helper.make_node("Identity", ["X"], ["output"]),
    ]
    nodes[2].name = "spin"
    start = time.perf_counter()
    with pytest.raises(ModelFileError, match="node 'spin' is a Loop, an operator nnx's export"):
        run_exported(_write(tmp_path / "m.onnx", nodes), X)
    assert time.perf_counter() - start < 10  # refused from the file, never run


ONE = helper.make_tensor("one", FLOAT, [], [1])


@pytest.mark.parametrize("op", ["ConstantOfShape", "Expand"])
def test_a_huge_tensor_from_a_small_shape_is_refused(op, tmp_path) -> None:
    shape = helper.make_tensor("s", TensorProto.INT64, [2], [27000, 27000])
    make = {
        "ConstantOfShape": [helper.make_node("ConstantOfShape", ["s"], ["big"])],
        "Expand": [
            helper.make_node("Constant", [], ["one"], value=ONE),
            helper.make_node("Expand", ["one", "s"], ["big"]),
        ],
    }[op]  # fmt: skip
    nodes = [
        helper.make_node("Constant", [], ["s"], value=shape),
        *make,
        helper.make_node("ReduceSum", ["big"], ["total"], keepdims=0),
        helper.make_node("Add", ["X", "total"], ["output"]),
    ]
    words = "ConstantOfShape, an operator" if op == "ConstantOfShape" else "729000000 numbers"
    with pytest.raises(ModelFileError, match=words):
        run_exported(_write(tmp_path / "m.onnx", nodes), X)


def test_constants_beyond_what_the_layers_account_for_are_refused(tmp_path) -> None:
    big = helper.make_tensor("w", FLOAT, [1, 100_000], np.zeros(100_000, np.float32))
    nodes = [
        helper.make_node("Constant", [], ["w"], value=big),
        helper.make_node("ReduceSum", ["w"], ["s"], keepdims=0),
        helper.make_node("Add", ["X", "s"], ["output"]),
    ]
    with pytest.raises(ModelFileError, match="constants hold 100000 numbers, expected at most"):
        run_exported(_write(tmp_path / "m.onnx", nodes), X)


def test_metadata_that_claims_a_huge_layer_makes_no_huge_tensor(tmp_path) -> None:
    """A Dense of 10**6 x 10**6 in the metadata, none of it in the file: the Expand of 27000 x
    27000 is measured against what the file holds."""
    huge = {"class": "Dense", "config": {"n_inputs": 10**6, "n_neurons": 10**6}}
    shape = helper.make_tensor("s", TensorProto.INT64, [2], [27000, 27000])
    nodes = [
        helper.make_node("Constant", [], ["s"], value=shape),
        helper.make_node("Constant", [], ["one"], value=ONE),
        helper.make_node("Expand", ["one", "s"], ["big"]),
        helper.make_node("ReduceSum", ["big"], ["total"], keepdims=0),
        helper.make_node("Add", ["X", "total"], ["output"]),
    ]
    path = _write(tmp_path / "m.onnx", nodes, metadata=_metadata(layers=[huge]))
    with pytest.raises(ModelFileError, match="729000000 numbers, expected at most"):
        run_exported(path, X)


def test_a_tensor_with_a_shape_but_not_its_numbers_is_refused(tmp_path) -> None:
    empty = helper.make_tensor("w", FLOAT, [1, 2], [0.0, 0.0])
    empty.ClearField("float_data")
    nodes = [helper.make_node("Constant", [], ["w"], value=empty), *_adds(empty)]
    with pytest.raises(ModelFileError, match=r"tensor 'w' of shape \[1, 2\] stores 0 numbers"):
        run_exported(_write(tmp_path / "m.onnx", nodes), X)


def test_ctrl_c_stops_a_run_that_would_never_end(tmp_path) -> None:
    """Behind the door, too: ONNX Runtime's run ignores Ctrl-C until it returns; the backend
    runs it in a thread and stops it at the next node (here a Loop the door would refuse)."""
    import _thread
    import threading

    import backends

    body = helper.make_graph(
        [helper.make_node("Identity", ["cond"], ["cond_out"]),
         helper.make_node("Identity", ["v"], ["v_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v", FLOAT, [])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_out", FLOAT, [])],
    )  # fmt: skip
    nodes = [
        helper.make_node("Constant", [], ["n"], value=helper.make_tensor("n", 7, [], [2**62])),
        helper.make_node("Constant", [], ["t"], value=helper.make_tensor("t", 9, [], [True])),
        helper.make_node("Constant", [], ["z"], value=helper.make_tensor("z", FLOAT, [], [0.0])),
        helper.make_node("Loop", ["n", "t", "z"], ["zf"], body=body),
        helper.make_node("Add", ["X", "zf"], ["output"]),
    ]
    payload = _write(tmp_path / "m.onnx", nodes).read_bytes()
    timer = threading.Timer(0.5, _thread.interrupt_main)
    start = time.perf_counter()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        backends.load("onnx").graph.execute(payload, {"X": X})
    assert time.perf_counter() - start < 20


def _int(name: str, value) -> object:
    return helper.make_node("Constant", [], [name], value=helper.make_tensor(name, 7, [], [value]))


def _ints(name: str, values) -> object:
    tensor = helper.make_tensor(name, 7, [len(values)], values)
    return helper.make_node("Constant", [], [name], value=tensor)


def _summed(nodes: list, last: str) -> list:
    cast = [helper.make_node("Cast", [last], ["f"], to=FLOAT)] if last == "r" else []
    return [*nodes, *cast, helper.make_node("ReduceSum", ["f" if cast else last], ["s"],
            keepdims=0), helper.make_node("Add", ["X", "s"], ["output"])]  # fmt: skip


@pytest.mark.parametrize(
    ("nodes", "words"),
    [
        # 2**20 * 2**20 computed in the graph: ONNX Runtime folds it when it loads the file
        ([_int("a", 0), _int("k", 2**20), helper.make_node("Mul", ["k", "k"], ["b"]), _int("c", 1),
          helper.make_node("Range", ["a", "b", "c"], ["r"])], "Range.*1099511627776 numbers"),
        ([_int("a", 0), _int("b", 1), _int("c", 0), helper.make_node("Div", ["b", "c"], ["d"]),
          helper.make_node("Range", ["a", "d", "b"], ["r"])], "Range|Div"),
        # two constant vectors of 2**15, each within the budget, broadcast into 2**30
        ([helper.make_node("Constant", [], ["one"], value=ONE), _ints("s", [2**15]),
          _ints("t", [2**15, 1]), helper.make_node("Expand", ["one", "s"], ["u"]),
          helper.make_node("Expand", ["one", "t"], ["v"]),
          helper.make_node("Add", ["u", "v"], ["w"])], "1073741824 numbers"),
    ],
    ids=["range of a product", "range to a division by zero", "broadcast of two expands"],
)  # fmt: skip
def test_sizes_computed_from_constants_are_measured_before_anything_runs(nodes, words, tmp_path):
    last = nodes[-1].output[0]
    start = time.perf_counter()
    with pytest.raises(ModelFileError, match=words):
        run_exported(_write(tmp_path / "m.onnx", _summed(nodes, last)), X)
    assert time.perf_counter() - start < 10


def test_a_range_that_grows_with_the_batch_is_measured_for_the_samples_given(tmp_path):
    # Range(0, N * 2**30) from the input's own shape: no constant says how large it is, so the
    # file passes the checks of its constants; the samples fix N, and with it the size.
    nodes = [
        helper.make_node("Shape", ["X"], ["shape"], start=0, end=1),
        _int("zero", 0), _int("k", 2**30), _int("one_i", 1),
        helper.make_node("Squeeze", ["shape"], ["n"]),
        helper.make_node("Mul", ["n", "k"], ["limit"]),
        helper.make_node("Range", ["zero", "limit", "one_i"], ["r"]),
    ]  # fmt: skip
    path = _write(tmp_path / "m.onnx", _summed(nodes, "r"))
    start = time.perf_counter()
    with pytest.raises(ModelFileError, match=r"Range.*3221225472 numbers.*3 samples"):
        run_exported(path, X[:3])
    assert time.perf_counter() - start < 10


def test_ranges_of_a_real_export_pass_for_large_batches(tmp_path):
    import nnx

    model = nnx.Model(seed=0)
    for layer in (nnx.Dense(2, 8, seed=1), nnx.ReLU(), nnx.Dense(8, 3, seed=2), nnx.Softmax()):
        model.add(layer)
    model.set(loss=nnx.CategoricalCrossentropy(), optimizer=nnx.SGD())
    model.finalize()
    model.export(tmp_path / "m.onnx", labels=True)
    many = np.random.default_rng(0).normal(size=(20_000, 2)).astype(np.float32)
    got = run_exported(tmp_path / "m.onnx", many)
    np.testing.assert_allclose(got["output"], np.asarray(model.predict(many)), rtol=1e-5)
