"""Model wiring: training, history, evaluation, moving between backends, and bad input."""

from __future__ import annotations

import importlib.util
import signal
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import backends
import nnx
from nnx.datasets import sine_data, spiral_data


def classifier(backend: str = "numpy", *, dropout: float = 0.0, lr: float = 0.05) -> nnx.Model:
    with nnx.use_backend(backend):
        model = nnx.Model(seed=0)
        model.add(nnx.Dense(2, 32, seed=1, weight_regularizer_l2=5e-4))
        model.add(nnx.ReLU())
        if dropout:
            model.add(nnx.Dropout(dropout, seed=3))
        model.add(nnx.Dense(32, 3, seed=2))
        model.add(nnx.Softmax())
        model.set(
            loss=nnx.CategoricalCrossentropy(),
            optimizer=nnx.Adam(learning_rate=lr),
            accuracy=nnx.CategoricalAccuracy(),
        )
        model.finalize()
    return model


@pytest.fixture
def data():
    return spiral_data(50, 3, seed=0)


def test_train_returns_history_and_learns(data):
    X, y = data
    model = classifier()
    history = model.train(X, y, epochs=200, verbose=0)
    assert set(history) == {"loss", "data_loss", "reg_loss", "accuracy", "learning_rate"}
    assert all(len(values) == 200 for values in history.values())
    assert history["loss"][-1] < history["loss"][0] * 0.9
    assert history["reg_loss"][-1] > 0
    np.testing.assert_allclose(
        history["loss"], np.add(history["data_loss"], history["reg_loss"]), rtol=1e-6
    )


def test_book_lines_are_printed(data, capsys):
    X, y = data
    classifier().train(X, y, epochs=4, print_every=2)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(",")[0] for line in lines] == ["epoch: 2", "epoch: 4"]
    assert "acc: " in lines[0] and "(data_loss: " in lines[0] and ", lr: 0.05" in lines[0]


def test_batches_print_steps_and_validation(data, capsys):
    X, y = data
    model = classifier()
    history = model.train(X, y, epochs=2, batch_size=64, validation_data=(X, y), print_every=1)
    out = capsys.readouterr().out
    assert out.count("step: ") == 2 * 3 and out.count("training, acc: ") == 2
    assert out.count("validation, acc: ") == 2
    assert len(history["val_loss"]) == 2 and len(history["val_accuracy"]) == 2


@pytest.mark.parametrize(
    ("epochs", "printed"),
    [
        (4, [1, 2, 3, 4]),
        (25, [3, 6, 9, 12, 15, 18, 21, 24, 25]),
        (1000, list(range(100, 1001, 100))),
    ],
)
def test_left_out_print_every_prints_about_ten_lines_a_run(data, capsys, epochs, printed):
    X, y = data
    classifier().train(X, y, epochs=epochs)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(",")[0] for line in lines] == [f"epoch: {e}" for e in printed]


def test_left_out_print_every_with_batches_prints_epochs_not_steps(data, capsys):
    X, y = data
    classifier().train(X, y, epochs=20, batch_size=64, validation_data=(X, y))
    out = capsys.readouterr().out
    assert "step: " not in out
    heads = [line for line in out.splitlines() if line.startswith("epoch: ")]
    assert heads == [f"epoch: {e}" for e in range(2, 21, 2)]
    assert out.count("training, acc: ") == 10 and out.count("validation, acc: ") == 10


def test_the_progress_bar_shows_loss_and_accuracy_and_stays(data, monkeypatch):
    """On a terminal the bar carries the epoch's figures (as Keras's progbar) and is left on
    screen when training ends; a pipe or a file gets no bar at all."""
    import io

    import tqdm

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    monkeypatch.setattr(sys, "stderr", screen)
    monkeypatch.setattr(tqdm.std, "_supports_unicode", lambda file: False)
    X, y = data
    history = classifier().train(X, y, epochs=30, verbose=1)
    shown = screen.getvalue().replace("\r", "\n").splitlines()
    last = [line for line in shown if line.strip()][-1]
    assert "30/30" in last
    assert f"loss: {history['loss'][-1]:.3f}, acc: {history['accuracy'][-1]:.3f}" in last

    piped = io.StringIO()
    monkeypatch.setattr(sys, "stderr", piped)
    classifier().train(X, y, epochs=3, verbose=1)
    assert piped.getvalue() == ""


def test_fused_backward_matches_the_separate_chain(data):
    X, y = data
    fused, separate = classifier(), classifier()
    separate._fused = None  # the long way: Softmax.backward(CategoricalCrossentropy.backward)
    for model in (fused, separate):
        model.layers[0].weights = model.layers[0].weights.astype(np.float64)
        model.train(X, y, epochs=3, verbose=0)
    for (w1, b1), (w2, b2) in zip(fused.get_parameters(), separate.get_parameters(), strict=True):
        np.testing.assert_allclose(w1, w2, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(b1, b2, rtol=1e-4, atol=1e-6)


def test_first_layer_skips_dinputs(data):
    X, y = data
    model = classifier()
    model.train(X, y, epochs=1, verbose=0)
    assert not hasattr(model.layers[0], "dinputs")
    assert model.layers[2].dinputs.shape == (150, 32)


def test_dropout_is_off_outside_training(data):
    X, y = data
    model = classifier(dropout=0.5)
    model.train(X, y, epochs=2, verbose=0)
    np.testing.assert_array_equal(model.predict(X), model.predict(X))


def test_shuffle_is_seeded_and_same_on_every_backend(data):
    X, y = data
    runs = []
    for backend in ("numpy", "array_api_strict", "numpy"):
        model = classifier(backend)
        history = model.train(X, y, epochs=2, batch_size=32, shuffle=True, verbose=0)
        runs.append(history["loss"])
    np.testing.assert_array_equal(runs[0], runs[2])
    np.testing.assert_allclose(runs[0], runs[1], rtol=1e-5)


def test_same_seed_same_bits(data):
    X, y = data
    a = classifier().train(X, y, epochs=5, batch_size=40, shuffle=True, verbose=0)
    b = classifier().train(X, y, epochs=5, batch_size=40, shuffle=True, verbose=0)
    assert a == b


def test_to_moves_parameters_and_optimizer_state(data):
    X, y = data
    model = classifier()
    model.train(X, y, epochs=3, verbose=0)
    expected = model.predict(X)
    model.to("array_api_strict")
    assert model.backend.name == "array_api_strict"
    assert model.layers[0].weight_cache.device == model.backend.device
    got = model.backend.to_numpy(model.predict(X))
    np.testing.assert_array_equal(got, expected)
    model.train(X, y, epochs=1, verbose=0)  # the optimizer state moved too
    model.to("numpy")
    assert isinstance(model.predict(X), np.ndarray)


def test_regression_and_evaluate():
    X, y = sine_data(200)
    model = nnx.Model()
    model.add(nnx.Dense(1, 32, init="he", seed=0))
    model.add(nnx.ReLU())
    model.add(nnx.Dense(32, 1, init="he", seed=1))
    model.add(nnx.Linear())
    model.set(
        loss=nnx.MeanSquaredError(),
        optimizer=nnx.Adam(learning_rate=0.01),
        accuracy=nnx.RegressionAccuracy(),
    )
    model.finalize()
    history = model.train(X, y, epochs=50, verbose=0)
    loss, accuracy = model.evaluate(X, y, verbose=0)
    assert loss < history["loss"][0] and 0 <= accuracy <= 1


def test_predict_in_batches_matches_full_batch(data):
    X, _ = data
    model = classifier()
    np.testing.assert_allclose(model.predict(X, batch_size=7), model.predict(X), rtol=1e-6)


def test_nan_loss_stops_before_the_update(data):
    X, y = data
    model = classifier(lr=1e9)
    model.layers[0].set_parameters(np.full((2, 32), 1e30, np.float32), np.zeros((1, 32)))
    before = [w.copy() for w, _ in model.get_parameters()]
    with pytest.raises(nnx.NonFiniteLossError, match=r"epoch 1, step 0.*Lower the learning"):
        model.train(X, y, epochs=3, verbose=0)
    for old, (new, _) in zip(before, model.get_parameters(), strict=True):
        np.testing.assert_array_equal(old, new)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.train(X, y, epochs=3, verbose=0, on_nan="warn")
    assert history == {} and any("became" in str(w.message) for w in caught)


def test_ctrl_c_finishes_the_step_and_keeps_the_model(tmp_path):
    script = textwrap.dedent("""
        import os, signal, sys
        sys.path.insert(0, %r)
        from test_model import classifier
        from nnx.datasets import spiral_data
        X, y = spiral_data(50, 3, seed=0)
        model = classifier()
        original = model.train_step
        def step(*args, **kwargs):
            result = original(*args, **kwargs)
            if model.optimizer.iterations == 5:
                os.kill(os.getpid(), signal.SIGINT)
            return result
        model.train_step = step
        history = model.train(X, y, epochs=1000, verbose=0)
        print("epochs", len(history["loss"]), "iterations", model.optimizer.iterations)
        print("predict", model.predict(X).shape)
    """) % str(__import__("pathlib").Path(__file__).parent)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "epochs 5 iterations 5" in done.stdout and "predict (150, 3)" in done.stdout
    assert "Training interrupted" in done.stderr and "model.save" in done.stderr
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_second_ctrl_c_stops_at_once(tmp_path):
    script = textwrap.dedent("""
        import os, signal, sys
        sys.path.insert(0, %r)
        from test_model import classifier
        from nnx.datasets import spiral_data
        X, y = spiral_data(50, 3, seed=0)
        model = classifier()
        original = model.train_step
        def step(*args, **kwargs):
            if model.optimizer.iterations == 5:  # a long step: both presses land inside it
                os.kill(os.getpid(), signal.SIGINT)
                os.kill(os.getpid(), signal.SIGINT)
            return original(*args, **kwargs)
        model.train_step = step
        try:
            model.train(X, y, epochs=1000, verbose=0)
        except KeyboardInterrupt as err:
            print("raised at iteration", model.optimizer.iterations, "|", err)
        print("handler restored", signal.getsignal(signal.SIGINT) is signal.default_int_handler)
    """) % str(__import__("pathlib").Path(__file__).parent)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "raised at iteration 5 | Model.train: stopped inside a step" in done.stdout
    assert "handler restored True" in done.stdout
    assert "press Ctrl-C again to stop at once" in done.stderr


BAD_INPUT = [
    # (what, call, error type, words of the message)
    (
        "features mismatch",
        lambda m, X, y: m.train(X[:, :1], y),
        ValueError,
        r"expects 2 features, got X of shape \(150, 1\)",
    ),
    (
        "y length",
        lambda m, X, y: m.train(X, y[:-1]),
        ValueError,
        r"one row per sample of X \(150\), got 149",
    ),
    ("1-D X", lambda m, X, y: m.train(X[:, 0], y), ValueError, r"shape \(samples, features\)"),
    ("empty", lambda m, X, y: m.train(X[:0], y[:0]), ValueError, "at least one sample"),
    ("strings", lambda m, X, y: m.train(X.astype(str), y), TypeError, "as numbers"),
    (
        "label too big",
        lambda m, X, y: m.train(X, y + 1),
        ValueError,
        r"labels must lie in \[0, 2\].*from 1 to 3",
    ),
    ("negative label", lambda m, X, y: m.train(X, y - 1), ValueError, "from -1 to 1"),
    ("fractional label", lambda m, X, y: m.train(X, y + 0.5), ValueError, "whole numbers"),
    ("one-hot width", lambda m, X, y: m.train(X, np.eye(4)[y]), ValueError, r"rows of width 3"),
    (
        "one-hot not 0/1",
        lambda m, X, y: m.train(X, np.eye(3)[y] * 5),
        ValueError,
        "a single 1 among 0s",
    ),
    (
        "NaN in X",
        lambda m, X, y: m.train(np.where(X > 0.9, np.nan, X), y),
        ValueError,
        "NaN or infinity",
    ),
    (
        "inf in y",
        lambda m, X, y: m.train(X, np.where(np.eye(3)[y] > 0, np.inf, 0.0)),
        ValueError,
        "NaN or infinity",
    ),
    ("batch_size 0", lambda m, X, y: m.train(X, y, batch_size=0), ValueError, "batch_size=0"),
    (
        "batch_size float",
        lambda m, X, y: m.train(X, y, batch_size=2.5),
        ValueError,
        "batch_size=2.5",
    ),
    ("epochs 0", lambda m, X, y: m.train(X, y, epochs=0), ValueError, "epochs=0"),
    ("unknown keyword", lambda m, X, y: m.train(X, y, epoch=3), TypeError, "epoch"),
    ("on_nan", lambda m, X, y: m.train(X, y, on_nan="skip"), ValueError, "on_nan='skip'"),
    (
        "wrong parameter count",
        lambda m, X, y: m.set_parameters([]),
        ValueError,
        "2 trainable layers, got parameters for 0",
    ),
    (
        "wrong parameter shape",
        lambda m, X, y: m.set_parameters([(np.zeros((3, 32)), np.zeros((1, 32)))] * 2),
        ValueError,
        r"expected weights of shape \(2, 32\), got \(3, 32\)",
    ),
    (
        "foreign array",
        lambda m, X, y: m.train(__import__("torch").from_numpy(X), y),
        TypeError,
        "torch.*numpy",
    ),
]


@pytest.mark.parametrize(
    "call, kind, words", [case[1:] for case in BAD_INPUT], ids=[case[0] for case in BAD_INPUT]
)
def test_bad_input_is_refused_before_any_work(data, call, kind, words):
    X, y = data
    if "torch" in words:
        pytest.importorskip("torch")
    model = classifier()
    before = model.backend.to_numpy(model.layers[0].weights).copy()
    with pytest.raises(kind, match=words):
        call(model, X, y)
    np.testing.assert_array_equal(model.layers[0].weights, before)
    assert model.optimizer.iterations == 0


def test_binary_and_regression_targets_are_checked(data):
    X, _ = data
    model = nnx.Model()
    model.add(nnx.Dense(2, 1, seed=0))
    model.add(nnx.Sigmoid())
    model.set(loss=nnx.BinaryCrossentropy(), optimizer=nnx.SGD())
    model.finalize()
    with pytest.raises(ValueError, match=r"lie in \[0, 1\]"):
        model.train(X, np.full((150, 1), 2.0))
    with pytest.raises(ValueError, match=r"reshape\(-1, 1\)"):
        model.train(X, np.zeros(150))


def test_model_misuse():
    model = nnx.Model()
    with pytest.raises(ValueError, match="no layers"):
        model.finalize()
    model.add(nnx.Dense(2, 3))
    with pytest.raises(ValueError, match="no loss"):
        model.finalize()
    model.set(loss=nnx.MeanSquaredError())
    with pytest.raises(ValueError, match="finalize"):
        model.predict(np.zeros((1, 2)))
    model.finalize()
    with pytest.raises(ValueError, match="no optimizer"):
        model.train(np.zeros((1, 2)), np.zeros((1, 3)))
    with pytest.raises(TypeError, match="expected a Layer"):
        model.add("Dense")


def test_parts_on_two_backends_are_refused():
    model = nnx.Model()
    model.add(nnx.Dense(2, 3, backend="numpy"))
    model.add(nnx.Dense(3, 3, backend=backends.load("array_api_strict", "device1")))
    model.set(loss=nnx.MeanSquaredError(), optimizer=nnx.SGD())
    with pytest.raises(TypeError, match="array_api_strict.*device1.*numpy"):
        model.finalize()


def test_whole_number_float_labels_and_numpy_integers_are_accepted(data):
    X, y = data
    history = classifier().train(
        X, y.astype(np.float64), epochs=np.int64(2), batch_size=np.int64(64), verbose=0
    )
    assert len(history["loss"]) == 2


def test_get_parameters_is_a_snapshot(data):
    X, y = data
    model = classifier()
    snapshot = model.get_parameters()
    before = [w.copy() for w, _ in snapshot]
    model.train(X, y, epochs=2, verbose=0)
    for old, (kept, _) in zip(before, snapshot, strict=True):
        np.testing.assert_array_equal(kept, old)


def test_moving_shares_no_memory_with_the_old_backend(data):
    X, y = data
    model = classifier()
    held = model.layers[0].weights
    if importlib.util.find_spec("torch") is not None:
        model.to("torch")  # torch's .numpy() shares memory: the move must copy
    model.to("numpy")
    assert not np.shares_memory(model.layers[0].weights, held)
    before = held.copy()
    model.train(X, y, epochs=1, verbose=0)
    np.testing.assert_array_equal(held, before)


def test_a_new_optimizer_starts_from_zeros(data):
    X, y = data
    model = classifier()
    model.train(X, y, epochs=2, verbose=0)
    model.set(optimizer=nnx.SGD(momentum=0.9))
    assert not hasattr(model.layers[0], "weight_cache")
    assert not hasattr(model.layers[0], "weight_momentums")
    model.finalize()
    model.train(X, y, epochs=1, verbose=0)
    assert not hasattr(model.layers[0], "weight_cache")


@pytest.mark.parametrize(
    "last, loss, words",
    [
        (None, nnx.SoftmaxCategoricalCrossentropy, "end with Softmax"),
        (nnx.Dense, nnx.CategoricalCrossentropy, "makes no predictions"),
    ],
)
def test_finalize_refuses_models_that_would_fail_in_train(last, loss, words):
    model = nnx.Model()
    model.add(nnx.Dense(2, 3, seed=0))
    if last is not None:
        model.add(last(3, 3, seed=1))
    model.set(loss=loss(), optimizer=nnx.SGD(), accuracy=nnx.CategoricalAccuracy())
    with pytest.raises(TypeError, match=words):
        model.finalize()


def test_bad_validation_data_and_missing_checkpoint_folder(data, tmp_path):
    X, y = data
    model = classifier()
    with pytest.raises(ValueError, match=r"validation_data=\(X_val, y_val\)"):
        model.train(X, y, validation_data=(X,))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        model.train(X, y, checkpoint=tmp_path / "missing" / "run.nnx")
    assert model.optimizer.iterations == 0


@pytest.mark.parametrize("method", ["finalize", "summary"])
def test_widths_that_do_not_chain_are_refused_naming_both_layers(method):
    model = nnx.Model()
    model.add(nnx.Dense(2, 8, seed=0))
    model.add(nnx.ReLU())
    model.add(nnx.Dense(16, 3, seed=1))
    model.add(nnx.Softmax())
    model.set(loss=nnx.CategoricalCrossentropy(), optimizer=nnx.SGD())
    expected = (
        rf"Model.{method}: layer 2, Dense\(n_inputs=16, n_neurons=3\), expects 16 inputs, but "
        r"layer 0, Dense\(n_inputs=2, n_neurons=8\), gives 8\. .*n_inputs=8 for layer 2"
    )
    with pytest.raises(ValueError, match=expected):
        getattr(model, method)()
