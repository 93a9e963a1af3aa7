"""examples/notebooks/chapter10.ipynb runs headless, cell by cell, in a kernel of this Python:
on NumPy as stored, and on array-api-strict with its one backend line changed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "notebooks" / "chapter10.ipynb"
BACKEND_LINE = 'backend = nnx.set_backend("numpy")'


def _kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A kernel spec of this very interpreter, so the notebook imports the nnx under test
    (not whatever a machine-wide 'python3' kernel points at)."""
    spec = tmp_path / "jupyter" / "kernels" / "nnx-test"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "nnx test", "language": "python"})
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline figures
    for name in ("NNX_BACKEND", "NNX_DEVICE"):
        monkeypatch.delenv(name, raising=False)
    return "nnx-test"


def test_the_stored_notebook_has_no_outputs() -> None:
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code)
    assert sum(BACKEND_LINE in cell.source for cell in code) == 1


@pytest.mark.parametrize("name", ["numpy", "array_api_strict"])
def test_the_notebook_runs(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("ipykernel")
    pytest.importorskip("matplotlib")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    for cell in notebook.cells:  # the one line a reader changes
        cell.source = cell.source.replace(BACKEND_LINE, BACKEND_LINE.replace("numpy", name))
    client = nbclient.NotebookClient(
        notebook,
        timeout=600,
        kernel_name=_kernel(tmp_path, monkeypatch),
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError, with the cell and traceback, if one fails

    outputs = [out for cell in notebook.cells for out in cell.get("outputs", [])]
    text = "".join(out.get("text", "") for out in outputs if out.output_type == "stream")
    figures = [out for out in outputs if "image/png" in out.get("data", {})]
    assert len(figures) == 3  # the data, the curves, the decision boundary
    assert f"backend: {name} on" in text  # model.summary()
    assert "epoch: 1000, acc: " in text and "validation, acc: " in text
    assert "the loaded model predicts the same classes: True" in text
    assert "Traceback" not in text and "Warning" not in text
    assert (tmp_path / "spiral.nnx").is_file()
