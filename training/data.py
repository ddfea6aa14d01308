"""Data sets as uint8 NCHW arrays, with deterministic train / validation / test splits.

Fashion-MNIST is read from the IDX files of Debian's ``dataset-fashion-mnist`` with numpy (no
torchvision). scikit-learn's digits is the tiny set for fast tests. Your own data comes as
``npz:PATH``, ``folder:PATH`` or ``cifar10:PATH`` (training/readers.py). Validation is carved from
the training files by a seeded permutation; test is the official test set (or, for a set without one, a
fixed seed-0 carve) and is never used for fitting.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from training.errors import DataNotFoundError, TrainingError
from training.readers import fixed_test_carve, load_cifar10, load_folder, load_npz

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.int16, 0x0C: np.int32, 0x0D: np.float32}


@dataclass(frozen=True)
class ImageDataset:
    """Images (N, C, H, W) uint8 in [0, 255] and int64 labels, with the official train/test files."""

    name: str
    classes: list[str]
    train_x: NDArray[np.uint8]
    train_y: NDArray[np.int64]
    test_x: NDArray[np.uint8]
    test_y: NDArray[np.int64]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Per-instance shape (C, H, W)."""
        c, h, w = self.train_x.shape[1:]
        return int(c), int(h), int(w)


@dataclass(frozen=True)
class Split:
    """Index arrays into the training files: train and validation are disjoint."""

    train: NDArray[np.intp]
    validation: NDArray[np.intp]


def read_idx(path: Path) -> NDArray[np.generic]:
    """Read an IDX file (optionally gzip'd): magic 0x0000TTDD, D big-endian uint32 dims, then data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        raise TrainingError(f"{path}: not an IDX file (bad magic number)")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4).astype(int)
    dtype = np.dtype(IDX_DTYPES[raw[2]]).newbyteorder(">")
    data = np.frombuffer(raw, dtype=dtype, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise TrainingError(f"{path}: expected {int(np.prod(dims))} values, found {data.size}")
    return data.reshape(tuple(dims)).astype(dtype.newbyteorder("="))


def load_fashion_mnist(directory: Path = FASHION_MNIST_DIR) -> ImageDataset:
    """Fashion-MNIST: 60,000 training and 10,000 test images, 1x28x28, 10 classes."""
    names = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    paths = [_find_idx(directory, name) for name in names]
    train_x, train_y, test_x, test_y = (read_idx(p) for p in paths)
    return ImageDataset(
        name="fashion-mnist",
        classes=list(FASHION_MNIST_CLASSES),
        train_x=train_x[:, None].astype(np.uint8),
        train_y=train_y.astype(np.int64),
        test_x=test_x[:, None].astype(np.uint8),
        test_y=test_y.astype(np.int64),
    )


def _find_idx(directory: Path, stem: str) -> Path:
    for candidate in (directory / f"{stem}.gz", directory / stem):
        if candidate.is_file():
            return candidate
    raise DataNotFoundError(
        f"{directory / stem}.gz not found: install the Debian package "
        "'dataset-fashion-mnist' (apt-get install dataset-fashion-mnist)"
    )


def load_digits(test_fraction: float = 0.2) -> ImageDataset:
    """scikit-learn's 8x8 digits (1,797 images), scaled 0..16 -> 0..255; a fixed seed-0 test carve."""
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    labels = bunch.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(labels))
    n_test = int(round(test_fraction * len(labels)))
    test, train = order[:n_test], order[n_test:]
    return ImageDataset("digits", [str(d) for d in range(10)], images[train], labels[train], images[test], labels[test])


def from_arrays(
    name: str,
    classes: list[str],
    x: NDArray[np.uint8],
    y: NDArray[np.int64],
    x_test: NDArray[np.uint8] | None,
    y_test: NDArray[np.int64] | None,
) -> ImageDataset:
    """An ImageDataset; without a test part, a fixed seed-0 carve of 20% of (x, y) becomes test."""
    if x_test is None or y_test is None:
        train, test = fixed_test_carve(len(y))
        x, y, x_test, y_test = x[train], y[train], x[test], y[test]
    return ImageDataset(name, classes, x, y, x_test, y_test)


DATASETS: dict[str, Callable[[], ImageDataset]] = {"fashion-mnist": load_fashion_mnist, "digits": load_digits}
READERS = {"npz": load_npz, "folder": load_folder, "cifar10": load_cifar10}


def load_dataset(name: str) -> ImageDataset:
    """A built-in set by name, or ``npz:PATH``, ``folder:PATH``, ``cifar10:PATH``."""
    kind, sep, location = name.partition(":")
    if sep and kind in READERS and location:
        return from_arrays(name, *READERS[kind](Path(location).expanduser()))
    if name not in DATASETS:
        raise TrainingError(
            f"--data {name!r}: unknown data set; choose one of {sorted(DATASETS)}, "
            f"or {', '.join(f'{k}:PATH' for k in READERS)}"
        )
    return DATASETS[name]()


def split_train_validation(n: int, validation_fraction: float, seed: int) -> Split:
    """Seeded permutation of the training files: the first round(f*n) indices are validation."""
    if not 0.0 < validation_fraction < 1.0:
        raise TrainingError(f"validation fraction must be in (0, 1), got {validation_fraction}")
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(validation_fraction * n)))
    return Split(train=np.sort(order[n_val:]), validation=np.sort(order[:n_val]))


def carve_calibration(
    train_rows: NDArray[np.intp], train_subset: int, size: int, seed: int
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """(training rows, calibration rows): ``size`` rows drawn (seeded by (seed, 4)) from the pool
    the run does not train on, i.e. the rows after the first ``train_subset`` (with no subset, from
    the training rows themselves, which then shrink by ``size``). Disjoint, sorted."""
    used = train_rows[:train_subset] if train_subset else train_rows
    pool = train_rows[train_subset:] if train_subset else train_rows
    if size > len(pool) or (not train_subset and size >= len(pool)):
        raise TrainingError(f"--calibration-size {size}: only {len(pool)} training images left to carve from")
    calibration = np.sort(np.random.default_rng([seed, 4]).choice(pool, size=size, replace=False))
    return np.setdiff1d(used, calibration), calibration


def channel_statistics(images: NDArray[np.uint8]) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of images scaled to [0, 1] (computed on the training part only)."""
    scaled = images.astype(np.float64) / 255.0
    mean = scaled.mean(axis=(0, 2, 3))
    std = np.maximum(scaled.std(axis=(0, 2, 3)), 1e-6)
    return [float(m) for m in mean], [float(s) for s in std]


def normalize(images: NDArray[np.uint8], mean: list[float], std: list[float]) -> NDArray[np.float32]:
    """(x / 255 - mean_c) / std_c as float32, the preprocessing the manifest records."""
    m = np.asarray(mean, dtype=np.float32)[None, :, None, None]
    s = np.asarray(std, dtype=np.float32)[None, :, None, None]
    return ((images.astype(np.float32) / 255.0) - m) / s
