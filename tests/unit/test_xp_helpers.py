"""The small Array API helpers behind the hot path: each against NumPy's own form."""

from __future__ import annotations

import array_api_compat.numpy as np_xp
import numpy as np
import pytest

from nnx import _xp
from nnx._xp import column_sums, one_hot, pick, row_max, row_sums

strict = pytest.importorskip("array_api_strict")
NAMESPACES = {"numpy": (np_xp, np.asarray), "array_api_strict": (strict, strict.asarray)}


@pytest.fixture(params=sorted(NAMESPACES))
def space(request):
    return NAMESPACES[request.param]


@pytest.mark.parametrize("columns", [1, 2, 3, 4, 5, 10, 17, 64])
def test_row_max_is_the_row_maximum(space, columns):
    xp, asarray = space
    x = np.random.default_rng(columns).standard_normal((6, columns)).astype(np.float32)
    x[0, -1] = 50.0  # the maximum in the last column, where an odd fold overlaps
    x[1, 0] = -np.inf
    result = np.asarray(row_max(xp, asarray(x)))
    np.testing.assert_array_equal(result, x.max(axis=1, keepdims=True))


def test_row_max_keeps_nan():
    x = np.array([[1.0, np.nan, 3.0], [1.0, 2.0, 3.0]])
    np.testing.assert_array_equal(row_max(np_xp, x), [[np.nan], [3.0]])


def test_sums_pick_and_one_hot(space):
    xp, asarray = space
    x = np.arange(12, dtype=np.float64).reshape(4, 3) ** 1.5
    labels = np.array([2, 0, 1, 2])
    np.testing.assert_allclose(np.asarray(column_sums(xp, asarray(x))), x.sum(0, keepdims=True))
    np.testing.assert_allclose(np.asarray(row_sums(xp, asarray(x))), x.sum(1, keepdims=True))
    np.testing.assert_array_equal(
        np.asarray(pick(xp, asarray(x), asarray(labels))), x[range(4), labels]
    )
    onehot = one_hot(xp, asarray(labels), 3, xp.float32, device_of(xp))
    np.testing.assert_array_equal(np.asarray(onehot), np.eye(3, dtype=np.float32)[labels])


def device_of(xp):
    return xp.asarray([0.0]).device


def test_constants_are_kept_per_namespace_shape_and_dtype():
    first = _xp._constant(np_xp, "ones", (1, 7), np.float32, "cpu")
    assert _xp._constant(np_xp, "ones", (1, 7), np.float32, "cpu") is first
    assert _xp._constant(np_xp, "ones", (1, 7), np.float64, "cpu") is not first
    # Another namespace object (a wrapped one, say) never shares a constant.
    assert _xp._constant(strict, "ones", (1, 7), strict.float32, device_of(strict)) is not first


def test_constants_table_stays_small():
    for n in range(3 * _xp._MAX_CONSTANTS):
        _xp._constant(np_xp, "arange", (n + 1, 1), None, "cpu")
    assert len(_xp._CONSTANTS) <= _xp._MAX_CONSTANTS
    np.testing.assert_array_equal(
        _xp._constant(np_xp, "arange", (5, 3), None, "cpu"), [0, 3, 6, 9, 12]
    )


class _UnhashableDevice:
    """Like CuPy's devices: comparable, printable, not hashable."""

    __hash__ = None  # type: ignore[assignment]

    def __eq__(self, other):
        return isinstance(other, _UnhashableDevice)

    def __str__(self):
        return "device 0"


class _Namespace:
    """A NumPy namespace whose creation functions accept the device above."""

    __name__ = "fake"

    def __init__(self):
        self.built = 0

    def ones(self, shape, dtype=None, device=None):
        self.built += 1
        return np.ones(shape, dtype=dtype)


def test_constants_with_an_unhashable_device_are_kept_by_name():
    xp, device = _Namespace(), _UnhashableDevice()
    first = _xp._constant(xp, "ones", (1, 3), np.float32, device)
    assert _xp._constant(xp, "ones", (1, 3), np.float32, device) is first
    assert xp.built == 1
