"""Shifted Fashion-MNIST streams for the closed recalibration loop (bench/recalibration.py and
tests/e2e/test_recalibration_loop.py). numpy only: no torch, nothing from service/.

Source: the official Fashion-MNIST test split (10,000 images, 1,000 per class). The bundled model
was fitted on the training files (its train part and validation carve, training/data.py), so no
image drawn here took part in training or in fitting its calibration map.

Two shifts, alone or together (``ShiftSpec``):

- contrast: x' = m + alpha (x - m), m the image's own mean pixel, rounded to uint8. At alpha = 0.4
  the bundled model stays 86% accurate but becomes under-confident (mean confidence 0.67, ECE 0.19
  on the 10,000 test images, against 0.91 / 0.92 / 0.011 unshifted): a temperature below 1 fixes it.
- class prior: classes in ``keep`` at full rate, every other class at ``rate`` (label shift: p(x|y)
  unchanged, p(y) moved), which the prior-shift method corrects without labels.

``split`` draws two disjoint streams with the same class mix, per class from one seeded
permutation: the production ``window`` (sent through predict, then labelled through feedback) and
``fresh`` data from the same shift, used only to evaluate old and new versions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

PIXEL_MAX = 255


@dataclass(frozen=True)
class ShiftSpec:
    """A named shift: contrast factor alpha (1: none) and the classes kept at full rate (empty:
    every class at full rate), the others kept at ``rate``."""

    name: str
    contrast: float = 1.0
    keep: tuple[int, ...] = ()
    rate: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.contrast <= 1:
            raise ValueError(f"contrast must lie in (0, 1], got {self.contrast}")
        if not 0 < self.rate <= 1:
            raise ValueError(f"rate must lie in (0, 1], got {self.rate}")

    def class_rates(self, n_classes: int) -> NDArray[np.float64]:
        """Per-class sampling rate: 1 for kept classes (or for all when none is named), else rate."""
        if not self.keep:
            return np.ones(n_classes)
        return np.where(np.isin(np.arange(n_classes), self.keep), 1.0, self.rate)


CONTRAST = ShiftSpec("contrast", contrast=0.4)
# T-shirt/top, Pullover and Shirt: the classes the model confuses most, so their prior matters most.
CLASS_PRIOR = ShiftSpec("class-prior", keep=(0, 2, 6), rate=0.1)
NONE = ShiftSpec("none")  # the control: nothing to fix
SHIFTS = {spec.name: spec for spec in (CONTRAST, CLASS_PRIOR, NONE)}


@dataclass(frozen=True)
class Stream:
    """Images (N, H, W) uint8 and their true class indices (N,), in the order they are sent."""

    images: NDArray[np.uint8]
    labels: NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.labels)

    def class_counts(self, n_classes: int) -> NDArray[np.int64]:
        """Images per class."""
        return np.bincount(self.labels, minlength=n_classes).astype(np.int64)


@dataclass(frozen=True)
class ShiftedSplit:
    """The production window and the disjoint fresh evaluation set of one shift."""

    spec: ShiftSpec
    window: Stream
    fresh: Stream
    source_rows: tuple[NDArray[np.intp], NDArray[np.intp]] = field(repr=False)


def reduce_contrast(images: NDArray[np.uint8], alpha: float) -> NDArray[np.uint8]:
    """x' = m + alpha (x - m) per image (m its mean pixel), rounded and clipped to [0, 255]."""
    x = images.astype(np.float64)
    mean = x.mean(axis=tuple(range(1, x.ndim)), keepdims=True)
    reduced: NDArray[np.uint8] = np.clip(np.rint(mean + alpha * (x - mean)), 0, PIXEL_MAX).astype(np.uint8)
    return reduced


def class_quota(spec: ShiftSpec, per_class: int, n_classes: int) -> NDArray[np.int64]:
    """Images per class in each stream: round(rate_c * per_class), at least 1."""
    return np.maximum(1, np.rint(spec.class_rates(n_classes) * per_class)).astype(np.int64)


def split(
    images: NDArray[np.uint8], labels: NDArray[np.int64], spec: ShiftSpec, per_class: int, seed: int = 0
) -> ShiftedSplit:
    """Window and fresh streams of ``spec``: class c contributes quota_c images to each, drawn
    without overlap from a seeded permutation of its images; each stream is then shuffled.

    ``per_class`` is the full-rate quota; it must leave room for both streams (2 per_class images
    of every class kept at full rate).
    """
    n_classes = int(labels.max()) + 1
    quota = class_quota(spec, per_class, n_classes)
    available = np.bincount(labels, minlength=n_classes)
    if np.any(2 * quota > available):
        raise ValueError(f"per_class={per_class} needs {2 * quota.max()} images of a class, have {available.min()}")
    rng = np.random.default_rng(seed)
    window_rows, fresh_rows = [], []
    for c in range(n_classes):
        rows = rng.permutation(np.flatnonzero(labels == c))
        window_rows.append(rows[: quota[c]])
        fresh_rows.append(rows[quota[c] : 2 * quota[c]])
    window, fresh = (rng.permutation(np.concatenate(parts)) for parts in (window_rows, fresh_rows))
    shown = _stream(images, labels, window, spec), _stream(images, labels, fresh, spec)
    return ShiftedSplit(spec, shown[0], shown[1], (window, fresh))


def _stream(images: NDArray[np.uint8], labels: NDArray[np.int64], rows: NDArray[np.intp], spec: ShiftSpec) -> Stream:
    shown = images[rows]
    if spec.contrast != 1.0:
        shown = reduce_contrast(shown, spec.contrast)
    return Stream(shown, labels[rows].astype(np.int64))
