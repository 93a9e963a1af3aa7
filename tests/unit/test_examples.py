"""The examples run as scripts: short runs on numpy (spiral on array_api_strict too), one-line
failures for a missing backend or data, the Fashion-MNIST script on a tiny IDX folder, what
they say after Ctrl-C, and their warning on a busy machine."""

from __future__ import annotations

import gzip
import importlib.util
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import nnx

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FINAL = re.compile(
    r"^(?P<name>\w+) on (?P<backend>\w+): (?P<epochs>\d+) epochs in [\d.]+ s, training accuracy "
    r"(?P<train>[\d.]+), (validation|test) accuracy (?P<val>[\d.]+)$"
)


def _run(script, *args, backend="numpy", timeout=120):
    env = {key: value for key, value in os.environ.items() if not key.startswith("NNX_")}
    # Small matrices: one BLAS thread is faster and steadier than several competing for cores.
    env.update(NNX_BACKEND=backend, OPENBLAS_NUM_THREADS="1", MPLBACKEND="Agg")
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script), *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def _final(result):
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    match = FINAL.match(result.stdout.strip().splitlines()[-1])
    assert match, result.stdout
    return match


@pytest.mark.parametrize(
    "script, epochs",
    [("spiral.py", 200), ("regression.py", 200), ("binary.py", 200), ("digits.py", 2)],
)
def test_example_short_run(script, epochs):
    final = _final(_run(script, "--epochs", epochs))
    assert final["name"] == script.removesuffix(".py")
    assert final["backend"] == "numpy" and int(final["epochs"]) == epochs
    assert 0 <= float(final["train"]) <= 1


def test_spiral_prints_the_books_lines_and_same_numbers_on_array_api_strict():
    pytest.importorskip("array_api_strict")
    numpy_run = _run("spiral.py", "--epochs", 300)
    strict_run = _run("spiral.py", "--epochs", 300, backend="array_api_strict")
    assert _final(strict_run)["backend"] == "array_api_strict"
    books = [line for line in numpy_run.stdout.splitlines() if line.startswith("epoch: ")]
    assert len(books) == 3
    line = r"epoch: 300, acc: [\d.]+, loss: [\d.]+ \(data_loss: .*\), lr: [\d.]+$"
    assert re.match(line, books[-1])
    # Seeded data and weights: the same printed figures on both backends.
    assert books == [line for line in strict_run.stdout.splitlines() if line.startswith("epoch: ")]


def test_spiral_on_jax_trains_compiled_and_prints_numpys_figures():
    """NNX_BACKEND=jax: the compiled step (the default there) prints NumPy's lines within
    float32 drift. Adam at 0.05 spreads float32 runs: after 100 epochs the loss is 0.763 on
    NumPy, 0.756 on torch, 0.750 on eager JAX and 0.749 compiled (the first 50 epochs agree
    to 1e-3); after 300, 0.025 apart at most."""
    pytest.importorskip("jax")
    runs = [_run("spiral.py", "--epochs", 300, backend=name) for name in ("numpy", "jax")]
    assert _final(runs[1])["backend"] == "jax"
    numbers = [
        [float(x) for line in run.stdout.splitlines() if line.startswith("epoch: ")
         for x in re.findall(r"\d+\.\d+", line)[:4]]
        for run in runs
    ]  # fmt: skip
    assert len(numbers[0]) == len(numbers[1]) == 12
    np.testing.assert_allclose(numbers[1], numbers[0], atol=0.05)


def test_spiral_full_run_reaches_90_percent():
    final = _final(_run("spiral.py"))
    assert int(final["epochs"]) == 10000
    assert float(final["train"]) >= 0.90


def test_digits_full_run_reaches_95_percent():
    pytest.importorskip("sklearn")
    assert float(_final(_run("digits.py"))["val"]) >= 0.95


def test_plot_writes_a_figure(tmp_path):
    pytest.importorskip("matplotlib")
    result = _run("binary.py", "--epochs", 20, "--plot", tmp_path / "binary.png")
    _final(result)
    assert (tmp_path / "binary.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("name", ["nosuch", "cupy"])
def test_unusable_backend_is_one_line_without_traceback(name):
    if name == "cupy":
        try:
            nnx.Dense(1, 1, backend="cupy")
        except nnx.BackendError:
            pass
        else:
            pytest.skip("cupy runs on this machine")
    result = _run("spiral.py", "--epochs", 1, backend=name)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("spiral.py: cannot use the backend")
    assert name in lines[0]


def _write_idx(path, array):
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(n.to_bytes(4, "big") for n in array.shape)
    path.write_bytes(gzip.compress(header + array.tobytes()))


def _fashion_folder(folder):
    rng = np.random.default_rng(0)
    folder.mkdir()
    for prefix, n in (("train", 200), ("t10k", 20)):  # two batches of up to 128
        _write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    return folder


def test_fashion_mnist_on_a_tiny_folder(tmp_path):
    folder = _fashion_folder(tmp_path / "fashion")
    saved = tmp_path / "fashion.safetensors"
    result = _run("fashion_mnist.py", folder, "--epochs", 1, "--save", saved)
    final = _final(result)
    assert final["name"] == "fashion_mnist" and int(final["epochs"]) == 1
    assert "validation, acc:" in result.stdout
    model = nnx.Model.load(saved, backend="numpy")
    assert model.layers[0].n_inputs == 784 and model.optimizer.iterations == 2  # steps


def test_fashion_mnist_missing_folder_is_one_line(tmp_path):
    result = _run("fashion_mnist.py", tmp_path / "nowhere", "--epochs", 1)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no folder" in lines[0] and "nowhere" in lines[0]


def _common():
    spec = importlib.util.spec_from_file_location("_common", EXAMPLES / "_common.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ctrl_c_says_after_how_many_epochs_it_stopped():
    env = {key: value for key, value in os.environ.items() if not key.startswith("NNX_")}
    env.update(NNX_BACKEND="numpy", OPENBLAS_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    script = [sys.executable, str(EXAMPLES / "spiral.py"), "--epochs", "1000000"]
    with subprocess.Popen(
        script, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as run:
        assert run.stdout is not None
        first = run.stdout.readline()  # training has begun: the first book line
        assert first.startswith("epoch: 100,"), first
        run.send_signal(signal.SIGINT)
        out, err = run.communicate(timeout=120)
    assert run.returncode == 0, err
    last = out.strip().splitlines()[-1]
    found = re.fullmatch(
        r"spiral on numpy: interrupted after (\d+) of 1000000 epochs, [\d.]+ s, "
        r"training accuracy [\d.]+, validation accuracy [\d.]+",
        last,
    )
    assert found, last
    assert 100 <= int(found[1]) < 1000000
    assert "Training interrupted in epoch" in err and "Traceback" not in err


def test_the_closing_line_counts_the_epochs_the_history_holds(capsys):
    common = _common()
    backend = nnx.get_backend()
    short = {"loss": [0.9, 0.8, 0.7], "accuracy": [0.5, 0.6, 0.7], "val_accuracy": [0.4, 0.5, 0.6]}
    line = common.report("digits", backend, 10, 1.25, short)
    assert line == (
        "digits on numpy: interrupted after 3 of 10 epochs, 1.2 s, "
        "training accuracy 0.700, validation accuracy 0.600"
    )
    assert capsys.readouterr().out == line + "\n"
    done = common.report("digits", backend, 3, 1.25, short, 0.55, "test")
    assert (
        done == "digits on numpy: 3 epochs in 1.2 s, training accuracy 0.700, test accuracy 0.550"
    )


@pytest.mark.parametrize(
    "load, environ, warns",
    [
        (5.0, {}, True),  # busier than the 2 cores, and nothing set
        (1.5, {}, False),  # not busy
        (5.0, {"OMP_NUM_THREADS": "2"}, False),  # the user chose already
        (5.0, {"OPENBLAS_NUM_THREADS": "1"}, False),
        (5.0, {"XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false"}, False),
    ],
)
def test_a_busy_machine_gets_one_warning_naming_each_librarys_variable(
    monkeypatch, capsys, load, environ, warns
):
    common = _common()
    monkeypatch.setattr(os, "getloadavg", lambda: (load, 0.0, 0.0))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert common.warn_if_oversubscribed(environ) is warns
    captured = capsys.readouterr()
    assert captured.out == ""
    if warns:
        assert "load 5.0 on 2 cores" in captured.err
        assert "OMP_NUM_THREADS=1 (torch, and NumPy's OpenBLAS)" in captured.err
        assert "intra_op_parallelism_threads=1" in captured.err
        assert len(captured.err.strip().splitlines()) == 1
    else:
        assert captured.err == ""


def test_main_warns_once_before_the_run(monkeypatch):
    common = _common()
    calls = []
    monkeypatch.setattr(common, "warn_if_oversubscribed", lambda: calls.append("warn"))
    monkeypatch.setattr(sys, "argv", ["spiral.py", "--epochs", "2"])
    common.main(lambda args, backend, plt: calls.append(args.epochs), common.parser("Doc.", 5))
    assert calls == ["warn", 2]


def test_ctrl_c_in_the_distributed_example_compares_nothing():
    pytest.importorskip("distributed")
    env = {key: value for key, value in os.environ.items() if not key.startswith("NNX_")}
    env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    script = [sys.executable, str(EXAMPLES / "distributed.py"), "--epochs", "1000000"]
    with subprocess.Popen(
        script, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as run:
        assert run.stdout is not None
        first = run.stdout.readline()  # the cluster is up; training on it begins
        assert first.startswith("dask: 2 workers"), first
        time.sleep(2)
        run.send_signal(signal.SIGINT)
        out, err = run.communicate(timeout=180)
    assert run.returncode == 130, err
    found = re.search(r"distributed.py: interrupted after (\d+) of 1000000 epochs on dask", err)
    assert found and int(found[1]) >= 1, err
    assert "agree" not in out and "disagree" not in err
