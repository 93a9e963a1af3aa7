"""Activations: ReLU, Softmax, Sigmoid, Linear, each with the book's ``predictions``."""

from __future__ import annotations

from nnx._xp import Array, row_max, row_sums
from nnx.layers import Layer

__all__ = ["ReLU", "Softmax", "Sigmoid", "Linear"]


class ReLU(Layer):
    """``max(0, x)``; the gradient passes where the input was positive."""

    def forward(self, inputs: Array, training: bool = False) -> Array:
        self.inputs = inputs
        self.output = self.xp.maximum(inputs, 0.0)
        return self.output

    def backward(self, dvalues: Array) -> Array:
        # The book zeroes dvalues where inputs <= 0. Multiplying by the 0/1 mask does the same
        # without branches: where() and masked writes mispredict on ReLU's random signs
        # (benchmarks/RESULTS.md). Only a NaN/inf gradient at a zeroed place would differ.
        mask = self.xp.astype(self.inputs > 0, dvalues.dtype)
        self.dinputs = dvalues * mask
        return self.dinputs

    def predictions(self, outputs: Array) -> Array:
        return outputs


class Softmax(Layer):
    """Normalised exponentials along each row: class probabilities."""

    def forward(self, inputs: Array, training: bool = False) -> Array:
        xp = self.xp
        if inputs.ndim != 2:
            raise ValueError(
                f"Softmax.forward: expected inputs of shape (batch, classes), got "
                f"{tuple(inputs.shape)}; one sample is inputs[None, :] (or .reshape(1, -1))."
            )
        self.inputs = inputs
        # Subtracting the row maximum keeps exp() from overflowing; the result is unchanged.
        exp_values = xp.exp(inputs - row_max(xp, inputs))
        self.output = exp_values / row_sums(xp, exp_values)
        return self.output

    def backward(self, dvalues: Array) -> Array:
        # The book's per-sample Jacobian (diagflat(s) - s s^T) @ dvalues, for all rows at once:
        # s * (dvalues - sum(dvalues * s)).
        s = self.output
        self.dinputs = s * (dvalues - row_sums(self.xp, dvalues * s))
        return self.dinputs

    def predictions(self, outputs: Array) -> Array:
        return self.xp.argmax(outputs, axis=1)


class Sigmoid(Layer):
    """``1 / (1 + exp(-x))``, for binary and multi-label outputs."""

    def forward(self, inputs: Array, training: bool = False) -> Array:
        xp = self.xp
        self.inputs = inputs
        # exp(-|x|) never overflows, so extreme logits give 0 or 1, not a warning or NaN.
        e = xp.exp(-xp.abs(inputs))
        self.output = xp.where(inputs >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
        return self.output

    def backward(self, dvalues: Array) -> Array:
        self.dinputs = dvalues * (1.0 - self.output) * self.output
        return self.dinputs

    def predictions(self, outputs: Array) -> Array:
        return self.xp.astype(outputs > 0.5, outputs.dtype)


class Linear(Layer):
    """The identity, for regression outputs."""

    def forward(self, inputs: Array, training: bool = False) -> Array:
        self.inputs = inputs
        self.output = inputs
        return inputs

    def backward(self, dvalues: Array) -> Array:
        self.dinputs = dvalues
        return dvalues

    def predictions(self, outputs: Array) -> Array:
        return outputs
