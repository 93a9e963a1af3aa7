"""With an optional library hidden, the tests that need it skip and say why; none fails.

`make test` installs every CPU extra, so the skip paths of the suite never run there. Here a
``sitecustomize.py`` on ``PYTHONPATH`` hides torch and ndonnx from an inner pytest session (and
from every process it starts, as the README's snippets are run), and the session must end
green, with skips that name what is missing.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HIDDEN = ("torch", "ndonnx")
BLOCKER = '''\
import sys


class _Hide:
    """Import nothing named {names!r}: as if the extra were not installed."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {names!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (hidden by the test)", name=name)
        return None


sys.meta_path.insert(0, _Hide())
'''
# Tests that use torch or ndonnx, and the README's ONNX snippet (it exports a model).
SELECTED = [
    "tests/unit/test_host_door.py",
    "tests/unit/test_export.py",
    "tests/unit/test_readme.py::test_block_runs[python-export-to-onnx]",
]


def _hiding_env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "sitecustomize.py").write_text(BLOCKER.format(names=set(HIDDEN)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("NNX_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path), env.get("PYTHONPATH")]))
    return env


def test_the_blocker_hides_the_libraries_in_nested_processes(tmp_path: Path) -> None:
    env = _hiding_env(tmp_path)
    nested = (
        "import subprocess, sys; sys.exit(subprocess.call([sys.executable, '-c', 'import torch']))"
    )
    done = subprocess.run(
        [sys.executable, "-c", nested], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1
    assert "No module named 'torch' (hidden by the test)" in done.stderr


def test_tests_skip_with_the_reason_when_torch_and_ndonnx_are_missing(tmp_path: Path) -> None:
    for name in HIDDEN:
        pytest.importorskip(name)  # hidden only if present: else the suite's own run shows it
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *SELECTED],
        cwd=ROOT,
        env=_hiding_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    summary = out.strip().splitlines()[-1]
    assert "skipped" in summary and "failed" not in summary and "error" not in summary, summary
    skips = [line for line in out.splitlines() if line.startswith("SKIPPED")]
    # Each skip names the missing library or the extra that brings it.
    assert skips and all(re.search(r"torch|ndonnx|onnx", line) for line in skips), skips
    assert any("test_readme.py" in line and "onnx" in line for line in skips), skips
    assert any("test_host_door.py" in line and "torch" in line for line in skips), skips
    assert any("test_export.py" in line for line in skips), skips
