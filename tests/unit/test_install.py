"""CI installs what a newcomer installs: the project's extras, nothing named by hand.

A bare package name in `.ci/run` or the Makefile is how CI once paired today's dask with a 2021
distributed: the extras carry the lower bounds that keep a resolver away from such releases.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from 3.11")

ROOT = Path(__file__).resolve().parents[2]
# What may be named outside the extras: pip itself, and the CPU torch this machine carries
# (any other torch spec pulls a multi-GB CUDA build), which goes in before the extras.
ALLOWED = {"pip"}


def _extras() -> dict[str, list[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return project["optional-dependencies"]


def _make_variables() -> dict[str, str]:
    found = re.findall(r"^(\w+)\s*[:?]?=\s*(.*)$", (ROOT / "Makefile").read_text(), re.M)
    return {name: value.strip() for name, value in found}


def _pip_installs(text: str) -> list[list[str]]:
    """The arguments of every `pip install` in a script or Makefile, line continuations joined."""
    # Make's $(NAME) as @NAME@, so that the parentheses of $(if ...) end an argument list.
    text = re.sub(r"\$\((\w+)\)", r"@\1@", text.replace("\\\n", " "))
    return [shlex.split(m) for m in re.findall(r"pip install ([^\n;&)]*)", text)]


@pytest.mark.parametrize("name", [".ci/run", "Makefile"])
def test_installs_go_through_the_extras(name: str) -> None:
    variables = _make_variables()
    extras = _extras()
    for args in _pip_installs((ROOT / name).read_text()):
        for arg in args:
            if arg.startswith("-") or arg == "-e":
                continue
            if arg == "@TORCH@":
                continue  # the torch pin, checked below where it is set
            arg = re.sub(r"@(\w+)@", lambda m: variables.get(m.group(1), m.group(0)), arg)
            if arg.startswith("."):
                wanted = re.fullmatch(r"\.(?:\[([\w,-]+)\])?", arg)
                assert wanted, f"{name}: install the project as '.' or '.[extras]', got {arg!r}"
                unknown = set((wanted.group(1) or "").split(",")) - set(extras) - {""}
                assert not unknown, f"{name}: extras {sorted(unknown)} are not in pyproject.toml"
            else:
                spec = re.split(r"[<>=!~\[ ]", arg)[0]
                assert spec in ALLOWED, f"{name} installs {arg!r} by name; add it to an extra"


def test_torch_is_the_cpu_pin() -> None:
    """torch==2.13.0 is the CPU build this machine carries; any other spec pulls CUDA."""
    assert _make_variables()["TORCH"] == "torch==2.13.0"
    assert any(r.startswith("torch>=") for r in _extras()["torch"])


def test_ci_runs_the_readme_commands_and_nothing_else() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".ci/run").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    commands = [line for line in lines if not line.startswith(("set ", "cd "))]
    assert commands == ["make train", "make test"]
    quick_start = (ROOT / "README.md").read_text().split("## Quick start", 1)[1]
    for command in commands:
        assert command in quick_start


def test_the_test_target_installs_every_cpu_extra() -> None:
    """`make test` alone sets up the whole suite: every extra but the GPU one."""
    installed = set(_make_variables()["TEST_EXTRAS"].split(","))
    assert installed == set(_extras()) - {"cupy", "bench", "plot", "examples"}
    assert "test" in installed
    # The lower bounds are what keep pip from pairing new and ancient releases.
    for extra in installed:
        for requirement in _extras()[extra]:
            assert ">=" in requirement, f"extra {extra!r}: {requirement!r} has no lower bound"


# "nnx" on the package index is somebody else's project: a hint that names it installs that.
_TAKEN = re.compile(r"""pip install (-U )?["']?nnx(\[|==|["'\s.,)]|$)""", re.M)


def test_no_hint_names_the_taken_distribution() -> None:
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["name"] == "nnx-book"
    files = [
        path
        for folder in ("nnx", "backends", "examples", "benchmarks", "tests")
        for path in (ROOT / folder).rglob("*")
        if path.suffix in {".py", ".md", ".sh", ".ipynb"} and path.name != "test_install.py"
    ]
    files += [ROOT / "README.md", ROOT / "Makefile", ROOT / ".ci/run"]
    found = [
        f"{path.relative_to(ROOT)}: {match.group(0)!r}"
        for path in files
        for match in _TAKEN.finditer(path.read_text(encoding="utf-8"))
    ]
    assert not found, "hints that install the unrelated 'nnx' from the index:\n" + "\n".join(found)


def test_the_hint_works_from_a_clone() -> None:
    import backends

    hint = backends.install_hint("torch")
    assert 'pip install -e ".[torch]"' in hint and backends.DISTRIBUTION in hint
