"""array-api-strict: the standard's strict reference, proof that nnx uses nothing outside it.

Its second device (``NNX_DEVICE=device1``) exists only to catch arrays created without
``device=``: mixing devices raises, so device bugs show up without a GPU.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from backends._backend import Backend, BackendError


def make(device: Any = None) -> Backend:
    try:
        import array_api_strict as xp
    except ImportError as err:
        raise BackendError(
            "array_api_strict is not installed; pip install array-api-strict."
        ) from err
    # Ask for the latest standard so the strict namespace has everything nnx may use.
    xp.set_array_api_strict_flags(api_version="2024.12")
    if device is None or device == "CPU_DEVICE":
        dev = xp.Device()
    else:
        names = [str(d) for d in xp.__array_namespace_info__().devices()]
        try:
            dev = xp.Device(str(device))
        except ValueError as err:
            raise BackendError(
                f"array_api_strict has no device {device!r}; expected one of {names}."
            ) from err

    def asarray(data: Any, dtype: Any = None) -> Any:
        return xp.asarray(np.asarray(data), dtype=dtype, device=dev)

    def to_numpy(array: Any) -> np.ndarray:
        # DLPack refuses the fake devices, so hop to the CPU device first.
        return np.from_dlpack(xp.asarray(array, device=xp.Device(), copy=True))

    float64 = "float64" in xp.__array_namespace_info__().dtypes(device=dev)
    return Backend(
        name="array_api_strict",
        xp=xp,
        device=dev,
        asarray=asarray,
        to_numpy=to_numpy,
        float64=float64,
        version=xp.__version__,
    )
