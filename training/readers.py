"""Bring-your-own-data readers: ``npz:PATH``, ``folder:PATH`` and ``cifar10:PATH``.

Each returns an ``ImageDataset`` (uint8 NCHW images, int64 labels, class names, train and test
parts). Without a test part of its own, a data set gets a fixed 20% test carve (seed 0, independent
of the run's --seed, as for digits); the validation split is then carved from the training part by
the trainer's usual seeded rule. Every error names the file and how to fix it.

CIFAR-10's python batches are pickles. Unpickling can run arbitrary code, so they are read only from
the directory the user names, with a restricted unpickler that accepts nothing but numpy arrays
(``encoding='bytes'``, as the files were written by Python 2). A pickle asking for anything else is
refused.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from training.errors import DataFormatError, DataNotFoundError
from training.images import read_image_folder

TEST_FRACTION = 0.2
CIFAR10_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_FILES = (*CIFAR10_TRAIN_BATCHES, "test_batch", "batches.meta")

# What every reader returns: classes, train images (N, C, H, W), train labels, and the set's own
# test images and labels when it has a test part (None: a fixed test carve is made instead).
RawArrays = tuple[list[str], NDArray[np.uint8], NDArray[np.int64], NDArray[np.uint8] | None, NDArray[np.int64] | None]
# numpy.core is numpy._core since numpy 2; the files name the old module.
_PICKLE_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"): ("numpy._core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"): ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"): ("numpy", "ndarray"),
    ("numpy", "dtype"): ("numpy", "dtype"),
    ("_codecs", "encode"): ("_codecs", "encode"),
}


def fixed_test_carve(n: int, fraction: float = TEST_FRACTION) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """(train, test) indices: a seed-0 permutation, the first round(fraction n) are test."""
    order = np.random.default_rng(0).permutation(n)
    n_test = max(1, int(round(fraction * n)))
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def as_nchw(x: NDArray[Any], source: str) -> NDArray[np.uint8]:
    """(N, H, W) -> (N, 1, H, W); (N, C, H, W) kept; uint8 required."""
    if x.dtype != np.uint8:
        raise DataFormatError(
            f"{source}: images must be uint8 in [0, 255], got {x.dtype}; "
            "convert with np.clip(x * 255, 0, 255).astype(np.uint8) if in [0, 1]"
        )
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4:
        return x
    raise DataFormatError(
        f"{source}: images must be (N, H, W) or (N, C, H, W), got {x.shape}; "
        "for channels-last (N, H, W, C) use x.transpose(0, 3, 1, 2)"
    )


def as_labels(y: NDArray[Any], n: int, num_classes: int | None, source: str) -> NDArray[np.int64]:
    """Integer labels (n,) in [0, K); K = num_classes when given."""
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
        raise DataFormatError(
            f"{source}: labels must be integers of shape ({n},), got {y.dtype} "
            f"{y.shape}; map class names to 0..K-1 first"
        )
    high = num_classes if num_classes is not None else int(y.max(initial=0)) + 1
    if n and (y.min() < 0 or y.max() >= high):
        raise DataFormatError(
            f"{source}: labels must lie in [0, {high}), got [{y.min()}, {y.max()}]; "
            "renumber them 0..K-1 (and list K names in 'classes')"
        )
    return y.astype(np.int64)


def read_npz(path: Path) -> dict[str, NDArray[Any]]:
    """The arrays of an .npz (allow_pickle=False: no code runs)."""
    if not path.is_file():
        raise DataNotFoundError(f"{path} not found: pass --data npz:PATH with an existing .npz file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except (ValueError, OSError) as error:
        raise DataFormatError(
            f"{path}: not a readable .npz without pickles ({error}); save it with np.savez(path, x=images, y=labels)"
        ) from error


def load_npz(path: Path) -> RawArrays:
    """Arrays x, y (required), classes, x_test, y_test (optional) of an .npz file."""
    arrays = read_npz(path)
    missing = [key for key in ("x", "y") if key not in arrays]
    if missing or (("x_test" in arrays) != ("y_test" in arrays)):
        raise DataFormatError(
            f"{path}: needs arrays x and y (and x_test with y_test together), has "
            f"{sorted(arrays)}; save with np.savez(path, x=..., y=...)"
        )
    given = [str(c) for c in arrays["classes"]] if "classes" in arrays else None
    x = as_nchw(arrays["x"], f"{path} [x]")
    y = as_labels(arrays["y"], len(x), len(given) if given else None, f"{path} [y]")
    if "x_test" not in arrays:
        return _class_names(given, y), x, y, None, None
    x_test = as_nchw(arrays["x_test"], f"{path} [x_test]")
    if x_test.shape[1:] != x.shape[1:]:
        raise DataFormatError(
            f"{path}: x_test images are {x_test.shape[1:]}, x are {x.shape[1:]}; both must have the same (C, H, W)"
        )
    classes = _class_names(given, y)
    return (
        classes,
        x,
        y,
        x_test,
        as_labels(arrays["y_test"], len(x_test), len(classes), f"{path} [y_test]"),
    )


def _class_names(given: list[str] | None, y: NDArray[np.int64]) -> list[str]:
    return given if given is not None else [str(k) for k in range(int(y.max(initial=0)) + 1)]


def load_folder(path: Path) -> RawArrays:
    """PATH/<class>/<image> (or PATH/train/<class>/... with PATH/test/<class>/...)."""
    if not path.is_dir():
        raise DataNotFoundError(
            f"{path} not found: pass --data folder:PATH, a directory with one sub-folder of images per class"
        )
    subdirs = {p.name for p in path.iterdir() if p.is_dir()}
    if subdirs == {"train", "test"}:
        classes, x, y = read_image_folder(path / "train")
        test_classes, x_test, y_test = read_image_folder(path / "test", classes)
        if x_test.shape[1:] != x.shape[1:]:
            raise DataFormatError(
                f"{path / 'test'}: images are {x_test.shape[1:]} but train's are "
                f"{x.shape[1:]}; give both the same size and colour mode"
            )
        return classes, x, y, x_test, y_test
    classes, x, y = read_image_folder(path)
    return classes, x, y, None, None


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Resolves only the globals a pickled numpy array needs; anything else is refused."""

    def find_class(self, module: str, name: str) -> Any:
        target = _PICKLE_ALLOWED.get((module, name))
        if target is None:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(*target)


def read_cifar_pickle(path: Path) -> dict[bytes, Any]:
    """One CIFAR python batch: a dict with bytes keys (restricted unpickler, encoding='bytes')."""
    if not path.is_file():
        raise DataNotFoundError(
            f"{path} not found: --data cifar10:DIR needs the extracted cifar-10-batches-py "
            f"directory holding {', '.join(CIFAR10_FILES)}"
        )
    try:
        record = _NumpyOnlyUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
        raise DataFormatError(
            f"{path}: not a CIFAR-10 python batch ({error}); use the files of cifar-10-python.tar.gz unchanged"
        ) from error
    if not isinstance(record, dict):
        raise DataFormatError(f"{path}: expected a pickled dict, got {type(record).__name__}")
    return record


def cifar_batch(path: Path) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """Images (N, 3, 32, 32) from rows of 3072 bytes (1024 R, 1024 G, 1024 B) and labels."""
    record = read_cifar_pickle(path)
    if b"data" not in record or b"labels" not in record:
        raise DataFormatError(
            f"{path}: lacks b'data' or b'labels' (CIFAR-100 files use b'fine_labels' and are not CIFAR-10)"
        )
    data = np.asarray(record[b"data"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataFormatError(f"{path}: b'data' must be uint8 (N, 3072), got {data.dtype} {data.shape}")
    labels = as_labels(np.asarray(record[b"labels"], dtype=np.int64), len(data), 10, str(path))
    return data.reshape(-1, 3, 32, 32), labels


def load_cifar10(directory: Path) -> RawArrays:
    """CIFAR-10 python version: data_batch_1..5 (train), test_batch, class names in batches.meta."""
    meta = read_cifar_pickle(directory / "batches.meta")
    classes = [name.decode() if isinstance(name, bytes) else str(name) for name in meta.get(b"label_names", [])]
    if len(classes) != 10:
        raise DataFormatError(f"{directory / 'batches.meta'}: expected 10 b'label_names', got {len(classes)}")
    parts = [cifar_batch(directory / name) for name in CIFAR10_TRAIN_BATCHES]
    x_test, y_test = cifar_batch(directory / "test_batch")
    x = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    return classes, x, y, x_test, y_test
