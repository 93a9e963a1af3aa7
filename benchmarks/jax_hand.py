"""Hand-written JAX training steps, the anchors nnx's compiled columns are measured against.

The same network, loss, accuracy and optimizer formulas as nnx (softmax-crossentropy's short
gradient, no dinputs for the first layer), as an experienced JAX user would write them: one
step under ``jax.jit`` with donated buffers, and ``K`` steps in one call through ``lax.scan``.
Both report what nnx reports per step (the loss and the accuracy) and take their batches
already on the device: the step's batches in order, ``spec.per_epoch`` of them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from implementations import Impl, Spec


def _step_function(spec: Spec) -> Any:
    """``step(state, X, y) -> (state, loss, accuracy)`` for the workload's network."""
    import jax
    import jax.numpy as jnp

    n_layers = len(spec.sizes) - 1
    adam = spec.optimizer == "adam"
    lr, beta_1, beta_2, eps, momentum = (0.001 if adam else 1.0), 0.9, 0.999, 1e-7, 0.9

    def step(state: Any, X: Any, y: Any) -> Any:
        weights, slots, t = state
        inputs, outputs = [], X
        for i, (W, b) in enumerate(weights):
            inputs.append(outputs)
            outputs = outputs @ W + b
            if i < n_layers - 1:
                outputs = jnp.maximum(outputs, 0)
        exp = jnp.exp(outputs - jnp.max(outputs, axis=1, keepdims=True))
        probs = exp / jnp.sum(exp, axis=1, keepdims=True)
        picked = jnp.clip(jnp.take_along_axis(probs, y[:, None], axis=1), 1e-7, 1 - 1e-7)
        loss = -jnp.mean(jnp.log(picked))
        accuracy = jnp.mean(jnp.argmax(probs, axis=1) == y)
        dvalues = (probs - jax.nn.one_hot(y, probs.shape[1], dtype=probs.dtype)) / X.shape[0]
        grads = []
        for i in reversed(range(n_layers)):
            W, _ = weights[i]
            grads.append((inputs[i].T @ dvalues, jnp.sum(dvalues, axis=0, keepdims=True)))
            if i > 0:
                dvalues = (dvalues @ W.T) * (inputs[i] > 0)
        grads.reverse()
        new_weights, new_slots = [], []
        for (W, b), (dW, db), slot in zip(weights, grads, slots, strict=True):
            pairs = []
            for p, g, s in zip((W, b), (dW, db), slot, strict=True):
                if adam:
                    m, c = s
                    m = beta_1 * m + (1 - beta_1) * g
                    c = beta_2 * c + (1 - beta_2) * g**2
                    m_hat = m / (1 - beta_1 ** (t + 1))
                    c_hat = c / (1 - beta_2 ** (t + 1))
                    pairs.append((p - lr * m_hat / (jnp.sqrt(c_hat) + eps), (m, c)))
                else:
                    m = momentum * s[0] - lr * g
                    pairs.append((p + m, (m,)))
            new_weights.append(tuple(p for p, _ in pairs))
            new_slots.append(tuple(s for _, s in pairs))
        return (new_weights, new_slots, t + 1), loss, accuracy

    return step


def _initial_state(spec: Spec, params: list) -> list[Any]:
    import jax.numpy as jnp

    kinds = 2 if spec.optimizer == "adam" else 1
    return [
        [(jnp.asarray(W), jnp.asarray(b)) for W, b in params],
        [
            tuple(tuple(jnp.zeros_like(jnp.asarray(p)) for _ in range(kinds)) for p in pair)
            for pair in params
        ],  # fmt: skip
        jnp.asarray(0),
    ]


def _impl(name: str, state: list[Any], run: Any) -> Impl:
    import jax

    return Impl(
        name,
        "jax",
        run,
        lambda: jax.block_until_ready(state),
        lambda: [a for pair in state[0] for a in pair],
        parameters=lambda: [np.array(a) for pair in state[0] for a in pair],
    )


def jax_step(spec: Spec, X: np.ndarray, y: np.ndarray, params: list) -> Impl:
    """(f) One step per call, under ``jax.jit``, donated; batches cut on the device first."""
    import jax
    import jax.numpy as jnp

    compiled = jax.jit(_step_function(spec), donate_argnums=0)
    size = X.shape[0] // spec.per_epoch
    batches = [
        (jnp.asarray(X[i * size : (i + 1) * size]), jnp.asarray(y[i * size : (i + 1) * size]))
        for i in range(spec.per_epoch)
    ]
    state = _initial_state(spec, params)
    at = [0]

    def run(k: int) -> None:
        for _ in range(k):
            new, _loss, _accuracy = compiled(tuple(state), *batches[at[0]])
            state[:] = new
            at[0] = (at[0] + 1) % len(batches)

    return _impl("jax.jit step", state, run)


def jax_scan(spec: Spec, X: np.ndarray, y: np.ndarray, params: list, steps: int) -> Impl:
    """(g) ``steps`` steps per call through ``lax.scan``, each batch cut from the data on the
    device (``dynamic_slice``), the losses and accuracies stacked: the honest anchor for many
    steps per call. A run of k steps is k // steps calls and one of the rest."""
    import jax
    import jax.numpy as jnp

    step = _step_function(spec)
    Xd, yd = jnp.asarray(X), jnp.asarray(y)
    size = X.shape[0] // spec.per_epoch

    def many(state: Any, start: Any, count: int) -> Any:
        def body(state: Any, i: Any) -> Any:
            at = ((start + i) % spec.per_epoch) * size
            batch_X = jax.lax.dynamic_slice_in_dim(Xd, at, size)
            batch_y = jax.lax.dynamic_slice_in_dim(yd, at, size)
            state, loss, accuracy = step(state, batch_X, batch_y)
            return state, (loss, accuracy)

        return jax.lax.scan(body, state, jnp.arange(count))

    compiled = jax.jit(many, donate_argnums=0, static_argnums=2)
    state = _initial_state(spec, params)
    at = [0]

    def run(k: int) -> None:
        for count in [steps] * (k // steps) + ([k % steps] if k % steps else []):
            new, _figures = compiled(tuple(state), at[0], count)
            state[:] = new
            at[0] = (at[0] + count) % spec.per_epoch

    return _impl(f"jax lax.scan {steps}", state, run)
