"""Data sets: IDX files (plain and gzip), Fashion-MNIST folders, scikit-learn's digits."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from nnx import datasets
from nnx.datasets import load_digits, load_fashion_mnist, load_idx

_CODES = {"uint8": 0x08, "int8": 0x09, "int16": 0x0B, "int32": 0x0C, "float32": 0x0D}
_CODES["float64"] = 0x0E


def write_idx(path, array, *, compress=False):
    """An IDX file: 00 00 <type> <ndim>, each dimension as big-endian uint32, big-endian data."""
    array = np.asarray(array)
    header = bytes([0, 0, _CODES[array.dtype.name], array.ndim])
    header += b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(payload) if compress else payload)
    return path


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("dtype", list(_CODES))
def test_idx_round_trip(tmp_path, dtype, compress):
    array = (np.arange(2 * 3 * 4) - 5).reshape(2, 3, 4).astype(dtype)
    if dtype == "uint8":
        array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4) * 10
    path = write_idx(tmp_path / "a-idx3-ubyte", array, compress=compress)
    got = load_idx(path)
    assert got.dtype == np.dtype(dtype) and got.dtype.isnative
    np.testing.assert_array_equal(got, array)


def test_idx_labels_one_dimension(tmp_path):
    labels = np.array([9, 0, 0, 3], dtype=np.uint8)
    path = write_idx(tmp_path / "l.gz", labels, compress=True)
    np.testing.assert_array_equal(load_idx(path), labels)


@pytest.mark.parametrize(
    "payload, match",
    [
        (b"\x12\x34\x08\x01\x00\x00\x00\x01\x07", "not an IDX file.*12 34 08 01"),
        (b"\x00\x00\x07\x01\x00\x00\x00\x01\x07", "not an IDX file"),  # unknown type code
        (b"", "an empty file"),
        (b"\x00\x00\x08\x03\x00\x00", "truncated"),  # ends inside the dimensions
        (b"\x00\x00\x08\x01\x00\x00\x00\x05\x01\x02", "needs 13 bytes.*10 bytes"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x01\x01\x02", "needs 9 bytes.*10 bytes"),  # trailing
    ],
)
def test_idx_corrupt_files_raise(tmp_path, payload, match):
    path = tmp_path / "bad-idx1-ubyte"
    path.write_bytes(payload)
    with pytest.raises(ValueError, match=match):
        load_idx(path)


def test_idx_damaged_gzip(tmp_path):
    path = tmp_path / "bad.gz"
    path.write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x01\x07")[:-6])
    with pytest.raises(ValueError, match="damaged gzip"):
        load_idx(path)


def fashion_folder(folder, n_train=12, n_test=5, compress=False):
    """A tiny Fashion-MNIST folder with random images and labels."""
    rng = np.random.default_rng(0)
    folder.mkdir(exist_ok=True)
    suffix = ".gz" if compress else ""
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = np.arange(n, dtype=np.uint8) % 10
        write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images, compress=compress)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels, compress=compress)
    return folder


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_fashion_mnist_folder(tmp_path, compress):
    X, y, X_test, y_test = load_fashion_mnist(fashion_folder(tmp_path / "f", compress=compress))
    assert X.shape == (12, 784) and X.dtype == np.float32
    assert X_test.shape == (5, 784)
    assert y.dtype == np.int64 and y_test.dtype == np.int64
    assert X.min() >= -1 and X.max() <= 1
    raw = load_idx(next((tmp_path / "f").glob("train-images*")))
    np.testing.assert_allclose(X[0], (raw[0].ravel() - 127.5) / 127.5, rtol=1e-6)
    np.testing.assert_array_equal(y_test, [0, 1, 2, 3, 4])


def test_fashion_mnist_missing_folder_and_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no folder .*nowhere.*fashion-mnist"):
        load_fashion_mnist(tmp_path / "nowhere")
    folder = fashion_folder(tmp_path / "f")
    (folder / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match=r"f has no t10k-labels-idx1-ubyte \(or .*\.gz\)"):
        load_fashion_mnist(folder)


def test_fashion_mnist_mismatched_counts(tmp_path):
    folder = fashion_folder(tmp_path / "f")
    write_idx(folder / "train-labels-idx1-ubyte", np.zeros(3, dtype=np.uint8))
    with pytest.raises(ValueError, match="has shape \\(12, 28, 28\\) but .* has 3 labels"):
        load_fashion_mnist(folder)


def test_load_digits():
    pytest.importorskip("sklearn")
    X, y = load_digits()
    assert X.shape == (1797, 64) and X.dtype == np.float32
    assert y.shape == (1797,) and y.dtype == np.int64
    assert X.min() == -1 and X.max() == 1
    assert set(np.unique(y)) == set(range(10))


def test_load_digits_without_sklearn(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_sklearn(name, *args, **kwargs):
        if name.startswith("sklearn"):
            raise ImportError("No module named 'sklearn'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    with pytest.raises(ImportError, match="pip install scikit-learn"):
        load_digits()


def test_book_data_sets_are_seeded():
    a, b = datasets.spiral_data(10, 3, seed=1), datasets.spiral_data(10, 3, seed=1)
    np.testing.assert_array_equal(a[0], b[0])
    assert a[0].dtype == np.float32 and a[1].dtype == np.int64
    X, y = datasets.sine_data(50)
    assert X.shape == y.shape == (50, 1)
