"""CuPy on an NVIDIA GPU; the device index comes from NNX_DEVICE (``0``, ``1`` or ``cuda:1``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from backends._backend import Backend, BackendError, install_hint
from backends.cupy_kernels import cupy_kernels


def make(device: Any = None) -> Backend:
    try:
        import array_api_compat.cupy as xp
        import cupy
    except ImportError as err:
        raise BackendError(
            f"cupy is not installed ({err}); {install_hint('cupy')} on a machine with CUDA."
        ) from err
    index = int(str(device).removeprefix("cuda:")) if device not in (None, "") else 0
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:  # CUDARuntimeError, or a missing driver library
        raise BackendError(
            f"cupy: no CUDA device ({type(err).__name__}); use NNX_BACKEND=numpy here."
        ) from err
    if not 0 <= index < count:
        raise BackendError(f"cupy: no CUDA device {index}; this machine has {count}.")
    dev = cupy.cuda.Device(index)

    def asarray(data: Any, dtype: Any = None) -> Any:
        with dev:
            return cupy.asarray(np.asarray(data), dtype=dtype)

    return Backend(
        name="cupy",
        xp=xp,
        device=dev,
        asarray=asarray,
        to_numpy=cupy.asnumpy,
        synchronize=dev.synchronize,
        version=cupy.__version__,
        kernels=cupy_kernels(cupy),
    )
