"""Data readers and splits: IDX parsing on files the test writes, the real Fashion-MNIST, digits."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from training.data import (
    FASHION_MNIST_DIR,
    load_digits,
    load_fashion_mnist,
    normalize,
    read_idx,
    split_train_validation,
)
from training.errors import DataNotFoundError, TrainingError


def _write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)


@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_round_trip(tmp_path: Path, compress: bool) -> None:
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / ("x.idx.gz" if compress else "x.idx")
    _write_idx(path, images, compress)
    np.testing.assert_array_equal(read_idx(path), images)


def test_read_idx_rejects_bad_magic_and_truncation(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(TrainingError, match="bad magic"):
        read_idx(bad)
    short = tmp_path / "short"
    short.write_bytes(struct.pack(">BBBBI", 0, 0, 8, 1, 10) + b"\0" * 3)
    with pytest.raises(TrainingError, match="expected 10 values"):
        read_idx(short)


def test_fashion_mnist_files_from_the_debian_package() -> None:
    ds = load_fashion_mnist(FASHION_MNIST_DIR)
    assert ds.train_x.shape == (60000, 1, 28, 28) and ds.test_x.shape == (10000, 1, 28, 28)
    assert ds.train_x.dtype == np.uint8
    assert np.bincount(ds.test_y).tolist() == [1000] * 10
    assert len(ds.classes) == 10 and ds.classes[9] == "Ankle boot"


def test_missing_fashion_mnist_names_the_package(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path)


def test_split_is_deterministic_disjoint_and_complete() -> None:
    a, b = split_train_validation(1000, 0.1, seed=3), split_train_validation(1000, 0.1, seed=3)
    np.testing.assert_array_equal(a.validation, b.validation)
    assert len(a.validation) == 100
    assert not set(a.train) & set(a.validation)
    assert sorted([*a.train, *a.validation]) == list(range(1000))
    assert not np.array_equal(a.validation, split_train_validation(1000, 0.1, seed=4).validation)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.5])
def test_split_rejects_bad_fraction(fraction: float) -> None:
    with pytest.raises(TrainingError, match="validation fraction"):
        split_train_validation(10, fraction, seed=0)


def test_digits_is_a_fixed_uint8_image_set() -> None:
    ds = load_digits()
    assert ds.input_shape == (1, 8, 8)
    assert ds.train_x.max() == 255 and ds.train_x.dtype == np.uint8
    assert len(ds.train_y) + len(ds.test_y) == 1797
    np.testing.assert_array_equal(load_digits().test_y, ds.test_y)


def test_normalize_matches_formula() -> None:
    x = np.array([[[[0, 255]]]], dtype=np.uint8)
    out = normalize(x, [0.5], [0.25])
    np.testing.assert_allclose(out.ravel(), [(0 - 0.5) / 0.25, (1 - 0.5) / 0.25])
