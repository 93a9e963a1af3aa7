"""Model files (host boundary): placeholder until the safetensors format lands."""

from __future__ import annotations

from typing import Any


def save_model(model: Any, path: Any) -> None:
    raise NotImplementedError


def load_model(path: Any, *, backend: Any = None, model_cls: Any = None) -> Any:
    raise NotImplementedError


def save_parameters(model: Any, path: Any) -> None:
    raise NotImplementedError


def load_parameters(model: Any, path: Any) -> None:
    raise NotImplementedError
