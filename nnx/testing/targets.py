"""Which backends and devices the conformance suite runs on.

Every registered backend (built in or from the ``nnx.backends`` entry point group) on its
default device, plus the devices below. ``NNX_TEST_BACKENDS`` (a comma list of ``name`` or
``name:device``) narrows the set, and then a backend that cannot load is a failure, not a skip,
so a GPU job cannot pass by skipping.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from backends import Backend, BackendError, load, registered

__all__ = ["ENV", "Target", "requested", "targets"]

ENV = "NNX_TEST_BACKENDS"

# Devices tested besides the default one. array_api_strict's "device1" is a second, fake
# device: an array created without device= lands on the default device and mixing the two
# raises, so device bugs show without a GPU.
_EXTRA_DEVICES: dict[str, tuple[str, ...]] = {"array_api_strict": ("device1",)}
# Devices tested only where they load (torch's CUDA device and JAX's GPU need a GPU).
_OPTIONAL_DEVICES: dict[str, tuple[str, ...]] = {"torch": ("cuda",), "jax": ("gpu",)}


@dataclass(frozen=True)
class Target:
    """A backend name and a device to load it on.

    Parameters
    ----------
    name : str
        Registry name.
    device : str, optional
        Device passed to ``backends.load``; ``None`` is the backend's default.
    required : bool
        Asked for explicitly (``NNX_TEST_BACKENDS`` or ``--backend``): failing to load fails.
    """

    name: str
    device: str | None = None
    required: bool = False

    @property
    def id(self) -> str:
        """Readable test id: ``numpy``, ``array_api_strict-device1``, ``torch-cuda``."""
        return self.name if self.device is None else f"{self.name}-{self.device}"

    def load(self) -> Backend:
        """The backend on this device (raises BackendError or ValueError where unusable)."""
        return load(self.name, self.device)


def requested(names: Sequence[str] | None = None) -> list[str] | None:
    """The backends asked for: ``names``, else ``NNX_TEST_BACKENDS``, else ``None`` (all)."""
    if names is None:
        names = [n for n in os.environ.get(ENV, "").split(",") if n.strip()]
    cleaned = [name.strip() for name in names if name.strip()]
    return cleaned or None


def targets(names: Sequence[str] | None = None) -> list[Target]:
    """Every backend and device to test.

    Parameters
    ----------
    names : sequence of str, optional
        ``name`` or ``name:device`` entries; ``None`` reads ``NNX_TEST_BACKENDS``, and when
        that is unset too, every registered backend is tested (and may be skipped).

    Returns
    -------
    list of Target
        A bare name brings its default, extra and (where they load) optional devices; a
        ``name:device`` entry brings that device only.
    """
    asked = requested(names)
    if asked is None:
        return [t for name in registered() for t in _devices(name, required=False)]
    found: list[Target] = []
    for entry in asked:
        name, _, device = entry.partition(":")
        found += [Target(name, device, True)] if device else _devices(name, required=True)
    return found


def _devices(name: str, *, required: bool) -> list[Target]:
    found = [Target(name, None, required)]
    found += [Target(name, device, required) for device in _EXTRA_DEVICES.get(name, ())]
    for device in _OPTIONAL_DEVICES.get(name, ()):
        try:
            load(name, device)
        except (BackendError, ValueError):
            continue
        found.append(Target(name, device, required))
    return found
