"""Model files: round trips across backends, optimizer state, bad files, atomic writes."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import safetensors.numpy

import backends
import nnx
import nnx._file
from nnx.datasets import spiral_data
from nnx.io import ModelFileError

BACKENDS = ["numpy", "array_api_strict", "torch"]
X, Y = spiral_data(40, 3, seed=0)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    monkeypatch.delenv("NNX_BACKEND", raising=False)
    monkeypatch.delenv("NNX_DEVICE", raising=False)


def _need(name):
    if name != "numpy":
        pytest.importorskip(name)


def _model(backend="numpy", optimizer=None, width=16, dropout=True):
    model = nnx.Model(seed=3)
    model.add(nnx.Dense(2, width, weight_regularizer_l2=5e-4, seed=0, backend=backend))
    model.add(nnx.ReLU(backend))
    if dropout:
        model.add(nnx.Dropout(0.1, seed=1, backend=backend))
    model.add(nnx.Dense(width, 3, seed=2, backend=backend))
    model.add(nnx.Softmax(backend))
    optimizer = optimizer or nnx.Adam(learning_rate=0.05, decay=5e-7, backend=backend)
    model.set(
        loss=nnx.CategoricalCrossentropy(backend),
        optimizer=optimizer,
        accuracy=nnx.CategoricalAccuracy(backend=backend),
    )
    model.finalize()
    return model


def _host(model, array):
    return model.backend.to_numpy(array)


def _parameters(model):
    return [_host(model, a) for pair in model.get_parameters() for a in pair]


def _saved(tmp_path, model=None, name="model.safetensors"):
    path = tmp_path / name
    (model or _trained()).save(path)
    return path


def _trained(backend="numpy", **kwargs):
    model = _model(backend, **kwargs)
    model.train(X, Y, epochs=5, verbose=0)
    return model


# -- round trips ------------------------------------------------------------------------------
@pytest.mark.parametrize("source", BACKENDS)
@pytest.mark.parametrize("target", BACKENDS)
def test_round_trip_across_backends(tmp_path, source, target):
    _need(source)
    _need(target)
    model = _trained(source)
    path = _saved(tmp_path, model)
    loaded = nnx.Model.load(path, backend=target)
    assert loaded.backend.name == target
    for got, want in zip(_parameters(loaded), _parameters(model), strict=True):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(
        _host(loaded, loaded.predict(X)), _host(model, model.predict(X)), rtol=1e-5, atol=1e-6
    )
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in model.layers]
    assert loaded.layers[0].weight_regularizer_l2 == 5e-4
    assert loaded.layers[2].rate == 0.1 and loaded.seed == 3


def test_load_uses_the_selected_backend(tmp_path):
    _need("array_api_strict")
    path = _saved(tmp_path)
    with backends.use_backend("array_api_strict"):
        assert nnx.Model.load(path).backend.name == "array_api_strict"


@pytest.mark.parametrize(
    "make",
    [
        lambda: nnx.SGD(learning_rate=0.5, decay=1e-3, momentum=0.9),
        lambda: nnx.Adagrad(learning_rate=0.5, decay=1e-4),
        lambda: nnx.RMSprop(learning_rate=0.02, decay=1e-5, rho=0.999),
        lambda: nnx.Adam(learning_rate=0.05, decay=5e-7),
    ],
    ids=["sgd", "adagrad", "rmsprop", "adam"],
)
def test_optimizer_state_round_trips(tmp_path, make):
    model = _model(optimizer=make(), dropout=False)
    model.train(X, Y, epochs=5, verbose=0)
    path = _saved(tmp_path, model)
    loaded = nnx.Model.load(path)
    assert loaded.optimizer.config() == model.optimizer.config()
    assert loaded.optimizer.iterations == model.optimizer.iterations == 5
    assert loaded.optimizer.current_learning_rate == model.optimizer.current_learning_rate
    model.train(X, Y, epochs=5, verbose=0)
    loaded.train(X, Y, epochs=5, verbose=0)
    for got, want in zip(_parameters(loaded), _parameters(model), strict=True):
        np.testing.assert_array_equal(got, want)


def test_accuracy_settings_round_trip(tmp_path):
    Xs, ys = np.linspace(0, 1, 50, dtype=np.float32)[:, None], np.zeros((50, 1), np.float32)
    model = nnx.Model()
    model.add(nnx.Dense(1, 1, seed=0))
    model.add(nnx.Linear())
    model.set(loss=nnx.MeanSquaredError(), optimizer=nnx.SGD(), accuracy=nnx.RegressionAccuracy())
    model.finalize()
    ys[:, 0] = np.sin(Xs[:, 0])
    model.train(Xs, ys, epochs=1, verbose=0)
    loaded = nnx.Model.load(_saved(tmp_path, model))
    assert float(loaded.accuracy.precision) == pytest.approx(float(model.accuracy.precision))
    binary = _model()
    binary.set(accuracy=nnx.CategoricalAccuracy(binary=True))
    assert nnx.Model.load(_saved(tmp_path, binary, "b.safetensors")).accuracy.binary is True


def test_parameters_file_round_trip_and_model_file_as_parameters(tmp_path):
    model = _trained()
    model.save_parameters(tmp_path / "p.safetensors")
    for path in (tmp_path / "p.safetensors", _saved(tmp_path, model)):
        fresh = _model(dropout=False)  # trainable layers are what count
        fresh.load_parameters(path)
        for got, want in zip(_parameters(fresh), _parameters(model), strict=True):
            np.testing.assert_array_equal(got, want)
    with pytest.raises(ModelFileError, match="parameters only"):
        nnx.Model.load(tmp_path / "p.safetensors")


def test_load_parameters_wrong_shapes_names_layer_and_shapes(tmp_path):
    _trained().save_parameters(tmp_path / "p.safetensors")
    other = _model(width=8)
    before = _parameters(other)
    with pytest.raises(ModelFileError, match="p.safetensors") as info:
        other.load_parameters(tmp_path / "p.safetensors")
    message = str(info.value)
    assert "layer 0 (Dense(n_inputs=2, n_neurons=8))" in message
    assert "(2, 8)" in message and "(2, 16)" in message
    for got, want in zip(_parameters(other), before, strict=True):
        np.testing.assert_array_equal(got, want)  # nothing changed


def test_load_parameters_wrong_layer_count(tmp_path):
    _trained().save_parameters(tmp_path / "p.safetensors")
    small = nnx.Model()
    small.add(nnx.Dense(2, 3, seed=0))
    with pytest.raises(ModelFileError, match="2 trainable layers, the model has 1"):
        small.load_parameters(tmp_path / "p.safetensors")


class MyDense(nnx.Dense):
    pass


def test_custom_classes_load_only_when_passed(tmp_path):
    model = nnx.Model()
    model.add(MyDense(2, 3, seed=0))
    model.add(nnx.Softmax())
    model.set(loss=nnx.CategoricalCrossentropy())
    model.save(tmp_path / "m.nnx")
    with pytest.raises(ModelFileError, match=r"unknown layer class 'MyDense'.*classes=\["):
        nnx.Model.load(tmp_path / "m.nnx")
    loaded = nnx.Model.load(tmp_path / "m.nnx", classes=[MyDense])
    assert type(loaded.layers[0]) is MyDense
    np.testing.assert_array_equal(loaded.layers[0].weights, model.layers[0].weights)
    with pytest.raises(TypeError, match="expected classes of nnx layers"):
        nnx.Model.load(tmp_path / "m.nnx", classes=[dict])


def test_a_class_that_shadows_an_nnx_name_is_refused_at_save(tmp_path):
    class Dense(nnx.Dense):  # a file naming "Dense" must mean nnx's
        pass

    model = nnx.Model()
    model.add(Dense(2, 3))
    with pytest.raises(TypeError, match="shadows nnx's Dense; rename the class"):
        model.save(tmp_path / "m.safetensors")
    with pytest.raises(TypeError, match="expected the layer as an nnx Layer"):
        io_model = nnx.Model()
        io_model.layers.append(object())  # past add()'s check: save still refuses it
        io_model.save(tmp_path / "m.safetensors")
    assert not (tmp_path / "m.safetensors").exists()


# -- bad files --------------------------------------------------------------------------------
class _Trap:
    """Unpickling this creates a marker file: proof that a loader ran code from the file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _load_fails(path, match):
    with pytest.raises(ModelFileError, match=match) as info:
        nnx.Model.load(path)
    assert str(path) in str(info.value)
    return str(info.value)


def test_pickle_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps([_Trap(marker)]))
    _load_fails(path, "never pickles")
    with pytest.raises(ModelFileError):
        _model().load_parameters(path)
    assert not marker.exists()
    pickle.loads(path.read_bytes())  # the trap is real: unpickling does run it
    assert marker.exists()


@pytest.mark.parametrize(
    "payload",
    [b"", b"\x00" * 3, np.random.default_rng(0).bytes(4096)],
    ids=["empty", "tiny", "random"],
)
def test_garbage_is_refused(tmp_path, payload):
    path = tmp_path / "garbage.safetensors"
    path.write_bytes(payload)
    _load_fails(path, "not a readable safetensors file")


@pytest.mark.parametrize("keep", [0.3, 0.9, 0.999])
def test_truncated_file_is_refused(tmp_path, keep):
    path = _saved(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    _load_fails(path, "truncated")


def _rewrite(path, edit_spec=None, drop=None):
    """Rewrite a model file with its nnx metadata edited or a tensor dropped."""
    tensors = safetensors.numpy.load_file(str(path))
    with safetensors.safe_open(str(path), "numpy") as f:
        spec = json.loads(f.metadata()["nnx"])
    if edit_spec:
        edit_spec(spec)
    tensors.pop(drop, None)
    safetensors.numpy.save_file(tensors, str(path), metadata={"nnx": json.dumps(spec)})


def test_newer_format_version_is_refused(tmp_path):
    path = _saved(tmp_path)
    _rewrite(path, lambda spec: spec.update(format_version=3))
    _load_fails(path, "format version 3.*Upgrade nnx")


@pytest.mark.parametrize("tensor", ["layers.0.weights", "layers.3.biases", "layers.3.bias_cache"])
def test_missing_tensor_is_refused(tmp_path, tensor):
    path = _saved(tmp_path)
    _rewrite(path, drop=tensor)
    message = _load_fails(path, "missing")
    assert tensor in message


def test_foreign_safetensors_file_is_refused(tmp_path):
    path = tmp_path / "foreign.safetensors"
    safetensors.numpy.save_file({"w": np.ones((2, 2), np.float32)}, str(path), {"format": "pt"})
    _load_fails(path, "without nnx metadata")


def test_unknown_class_name_is_refused_not_imported(tmp_path):
    path = _saved(tmp_path)
    _rewrite(path, lambda spec: spec["layers"][1].update({"class": "os.system"}))
    _load_fails(path, "unknown layer class 'os.system'")
    _rewrite(path, lambda spec: spec["layers"][0]["config"].update(n_neurons=10**9))
    _load_fails(path, "weights has shape")  # checked before anything is allocated


def test_missing_file_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model file at"):
        nnx.Model.load(tmp_path / "nope.safetensors")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        _model().save(tmp_path / "no-folder" / "m.safetensors")


# -- atomic writes ----------------------------------------------------------------------------
def test_crash_mid_save_keeps_the_old_file(tmp_path, monkeypatch):
    old = _trained()
    path = _saved(tmp_path, old)

    def crash(file, payload):
        file.write(payload[: len(payload) // 2])
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(nnx._file, "_write_all", crash)
    newer = _trained()
    newer.train(X, Y, epochs=3, verbose=0)
    with pytest.raises(OSError, match="simulated"):
        newer.save(path)
    loaded = nnx.Model.load(path)
    for got, want in zip(_parameters(loaded), _parameters(old), strict=True):
        np.testing.assert_array_equal(got, want)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]  # no temp left


_SAVER = """
import sys
import time
import numpy as np
import nnx
import nnx._file
model = nnx.Model()
model.add(nnx.Dense(256, 256, seed=0))
model.add(nnx.Linear())
model.set(loss=nnx.MeanSquaredError(), optimizer=nnx.Adam())
model.finalize()
model.train(np.ones((8, 256)), np.zeros((8, 256)), epochs=1, verbose=0)
write_all, stop_at = nnx._file._write_all, int(sys.argv[2])

def write_half_then_wait(file, payload):
    file.write(payload[: len(payload) // 2])
    file.flush()
    print("half written", flush=True)
    time.sleep(60)

step = 0
while True:
    if step == stop_at:
        nnx._file._write_all = write_half_then_wait
    model.layers[0].set_parameters(model.layers[0].weights, np.full((1, 256), float(step)))
    model.save(sys.argv[1])
    step += 1
    if step == 3:
        print("saving", flush=True)
"""


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.13, None], ids=["0", "50ms", "130ms", "half"])
def test_killed_mid_save_leaves_a_loadable_file(tmp_path, delay):
    """SIGKILL while saving in a loop: at random moments, and surely in the middle of a write."""
    path = tmp_path / "model.safetensors"
    stop_at = 5 if delay is None else -1
    child = subprocess.Popen(
        [sys.executable, "-c", _SAVER, str(path), str(stop_at)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline().strip() == "saving"
        if delay is None:
            assert child.stdout.readline().strip() == "half written"
        else:
            time.sleep(delay)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    loaded = nnx.Model.load(path)
    biases = _host(loaded, loaded.layers[0].biases)
    assert np.all(biases == biases[0, 0])  # one complete snapshot, not a mix of two
    assert loaded.optimizer.iterations == 1
    if delay is None:
        assert biases[0, 0] == 4.0  # the last complete save
        assert len(list(tmp_path.glob(".model.safetensors.*.tmp"))) == 1  # the half-written one
