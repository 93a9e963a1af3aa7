"""JAX (``jax.numpy``, an Array API namespace of its own) on the CPU, a GPU or a TPU.

``NNX_DEVICE``: ``cpu`` (the default), ``gpu``/``cuda`` or ``gpu:N``/``cuda:N``, ``tpu[:N]``.
JAX arrays are immutable, and JAX computes in 32 bits unless its x64 mode is on
(``JAX_ENABLE_X64=1`` before the import): float64 is offered only then, and integer data
arrives as int32 otherwise. JAX can compile a function (``jax.jit``): the backend offers that
as ``compile``, and nnx builds its training step on it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from backends._backend import Backend, BackendError, Compiler, install_hint

_PLATFORMS = {"cpu": "cpu", "gpu": "gpu", "cuda": "gpu", "tpu": "tpu"}


def make(device: Any = None) -> Backend:
    try:
        import jax
        import jax.numpy as xp
    except ImportError as err:
        raise BackendError(f"jax is not installed ({err}); {install_hint('jax')}.") from err
    dev = _device(jax, device)
    x64 = bool(jax.config.read("jax_enable_x64"))
    default = dev == jax.devices()[0]  # where jax puts arrays that name no device

    def asarray(data: Any, dtype: Any = None) -> Any:
        if isinstance(data, jax.Array) and dtype is None:
            return data if data.device == dev else jax.device_put(data, dev)
        host = np.asarray(data)
        # Without x64, JAX keeps 32-bit numbers: say so once here (int64 labels become int32),
        # rather than warn at every transfer. float64 never gets here (Backend.dtype refuses it).
        wanted = jax.dtypes.canonicalize_dtype(np.dtype(dtype) if dtype is not None else host.dtype)
        host = host.astype(wanted, copy=False)  # on the host: a dtype= argument costs an op
        # Measured for 300x2 floats: jnp.asarray 70-90 us, device_put 100-160 us.
        return xp.asarray(host) if default else jax.device_put(host, dev)

    def compile(function: Callable[..., Any], donate: Sequence[int] = ()) -> Callable[..., Any]:
        # Donated arguments give their buffers to the results: the state is updated in place
        # by XLA, as NumPy's kernels do, instead of allocated anew every step.
        return jax.jit(function, donate_argnums=tuple(donate))

    def loop(count: Any, body: Callable[..., Any], carry: Any, rows: Any) -> tuple[Any, Any]:
        def step(i: Any, both: Any) -> Any:
            carry, row = body(i, both[0])
            return carry, jax.lax.dynamic_update_index_in_dim(both[1], row, i, 0)

        return jax.lax.fori_loop(0, count, step, (carry, rows))  # type: ignore[no-any-return]

    def synchronize() -> None:
        # JAX queues work per array, not per device: wait for every array still alive.
        jax.block_until_ready([a for a in jax.live_arrays() if dev in a.devices()])

    return Backend(
        name="jax",
        xp=xp,
        device=dev,
        asarray=asarray,
        to_numpy=np.asarray,
        synchronize=synchronize,
        float64=x64,
        float64_hint=" (JAX computes in 32 bits unless JAX_ENABLE_X64=1 is set before it loads)",
        mutable=False,
        version=jax.__version__,
        compiler=Compiler(compile, (jax.core.Tracer,), lambda array: array.is_ready(), loop),
    )


def _device(jax: Any, device: Any) -> Any:
    """The ``jax.Device`` that NNX_DEVICE names."""
    text = "cpu" if device in (None, "") else str(device).lower()
    kind, _, index = text.partition(":")
    platform = _PLATFORMS.get(kind)
    if platform is None or not (index == "" or index.isdigit()):
        raise BackendError(
            f"jax: unknown device {device!r}; use 'cpu', 'gpu', 'gpu:N' (or 'cuda:N'), 'tpu'."
        )
    try:
        found = jax.devices(platform)
    except RuntimeError:
        found = []
    if not found:
        raise BackendError(
            f"jax: no {platform.upper()} device for device={device!r} (this JAX sees "
            f"{', '.join(sorted({d.platform for d in jax.devices()}))}); unset NNX_DEVICE, or "
            "install a JAX build for that device."
        )
    n = int(index or 0)
    if n >= len(found):
        raise BackendError(f"jax: no {platform} device {n}; this machine has {len(found)}.")
    return found[n]
