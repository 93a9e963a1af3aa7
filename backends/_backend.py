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


def _itself(array: Any) -> Any:
    return array


def _finished(array: Any) -> bool:
    return True


@dataclass(frozen=True)
class Compiler:
    """A library's compiler of functions of arrays (JAX's ``jax.jit``).

    Parameters
    ----------
    compile : callable ``(function, donate=()) -> function``
        The compiled function, traced once per argument shapes. ``donate`` lists the positions
        of arguments whose buffers the results may reuse (the caller drops them).
    traced_types : tuple of types
        The types that stand for arrays while ``compile`` traces a function (JAX's tracers):
        code that checks where an array comes from takes them as the backend's own.
    ready : callable ``(array) -> bool``
        Whether the work that makes ``array`` has finished, so that reading it will not wait
        (JAX's ``is_ready``).
    loop : callable ``(count, body, carry, rows) -> (carry, rows)``, optional
        A loop inside a compiled function (JAX's ``fori_loop``): ``body(i, carry)`` returns
        the new carry and a row, for ``i`` from 0 to ``count`` (a traced integer: one program
        serves every count), and row ``i`` of ``rows`` (an array of at least ``count`` rows)
        is set to it. None: the library has no such loop, and a caller loops in Python.
    by_default : bool
        Whether code that may compile, and is not told to, does (``Model.train``'s
        ``compile=None``): True where compiling pays from the first seconds (JAX, whose eager
        steps dispatch every operation); False where a compile costs more than most short
        runs save (``torch.compile``: seconds per batch shape), so it waits for
        ``compile=True``.
    """

    compile: Callable[..., Callable[..., Any]]
    traced_types: tuple[type, ...] = ()
    ready: Callable[[Any], bool] = _finished
    loop: Callable[..., tuple[Any, Any]] | None = None
    by_default: bool = True


@dataclass(frozen=True)
class Lazy:
    """A library that defers work until asked for (Dask).

    Parameters
    ----------
    materialize : callable ``(list of arrays) -> list of arrays``
        Compute (persist) the arrays, so that the work queued behind them does not grow from
        step to step.
    """

    materialize: Callable[[list[Any]], list[Any]]


@dataclass(frozen=True)
class GraphBuilder:
    """A library whose arrays describe a program instead of holding values (ndonnx: ONNX).

    Parameters
    ----------
    symbolic : callable ``(shape, dtype) -> array``
        An input of the program, an array without values. A string in ``shape`` names a
        dimension given when the program runs (``"N"``).
    build : callable ``(inputs, outputs) -> bytes``
        The program that computes ``outputs`` (a mapping of names to arrays) from ``inputs``
        (names to ``symbolic`` arrays), serialized (an ONNX model).
    execute : callable ``(program, feeds, outputs=None) -> dict``
        Runs a program ``build`` made on host arrays (``feeds``: input names to NumPy arrays)
        and returns its outputs, by name, as NumPy arrays (ONNX Runtime, for ONNX).
    """

    symbolic: Callable[..., Any]
    build: Callable[..., bytes]
    execute: Callable[..., dict[str, np.ndarray]]


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
    trains : bool
        False for a backend that only describes computations (ONNX graphs): models run their
        inference pass on it to be exported, and nothing trains on it.
    version : str
        The array library's version, for reports.
    detach : callable ``(array) -> array``
        The array as plain data, without what the library records for it (torch's autograd
        graph, which would follow every step a model computes from it and grow). Identity
        where a library records nothing.

    The optional capabilities, each one object or None (a plain backend leaves them None):
    ``compiler`` (:class:`Compiler`), ``lazy`` (:class:`Lazy`), ``graph``
    (:class:`GraphBuilder`); and ``kernels``, fused optimizer updates by name (``"adam"``,
    ...; the contract is in ``backends/kernels.py``), empty where optimizers run their plain
    formulas.
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
    trains: bool = True
    version: str = ""
    detach: Callable[[Any], Any] = _itself
    kernels: Mapping[str, Callable[..., None]] = field(default_factory=dict)
    compiler: Compiler | None = None
    lazy: Lazy | None = None
    graph: GraphBuilder | None = None

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

    def stands_for_arrays(self, value: Any) -> bool:
        """Whether ``value`` stands for an array of this backend while its compiler traces a
        function (a JAX tracer): code that checks where an array comes from takes it as its
        own. False where the backend has no compiler."""
        return self.compiler is not None and isinstance(value, self.compiler.traced_types)

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
