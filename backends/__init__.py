"""A registry of array backends: one array library on one device, chosen by name.

Precedence: an explicit name, then ``NNX_BACKEND`` (and ``NNX_DEVICE``), then ``"numpy"``.
A backend is imported on first use; an unknown or unusable one raises, never falls back.
This package knows nothing about nnx, so any Array API code can use it.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import numpy as np

from backends._backend import (
    DISTRIBUTION,
    Backend,
    BackendError,
    Compiler,
    GraphBuilder,
    Lazy,
    install_hint,
)

__all__ = [
    "Backend",
    "BackendError",
    "BackendStatus",
    "Compiler",
    "DISTRIBUTION",
    "GraphBuilder",
    "Lazy",
    "available",
    "device_name",
    "get_backend",
    "install_hint",
    "installed",
    "load",
    "register",
    "registered",
    "set_backend",
    "to_numpy",
    "use_backend",
]

Factory = Callable[[Any], Backend]
ENTRY_POINT_GROUP = "nnx.backends"

# name -> "module:function" (imported on first use) or a factory callable.
_FACTORIES: dict[str, str | Factory] = {
    "numpy": "backends.numpy_backend:make",
    "array_api_strict": "backends.array_api_strict_backend:make",
    "torch": "backends.torch_backend:make",
    "cupy": "backends.cupy_backend:make",
    "dask": "backends.dask_backend:make",
    "jax": "backends.jax_backend:make",
    "onnx": "backends.onnx_backend:make",
}
# What each built-in backend imports (library, the extra that installs it), for installed(),
# which looks without importing: importing every library takes seconds.
_LIBRARIES = {
    "numpy": ("numpy", None),
    "array_api_strict": ("array_api_strict", "test"),
    "torch": ("torch", "torch"),
    "cupy": ("cupy", "cupy"),
    "dask": ("distributed", "dask"),
    "jax": ("jax", "jax"),
    "onnx": ("ndonnx", "onnx"),
}
_entry_points_read = False
_instances: dict[tuple[str, str | None], Backend] = {}
# Two levels of choice. set_backend sets the program's default (every thread sees it);
# use_backend overrides it for one block in one context: a thread, or an asyncio task and the
# tasks it starts. A ContextVar is what keeps one thread's block from leaking into another's.
_default: Backend | None = None
_in_block: ContextVar[Backend | None] = ContextVar("nnx_backend", default=None)


def register(name: str, factory: Factory | str, *, replace: bool = False) -> None:
    """Add a backend: ``factory(device)`` returns a :class:`Backend` or raises BackendError."""
    if not name.isidentifier() or name != name.lower():
        raise ValueError(f"register: expected a lowercase identifier as name, got name={name!r}.")
    _read_entry_points()
    if name in _FACTORIES and not replace:
        raise ValueError(f"register: backend {name!r} exists; pass replace=True to override it.")
    _FACTORIES[name] = factory
    for key in [key for key in _instances if key[0] == name]:
        del _instances[key]


def registered() -> list[str]:
    """Names of every registered backend, built-in and from entry points."""
    _read_entry_points()
    return list(_FACTORIES)


def _read_entry_points() -> None:
    global _entry_points_read
    if _entry_points_read:
        return
    _entry_points_read = True
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        _FACTORIES.setdefault(entry.name, entry.value)


def load(name: str | None = None, device: Any = None) -> Backend:
    """The backend called ``name`` on ``device`` (defaults from NNX_BACKEND / NNX_DEVICE)."""
    source = "argument"
    if name is None:
        name, source = os.environ.get("NNX_BACKEND") or "numpy", "NNX_BACKEND"
        if device is None:
            device = os.environ.get("NNX_DEVICE") or None
    names = registered()
    if name not in names:
        where = "Set NNX_BACKEND to" if source == "NNX_BACKEND" else "Pass"
        raise ValueError(
            f"Unknown backend {name!r} from {source}. Available: {', '.join(names)}. "
            f"{where} one of these or call backends.register()."
        )
    key = (name, None if device is None else str(device))
    if key not in _instances:
        # Importing a library may draw from NumPy's global generator (jax does): the book
        # seeds that generator before its first layer, which is when a backend loads.
        seeded = np.random.get_state()
        try:
            _instances[key] = _resolve_factory(name)(device)
        finally:
            np.random.set_state(seeded)
    return _instances[key]


def _resolve_factory(name: str) -> Factory:
    factory = _FACTORIES[name]
    if callable(factory):
        return factory
    module_name, _, attr = factory.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise BackendError(f"Backend {name!r} cannot be imported: {err}.") from err
    return getattr(module, attr)


def set_backend(name: str | Backend | None, device: Any = None) -> Backend:
    """Make ``name`` the backend that new layers, losses and optimizers take, in every thread.

    ``None`` forgets the choice and reads NNX_BACKEND / NNX_DEVICE again (when they name an
    unusable backend, this and every later ``get_backend`` raise until the variables are
    fixed). Inside a :func:`use_backend` block the block takes the new choice too, until it ends.
    """
    global _default
    if name is None:
        _default = None
    backend = name if isinstance(name, Backend) else load(name, device)
    _default = backend
    if _in_block.get() is not None:
        _in_block.set(backend)
    return backend


def get_backend() -> Backend:
    """The backend of the current ``use_backend`` block, else the program's default.

    When nothing chose one, NNX_BACKEND / NNX_DEVICE decide (read once).
    """
    global _default
    chosen = _in_block.get()
    if chosen is not None:
        return chosen
    if _default is None:
        _default = load()
    return _default


@contextmanager
def use_backend(name: str | Backend, device: Any = None) -> Iterator[Backend]:
    """Select a backend for the ``with`` block in this thread or task, then restore the choice.

    Other threads and tasks keep theirs: the choice lives in a ``contextvars.ContextVar``.
    """
    backend = name if isinstance(name, Backend) else load(name, device)
    token = _in_block.set(backend)
    try:
        yield backend
    finally:
        _in_block.reset(token)


def to_numpy(array: Any) -> Any:
    """An array of any backend loaded so far, as a NumPy array; NumPy data comes back as is.

    For code that holds an array without its backend (the book's bookkeeping lines): the
    backend whose arrays have the array's type brings it to the host.
    """
    for backend in list(_instances.values()):
        if type(array) is backend.array_type:
            return backend.to_numpy(array)
    if type(array).__module__.split(".")[0] == "numpy":
        return array
    loaded = ", ".join(sorted({name for name, _ in _instances})) or "none"
    raise TypeError(
        f"to_numpy: expected an array of a loaded backend (loaded: {loaded}), got a "
        f"{type(array).__module__}.{type(array).__name__}. Load its backend first "
        "(backends.load(name))."
    )


def device_name(device: Any) -> str:
    """A device as text for tables: its ``str``, or its library's name where that is Python's
    default ``<... object at 0x...>`` (ndonnx's one device)."""
    text = str(device)
    if text.startswith("<") and " object at 0x" in text:
        return type(device).__module__.split(".")[0]
    return text


@dataclass(frozen=True)
class BackendStatus:
    """One row of :func:`available`: whether a backend runs here, and why not."""

    name: str
    usable: bool
    reason: str
    version: str = ""
    device: str = ""


def installed() -> list[BackendStatus]:
    """Every registered backend with whether its library is installed, found without importing
    anything (:func:`available` imports each and tries its device: slower, and more certain).

    Backends registered in code count as installed; ``version`` is their library's, if known.
    """
    rows, providers = [], metadata.packages_distributions()
    for name in registered():
        factory = _FACTORIES[name]
        if callable(factory):
            rows.append(BackendStatus(name, True, "registered in code"))
            continue
        module, extra = _LIBRARIES.get(name, (factory.partition(":")[0], None))
        top = module.partition(".")[0]
        if importlib.util.find_spec(top) is None:
            hint = f"; {install_hint(extra)}" if extra else ""
            rows.append(BackendStatus(name, False, f"{top} is not installed{hint}"))
        else:
            rows.append(BackendStatus(name, True, "", _version(providers.get(top, []))))
    return rows


def _version(distributions: list[str]) -> str:
    """The version of the first of ``distributions`` that is installed."""
    for distribution in distributions:
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
    return ""


def available() -> list[BackendStatus]:
    """Every registered backend with whether it is usable here, and the reason if not."""
    rows = []
    for name in registered():
        try:
            backend = load(name)
        except (BackendError, ValueError) as err:
            rows.append(BackendStatus(name, False, str(err)))
        else:
            rows.append(BackendStatus(name, True, "", backend.version, device_name(backend.device)))
    return rows
