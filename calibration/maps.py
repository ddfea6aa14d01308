"""Post-hoc calibration maps in numpy (the ONNX graph fuses the same maps)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray


def log_softmax(logits: ArrayLike) -> NDArray[np.float64]:
    """Numerically stable log softmax over the last axis."""
    z = np.asarray(logits, dtype=np.float64)
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def softmax(logits: ArrayLike) -> NDArray[np.float64]:
    """softmax(z)_k = exp(z_k) / sum_j exp(z_j), stable."""
    return np.exp(log_softmax(logits))


def temperature_scale(logits: ArrayLike, temperature: float) -> NDArray[np.float64]:
    """Temperature scaling (Guo et al. 2017): p = softmax(z / T), T > 0."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return softmax(np.asarray(logits, dtype=np.float64) / temperature)
