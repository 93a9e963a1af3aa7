"""The README's blocks run as written, after the one activation step it gives, and what it
quotes (an error, a summary, a command's output) is the real thing.

Every ```python and ```bash block runs: Python blocks in a fresh folder with the test's
interpreter (the environment's), shell blocks with ``bash -e`` in a fresh folder holding a copy
of ``examples/`` and ``benchmarks/``, with the environment's ``bin`` first on PATH (what
``source .venv/bin/activate`` does). A block whose first line is ``# needs: gpu``, ``cluster``,
``download`` or ``network`` is skipped with that reason; ``# needs: pip install -e ".[EXTRA]"``
runs it when the extra's libraries import, and skips naming the extra otherwise.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import nnx
from nnx.datasets import spiral_data

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
TEXT = README.read_text()

# What cannot run on a test machine, as the README's first-line comment names it.
CANNOT_RUN = {
    "gpu": "needs a CUDA GPU",
    "cluster": "needs a Dask cluster of your own",
    "download": "needs a data set downloaded by hand",
    "network": "installs from the package index (CI runs it on a fresh clone)",
}
# The libraries of each extra (pyproject.toml), by the name they are imported under.
EXTRA_MODULES = {
    "torch": ("torch",),
    "jax": ("jax",),
    "dask": ("dask", "distributed"),
    "onnx": ("ndonnx", "onnx", "onnxruntime"),
    "cupy": ("cupy",),
    "plot": ("matplotlib",),
    "examples": ("matplotlib", "sklearn"),
    "test": ("array_api_strict", "pytest"),
}
# What a block uses that an extra brings: it must say so on its first line.
USES = {
    r"\btorch\b": "torch",
    r"\bjax\b": "jax",
    r"\bdask\b": "dask",
    r"onnx": "onnx",
    r"\bcupy\b": "cupy",
    r"array_api_strict": "test",
    r"--plot|matplotlib": "plot",
    r"digits\.py|sklearn": "examples",
}


@dataclass(frozen=True)
class Block:
    lang: str
    code: str
    section: str
    id: str

    @property
    def needs(self) -> str | None:
        first = self.code.splitlines()[0] if self.code.strip() else ""
        found = re.fullmatch(r"# needs: (.+)", first.strip())
        return found[1] if found else None

    @property
    def named_extras(self) -> set[str]:
        """The extras its first line names: # needs: pip install -e ".[a,b]"."""
        named = re.fullmatch(r'pip install -e "\.\[([\w,]+)\]"', self.needs or "")
        return set(named[1].split(",")) if named else set()

    @property
    def extras(self) -> list[str]:
        """The extras the first line names, and those the block's code shows it uses."""
        used = {extra for use, extra in USES.items() if self.uses(use)}
        return sorted(self.named_extras | used)

    def uses(self, pattern: str) -> bool:
        return re.search(pattern, self.code) is not None


def _blocks() -> list[Block]:
    blocks, seen = [], {}
    pattern = re.compile(r"^## ([^\n]+)$|^```(python|bash)\n(.*?)^```", re.M | re.S)
    section = "top"
    for match in pattern.finditer(TEXT):
        if match[1]:
            section = match[1].strip()
            continue
        slug = re.sub(r"[^a-z0-9]+", "-", section.lower()).strip("-")
        key = f"{match[2]}-{slug}"
        seen[key] = seen.get(key, 0) + 1
        blocks.append(
            Block(match[2], match[3], section, key + ("" if seen[key] == 1 else f"-{seen[key]}"))
        )
    return blocks


BLOCKS = _blocks()
SNIPPETS = [block.code for block in BLOCKS if block.lang == "python"]


def _importable(module: str) -> bool:
    try:  # a finder that hides a module (tests/unit/test_optional_imports.py) raises here
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _env() -> dict[str, str]:
    """The user's environment after `source .venv/bin/activate`, without a backend chosen."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NNX_")}
    bin_dir = Path(sys.executable).parent
    env["PATH"] = os.pathsep.join([str(bin_dir), env.get("PATH", "")])
    env["VIRTUAL_ENV"] = str(bin_dir.parent)
    env["MPLBACKEND"] = "Agg"
    # A shared test machine: one thread per library keeps small networks fast and steady.
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    return env


def test_the_readme_has_blocks_of_each_kind() -> None:
    langs = [block.lang for block in BLOCKS]
    assert langs.count("python") >= 6 and langs.count("bash") >= 6


def test_markers_are_known_and_extras_are_named() -> None:
    """Every `# needs:` names a known reason or an extra of pyproject.toml, and a block that
    uses an extra's library says so on its first line."""
    extras = set(re.findall(r"^(\w+) = \[", (ROOT / "pyproject.toml").read_text(), flags=re.M))
    assert set(EXTRA_MODULES) <= extras
    for block in BLOCKS:
        if block.needs is not None and block.needs not in CANNOT_RUN:
            assert block.named_extras, f"{block.id}: unknown marker # needs: {block.needs}"
            assert block.named_extras <= set(EXTRA_MODULES), block.id
        if block.needs in CANNOT_RUN:
            continue
        # A test must not install into the environment: installs go on the first line.
        commands = [line for line in block.code.splitlines() if not line.startswith("#")]
        assert not any("pip install" in line for line in commands), block.id
        named = set(block.named_extras)
        if named & {"examples", "test"}:
            named.add("plot")  # they bring matplotlib too
        for use, extra in USES.items():
            hint = f'# needs: pip install -e ".[{extra}]"'
            assert not block.uses(use) or extra in named, f"{block.id} uses {extra}: {hint}"


@pytest.mark.parametrize("block", BLOCKS, ids=[block.id for block in BLOCKS])
def test_block_runs(block: Block, tmp_path: Path) -> None:
    if block.needs in CANNOT_RUN:
        pytest.skip(f"the README marks it: {CANNOT_RUN[block.needs]}")
    for extra in block.extras:
        missing = [name for name in EXTRA_MODULES[extra] if not _importable(name)]
        if missing:
            hint = f'pip install -e ".[{extra}]"'
            pytest.skip(f"needs the {extra} extra ({', '.join(missing)} missing): {hint}")
    if block.lang == "python":
        command = [sys.executable, "-c", block.code]
    else:
        for folder in ("examples", "benchmarks"):
            shutil.copytree(
                ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__")
            )
        (tmp_path / "block.sh").write_text(block.code)
        command = ["bash", "-e", "block.sh"]
    done = subprocess.run(
        command, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"{block.id}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert "Traceback" not in done.stderr, done.stderr


def test_quoted_error_is_the_real_one() -> None:
    quoted = re.search(r"ValueError: (.*?)\n```", TEXT, flags=re.DOTALL)
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
    found = re.search(r"```text\n(.*?)```", TEXT[TEXT.index(marker) :], flags=re.DOTALL)
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


def _numpy_run(code: str, tmp_path: Path) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=_env(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_chapter_printouts_shown_are_the_real_ones(tmp_path: Path) -> None:
    """Chapters 4 and 5 print the lines shown, to the digit; chapter 10's loop prints the two
    lines shown, its float32 figures after 100 Adam steps within 0.01."""
    chapters = [code for code in SNIPPETS if code.startswith("# Chapters 4 and 5")]
    assert len(chapters) == 1
    shown = _text_block_after("It prints the book's figures").splitlines()
    assert _numpy_run(chapters[0], tmp_path) == shown

    loop = [code for code in SNIPPETS if "for epoch in range(101):" in code]
    assert len(loop) == 1
    shown = _text_block_after("Saved as `chapter.py`, it prints on NumPy").splitlines()
    printed = _numpy_run(loop[0], tmp_path)
    assert printed[0] == shown[0] == "epoch: 0, acc: 0.360, loss: 1.099, lr: 0.05"
    figures = re.compile(r"epoch: 100, acc: ([\d.]+), loss: ([\d.]+), lr: 0.04999752512250644")
    got, want = figures.fullmatch(printed[1]), figures.fullmatch(shown[1])
    assert got is not None and want is not None, (printed, shown)
    assert float(got[1]) == pytest.approx(float(want[1]), abs=0.01)
    assert float(got[2]) == pytest.approx(float(want[2]), abs=0.01)
