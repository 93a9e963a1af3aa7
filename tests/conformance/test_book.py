"""The book's chapters on every backend: the README's chapter 4, 5 and 9 blocks, and the
chapter-10 loops (``examples/book/chapter10.py``).

The blocks and the script are the book's code with only the changes the README lists. Run as a
user runs them (a process, ``NNX_BACKEND``/``NNX_DEVICE``, float32 as the book's
``Layer_Dense``), they print the NumPy run's lines within float32 drift; with float64 layers
the chapter-10 script prints the very same lines.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import backends
from backends import Backend
from nnx import book

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "book" / "chapter10.py"
# The README's chapter blocks: ```python blocks whose first line is "# Chapter ...".
CHAPTERS = {
    block.splitlines()[0].removeprefix("# "): block
    for block in re.findall(r"```python\n(# Chapter.*?)```", (ROOT / "README.md").read_text(), re.S)
}
_NUMBER = re.compile(r"-?\d+\.\d*(?:e[-+]\d+)?")
EPOCHS = 300
_LINE = re.compile(r"epoch: (\d+), acc: ([\d.]+), loss: ([\d.]+), lr: (\S+)")
# float32 runs part from NumPy's at the first rounding difference and the book's settings
# amplify it (SGD at 1.0 with momentum 0.9, Adam at 0.05): measured after 300 epochs, the loss
# differs by up to 0.03 and the accuracy by up to 0.04 on torch, and by 0.06 and 0.08 on JAX
# (RMSprop, whose rho=0.999 keeps every early rounding in its cache), while float64 runs agree
# to 1e-8 (the test below; JAX with JAX_ENABLE_X64=1 too). NumPy's own float32 run is 0.03 from
# its float64 one there. A wrong formula moves them much further, or fails float64.
DRIFT = 0.1


def _device(request: pytest.FixtureRequest) -> str | None:
    return request.node.callspec.params["backend"].device


def _skip_lazy(backend: Backend) -> None:
    if backend.lazy is not None:
        pytest.skip(
            f"{backend.name} is lazy: the book's loop grows one task graph over every epoch "
            "(nnx.Model computes each step; see examples/distributed.py)"
        )


def _run_script(name: str, device: str | None, *command: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("NNX_BACKEND", "NNX_DEVICE")}
    env["NNX_BACKEND"] = name
    if device is not None:
        env["NNX_DEVICE"] = device
    done = subprocess.run(
        [sys.executable, *(command or (str(SCRIPT), "all", "--epochs", str(EPOCHS)))],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def numpy_printout() -> str:
    return _run_script("numpy", None)


def test_the_readme_shows_chapters_4_5_and_9() -> None:
    assert len(CHAPTERS) == 2, list(CHAPTERS)
    for title, code in CHAPTERS.items():
        assert "from nnx.book import numpy as np" in code, title
        assert "[:5])" not in code.replace("np.asarray(activation2.output)[:5])", ""), title


@pytest.mark.parametrize("title", sorted(CHAPTERS))
def test_the_readme_chapter_blocks_print_the_numpy_lines(
    title: str, backend: Backend, request: pytest.FixtureRequest
) -> None:
    """Each block as the README shows it: the same lines as on NumPy, the numbers in them
    within float32 rounding (the gradients are sums of 300 terms of about 1e-3)."""
    _skip_lazy(backend)
    code = CHAPTERS[title]
    reference = _run_script("numpy", None, "-c", code).splitlines()
    printout = _run_script(backend.name, _device(request), "-c", code).splitlines()
    assert len(printout) == len(reference) >= 4, printout
    for line, expected in zip(printout, reference, strict=True):
        words = [_NUMBER.sub("#", text).replace(" ", "") for text in (line, expected)]
        assert words[0] == words[1], (line, expected)  # the text around the numbers
        got, want = (np.array(_NUMBER.findall(text), dtype=float) for text in (line, expected))
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6, err_msg=line)


def test_the_script_prints_the_numpy_lines(
    backend: Backend, request: pytest.FixtureRequest, numpy_printout: str
) -> None:
    _skip_lazy(backend)
    printout = _run_script(backend.name, _device(request))
    got, want = printout.splitlines(), numpy_printout.splitlines()
    assert len(got) == len(want) == 5 * (EPOCHS // 100 + 2), printout
    for line, reference in zip(got, want, strict=True):
        match, expected = _LINE.fullmatch(line), _LINE.fullmatch(reference)
        if expected is None or expected[1] == "0":  # the optimizer's name; the first epoch
            assert line == reference
            continue
        assert match is not None, line
        assert match[1] == expected[1] and match[4] == expected[4], (line, reference)  # lr
        assert abs(float(match[2]) - float(expected[2])) <= DRIFT, (line, reference)
        assert abs(float(match[3]) - float(expected[3])) <= DRIFT, (line, reference)


def _float64_printout(capsys: pytest.CaptureFixture[str], monkeypatch: Any) -> str:
    """The script's five loops in this process, with float64 layers (and without nnfs.init's
    patches of NumPy, which would outlive the test)."""
    spec = importlib.util.spec_from_file_location("chapter10", SCRIPT)
    assert spec is not None and spec.loader is not None
    chapter10 = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(chapter10)
    monkeypatch.setattr(
        chapter10, "Layer_Dense", functools.partial(book.Layer_Dense, dtype="float64")
    )
    capsys.readouterr()
    for name in chapter10.OPTIMIZERS:
        chapter10.train(name, EPOCHS)
    return capsys.readouterr().out


def test_in_float64_every_line_is_the_numpy_line(
    backend: Backend, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _skip_lazy(backend)
    if not backend.float64:
        pytest.skip(f"{backend.name} on {backend.device} has no float64{backend.float64_hint}")
    state = np.random.get_state()
    try:
        with backends.use_backend("numpy"):
            reference = _float64_printout(capsys, monkeypatch)
        with backends.use_backend(backend):
            printout = _float64_printout(capsys, monkeypatch)
    finally:
        np.random.set_state(state)
    assert "epoch: 300, acc:" in reference
    assert printout == reference
