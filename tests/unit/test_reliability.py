"""Bad input stopped before any work, with nothing changed, and one clear error (issue 14's
first families: data, paths, files nnx cannot read, devices, the command line)."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import backends
import nnx
from nnx.cli import main
from nnx.datasets import spiral_data
from nnx.io import ModelFileError


def _model(dtype: str = "float32") -> nnx.Model:
    model = nnx.Model(seed=0)
    model.add(nnx.Dense(2, 8, seed=1, dtype=dtype))
    model.add(nnx.ReLU())
    model.add(nnx.Dense(8, 3, seed=2, dtype=dtype))
    model.add(nnx.Softmax())
    model.set(loss=nnx.CategoricalCrossentropy(), optimizer=nnx.Adam(learning_rate=0.05))
    model.finalize()
    return model


def _unchanged(model: nnx.Model, before: dict[str, np.ndarray]) -> None:
    after = {k: np.asarray(v) for k, v in model.get_state().items()}
    assert after.keys() == before.keys()
    for key in before:
        np.testing.assert_array_equal(after[key], before[key])


X, Y = spiral_data(20, 3, seed=0)


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"y": np.int64(1)}, ValueError, "got a single number"),
        ({"validation_data": (X, None)}, ValueError, "got y_val=None"),
        ({"X": X.astype(np.float64) * 1e39}, ValueError, "beyond float32's range"),
    ],
    ids=["0-d targets", "validation without targets", "beyond float32"],
)
def test_bad_data_is_refused_before_any_step(kwargs, error, words) -> None:
    model = _model()
    before = {k: np.asarray(v).copy() for k, v in model.get_state().items()}
    call = {"X": X, "y": Y, **kwargs}
    X_, y_ = call.pop("X"), call.pop("y")
    with pytest.raises(error, match=words):
        model.train(X_, y_, epochs=3, verbose=0, **call)
    _unchanged(model, before)
    assert model.optimizer.iterations == 0


def test_a_float64_model_takes_what_float32_cannot_hold() -> None:
    model = _model("float64")
    model.predict(X.astype(np.float64) * 1e39)  # finite in float64: no error


def test_checkpoint_paths_are_checked_before_training(tmp_path: Path) -> None:
    model = _model()
    before = {k: np.asarray(v).copy() for k, v in model.get_state().items()}
    with pytest.raises(IsADirectoryError, match="is a folder; name a file in it"):
        model.train(X, Y, epochs=3, verbose=0, checkpoint=tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist; create it first"):
        model.train(X, Y, epochs=3, verbose=0, checkpoint=tmp_path / "no" / "run.nnx")
    _unchanged(model, before)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_checkpoint_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o555)
    with pytest.raises(PermissionError, match="read-only or no permission"):
        _model().train(X, Y, epochs=3, verbose=0, checkpoint=folder / "run.nnx")


def test_softmax_of_one_sample_says_how() -> None:
    with pytest.raises(ValueError, match=r"Softmax\.forward: expected inputs of shape"):
        nnx.Softmax(backend="numpy").forward(np.ones(3))


def _safetensors(path: Path, dtype: str, metadata: dict[str, str] | None = None) -> None:
    """A valid safetensors file with one tensor of ``dtype`` (e.g. BF16), written by hand."""
    size = 2 * {"BF16": 2, "F8_E4M3": 1, "F32": 4}[dtype]
    header: dict[str, object] = {"t": {"dtype": dtype, "shape": [2], "data_offsets": [0, size]}}
    if metadata is not None:
        header["__metadata__"] = metadata
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"\0" * size)


@pytest.mark.parametrize("dtype", ["BF16", "F8_E4M3"])
def test_a_tensor_numpy_cannot_hold_is_a_model_file_error(tmp_path: Path, dtype: str) -> None:
    path = tmp_path / "odd.nnx"
    _safetensors(path, dtype)
    with pytest.raises(ModelFileError, match="dtype NumPy cannot read"):
        nnx.Model.load(path)
    with pytest.raises(ModelFileError, match="dtype NumPy cannot read"):
        _model().load_parameters(path)


def test_deeply_nested_metadata_is_a_model_file_error(tmp_path: Path) -> None:
    path = tmp_path / "nested.nnx"
    _safetensors(path, "F32", {"nnx": "[" * 100_000 + "]" * 100_000})
    with pytest.raises(ModelFileError, match="without nnx metadata"):
        nnx.Model.load(path)


@pytest.mark.parametrize("device", ["meta", "mps"])
def test_a_device_torch_cannot_compute_on_is_refused_at_selection(device: str) -> None:
    torch = pytest.importorskip("torch")
    if device == "mps" and torch.backends.mps.is_available():
        pytest.skip("this machine computes on mps")
    with pytest.raises(backends.BackendError, match=f"cannot compute on device='{device}'"):
        backends.load("torch", device)


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["train", "--layers", "-1"], "expected --layers >= 1, got --layers -1"),
        (["train", "--hidden", "0"], "expected --hidden >= 1"),
        (["train", "--output", "no/such/folder/m.nnx"], "does not exist; create it first"),
        (["train", "--learning-rate", "inf", "--epochs", "3"], "--learning-rate as a finite"),
        (["train", "--learning-rate", "1e30", "--epochs", "3"], "loss became"),
        (["predict", "bf16.nnx", "--dataset", "spiral"], "dtype NumPy cannot read"),
    ],
)
def test_the_command_line_says_one_line_before_work(argv, words, tmp_path: Path) -> None:
    _safetensors(tmp_path / "bf16.nnx", "BF16")
    done = subprocess.run(
        [sys.executable, "-m", "nnx.cli", *argv],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert words in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "epoch: " not in done.stdout or "loss became" in words  # a diverging run trains


def test_a_second_ctrl_c_ends_the_command_in_one_line(monkeypatch, capsys) -> None:
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr("nnx.cli._train", interrupted)
    assert main(["train"]) == 130
    assert capsys.readouterr().err.strip() == "nnx train: interrupted."


# -- checkpoints that check themselves ------------------------------------------------------


def _checkpointed(tmp_path: Path, epochs: int = 4) -> Path:
    """A checkpoint written after ``epochs`` epochs of the model :func:`_fresh` builds."""
    path = tmp_path / "run.nnx"
    _fresh().train(X, Y, epochs=epochs, verbose=0, checkpoint=path)
    return path


def _fresh() -> nnx.Model:
    model = nnx.Model(seed=0)
    model.add(nnx.Dense(2, 8, seed=1))
    model.add(nnx.Dropout(0.1, seed=5))
    model.add(nnx.ReLU())
    model.add(nnx.Dense(8, 3, seed=2))
    model.add(nnx.Softmax())
    model.set(loss=nnx.CategoricalCrossentropy(), optimizer=nnx.Adam(learning_rate=0.05))
    model.finalize()
    return model


# A generator's state, as records before layers.<i>.random_state held them.
_GENERATOR = np.random.default_rng(5).bit_generator.state


def _edit(path: Path, change) -> None:
    import safetensors
    import safetensors.numpy

    tensors = safetensors.numpy.load_file(str(path))
    with safetensors.safe_open(str(path), "numpy") as file:
        spec = json.loads(file.metadata()["nnx"])
    change(spec["training"])
    safetensors.numpy.save_file(tensors, str(path), metadata={"nnx": json.dumps(spec)})


@pytest.mark.parametrize(
    "change",
    [
        lambda t: t.update(epoch="3"),
        lambda t: t.update(epoch=2.5),
        lambda t: t.update(epoch=-1),
        lambda t: t.update(history=[1, 2]),
        lambda t: t["history"].update(loss=["a"]),
        lambda t: t.update(dropout_rng={"9": {}}),
        lambda t: t.update(dropout_rng={"1": {"bit_generator": "nonsense"}}),
        lambda t: t.pop("epoch"),
        lambda t: t.update(epoch=float("inf")),  # "epoch": 1e400 in the file's JSON
        # Records written before the state held the generators keep them as dropout_rng.
        lambda t: t.update(dropout_rng={"2": _GENERATOR}),  # ReLU: no generator
        lambda t: t.update(dropout_rng={"-1": _GENERATOR}),
        lambda t: t["history"].update(loss=t["history"]["loss"][:1]),
        lambda t: t["history"].update(extra=t["history"]["loss"]),
        lambda t: t["history"].update(loss=[float("inf")] * 4),
    ],
    ids=[
        "epoch text",
        "epoch fraction",
        "epoch negative",
        "history list",
        "history text",
        "generator of no layer",
        "generator state",
        "no epoch",
        "epoch 1e400",
        "generator on a ReLU",
        "generator index -1",
        "short history",
        "unknown history key",
        "infinite history",
    ],
)
def test_a_damaged_training_record_changes_nothing(tmp_path: Path, change) -> None:
    path = _checkpointed(tmp_path)
    _edit(path, change)
    model = _fresh()
    before = {k: np.asarray(v).copy() for k, v in model.get_state().items()}
    with pytest.raises(ModelFileError, match="damaged training record"):
        model.train(X, Y, epochs=6, verbose=0, resume=path)
    _unchanged(model, before)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"epochs": 3}, "has run 4 epochs already; pass epochs >= 4"),
        ({"epochs": 6, "batch_size": 10}, "batch_size=None \\(now 10\\)"),
        ({"epochs": 6, "shuffle": True}, "shuffle=False \\(now True\\)"),
    ],
)
def test_a_resume_with_other_arguments_is_refused(tmp_path: Path, kwargs, words) -> None:
    path = _checkpointed(tmp_path)
    model = _fresh()
    before = {k: np.asarray(v).copy() for k, v in model.get_state().items()}
    with pytest.raises(ValueError, match=words):
        model.train(X, Y, verbose=0, resume=path, **kwargs)
    _unchanged(model, before)


def test_a_resume_with_other_optimizer_settings_is_refused(tmp_path: Path) -> None:
    path = _checkpointed(tmp_path)
    model = _fresh()
    model.set(optimizer=nnx.Adam(learning_rate=0.01))
    model.finalize()
    with pytest.raises(ValueError, match="learning_rate: 0.05 -> 0.01"):
        model.train(X, Y, epochs=6, verbose=0, resume=path)


def test_more_epochs_go_on_to_the_new_total(tmp_path: Path) -> None:
    path = _checkpointed(tmp_path)
    resumed = _fresh().train(X, Y, epochs=6, verbose=0, resume=path)
    straight = _fresh().train(X, Y, epochs=6, verbose=0)
    assert len(resumed["loss"]) == 6
    np.testing.assert_array_equal(resumed["loss"], straight["loss"])


# -- files ----------------------------------------------------------------------------------


def test_the_next_save_removes_what_a_killed_writer_left(tmp_path: Path) -> None:
    path = tmp_path / "m.nnx"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    stale = tmp_path / f".m.nnx.{int(dead.stdout)}-0badf00d.tmp"  # a pid that has ended
    live = tmp_path / f".m.nnx.{os.getppid()}-0badf00d.tmp"  # a writer still running
    stale.write_bytes(b"half a save")
    live.write_bytes(b"a save in progress")
    _model().save(path)
    assert not stale.exists() and live.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name, "m.nnx"]


def test_saving_over_a_file_keeps_its_permissions(tmp_path: Path) -> None:
    path = tmp_path / "m.nnx"
    model = _model()
    model.save(path)
    path.chmod(0o600)
    model.save(path)
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_large_file_with_a_small_header_is_refused_from_its_header(tmp_path, monkeypatch):
    path = tmp_path / "m.nnx"
    _model().save(path)
    with open(path, "ab") as file:
        file.truncate(path.stat().st_size + 1024**3)  # 1 GiB appended (sparse: no disk used)
    read_whole = []
    monkeypatch.setattr(Path, "read_bytes", lambda self: read_whole.append(self) or b"")
    with pytest.raises(ModelFileError, match="has something appended. nnx read only its header"):
        nnx.Model.load(path)
    assert read_whole == []


@pytest.mark.parametrize("name", ["numpy", "array_api_strict"])
def test_labels_out_of_range_are_refused_in_direct_calls(name: str) -> None:
    probs = np.full((4, 3), 1 / 3)
    wrong = np.array([3, 1, 2, 0])  # gave the loss of the right labels, silently
    for loss in (nnx.CategoricalCrossentropy(backend=name),):
        with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\] for 3 classes"):
            loss.forward(probs, wrong)
        with pytest.raises(ValueError, match="got labels from 0 to 3"):
            loss.backward(probs, wrong)
    fused = nnx.SoftmaxCategoricalCrossentropy(backend=name)
    with pytest.raises(ValueError, match="labels must lie"):
        fused.forward(np.zeros((4, 3)), np.array([0, 1, 2, -1]))
    with pytest.raises(ValueError, match="labels must lie"):
        fused.backward(probs, wrong)
    assert float(fused.forward(np.zeros((4, 3)), np.array([0, 1, 2, 2]))) > 0


def test_a_torch_x_that_requires_grad_leaves_no_graph_on_the_weights() -> None:
    torch = pytest.importorskip("torch")
    with backends.use_backend("torch"):
        model = _model()
        model.set(optimizer=nnx.Adam(learning_rate=0.05, fused=False))  # torch's kernel
        model.finalize()  # runs under no_grad; the plain formulas are where a graph grew
    X_t = torch.tensor(X, requires_grad=True)
    model.train(X_t, Y, epochs=3, verbose=0)
    for layer in model.trainable_layers:
        assert not layer.weights.requires_grad and layer.weights.grad_fn is None
        assert layer.weight_momentums.grad_fn is None
    assert not model.predict(X_t).requires_grad


def test_regression_targets_beyond_float32_are_refused() -> None:
    model = nnx.Model(seed=0)
    model.add(nnx.Dense(1, 1, seed=1))
    model.add(nnx.Linear())
    model.set(loss=nnx.MeanSquaredError(), optimizer=nnx.SGD())
    model.finalize()
    with pytest.raises(ValueError, match="y has values beyond float32's range"):
        model.train(np.ones((2, 1)), np.array([[1.0], [1e39]]), epochs=1, verbose=0)


# -- second round, from an adversarial check of the above ---------------------------------


def test_infinite_hyperparameters_are_refused() -> None:
    for kwargs in ({"learning_rate": float("inf")}, {"decay": float("inf")}):
        with pytest.raises(ValueError, match="as a finite number >= 0"):
            nnx.Adam(**kwargs)


def test_a_file_with_an_infinite_learning_rate_or_seed_does_not_load(tmp_path: Path) -> None:
    import safetensors
    import safetensors.numpy

    path = tmp_path / "m.nnx"
    _model().save(path)
    tensors = safetensors.numpy.load_file(str(path))
    with safetensors.safe_open(str(path), "numpy") as file:
        spec = json.loads(file.metadata()["nnx"])
    for change in ({"optimizer": {**spec["optimizer"], "config": {"learning_rate": 1e400}}},
                   {"seed": 1e400}):  # fmt: skip
        text = json.dumps({**spec, **change})  # 1e400 is infinity: JSON writes Infinity
        safetensors.numpy.save_file(tensors, str(path), metadata={"nnx": text})
        with pytest.raises(ModelFileError):
            nnx.Model.load(path)


def test_a_complex_tensor_of_the_backend_is_refused() -> None:
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="expected inputs as real numbers"):
        nnx.Dense(2, 2, seed=0, backend="torch").forward(torch.tensor([[1 + 2j, 0j]]))


def test_float_labels_in_direct_calls_say_how() -> None:
    with pytest.raises(TypeError, match=r"labels as integers, got dtype float64.*astype\(int\)"):
        nnx.CategoricalCrossentropy(backend="numpy").calculate(
            np.full((4, 3), 1 / 3), np.array([0.0, 1, 2, 0])
        )


def test_validation_targets_are_named_as_such() -> None:
    with pytest.raises(ValueError, match="y_val contains NaN"):
        _model().train(X, Y, epochs=1, verbose=0, validation_data=(X, np.full(60, np.nan)))


def test_a_torch_float64_x_beyond_float32_is_refused() -> None:
    torch = pytest.importorskip("torch")
    with backends.use_backend("torch"):
        model = _model()
    with pytest.raises(ValueError, match="beyond float32's range"):
        model.predict(torch.tensor(X, dtype=torch.float64) * 1e39)


def test_saving_through_a_symbolic_link_keeps_the_link(tmp_path: Path) -> None:
    target, link = tmp_path / "real.nnx", tmp_path / "link.nnx"
    _model().save(target)
    link.symlink_to(target)
    _model("float64").save(link)
    assert link.is_symlink()
    assert nnx.Model.load(target).layers[0].weights.dtype == np.float64


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["train", "--seed", "-1"], "expected --seed >= 0"),
        (["predict", "m.nnx", "--dataset", "spiral", "-o", "no/dir/p.npy"], "does not exist"),
        (["predict", "m.nnx", "--input", "objects.npy"], "not a .npy file of numbers"),
        (["predict", "m.nnx", "--input", "text.npy"], "expected X as numbers"),
    ],
)
def test_more_command_line_mistakes_in_one_line(argv, words, tmp_path: Path) -> None:
    _model().save(tmp_path / "m.nnx")
    np.save(tmp_path / "text.npy", np.array(["a", "b"]))
    np.save(tmp_path / "objects.npy", np.array([None, 1], dtype=object), allow_pickle=True)
    done = subprocess.run([sys.executable, "-m", "nnx.cli", *argv], capture_output=True,
                          text=True, cwd=tmp_path, timeout=120)  # fmt: skip
    assert done.returncode == 1 and words in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not done.stdout


def test_torch_cpu_with_an_index_is_refused() -> None:
    pytest.importorskip("torch")
    with pytest.raises(backends.BackendError, match="the CPU has no device 'cpu:1'"):
        backends.load("torch", "cpu:1")


def test_a_file_with_nan_parameters_is_refused_before_anything_changes(tmp_path: Path) -> None:
    import safetensors
    import safetensors.numpy

    path = _checkpointed(tmp_path)
    tensors = safetensors.numpy.load_file(str(path))
    with safetensors.safe_open(str(path), "numpy") as file:
        metadata = file.metadata()
    tensors["layers.0.weights"][0, 0] = np.nan
    safetensors.numpy.save_file(tensors, str(path), metadata=metadata)
    model = _fresh()
    before = {k: np.asarray(v).copy() for k, v in model.get_state().items()}
    with pytest.raises(ModelFileError, match="layers.0.weights holds NaN or infinity"):
        model.train(X, Y, epochs=6, verbose=0, resume=path)
    _unchanged(model, before)
    with pytest.raises(ModelFileError, match="holds NaN"):
        nnx.Model.load(path)
