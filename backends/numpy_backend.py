"""NumPy on the CPU: the default backend and the reference of the conformance suite."""

from __future__ import annotations

from typing import Any

import array_api_compat.numpy as xp
import numpy as np

from backends._backend import Backend, BackendError
from backends.kernels import numpy_kernels


def make(device: Any = None) -> Backend:
    if device not in (None, "cpu"):
        raise BackendError(f"numpy runs on the CPU only, got device={device!r}; unset NNX_DEVICE.")

    def asarray(data: Any, dtype: Any = None) -> np.ndarray:
        return np.asarray(data, dtype=dtype)

    return Backend(
        name="numpy",
        xp=xp,
        device="cpu",
        asarray=asarray,
        to_numpy=np.asarray,
        version=np.__version__,
        kernels=numpy_kernels(),
    )
