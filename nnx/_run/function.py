"""``nnx.compile``: a function of nnx parts, compiled by their backend's compiler (the idea of
flax.nnx's ``nnx.jit``), so the book's own loop runs compiled.

The book's chapter-10 epoch is a function of the parts it uses::

    @nnx.compile
    def epoch(dense1, activation1, dense2, loss_activation, optimizer, X, y):
        dense1.forward(X)
        ...
        optimizer.post_update_params()
        return loss, loss_activation.output

Each call carries the declared state of the parts passed as arguments in (parameters, the
optimizer's state, its counter and the step's factors, running sums), runs the unchanged
stateful code on it, and writes the new state back. The function is traced once per argument
shapes and Python values (and the parts' numbers, ``config()``): Python numbers among the
arguments are static, and a new value compiles again. Afterwards no part holds a traced value:
the arrays of one step (``output``, ``dweights``) are gone, so return what the caller reads,
and ``optimizer.iterations`` and ``current_learning_rate`` are Python numbers again, counted on
the host (the program's calls of ``post_update_params``), so the book's print line works
between calls without a read from the device. On a backend without a compiler the function
runs as it is.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from nnx import _state, _xp
from nnx._component import Component, common_backend
from nnx._layer import Layer
from nnx._run.tracing import Numbers, name_the_part
from nnx.optimizers import Optimizer

__all__ = ["compile"]


def compile(function: Callable[..., Any]) -> Callable[..., Any]:  # noqa: A001
    """``function``, compiled by the backend of the nnx parts passed to it (see the module's
    text). Usable as a decorator; ``.traces`` counts the traces."""
    return CompiledFunction(function)


class CompiledFunction:
    """A function of nnx parts and arrays, run as its backend's compiled code."""

    def __init__(self, function: Callable[..., Any]) -> None:
        functools.update_wrapper(self, function)
        self.function, self.traces = function, 0
        self._programs: dict[Any, tuple[Any, dict[str, Any]]] = {}
        self._plans: dict[tuple[int, ...], _Plan] = {}

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        given = [*args, *kwargs.values()]
        plan = self._plan([value for value in given if isinstance(value, Component)])
        if plan is None:
            return self.function(*args, **kwargs)
        parts, slots, optimizers = plan.parts, plan.slots, plan.optimizers
        for optimizer in optimizers:  # a fixed state from the first call on
            optimizer.make_state(plan.layers)
        # A running sum starts as the number 0.0: as an array of the dtype it will have (the
        # parameters', or the accuracy's count dtype), else the second call compiles again.
        numbers = [(h, name) for h, name in slots if isinstance(getattr(h, name), (int, float))]
        if numbers:
            held = [value for h, name in slots if _xp.is_array(value := getattr(h, name))]
            floats = held[0].dtype if held else plan.backend.dtype("float32")
            for holder, name in numbers:
                dtype = getattr(holder, "count_dtype", floats)
                setattr(holder, name, plan.backend.asarray(getattr(holder, name), dtype))
        arrays = [i for i, value in enumerate(given) if _maybe_array(value)]
        static = tuple(
            ("part", parts.index(value)) if isinstance(value, Component) else
            ("array",) if i in arrays else ("value", value)
            for i, value in enumerate(given)
        )  # fmt: skip
        key = (static, tuple(kwargs), tuple(map(id, parts)), plan.numbers(), id(plan.backend))
        try:
            program = self._programs.get(key)
        except TypeError:  # an unhashable argument: a list, a dict
            raise TypeError(
                f"nnx.compile: {self.function.__name__} takes nnx parts, arrays and hashable "
                "values (numbers, strings, tuples), which are compiled in; got "
                f"{', '.join(type(v).__name__ for v in given if not _static_ok(v))}."
            ) from None
        if program is None:
            _refuse_hidden_parts(self.function, parts)
            # The call as a template: its arrays' places left empty (the trace fills them), so
            # the program does not keep the first call's arrays alive.
            template = [None if i in arrays else value for i, value in enumerate(given)]
            program = self._programs[key] = self._make(
                template, arrays, list(kwargs), parts, slots, optimizers
            )
        compiled, counted = program
        state = [getattr(holder, name) for holder, name in slots]
        counters = [optimizer.iterations for optimizer in optimizers]
        factors = [[getattr(o, name) for name in o.step_factors] for o in optimizers]
        try:
            new, result = compiled(state, counters, factors, [given[i] for i in arrays])
        except Exception as err:
            name_the_part(err, parts, str, "nnx.compile", "call the function without it")
            raise
        _state.put(slots, new)
        for optimizer, steps in zip(optimizers, counted["steps"], strict=True):
            if steps:  # the counter and the step's factors as the eager calls leave them
                optimizer.restore_iterations(optimizer.iterations + steps)
        for (holder, name), added in zip(_counts(parts), counted["counts"], strict=True):
            setattr(holder, name, getattr(holder, name) + added)
        return result

    def _plan(self, arguments: list[Any]) -> _Plan | None:
        """What calls with these parts as arguments share, worked out at the first of them
        (the parts they hold, their backend, the state's slots); None where the backend has
        no compiler. Kept per parts: a book loop's call costs its host work every epoch."""
        key = tuple(map(id, arguments))
        plan = self._plans.get(key)
        if (
            plan is not None
            and all(a is b for a, b in zip(plan.arguments, arguments, strict=True))
            and all(part.backend is plan.backend for part in arguments)  # none moved (to())
        ):
            return plan
        parts = _all_parts(arguments)
        if not parts:
            raise TypeError(
                f"nnx.compile: {self.function.__name__} got no nnx parts (layers, losses, "
                "optimizers) as arguments; pass the parts it uses as arguments."
            )
        try:
            backend = common_backend(parts)
        except TypeError as err:
            raise TypeError(f"nnx.compile: {str(err).split(': ', 1)[1]}") from None
        if backend.compiler is None:
            return None
        for part in parts:
            if getattr(part, "draws_on_host", False):
                raise TypeError(
                    f"nnx.compile: {part} draws its random numbers on the host; a compiled "
                    "function would freeze one draw. Call it without nnx.compile, or train the "
                    "model with Model.train, which hands the draws in."
                )
        plan = self._plans[key] = _Plan(arguments, parts, backend)
        return plan

    def _make(
        self,
        template: list[Any],
        places: list[int],
        names: list[str],
        parts: list[Any],
        slots: Any,
        optimizers: list[Any],
    ) -> tuple[Any, dict[str, Any]]:
        """The compiled program for calls like this one (``template``: its arguments, then its
        keywords' values, ``names``; the arrays go in at ``places``), and what each call adds
        on the host (``steps`` per optimizer, running ``counts``), filled in when traced."""
        counted: dict[str, Any] = {}
        count_slots = _counts(parts)
        backend = parts[0].backend

        def pure(state: Any, counters: Any, factors: Any, arrays: Any) -> Any:
            self.traces += 1
            given = list(template)
            for place, array in zip(places, arrays, strict=True):
                given[place] = array
            positional = len(given) - len(names)
            call_args = given[:positional]
            call_kwargs = dict(zip(names, given[positional:], strict=True))
            with _borrowed(parts, slots, count_slots, optimizers), _xp.plain_operations():
                _state.put(slots, state)
                _state.put(count_slots, [0] * len(count_slots))
                for optimizer, counter, numbers in zip(optimizers, counters, factors, strict=True):
                    optimizer.iterations = counter
                    _state.put([(optimizer, name) for name in optimizer.step_factors], numbers)
                with _counting(optimizers) as steps:
                    result = self.function(*call_args, **call_kwargs)
                new = [getattr(holder, name) for holder, name in slots]
                counted.update(steps=steps, counts=[getattr(h, n) for h, n in count_slots])
            return new, result

        return backend.compiler.compile(pure, donate=(0,)), counted


class _Plan:
    """The parts of calls of a compiled function with the same parts as arguments, and what
    follows from them alone."""

    def __init__(self, arguments: list[Any], parts: list[Any], backend: Any) -> None:
        self.arguments, self.parts, self.backend = arguments, parts, backend
        self.optimizers = [part for part in parts if isinstance(part, Optimizer)]
        self.layers = [part for part in parts if isinstance(part, Layer)]
        for optimizer in self.optimizers:  # its slots exist from here on
            optimizer.make_state(self.layers)
        self.slots = _slots(parts, self.layers, self.optimizers)
        self._numbers = Numbers()

    def numbers(self) -> tuple[Any, ...]:
        """The Python numbers the parts read (``config()``), compiled in."""
        return self._numbers.of(self.parts)


def _maybe_array(value: Any) -> bool:
    """``_xp.is_array``, with the common arguments (numbers, strings, parts) answered first:
    the library's check costs a microsecond a value, every call."""
    if type(value) in (int, float, bool, str, tuple) or value is None:  # not NumPy scalars
        return False
    return not isinstance(value, Component) and _xp.is_array(value)


def _all_parts(parts: list[Any]) -> list[Any]:
    """``parts`` and the parts they hold (``parts`` declared: the fused loss's), once each."""
    found: list[Any] = []
    for part in parts:
        for inner in [part, *_all_parts([getattr(part, name) for name in part.parts])]:
            if all(inner is not seen for seen in found):
                found.append(inner)
    return found


def _slots(parts: list[Any], layers: list[Any], optimizers: list[Any]) -> list[tuple[Any, str]]:
    """The declared state of ``parts``: parameters, every optimizer's state for them, running
    sums. Counters and factors travel apart (Python numbers on the host)."""
    slots = [slot for o in optimizers for slot in _state.state_slots(layers, o).values()]
    if not optimizers:
        slots = list(_state.state_slots(layers, None).values())
    unique = list(dict.fromkeys((id(holder), name) for holder, name in slots))
    holders = {id(holder): holder for holder, _ in slots}
    return [(holders[i], name) for i, name in unique] + _state.declared(parts, "sums")


def _counts(parts: list[Any]) -> list[tuple[Any, str]]:
    return _state.declared(parts, "counts")


def _refuse_hidden_parts(function: Callable[..., Any], parts: list[Any]) -> None:
    """Refuse parts the function reaches through a closure or a global: their state would be
    compiled in as constants and never written back."""
    code = function.__code__  # type: ignore[attr-defined]
    cells = zip(code.co_freevars, function.__closure__ or (), strict=True)  # type: ignore[attr-defined]
    reached = [(name, cell.cell_contents) for name, cell in cells]
    reached += [(name, function.__globals__.get(name)) for name in code.co_names]  # type: ignore[attr-defined]
    for name, value in reached:
        if isinstance(value, Component) and all(value is not part for part in parts):
            raise TypeError(
                f"nnx.compile: {function.__name__} uses {name} ({type(value).__name__}) "  # type: ignore[attr-defined]
                "from outside (a closure or a global); its state would be compiled in and "
                f"never updated. Pass {name} as an argument."
            )


def _borrowed(parts: list[Any], slots: Any, count_slots: Any, optimizers: list[Any]) -> Any:
    """The parts as they were before the trace, after it: nothing traced stays on them."""
    numbers = [(o, name) for o in optimizers for name in ("iterations", *o.step_factors)]
    return _state.borrowed([*slots, *count_slots, *numbers], parts)


@contextmanager
def _counting(optimizers: list[Any]) -> Iterator[list[int]]:
    """Each optimizer's calls of ``post_update_params`` in the block, counted on the host."""
    steps = [0] * len(optimizers)

    def counter(i: int, post: Callable[[], None]) -> Callable[[], None]:
        def counted() -> None:
            post()
            steps[i] += 1

        return counted

    for i, optimizer in enumerate(optimizers):
        optimizer.post_update_params = counter(i, optimizer.post_update_params)
    try:
        yield steps
    finally:
        for optimizer in optimizers:
            del optimizer.post_update_params


def _static_ok(value: Any) -> bool:
    """Whether ``value`` can be compiled in (hashable), or needs not be (a part, an array)."""
    if isinstance(value, Component) or _xp.is_array(value):
        return True
    try:
        hash(value)
    except TypeError:
        return False
    return True
