"""What a model keeps, and where it goes: its parameters, its whole training state, another
backend, model files and ONNX files.

:class:`nnx.Model` gets these methods from :class:`ModelState`; every one goes through the
state's one mapping (``nnx._state``): files, checkpoints and moves read and write the same
keys.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from backends import Backend, load
from nnx import _export, _state, io
from nnx._component import resolve
from nnx._xp import Array

__all__ = ["ModelState"]

_M = TypeVar("_M", bound="ModelState")


class ModelState:
    """The methods of :class:`nnx.Model` that read, replace, move and write its state."""

    # Model's, which these methods read.
    layers: list[Any]
    loss: Any
    optimizer: Any
    accuracy: Any
    _finalized: bool
    finalize: Callable[[], None]

    # -- parameters and state ------------------------------------------------------------------
    def get_parameters(self) -> list[tuple[Array, ...]]:
        """Copies of the parameters of every trainable layer (``(weights, biases)`` of each
        Dense), in order.

        Copies, so that a snapshot (say, of the best epoch) does not follow the in-place
        updates of further training.
        """
        return [
            tuple(layer.xp.asarray(array, copy=True) for array in layer.get_parameters())
            for layer in self.layers
            if layer.trainable
        ]

    def set_parameters(self, parameters: list[tuple[Any, ...]]) -> None:
        """Replace every trainable layer's parameters (host or backend arrays)."""
        layers = [layer for layer in self.layers if layer.trainable]
        if len(parameters) != len(layers):
            raise ValueError(
                f"Model.set_parameters: the model has {len(layers)} trainable layers, "
                f"got parameters for {len(parameters)}."
            )
        for layer, values in zip(layers, parameters, strict=True):
            layer.set_parameters(*values)

    def get_state(self, *, optimizer: bool = True) -> dict[str, Array]:
        """The whole training state as one flat, ordered mapping of the model's own arrays:
        ``layers.0.weights``, ``layers.0.weight_momentums``, ..., ``optimizer.iterations``.

        ``optimizer=False`` gives the parameters only. Model files, checkpoints and
        :meth:`to` are built on this and :meth:`set_state`.
        """
        return _state.get_state(self.layers, self.optimizer if optimizer else None)

    def set_state(self, state: dict[str, Any]) -> None:
        """Put a mapping from :meth:`get_state` back (host or backend arrays, copied in).

        Every parameter is required; optimizer state and the counter are taken where present.
        An unknown key, a missing parameter or a wrong shape raises ValueError, and then
        nothing has changed.
        """
        try:
            _state.set_state(self.layers, self.optimizer, state)
        except ValueError as err:
            raise ValueError(f"Model.set_state: {err}") from None

    def to(self: _M, backend: Backend | str, device: Any = None) -> _M:
        """Move parameters and optimizer state to another backend (in place); returns self."""
        if device is None:
            target = resolve(backend)
        else:
            target = load(backend.name if isinstance(backend, Backend) else backend, device)
        parts = [part for part in [*self.layers, self.loss, self.optimizer, self.accuracy] if part]
        host = _state.host_state(self.layers, self.optimizer)
        source = [(part, part.backend) for part in parts]
        try:
            for part in parts:
                part.to(target)
            self.set_state(host)  # the optimizer's state, which the layers do not declare
        except BaseException:  # put everything back where it was, then say why
            for part, backend_before in source:
                part.to(backend_before)
            self.set_state(host)
            raise
        if self._finalized:
            self.finalize()
        return self

    # -- model files (nnx.io) ----------------------------------------------------------------
    def save(self, path: Any) -> None:
        """Architecture, parameters and optimizer state, as one safetensors file."""
        io.save_model(self, path)

    @classmethod
    def load(
        cls: type[_M],
        path: Any,
        *,
        backend: Backend | str | None = None,
        classes: Sequence[type] = (),
    ) -> _M:
        """A model saved with :meth:`save`, rebuilt on ``backend`` (default: the selected one).

        ``classes``: your own layers (losses, ...) that the file names, e.g. ``[Scale]``.
        """
        return io.load_model(path, backend=backend, model_cls=cls, classes=classes)  # type: ignore[no-any-return]

    def save_parameters(self, path: Any) -> None:
        io.save_parameters(self, path)

    def load_parameters(self, path: Any) -> None:
        io.load_parameters(self, path)

    # -- export ------------------------------------------------------------------------------
    def export(self, path: Any, *, labels: bool = False) -> dict[str, Any]:
        """Write the model's inference pass (dropout off) as an ONNX file, for ONNX Runtime.

        The graph is the model's own ``forward``, run on the ``onnx`` backend (``ndonnx``) on a
        symbolic input ``"X"`` of shape ``(N, n_inputs)`` in the model's dtype, with ``N``, the
        batch, left free; its output is ``"output"`` (what :meth:`predict` returns).
        ``labels=True`` adds ``"labels"``, the last layer's ``predictions`` (Softmax: the class
        index, int64; Sigmoid: 0/1 per output), for classifiers. The file holds the inference
        graph only, not the optimizer; its metadata key ``"nnx"`` holds JSON with the input,
        outputs, opset, nnx's version and the layers. Written atomically, after the whole graph
        was built: a model that cannot be exported leaves no file. Returns that metadata.
        Needs the onnx extra (``pip install -e ".[onnx]"`` in a clone).
        """
        return _export.export(self, path, labels=labels)
