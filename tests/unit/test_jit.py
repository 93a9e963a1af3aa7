"""``nnx.compile``: the book's own chapter-10 epoch, compiled by the parts' backend (issue 26).

The compiled epoch must train as the eager one does, leave no traced value on any part, keep
the optimizer's counter and learning rate as Python numbers, and refuse what it cannot carry
(parts from a closure or a global, host draws, unhashable arguments) with a message.
"""

from __future__ import annotations

import numpy as np
import pytest

import nnx
from nnx.datasets import spiral_data
from nnx.testing.training import book_epoch as epoch  # the book's chapter-10 epoch

X, Y = spiral_data(samples=60, classes=3, seed=0)
X = X.astype(np.float32)


def _parts(backend: str, optimizer: str = "sgd") -> tuple[object, ...]:
    dense1 = nnx.Dense(2, 32, seed=1, backend=backend)
    dense2 = nnx.Dense(32, 3, seed=2, backend=backend)
    make = {
        "sgd": lambda: nnx.SGD(learning_rate=0.5, decay=1e-3, momentum=0.9, backend=backend),
        "adam": lambda: nnx.Adam(learning_rate=0.02, decay=1e-4, backend=backend),
    }
    loss_activation = nnx.SoftmaxCategoricalCrossentropy(backend=backend)
    return dense1, nnx.ReLU(backend=backend), dense2, loss_activation, make[optimizer]()


def _run(function, parts, epochs: int) -> list[float]:
    return [float(function(*parts, X, Y)[0]) for _ in range(epochs)]


def _jax() -> None:
    pytest.importorskip("jax", reason='nnx.compile compiles with jax: pip install -e ".[jax]"')


@pytest.mark.parametrize(("optimizer", "epochs", "rtol"), [("sgd", 40, 1e-5), ("adam", 10, 1e-4)])
def test_the_book_epoch_compiled_trains_as_the_eager_epoch(optimizer, epochs, rtol):
    _jax()
    eager, compiled = _parts("jax", optimizer), _parts("jax", optimizer)
    step = nnx.compile(epoch)
    np.testing.assert_allclose(_run(step, compiled, epochs), _run(epoch, eager, epochs), rtol=rtol)
    assert step.traces == 1
    for got, expected in zip(compiled[0].get_parameters(), eager[0].get_parameters(), strict=True):
        np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=50 * rtol, atol=1e-6)
    # The book's print line reads these between calls: Python numbers, as eagerly.
    opt, eager_opt = compiled[4], eager[4]
    assert type(opt.iterations) is int and opt.iterations == eager_opt.iterations == epochs
    assert type(opt.current_learning_rate) is float
    assert opt.current_learning_rate == pytest.approx(eager_opt.current_learning_rate)


def test_no_part_holds_a_traced_value_after_a_call():
    _jax()
    import jax

    parts = _parts("jax", "adam")
    loss, output = nnx.compile(epoch)(*parts, X, Y)
    assert output.shape == (len(X), 3) and float(loss) > 0
    for part in [*parts, parts[3].activation, parts[3].loss]:
        for name, value in vars(part).items():
            assert not isinstance(value, jax.core.Tracer), (type(part).__name__, name)
    assert not hasattr(parts[0], "dweights") and not hasattr(parts[3], "output")


def test_a_python_number_argument_is_compiled_in_and_a_new_value_compiles_again():
    _jax()

    def scaled(dense, optimizer, X, factor):
        dense.forward(X * factor)
        dense.backward(dense.output)
        optimizer.update_params(dense)
        return dense.output

    dense, optimizer = nnx.Dense(2, 3, seed=1, backend="jax"), nnx.SGD(0.1, backend="jax")
    step = nnx.compile(scaled)
    first = np.asarray(step(dense, optimizer, X, 1.0))
    again = np.asarray(step(dense, optimizer, X, 2.0))
    assert step.traces == 2 and not np.allclose(first, again)


def test_a_part_whose_numbers_change_between_calls_compiles_again():
    """What a call works out from its parts is kept across calls with the same parts; a number
    a part reads (its ``config()``) changed in between still compiles a new program, which
    trains as the eager epoch with that number does, and other parts get their own."""
    _jax()
    compiled, eager = _parts("jax"), _parts("jax")
    step = nnx.compile(epoch)
    losses = [_run(step, compiled, 2), _run(epoch, eager, 2)]
    for parts in (compiled, eager):
        parts[4].learning_rate = 0.05  # the book's optimizer, retuned between epochs
    losses[0] += _run(step, compiled, 3)
    losses[1] += _run(epoch, eager, 3)
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5)
    assert step.traces == 2
    _run(step, _parts("jax"), 1)
    assert step.traces == 3  # other parts: a program of their own


def test_on_a_backend_without_a_compiler_the_function_runs_as_it_is():
    compiled, plain = _parts("numpy"), _parts("numpy")
    assert _run(nnx.compile(epoch), compiled, 5) == _run(epoch, plain, 5)


def test_parts_from_a_closure_or_a_global_are_refused():
    _jax()
    dense1, activation1, dense2, loss_activation, optimizer = _parts("jax")

    def hidden(dense1, optimizer, X):
        dense1.forward(X)
        dense2.forward(dense1.output)  # dense2 from the closure
        return dense2.output

    with pytest.raises(TypeError, match=r"uses dense2 \(Dense\) from outside .* argument"):
        nnx.compile(hidden)(dense1, optimizer, X)
    globals()["GLOBAL_LAYER"] = dense2
    try:

        def from_global(dense1, X):
            return GLOBAL_LAYER.forward(dense1.forward(X))  # noqa: F821

        with pytest.raises(TypeError, match="uses GLOBAL_LAYER"):
            nnx.compile(from_global)(dense1, X)
    finally:
        del globals()["GLOBAL_LAYER"]


def test_what_cannot_be_carried_is_refused_with_a_message():
    _jax()
    dense = nnx.Dense(2, 3, seed=1, backend="jax")
    dropout = nnx.Dropout(0.5, seed=0, backend="jax")
    with pytest.raises(TypeError, match=r"draws its random numbers on the host"):
        nnx.compile(lambda layer, X: layer.forward(X, training=True))(dropout, X)
    with pytest.raises(TypeError, match=r"hashable values .* got list"):
        nnx.compile(lambda layer, X, sizes: layer.forward(X))(dense, X, [1, 2])
    with pytest.raises(TypeError, match="got no nnx parts"):
        nnx.compile(lambda X: X)(X)


class HostRead(nnx.Layer):
    def forward(self, inputs, training=False):
        self.output = inputs / float(self.xp.max(inputs))
        return self.output


def test_a_part_that_reads_on_the_host_is_named():
    _jax()
    with pytest.raises(TypeError, match=r"nnx.compile cannot trace HostRead.*without it"):
        nnx.compile(lambda layer, X: layer.forward(X))(HostRead(backend="jax"), X)
