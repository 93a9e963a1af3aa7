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
