"""``nnx --version``, ``--help``, ``nnx info`` (without importing the libraries; ``--check``
imports them) and ``--plugin``/entry points for backends registered outside nnx."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import backends
import nnx
from nnx import cli
from nnx.cli import main

_PLUGIN = """
import array_api_compat.numpy as xp
import numpy as np

import backends


def make(device=None):
    return backends.Backend(name="mynumpy", xp=xp, device="cpu", to_numpy=np.asarray,
                            asarray=lambda data, dtype=None: np.asarray(data, dtype=dtype))


class CUDARuntimeError(RuntimeError):
    pass


def broken(device=None):
    raise CUDARuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")


if __name__ != "mynumpy_ep":  # as an entry point, the registry registers make itself
    backends.register("mynumpy", make)
    backends.register("brokencuda", broken)
"""


def _nnx(*argv: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nnx.cli", *argv], capture_output=True,
                          text=True, cwd=cwd, timeout=120, env=env)  # fmt: skip


def test_version_names_the_version_and_the_distribution(tmp_path: Path):
    done = _nnx("--version", cwd=tmp_path)
    assert done.returncode == 0
    assert (
        done.stdout.strip() == f"nnx {nnx.__version__} (the {backends.DISTRIBUTION} distribution)"
    )


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(actions[0].choices)


def test_help_has_a_line_and_a_default_for_every_option(capsys):
    parser = cli._parser()
    assert "``" not in parser.description and ":class:" not in parser.description
    for name, sub in _subparsers(parser).items():
        for action in sub._actions:
            if not action.option_strings or action.help == argparse.SUPPRESS:
                continue
            assert action.help, f"nnx {name} {action.option_strings[0]} has no help"
            flag = isinstance(action, (argparse._StoreTrueAction, argparse._HelpAction))
            if not flag:
                said = "default" in action.help or "required" in action.help
                assert said, f"nnx {name} {action.option_strings[0]}: {action.help}"
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    for words in ("all the training rows in one step", "(default: model.nnx)", "adam 0.05",
                  "sine 2000", "--overwrite", "--plugin MODULE"):  # fmt: skip
        assert words in " ".join(out.split())


def test_info_finds_the_libraries_without_importing_them(tmp_path: Path):
    script = (
        "import sys; from nnx.cli import main; code = main(['info']); "
        "heavy = ('torch', 'jax', 'dask', 'cupy', 'ndonnx', 'onnxruntime', 'array_api_strict'); "
        "print('imported:', sorted({m.split('.')[0] for m in sys.modules} & set(heavy)))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "imported: []"
    assert lines[0].split() == ["backend", "installed", "version", "note"]
    table = lines[1 : lines.index("")]  # the table ends at the first empty line
    rows = {line.split()[0]: line.split() for line in table if not line.startswith("(")}
    assert set(rows) == set(backends.registered())
    assert rows["numpy"][1:3] == ["yes", __import__("numpy").__version__]
    for name, row in rows.items():
        assert row[1] == "yes" or "is not installed" in " ".join(row), name


def test_info_says_which_variable_sets_which_threads(monkeypatch, capsys):
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "3")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "OPENBLAS_NUM_THREADS=3" in out and "OMP_NUM_THREADS=unset" in out
    omp = next(line for line in out.splitlines() if "OMP_NUM_THREADS=" in line)
    assert "torch" in omp
    xla = next(line for line in out.splitlines() if "XLA_FLAGS=" in line)
    assert "JAX" in xla and "--xla_cpu_multi_thread_eigen=false" in xla
    assert "intra_op_parallelism_threads=1" in xla


def test_plugin_backends_in_info_check_train_and_conformance(tmp_path: Path):
    (tmp_path / "myplug.py").write_text(_PLUGIN)
    env = {**os.environ, "NNX_BACKEND": "", "NNX_DEVICE": ""}
    # A library that raises its own error type (CuPy without a GPU) is a row, not a crash.
    done = _nnx("info", "--check", "--plugin", "myplug", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line for line in done.stdout.splitlines()[1:] if line.strip()}
    assert rows["mynumpy"].split()[1:4] == ["yes", "cpu", "float32"]
    assert rows["brokencuda"].split()[1] == "no" and "no CUDA-capable device" in rows["brokencuda"]
    argv = ("--plugin", "myplug", "--backend", "mynumpy")
    done = _nnx("train", *argv, "--epochs", "2", cwd=tmp_path, env=env)
    assert done.returncode == 0 and "training on mynumpy (cpu)" in done.stdout, done.stderr
    done = _nnx("conformance", *argv, "--components-only", "--dtype", "float32", cwd=tmp_path,
                env=env)  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr
    assert " 0 failed" in done.stdout and "mynumpy" in done.stdout
    # Without the plugin, the advice names it.
    done = _nnx("conformance", "--backend", "mynumpy", cwd=tmp_path, env=env)
    assert done.returncode == 1 and done.stdout == ""
    assert "nnx conformance --plugin MODULE --backend mynumpy" in done.stderr


def test_entry_point_backends_need_no_plugin(tmp_path: Path):
    (tmp_path / "mynumpy_ep.py").write_text(_PLUGIN)
    info = tmp_path / "mynumpy_ep-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mynumpy-ep\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        textwrap.dedent(f"""\
            [{backends.ENTRY_POINT_GROUP}]
            mynumpy = mynumpy_ep:make
            """)
    )
    path = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path, "NNX_BACKEND": "", "NNX_DEVICE": ""}
    done = _nnx("info", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines() if line.startswith("mynumpy "))
    assert row.split()[1] == "yes"
    done = _nnx("conformance", "--backend", "mynumpy", "--components-only", "--dtype",
                "float32", cwd=tmp_path, env=env)  # fmt: skip
    assert done.returncode == 0 and " 0 failed" in done.stdout, done.stdout[-2000:] + done.stderr


def test_installed_rows_for_code_entry_points_and_missing_libraries(monkeypatch, capsys):
    monkeypatch.setitem(backends._FACTORIES, "incode", lambda device=None: None)
    monkeypatch.setitem(backends._FACTORIES, "gone", "no_such_library_xyz.backend:make")
    rows = {status.name: status for status in backends.installed()}
    assert rows["incode"].usable and rows["incode"].reason == "registered in code"
    assert not rows["gone"].usable
    assert rows["gone"].reason == "no_such_library_xyz is not installed"
    assert "no_such_library_xyz" not in sys.modules
    assert main(["info"]) == 0
    gone = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("gone"))
    assert gone.split()[1] == "no"
