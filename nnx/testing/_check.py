"""Checks, their outputs and result records; host boundary (compares NumPy copies)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import array_api_compat
import numpy as np

from backends import Backend, device_name, load
from nnx.testing.tolerances import tolerance

__all__ = ["Output", "Result", "Check", "NotOffered", "array_problems", "device_label"]

REFERENCE = ("numpy", "float64")


@dataclass(frozen=True)
class Output:
    """One named result of a scenario.

    Parameters
    ----------
    name : str
        What it is, e.g. ``"dweights"``.
    value : array
        An array of the backend under test.
    kind : str
        Row of :data:`~nnx.testing.tolerances.TOLERANCES` it is judged by.
    dtype : str or None
        Expected dtype: ``"requested"`` (the check's dtype), a dtype name, or ``None`` (not
        checked, as for argmax indices).
    expected : numpy.ndarray, optional
        The expected values (finite differences); ``None`` takes them from the reference run.
    host : bool
        ``value`` is a NumPy array: what a program the backend built gave when it ran (ONNX
        Runtime, for the onnx backend). Its dtype is checked; library and device are not.
    """

    name: str
    value: Any
    kind: str = "reduction"
    dtype: str | None = "requested"
    expected: np.ndarray | None = None
    host: bool = False


@dataclass(frozen=True)
class Result:
    """One row of the conformance table."""

    backend: str
    device: str
    dtype: str
    component: str
    check: str
    max_abs_err: float | None
    max_rel_err: float | None
    status: str  # "pass", "fail", "skip", or "xfail" (a known bug, see Check.known_bug)
    reason: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def describe(self) -> str:
        """One line: where, what, the error magnitudes and why it failed or skipped."""
        errors = f"max abs err {_fmt(self.max_abs_err)}, max rel err {_fmt(self.max_rel_err)}"
        where = f"{self.backend} on {self.device}, {self.dtype}"
        text = f"{self.component} ({self.check}) on {where}: {self.status}, {errors}"
        return f"{text}. {self.reason}" if self.reason else text


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1e}"


Scenario = Callable[[Backend, str], list[Output]]


class NotOffered(Exception):
    """Raised by a scenario whose subject the backend does not have (a fused kernel): the
    check is skipped with this reason."""


@dataclass(frozen=True)
class Check:
    """A component run on the backend under test and judged against NumPy or finite differences.

    Parameters
    ----------
    component : str
        The nnx class it exercises.
    module : str
        The nnx module of that class (``"layers"``, ``"losses"``, ...).
    scenario : callable ``(backend, dtype) -> list[Output]``
        Builds seeded host inputs, runs the component, returns its named outputs.
    kind : {"reference", "gradient", "kernel", "forward"}
        Compared with the NumPy float64 run of the same scenario, or with the ``expected``
        values each output carries: finite differences (``"gradient"``, float64 only), or the
        plain formulas on the same backend and dtype (``"kernel"``: a fused update).
        ``"forward"``: inference passes only, against NumPy; the only checks an
        inference-only backend (``Backend.trains`` False) runs.
    known_bug : str
        A bug of nnx this check finds and nobody fixed yet: the runner reports its failure as
        ``xfail`` and its passing as a failure (remove the note with the fix); tests mark it
        ``xfail(strict=True)``. :meth:`run` itself always reports what it saw.
    """

    component: str
    module: str
    scenario: Scenario
    kind: str = "reference"
    known_bug: str = ""

    def __str__(self) -> str:
        return self.component

    def run(self, backend: Backend, dtype: str) -> Result:
        """Run the scenario on ``backend`` in ``dtype`` and judge every output."""
        row = _Row(backend, dtype, self)
        if dtype == "float64" and not backend.float64:
            return row.result("skip", f"{backend.name} has no float64{backend.float64_hint}")
        if self.kind == "gradient" and dtype != "float64":
            return row.result("skip", "finite differences run in float64 only")
        if not backend.trains and self.kind != "forward":
            return row.result("skip", f"{backend.name} is inference-only: forward checks only")
        try:
            outputs = self.scenario(backend, dtype)
            expected = self._expected(outputs)
        except NotOffered as err:
            return row.result("skip", str(err))
        except Exception as err:  # whatever the backend raised is the finding
            return row.result("fail", f"raised {type(err).__name__}: {err}")
        for output in outputs:
            try:
                row.judge(output, expected[output.name])
            except Exception as err:  # e.g. a result that is no array at all
                row.problems.append(f"{output.name}: raised {type(err).__name__}: {err}")
        return row.finish()

    def _expected(self, outputs: list[Output]) -> dict[str, np.ndarray]:
        if self.kind in ("gradient", "kernel"):
            return {o.name: np.asarray(o.expected) for o in outputs}
        numpy = load(REFERENCE[0])
        return {o.name: numpy.to_numpy(o.value) for o in self.scenario(numpy, REFERENCE[1])}


class _Row:
    """Accumulates the errors and problems of one check run into a :class:`Result`."""

    def __init__(self, backend: Backend, dtype: str, check: Check) -> None:
        self.backend, self.dtype, self.check = backend, dtype, check
        self.abs_err: float | None = None
        self.rel_err: float | None = None
        self.problems: list[str] = []

    def result(self, status: str, reason: str = "") -> Result:
        b, c = self.backend, self.check
        label = device_label(b.device)
        return Result(
            b.name,
            label,
            self.dtype,
            c.component,
            c.kind,
            self.abs_err,
            self.rel_err,
            status,
            reason,
        )

    def judge(self, output: Output, expected: np.ndarray) -> None:
        dtype = self.dtype if output.dtype == "requested" else output.dtype
        if output.host:
            got = np.asarray(output.value)
            if dtype is not None and got.dtype != np.dtype(dtype):
                self.problems.append(f"{output.name}: dtype {got.dtype}, expected {dtype}")
        else:
            self.problems += [
                f"{output.name}: {p}" for p in array_problems(self.backend, output.value, dtype)
            ]
            got = np.asarray(self.backend.to_numpy(output.value))
        if got.shape != expected.shape:
            self.problems.append(f"{output.name}: shape {got.shape}, expected {expected.shape}")
            return
        tol = tolerance(output.kind, dtype or self.dtype)
        if output.kind == "exact" and expected.dtype.kind == "f" and got.dtype.kind == "f":
            expected = expected.astype(got.dtype)  # the reference rounded once, like the input
        diff = np.abs(got.astype(np.float64) - expected.astype(np.float64))
        scale = np.abs(expected.astype(np.float64))
        abs_err = float(np.max(diff, initial=0.0))
        rel_err = float(np.max(diff[scale > tol.atol] / scale[scale > tol.atol], initial=0.0))
        if np.isnan(diff).any():
            abs_err = rel_err = float("nan")
        self.abs_err = _worst(self.abs_err, abs_err)
        self.rel_err = _worst(self.rel_err, rel_err)
        if not np.all(diff <= tol.atol + tol.rtol * scale):
            self.problems.append(
                f"{output.name}: max abs err {abs_err:.1e}, max rel err {rel_err:.1e} "
                f"beyond {output.kind} tolerance ({tol})"
            )

    def finish(self) -> Result:
        if self.problems:
            return self.result("fail", "; ".join(self.problems))
        return self.result("pass")


def _worst(old: float | None, new: float) -> float:
    """The larger error; NaN (a result that is not a number) wins."""
    if old is None or np.isnan(new):
        return new
    return old if np.isnan(old) else max(old, new)


def array_problems(backend: Backend, value: Any, dtype: str | None) -> list[str]:
    """What is wrong with ``value`` as a result of ``backend``: namespace, device, dtype.

    Parameters
    ----------
    backend : Backend
        The backend the value should belong to.
    value : array
        A result of an nnx component.
    dtype : str or None
        Expected dtype name; ``None`` skips that test.

    Returns
    -------
    list of str
        Empty when the value is an array of the backend's library, on its device, of ``dtype``.
    """
    expected_ns = array_api_compat.array_namespace(backend.asarray([0.0]))
    try:
        namespace = array_api_compat.array_namespace(value)
    except TypeError:
        return [f"not an array: got {type(value).__name__}, expected an array of {backend.name}"]
    problems = []
    if namespace is not expected_ns:
        problems.append(
            f"an array of {namespace.__name__} ({type(value).__name__}), expected one of "
            f"{expected_ns.__name__}"
        )
    device = array_api_compat.device(value)
    if device != backend.device:
        problems.append(f"on device {device!r}, expected {backend.device!r}")
    if dtype is not None and value.dtype != backend.dtype(dtype):
        problems.append(f"dtype {value.dtype}, expected {dtype}")
    return problems


def device_label(device: Any) -> str:
    """A short name of a device for the table: ``cpu``, ``device1``, ``cuda:0``."""
    text = device_name(device)
    match = re.fullmatch(r"[\w.]*Device\('([^']*)'\)", text)
    return match.group(1) if match else text
