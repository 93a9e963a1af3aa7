"""End-to-end rows of ``nnx conformance``: training curves, initial weights, model files.

The same properties ``pytest -m conformance`` checks in tests/conformance/test_training.py and
test_io.py, as rows of the table, so the command and the test run prove the same things.
Host boundary: compares NumPy copies.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import nnx
from backends import Backend, BackendError, load
from nnx.testing._check import Result, device_label
from nnx.testing.targets import targets
from nnx.testing.training import (
    OPTIMIZERS,
    Training,
    book_compiled_problems,
    compiled_problems,
    curve_problems,
    epochs_for,
    many_steps_problems,
    train_spiral,
)

__all__ = ["end_to_end"]


def end_to_end(backends: Sequence[str] | None, dtypes: Sequence[str]) -> list[Result]:
    """Rows for every loadable target (those that cannot load have their row already)."""
    reference = {name: train_spiral(load("numpy"), "float64", name) for name in OPTIMIZERS}
    rows = []
    for target in targets(backends):
        try:
            backend = target.load()
        except (BackendError, ValueError):
            continue
        for dtype in dtypes:
            if dtype == "float64" and not backend.float64:
                continue
            if not backend.trains:  # nothing trains there: it exports what NumPy trained
                rows += [_export_row(backend, dtype)] if backend.graph is not None else []
                continue
            rows += _training_rows(backend, dtype, reference)
            rows.append(_model_file_row(backend, dtype))
            if backend.compiler is not None:
                rows.append(_compiled_row(backend, dtype, compiled_problems, STEP_ROW))
                rows.append(_compiled_row(backend, dtype, many_steps_problems, MANY_ROW))
                rows.append(_compiled_row(backend, dtype, book_compiled_problems, BOOK_ROW))
    return rows


def _result(
    backend: Backend,
    dtype: str,
    component: str,
    abs_err: float | None,
    rel_err: float | None,
    problems: list[str],
) -> Result:
    status = "fail" if problems else "pass"
    return Result(
        backend.name,
        device_label(backend.device),
        dtype,
        component,
        "end-to-end",
        abs_err,
        rel_err,
        status,
        "; ".join(problems),
    )


def _training_rows(backend: Backend, dtype: str, reference: dict[str, Training]) -> list[Result]:
    rows = []
    for name in OPTIMIZERS:
        try:
            run = train_spiral(backend, dtype, name, epochs_for(backend))
        except Exception as err:  # a backend that breaks mid-training fails this row
            rows.append(
                _result(
                    backend,
                    dtype,
                    f"training ({name})",
                    None,
                    None,
                    [f"raised {type(err).__name__}: {err}"],
                )
            )
            continue
        expected = reference[name].losses[: len(run.losses)]
        diff = np.abs(run.losses - expected)
        problems = curve_problems(run.losses, expected, dtype)
        rows.append(
            _result(
                backend,
                dtype,
                f"training ({name})",
                float(diff.max()),
                float((diff / np.abs(expected)).max()),
                problems,
            )
        )
    initial = train_spiral(backend, dtype, "SGD", epochs=0).initial_weights
    numpy_initial = train_spiral(load("numpy"), dtype, "SGD", epochs=0).initial_weights
    same = all(np.array_equal(a, b) for a, b in zip(initial, numpy_initial, strict=True))
    rows.append(
        _result(
            backend,
            dtype,
            "initial weights (bits)",
            0.0 if same else None,
            None,
            [] if same else ["initial weights differ from NumPy's"],
        )
    )
    return rows


def _model_file_row(backend: Backend, dtype: str) -> Result:
    """Saved on the backend, loaded on NumPy, saved again, loaded back: bit for bit."""
    X, y = nnx.datasets.spiral_data(20, 3, seed=0)
    with nnx.use_backend(backend):
        model = nnx.Model(seed=0)
        model.add(nnx.Dense(2, 8, seed=1, dtype=dtype))
        model.add(nnx.Softmax())
        model.set(loss=nnx.CategoricalCrossentropy(), optimizer=nnx.Adam(learning_rate=0.01))
        model.finalize()
    problems: list[str] = []
    try:
        model.train(X, y, epochs=2, verbose=0)
        with tempfile.TemporaryDirectory() as folder:
            model.save(Path(folder) / "a.nnx")
            on_numpy = nnx.Model.load(Path(folder) / "a.nnx", backend=load("numpy"))
            on_numpy.save(Path(folder) / "b.nnx")
            back = nnx.Model.load(Path(folder) / "b.nnx", backend=backend)
        for got, want in zip(back.get_parameters(), model.get_parameters(), strict=True):
            for g, w in zip(got, want, strict=True):
                if not np.array_equal(backend.to_numpy(g), backend.to_numpy(w)):
                    problems.append("parameters changed on the way through NumPy")
    except Exception as err:
        problems.append(f"raised {type(err).__name__}: {err}")
    return _result(
        backend, dtype, "model file round trip", 0.0 if not problems else None, None, problems
    )


def _export_row(backend: Backend, dtype: str) -> Result:
    """For a backend that builds programs: a model trained on NumPy, exported through it (the
    spiral classifier with dropout, labels added), gives NumPy's outputs and labels when the
    program runs, for 1, 7 and 300 samples from the one program."""
    from nnx._export import program  # needs the file format's package: only here

    X, y = nnx.datasets.spiral_data(100, 3, seed=0)
    with nnx.use_backend("numpy"):
        model = nnx.Model(seed=0)
        model.add(nnx.Dense(2, 32, seed=1, dtype=dtype))
        model.add(nnx.ReLU())
        model.add(nnx.Dropout(0.1, seed=2))
        model.add(nnx.Dense(32, 3, seed=3, dtype=dtype))
        model.add(nnx.Softmax())
        model.set(loss=nnx.CategoricalCrossentropy(), optimizer=nnx.Adam(learning_rate=0.05))
        model.finalize()
    problems: list[str] = []
    worst = 0.0
    try:
        model.train(X, y, epochs=20, verbose=0)
        payload, _ = program(model, labels=True, backend=backend)
        assert backend.graph is not None  # a backend that builds programs runs them
        for n in (1, 7, len(X)):
            want = np.asarray(model.predict(X[:n]))
            got = backend.graph.execute(payload, {"X": X[:n].astype(dtype)})
            worst = max(worst, float(np.max(np.abs(got["output"] - want))))
            if not np.array_equal(got["labels"], want.argmax(axis=1)):
                problems.append(f"labels differ from NumPy's argmax at batch {n}")
        if worst > (1e-5 if dtype == "float32" else 1e-12):
            problems.append(f"outputs differ from NumPy's by {worst:.1e}")
    except Exception as err:
        problems.append(f"raised {type(err).__name__}: {err}")
    return _result(backend, dtype, "exported model = NumPy", worst, None, problems)


STEP_ROW, BOOK_ROW = "compiled step = eager step", "nnx.compile(book epoch) = eager"
MANY_ROW = "K steps per call = K eager steps"


def _compiled_row(backend: Backend, dtype: str, problems_of: Any, name: str) -> Result:
    """For a backend that compiles: compiled equals eager, for the training step and for the
    book's epoch through ``nnx.compile`` (``problems_of`` compares them). On torch the step
    row is "torch compiled = eager": torch.compile's program against torch's eager step."""
    try:
        worst, problems = problems_of(backend, dtype)
    except BackendError as err:  # a compiler that cannot run here (no C++ compiler) says why
        row = _result(backend, dtype, name, None, None, [str(err)])
        return dataclasses.replace(row, status="skip")
    except Exception as err:
        return _result(backend, dtype, name, None, None, [f"raised {err!r}"])
    return _result(backend, dtype, name, None, worst, problems)
