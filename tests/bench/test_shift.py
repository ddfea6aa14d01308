"""The shifted streams of the recalibration loop: disjoint, seeded, with the class mix asked for."""

from __future__ import annotations

import numpy as np
import pytest

from bench.shift import CLASS_PRIOR, CONTRAST, ShiftSpec, class_quota, reduce_contrast, split


def toy_set(per_class: int = 20, n_classes: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Images whose first pixel is their row number (to trace them), labels class-sorted."""
    n = per_class * n_classes
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(n, 6, 6)).astype(np.uint8)
    images[:, 0, 0] = np.arange(n) % 256
    return images, np.repeat(np.arange(n_classes), per_class).astype(np.int64)


def test_window_and_fresh_are_disjoint_with_the_same_class_mix() -> None:
    images, labels = toy_set()
    spec = ShiftSpec("prior", keep=(1, 3), rate=0.25)
    shifted = split(images, labels, spec, per_class=8, seed=3)
    window, fresh = shifted.source_rows
    assert not set(window) & set(fresh)
    expected = np.array([2, 8, 2, 8])
    assert shifted.window.class_counts(4).tolist() == expected.tolist()
    assert shifted.fresh.class_counts(4).tolist() == expected.tolist()
    assert np.array_equal(shifted.window.labels, labels[window])


def test_split_is_a_function_of_the_seed() -> None:
    images, labels = toy_set()
    a, b, c = (split(images, labels, CONTRAST, per_class=5, seed=s) for s in (7, 7, 8))
    assert np.array_equal(a.window.images, b.window.images) and np.array_equal(a.fresh.labels, b.fresh.labels)
    assert not np.array_equal(a.source_rows[0], c.source_rows[0])


def test_contrast_keeps_each_image_mean_and_shrinks_its_spread() -> None:
    images, _ = toy_set()
    reduced = reduce_contrast(images, 0.4)
    x, y = images.astype(float), reduced.astype(float)
    assert np.abs(y.mean(axis=(1, 2)) - x.mean(axis=(1, 2))).max() < 0.5  # rounding only
    assert np.allclose(y.std(axis=(1, 2)), 0.4 * x.std(axis=(1, 2)), atol=0.5)
    assert reduced.dtype == np.uint8


def test_no_contrast_shift_leaves_images_untouched() -> None:
    images, labels = toy_set()
    shifted = split(images, labels, CLASS_PRIOR, per_class=5)
    assert np.array_equal(shifted.window.images, images[shifted.source_rows[0]])


def test_quota_beyond_the_data_is_refused() -> None:
    images, labels = toy_set(per_class=10)
    with pytest.raises(ValueError, match="per_class=6"):
        split(images, labels, CONTRAST, per_class=6)


def test_every_class_keeps_at_least_one_image() -> None:
    assert class_quota(ShiftSpec("rare", keep=(0,), rate=0.01), per_class=10, n_classes=3).tolist() == [10, 1, 1]
