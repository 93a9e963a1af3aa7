"""torch's compiler (``backends/torch_compile.py``): ``torch.compile`` over a traced graph.

``Model.train(compile=True)`` on torch compiles nnx's one step; left out, torch trains eagerly
(a compile costs seconds); a value read on the host while tracing names the part, as on JAX;
Python numbers are inputs, not constants; without a C++ compiler the error says so in a line.
Each test compiles once or twice (seconds each): the heavy comparisons are the conformance rows
("compiled step = eager step", "nnx.compile(book epoch) = eager") on torch.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import backends
import nnx
from nnx.testing.training import book_compiled_problems

try:
    TORCH = backends.load("torch")
except backends.BackendError as err:  # pragma: no cover - torch is a test dependency in CI
    pytest.skip(f"torch backend unavailable: {err}", allow_module_level=True)

sys.path.insert(0, str(Path(__file__).parent))
from compiled_models import X, Y, assert_close, host, model  # noqa: E402


def _compiled(function: Any) -> Any:
    assert TORCH.compiler is not None
    try:
        return TORCH.compiler.compile(function)
    except backends.BackendError as err:  # no C++ compiler on this machine
        pytest.skip(str(err))


@pytest.fixture(scope="module")
def trained() -> tuple[nnx.Model, nnx.Model, list[dict[str, list[float]]]]:
    """One model trained compiled on torch (dropout, penalties, Adam with decay, a ragged last
    batch: two programs), two train calls; the same trained eagerly on NumPy."""
    compiled, eager = model(TORCH), model("numpy")
    histories = []
    try:
        for m in (compiled, eager):
            for _ in range(2):
                histories.append(
                    m.train(X, Y, epochs=2, batch_size=50, shuffle=True, verbose=0,
                            compile=True if m is compiled else None)
                )  # fmt: skip
    except backends.BackendError as err:
        pytest.skip(str(err))
    return compiled, eager, histories


def test_compile_true_trains_as_the_eager_step(trained: Any) -> None:
    compiled, eager, histories = trained
    assert_close(host(compiled), host(eager))
    for ours, numpy in zip(histories[:2], histories[2:], strict=True):
        for key, values in numpy.items():
            np.testing.assert_allclose(ours[key], values, rtol=1e-4, err_msg=key)
    assert compiled.compiled_step.traces == 2  # 50 and 20 rows; the second call traced none
    assert not hasattr(compiled.layers[0], "dweights")  # inside the program, not on the layer
    assert type(compiled.optimizer.iterations) is int


def test_left_out_compile_trains_eagerly_on_torch() -> None:
    """torch.compile costs seconds a batch shape: torch compiles only when asked."""
    m = model(TORCH, dropout=False)
    m.train(X, Y, epochs=1, verbose=0)
    assert not hasattr(m, "compiled_step")
    assert hasattr(m.layers[0], "dweights")  # the eager step leaves its arrays


def test_numbers_are_inputs_and_shapes_make_programs() -> None:
    torch = pytest.importorskip("torch")
    traces = []

    def scale(x: Any, factor: Any, extra: Any) -> Any:
        traces.append(x.shape)
        return {"scaled": x * factor, "none": None, "same": extra}

    compiled = _compiled(scale)
    x = torch.ones(3, dtype=torch.float32)
    for factor in (0.5, 0.25, 2):  # a learning rate that changes every step
        out = compiled(x, factor, "flag")
        assert out["scaled"].dtype == torch.float32
        assert torch.equal(out["scaled"], x * factor)
        assert out["none"] is None and out["same"] == "flag"
    assert len(traces) == 1
    compiled(torch.ones(4), 0.5, "flag")
    assert len(traces) == 2


def test_a_float64_step_keeps_the_learning_rate_in_float64() -> None:
    """A counter times a decay, traced: in doubles, as the eager book loop computes it."""
    worst, problems = book_compiled_problems(TORCH, "float64")
    assert not problems and worst < 1e-12


class HostRead(nnx.Layer):
    def forward(self, inputs: Any, training: bool = False) -> Any:
        self.output = inputs / float(self.xp.max(inputs))
        return self.output


def test_a_part_that_reads_on_the_host_is_named() -> None:
    _compiled(lambda x: x)
    with pytest.raises(TypeError, match=r"nnx.compile cannot trace HostRead.*without it"):
        nnx.compile(lambda layer, X: layer.forward(X))(HostRead(backend=TORCH), X)


def test_without_a_cxx_compiler_compile_says_so_in_a_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no g++, c++ or clang++ there
    monkeypatch.delenv("CXX", raising=False)
    with pytest.raises(backends.BackendError, match="needs a C\\+\\+ compiler") as info:
        model(TORCH, dropout=False).train(X, Y, epochs=1, verbose=0, compile=True)
    assert "\n" not in str(info.value)
