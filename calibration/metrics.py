"""Calibration and accuracy metrics over probabilities (N, K) and integer labels (N,).

Definitions follow METHODS "Decisions" 1 and section 1.3. All metrics return fractions (not %),
accumulate in float64 and are invariant to permuting the samples.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from calibration.binning import DEFAULT_BINS, BinStatistics, bin_indices
from calibration.errors import MetricInputError

_PROB_TOL = 1e-6


def check_inputs(probs: ArrayLike, labels: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.intp]]:
    """Validate and convert: probs finite (N, K) in [0, 1], labels integers in [0, K), N >= 1."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels)
    if p.ndim != 2:
        raise MetricInputError(f"probs must be 2-D (N, K), got shape {p.shape}")
    if y.ndim != 1 or y.shape[0] != p.shape[0]:
        raise MetricInputError(f"labels must be 1-D of length {p.shape[0]}, got shape {y.shape}")
    if p.shape[0] == 0:
        raise MetricInputError("metrics need at least one sample")
    if not np.issubdtype(y.dtype, np.integer):
        raise MetricInputError(f"labels must be integers, got dtype {y.dtype}")
    if not np.isfinite(p).all():
        raise MetricInputError("probs contain NaN or infinity")
    if p.min() < -_PROB_TOL or p.max() > 1 + _PROB_TOL:
        raise MetricInputError("probs must lie in [0, 1]")
    if y.min() < 0 or y.max() >= p.shape[1]:
        raise MetricInputError(f"labels must lie in [0, {p.shape[1]}), got [{y.min()}, {y.max()}]")
    return np.clip(p, 0.0, 1.0), y.astype(np.intp)


def top_label(probs: NDArray[np.float64], labels: NDArray[np.intp]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Top-label confidence c_i = max_k p_ik and correctness a_i = 1[argmax_k p_ik = y_i]."""
    pred = probs.argmax(axis=1)
    conf = probs[np.arange(probs.shape[0]), pred]
    return conf, (pred == labels).astype(np.float64)


def bin_statistics(probs: ArrayLike, labels: ArrayLike, n_bins: int = DEFAULT_BINS) -> BinStatistics:
    """The per-bin sums of the top-label confidences (the state behind ECE and MCE)."""
    p, y = check_inputs(probs, labels)
    stats = BinStatistics(n_bins)
    stats.update(*top_label(p, y))
    return stats


def ece(probs: ArrayLike, labels: ArrayLike, n_bins: int = DEFAULT_BINS) -> float:
    """Top-label ECE, equal-width bins: sum_m |B_m|/N * |acc(B_m) - conf(B_m)|."""
    return bin_statistics(probs, labels, n_bins).compute_ece()


def mce(probs: ArrayLike, labels: ArrayLike, n_bins: int = DEFAULT_BINS) -> float:
    """Maximum calibration error: max over non-empty equal-width bins of |acc - conf|."""
    return bin_statistics(probs, labels, n_bins).compute_mce()


def adaptive_ece(probs: ArrayLike, labels: ArrayLike, n_bins: int = DEFAULT_BINS) -> float:
    """AdaECE: ECE over M equal-mass bins of the sorted confidences.

    Every sample lands in exactly one bin (the reference code drops the minimum, METHODS 1.3):
    after sorting, sample of rank r goes to bin floor(r * M / N), so bins hold floor or ceil of N/M.
    """
    p, y = check_inputs(probs, labels)
    conf, hit = top_label(p, y)
    order = np.argsort(conf, kind="stable")
    n = conf.shape[0]
    idx = (np.arange(n) * n_bins) // n
    gaps = np.bincount(idx, weights=conf[order] - hit[order], minlength=n_bins)
    return float(np.abs(gaps).sum() / n)


def classwise_ece(probs: ArrayLike, labels: ArrayLike, n_bins: int = DEFAULT_BINS,
                  num_classes: int | None = None) -> float:
    """Classwise ECE: (1/K) sum_k sum_m |B_mk|/N |mean 1[y=k] - mean p_k| over equal-width bins of p_ik.

    K defaults to probs.shape[1] (never inferred from the labels, which may miss a class).
    """
    p, y = check_inputs(probs, labels)
    n, k = p.shape
    if num_classes is not None and num_classes != k:
        raise MetricInputError(f"num_classes={num_classes} but probs have {k} columns")
    onehot = np.zeros_like(p)
    onehot[np.arange(n), y] = 1.0
    idx = bin_indices(p, n_bins) + n_bins * np.arange(k)[None, :]
    gaps = np.bincount(idx.ravel(), weights=(p - onehot).ravel(), minlength=n_bins * k)
    return float(np.abs(gaps).sum() / (n * k))


def nll(probs: ArrayLike, labels: ArrayLike, eps: float = 1e-12) -> float:
    """Negative log-likelihood mean_i -log p_{i, y_i} (probabilities floored at eps)."""
    p, y = check_inputs(probs, labels)
    return float(-np.log(np.maximum(p[np.arange(p.shape[0]), y], eps)).mean())


def brier(probs: ArrayLike, labels: ArrayLike) -> float:
    """Brier score (1/N) sum_i sum_k (p_ik - 1[y_i = k])^2, in [0, 2]."""
    p, y = check_inputs(probs, labels)
    sq = (p**2).sum(axis=1) - 2.0 * p[np.arange(p.shape[0]), y] + 1.0
    return float(sq.mean())


def accuracy(probs: ArrayLike, labels: ArrayLike) -> float:
    """Fraction of samples whose argmax equals the label."""
    p, y = check_inputs(probs, labels)
    return float((p.argmax(axis=1) == y).mean())
