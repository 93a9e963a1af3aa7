"""The Backend record: one array library on one device, and the errors about it."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np


class BackendError(RuntimeError):
    """A backend's library or device is missing, or it cannot run here."""


# The name pip knows this project by ("nnx" on the package index is somebody else's). It is not
# published yet, so hints give the form that works from a clone.
DISTRIBUTION = "nnx-book"


def install_hint(extra: str | None = None) -> str:
    """How to install the project, with ``extra`` (e.g. "torch"), as a hint in a message."""
    target = f".[{extra}]" if extra else "."
    return f'pip install -e "{target}" in a clone of nnx (the {DISTRIBUTION} distribution)'


def _no_sync() -> None:
    return None


def _as_is(arrays: list[Any]) -> list[Any]:
    return arrays


def _itself(array: Any) -> Any:
    return array


def _finished(array: Any) -> bool:
    return True


@dataclass(frozen=True, eq=False)
class Backend:
    """One array library on one device, as nnx sees it.

    Parameters
    ----------
    name : str
        Registry name, e.g. ``"numpy"``.
    xp : namespace
        The Array API namespace (array-api-compat wrapped where needed).
    device : object
        The device every array of this backend is created on.
    asarray : callable ``(host_data, dtype) -> array``
        Host data (NumPy arrays, lists, scalars) onto ``device``.
    to_numpy : callable ``(array) -> numpy.ndarray``
        The way back to the host: files, printing, tests. It takes an array of the library on
        any of its devices (``backends.to_numpy`` relies on that).
    synchronize : callable ``() -> None``
        Wait for queued work, so that a clock read on a GPU measures finished work.
    float64 : bool
        Whether float64 arrays are supported.
    float64_hint : str
        Where float64 could be had, for the error that refuses it (JAX: its x64 mode).
    mutable : bool
        Whether in-place updates (``a -= b``) are allowed on its arrays.
    lazy : bool
        Whether work is deferred until asked for (as in Dask).
    materialize : callable ``(list of arrays) -> list of arrays``
        For lazy backends: compute (persist) the arrays so that the work queued behind them
        does not grow from step to step. Eager backends return them as they are.
    version : str
        The array library's version, for reports.
    kernels : mapping of str to callable
        Fused in-place optimizer updates over lists of arrays, by name (``"adam"``, ...; the
        contract is in ``backends/kernels.py``). Empty: optimizers run their plain formulas.
    detach : callable ``(array) -> array``
        The array as plain data, without what the library records for it (torch's autograd
        graph, which would follow every step a model computes from it and grow). Identity
        where a library records nothing.
    compile : callable ``(function, donate=()) -> function``, or None
        Where the library can compile a function of arrays (JAX's ``jax.jit``): the compiled
        function, traced once per argument shapes. ``donate`` lists the positions of arguments
        whose buffers the results may reuse (the caller drops them). None: no compiler.
    ready : callable ``(array) -> bool``
        Whether the work that makes ``array`` has finished, so that reading it will not wait
        (JAX's ``is_ready``). Always True where work runs as it is called.
    traced_types : tuple of types
        The types that stand for arrays while ``compile`` traces a function (JAX's tracers):
        code that checks where an array comes from takes them as the backend's own.
    inference_only : bool
        Whether the backend only describes computations (ONNX graphs): models run their
        inference pass on it to be exported, and nothing trains on it.
    symbolic : callable ``(shape, dtype) -> array``, or None
        For a backend that builds programs: an input of the program, an array without values.
        A string in ``shape`` names a dimension given when the program runs (``"N"``).
    build : callable ``(inputs, outputs) -> bytes``, or None
        The program that computes ``outputs`` (a mapping of names to arrays) from ``inputs``
        (names to ``symbolic`` arrays), serialized (an ONNX model).
    execute : callable ``(program, feeds, outputs=None) -> dict``, or None
        Runs a program ``build`` made on host arrays (``feeds``: input names to NumPy arrays)
        and returns its outputs, by name, as NumPy arrays (ONNX Runtime, for ONNX).
    """

    name: str
    xp: Any
    device: Any
    asarray: Callable[..., Any]
    to_numpy: Callable[[Any], np.ndarray]
    synchronize: Callable[[], None] = _no_sync
    float64: bool = True
    float64_hint: str = ""
    mutable: bool = True
    lazy: bool = False
    version: str = ""
    materialize: Callable[[list[Any]], list[Any]] = _as_is
    kernels: Mapping[str, Callable[..., None]] = field(default_factory=dict)
    detach: Callable[[Any], Any] = _itself
    compile: Callable[..., Callable[..., Any]] | None = None
    traced_types: tuple[type, ...] = ()
    ready: Callable[[Any], bool] = _finished
    inference_only: bool = False
    symbolic: Callable[..., Any] | None = None
    build: Callable[..., bytes] | None = None
    execute: Callable[..., dict[str, np.ndarray]] | None = None

    def dtype(self, name: Any) -> Any:
        """The backend's dtype object for ``"float32"``/``"float64"`` (or a dtype, unchanged)."""
        if not isinstance(name, str):
            return name
        if name not in ("float32", "float64"):
            raise ValueError(
                f"{self.name}: expected dtype 'float32' or 'float64', got dtype={name!r}."
            )
        if name == "float64" and not self.float64:
            raise BackendError(
                f"{self.name} on {self.device} does not support float64{self.float64_hint}; "
                "use dtype='float32'."
            )
        return getattr(self.xp, name)

    @property
    def array_type(self) -> type:
        """The type of this backend's arrays (one small array is made, once, to learn it)."""
        found = _ARRAY_TYPES.get(self)
        if found is None:
            found = _ARRAY_TYPES[self] = type(self.asarray([0.0]))
        return found

    def rng(self, seed: Any = None) -> Any:
        """The host random source, identical on every backend: draw there, then ``asarray``.

        A seed (an int, or a tuple of ints) gives a fresh ``numpy.random.Generator``.
        ``None`` gives NumPy's global generator (the ``numpy.random`` module), which the
        book's ``nnfs.init()`` seeds.
        """
        return np.random.default_rng(seed) if seed is not None else np.random

    def __repr__(self) -> str:
        return f"Backend(name={self.name!r}, device={self.device!r})"


# Backend.array_type, learned once per backend; kept outside the record so that copies of its
# fields (dataclasses.replace, Backend(**vars(b))) stay plain.
_ARRAY_TYPES: weakref.WeakKeyDictionary[Backend, type] = weakref.WeakKeyDictionary()
