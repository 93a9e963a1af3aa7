"""Every Python snippet in the README runs as shown, and the error it quotes is the real one."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nnx
from nnx.datasets import spiral_data

README = Path(__file__).resolve().parents[2] / "README.md"
SNIPPETS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_readme_has_snippets() -> None:
    assert len(SNIPPETS) >= 4


@pytest.mark.parametrize("code", SNIPPETS, ids=[f"snippet{i}" for i in range(len(SNIPPETS))])
def test_snippet_runs(code: str, tmp_path: Path) -> None:
    env_free = {k: v for k, v in __import__("os").environ.items() if not k.startswith("NNX_")}
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env_free,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr


def test_quoted_error_is_the_real_one() -> None:
    quoted = re.search(r"ValueError: (.*?)\n```", README.read_text(), flags=re.DOTALL)
    assert quoted is not None
    X, y = spiral_data(100, 3, seed=0)
    model = nnx.Model()
    model.add(nnx.Dense(2, 4, seed=0))
    model.add(nnx.Softmax())
    model.set(loss=nnx.CategoricalCrossentropy(), optimizer=nnx.SGD())
    model.finalize()
    with pytest.raises(ValueError) as err:
        model.train(X[:, :1], y)
    assert " ".join(quoted.group(1).split()) == str(err.value)
    assert np.asarray(X).shape == (300, 2)


def _text_block_after(marker: str) -> str:
    """The first ```text block after ``marker`` in the README."""
    text = README.read_text()
    found = re.search(r"```text\n(.*?)```", text[text.index(marker) :], flags=re.DOTALL)
    assert found is not None, marker
    return found.group(1)


def test_summary_shown_is_the_real_one(capsys: pytest.CaptureFixture[str]) -> None:
    """The "Using nnx" snippet, then model.summary(): the README's table, line for line."""
    namespace: dict[str, object] = {}
    exec(SNIPPETS[0], namespace)  # noqa: S102 (the README's own snippet)
    capsys.readouterr()
    model = namespace["model"]
    assert isinstance(model, nnx.Model)
    text = model.summary()
    assert capsys.readouterr().out == text + "\n"  # printed, and returned
    assert text + "\n" == _text_block_after("`model.summary()` prints")


def test_predict_shown_is_the_real_one(tmp_path: Path) -> None:
    shown = _text_block_after("After the `nnx train`").splitlines()
    command = shown[0].removeprefix("$ ").split()
    assert command[:2] == ["nnx", "predict"]

    def nnx_command(*args: str) -> list[str]:
        done = subprocess.run(
            [sys.executable, "-m", "nnx.cli", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines()

    nnx_command("train", "--dataset", "spiral")  # the README's `nnx train --dataset spiral`
    printed = nnx_command(*command[1:])
    assert printed[:-1] == shown[1:-1]  # the predictions and where they were cut
    # The last line's figures come from 1000 float32 steps: BLAS may round them otherwise.
    figures = re.compile(r"spiral, held-out rows: accuracy ([\d.]+), loss ([\d.]+) on 300 rows")
    got, want = figures.fullmatch(printed[-1]), figures.fullmatch(shown[-1])
    assert got is not None and want is not None, printed[-1]
    assert float(got[1]) == pytest.approx(float(want[1]), abs=0.02)
    assert float(got[2]) == pytest.approx(float(want[2]), abs=0.02)
