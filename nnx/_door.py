"""The door of every method that takes arrays: host data moves to the part's backend before
the method runs, and arrays of another backend or device are refused.

``nnx._component.Component`` wraps each method its subclasses name in ``takes_arrays`` with
:func:`door`; the checks and moves themselves are the part's (``_arrive``,
``_arrive_attributes``). :func:`formula` gives the method behind a door, for callers whose
arrays came through one already (``Model``).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

__all__ = ["door", "formula"]


def door(
    method: Callable[..., Any],
    kinds: tuple[str, ...],
    state: tuple[str, ...],
    typed: tuple[str, ...] = (),
    check: str = "",
) -> Callable[..., Any]:
    """``method`` behind the door: its leading arguments (one per entry of ``kinds``) and the
    attributes named in ``state`` (those in ``typed`` in the part's dtype) pass ``_arrive``
    before the method runs; then the part's method named ``check`` (if any) sees the arrays
    (shapes, labels: what a direct call can get wrong and a model's own calls cannot). An
    AttributeError of the method about an array another method sets (``inputs`` before any
    ``forward``) becomes the part's clear error (``_not_ready``).

    The door is written for each method with the method's own parameters (as ``dataclasses``
    writes ``__init__``): calls bind to it exactly as to the method, and the hot path packs no
    ``*args``/``**kwargs``, which alone would cost several times the checks. An array of the
    part's own backend, device and dtype passes on three comparisons (about 0.1 us on NumPy).
    A method whose leading parameters cannot take the arrays by position (``*args``) is left
    as it is, without a door.
    """
    signature = inspect.signature(method)
    parameters = list(signature.parameters.values())
    arrays = parameters[1 : 1 + len(kinds)]
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if len(arrays) != len(kinds) or any(
        p.kind not in positional for p in parameters[: 1 + len(kinds)]
    ):
        return method
    me = parameters[0].name  # "self", as a rule
    # The door's own names start with _nnx_, so no parameter of the method can hide them.
    namespace: dict[str, Any] = {
        "_nnx_method": method,
        "_nnx_where": method.__name__,
        "_nnx_state": state,
        "_nnx_typed": typed,
        "_nnx_type": type,
    }
    header = signature.replace(
        parameters=[_by_reference(p, i, namespace) for i, p in enumerate(parameters)],
        return_annotation=inspect.Signature.empty,
    )
    lines = [f"def door{header}:"]
    for parameter, kind in zip(arrays, kinds, strict=True):
        name = parameter.name
        cast = (
            f" and ({me}.dtype is None or {name}.dtype is {me}._array_dtype"
            f" or {me}._has_dtype({name}))"
        )
        lines += [
            "    try:",
            f"        _nnx_fits = (_nnx_type({name}) is {me}._array_type"
            f" and {name}.device == {me}.device{cast if kind == 'floats' else ''})",
            "    except AttributeError:  # arrays without .device (Dask's): _arrive asks",
            "        _nnx_fits = False",
            "    if not _nnx_fits:",
            f"        {name} = {me}._arrive({name}, {name!r}, {kind!r}, _nnx_where)",
        ]
    for name in state:
        # Arrays set by hand (a NumPy array as ``output``) are moved; the hot path tests their
        # type (and a parameter's dtype): an array of the library on another device is left
        # to the library, whose error names both devices (torch's and array-api-strict's do).
        dtype = f" or {me}.dtype is not None and _nnx_value.dtype is not {me}._array_dtype"
        lines += [  # an attribute read, not getattr(): the plain read is several times faster
            "    try:",
            f"        _nnx_value = {me}.{name}",
            "    except AttributeError:  # not set yet: the method says so itself",
            "        _nnx_value = None",
            f"    if _nnx_value is not None and (_nnx_type(_nnx_value) is not {me}._array_type"
            f"{dtype if name in typed else ''}):",
            f"        {me}._arrive_attributes(_nnx_state, _nnx_where, _nnx_typed)",
        ]
    if check:
        names = ", ".join(p.name for p in arrays)
        lines.append(f"    {me}.{check}({names}, _nnx_where)")
    lines += [  # no cost unless raised (Python 3.11's exceptions are free until thrown)
        "    try:",
        f"        return _nnx_method({', '.join(_passed(p) for p in parameters)})",
        "    except AttributeError as _nnx_error:",
        f"        {me}._not_ready(_nnx_error, _nnx_where)",
        "        raise",
    ]
    text = "\n".join(lines)
    exec(compile(text, f"<door of {method.__qualname__}>", "exec"), namespace)  # noqa: S102
    door: Any = functools.wraps(method)(namespace["door"])
    door.__door__ = text  # the door's code, for a reader (and a debugger)
    door.__door_state__ = state
    return door


def _by_reference(parameter: inspect.Parameter, i: int, namespace: dict[str, Any]) -> Any:
    """``parameter`` without its annotation, its default named ``_nnx_default<i>`` in
    ``namespace`` (so any default object works, whatever its repr)."""
    parameter = parameter.replace(annotation=inspect.Parameter.empty)
    if parameter.default is inspect.Parameter.empty:
        return parameter
    namespace[f"_nnx_default{i}"] = parameter.default
    return parameter.replace(default=_Name(f"_nnx_default{i}"))


class _Name:
    """A default that renders as a name in a signature's text."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


def _passed(parameter: inspect.Parameter) -> str:
    """How the door hands ``parameter`` on to the method."""
    kind, name = parameter.kind, parameter.name
    if kind is inspect.Parameter.VAR_POSITIONAL:
        return f"*{name}"
    if kind is inspect.Parameter.VAR_KEYWORD:
        return f"**{name}"
    if kind is inspect.Parameter.KEYWORD_ONLY:
        return f"{name}={name}"
    return name


def formula(part: Any, name: str) -> Callable[..., Any]:
    """``part``'s method ``name`` without its door, bound to ``part``: for a caller whose arrays
    came through a door already (``Model``, inside which every array is the backend's)."""
    method = getattr(type(part), name)
    return getattr(method, "__wrapped__", method).__get__(part)  # type: ignore[no-any-return]
