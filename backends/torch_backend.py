"""PyTorch through array-api-compat: CPU, or CUDA where one is present (``NNX_DEVICE=cuda``).

Its compiler is ``torch.compile`` (``backends.torch_compile``), used where asked for
(``compile=True``): a compile takes seconds per batch shape.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from backends._backend import Backend, BackendError, install_hint
from backends.torch_compile import torch_compiler
from backends.torch_kernels import torch_kernels


def make(device: Any = None) -> Backend:
    try:
        import array_api_compat.torch as xp
        import torch
    except ImportError as err:
        raise BackendError(f"torch is not installed; {install_hint('torch')}.") from err
    try:
        dev = torch.device(device or "cpu")
    except RuntimeError as err:
        raise BackendError(f"torch: bad device {device!r} ({err}); try 'cpu' or 'cuda:0'.") from err
    if dev.type == "cpu" and dev.index is not None:  # tensors report plain "cpu"
        raise BackendError(f"torch: the CPU has no device {device!r}; use 'cpu'.")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BackendError(f"torch: no CUDA device for device={device!r}; unset NNX_DEVICE.")
    if dev.type == "cuda" and dev.index is None:
        # Tensors report "cuda:0", and torch.device("cuda") != torch.device("cuda:0").
        dev = torch.device("cuda", torch.cuda.current_device())
    try:  # a device torch names but cannot compute on or copy from (mps here, "meta")
        (torch.ones(1, device=dev) + 1).cpu()
    except (RuntimeError, NotImplementedError) as err:
        first = (str(err).splitlines() or [type(err).__name__])[0]
        first = first if len(first) <= 100 else first[:100] + "..."
        raise BackendError(
            f"torch: cannot compute on device={device!r} ({first}); try 'cpu' or 'cuda:0'."
        ) from err

    def asarray(data: Any, dtype: Any = None) -> Any:
        return torch.as_tensor(np.asarray(data), dtype=dtype, device=dev)

    def to_numpy(array: Any) -> np.ndarray:
        return array.detach().cpu().numpy()

    def synchronize() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    return Backend(
        name="torch",
        xp=xp,
        device=dev,
        asarray=asarray,
        to_numpy=to_numpy,
        synchronize=synchronize,
        float64=dev.type != "mps",
        version=torch.__version__,
        kernels=torch_kernels(torch),
        detach=lambda array: array.detach(),
        compiler=torch_compiler(torch, dev),
    )
