"""Class-flip label noise, the overlap device of Chidambaram & Ge (ICLR 2024, arXiv 2306.00740;
METHODS 5 (a), their ``utils/data_utils.py::LabelNoiseDataset``).

Each class k is mapped once to a random other class c(k); each training label y is then replaced
by c(y) with probability eta. The noisy labels make the class-conditional supports overlap, the
regime in which the paper claims TS of an interpolating ERM model degrades and Mixup does not.
Applied to training labels only (validation, calibration and test stay clean); a benchmark option,
never a training default (``TrainConfig.label_noise`` = 0).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from training.errors import TrainingError


def flip_map(num_classes: int, rng: np.random.Generator) -> NDArray[np.int64]:
    """c: class k -> a uniformly drawn class != k (one draw per class)."""
    if num_classes < 2:
        raise TrainingError("--label-noise needs at least two classes")
    offsets = rng.integers(1, num_classes, size=num_classes)
    return (np.arange(num_classes) + offsets) % num_classes


def flip_labels(labels: NDArray[np.int64], num_classes: int, eta: float, seed: int) -> NDArray[np.int64]:
    """y_i -> c(y_i) with probability eta, independently per row; seeded by (seed, 3)."""
    if not 0.0 <= eta < 1.0:
        raise TrainingError(f"--label-noise: eta must be in [0, 1), got {eta}")
    if eta == 0.0:
        return labels.copy()
    rng = np.random.default_rng([seed, 3])
    mapping = flip_map(num_classes, rng)
    flipped = rng.random(len(labels)) < eta
    return np.where(flipped, mapping[labels], labels).astype(np.int64)
