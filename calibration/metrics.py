"""Calibration and accuracy metrics over probabilities (N, K) and integer labels (N,).

Definitions follow METHODS "Decisions" 1 and section 1.3. Every metric is
``metric(probs (N, K), labels (N,), **options) -> float``, returns a fraction (not %), accumulates
in float64 and is invariant to permuting the samples. float32 probabilities are read as they are
(no float64 copy of the (N, K) matrix), which keeps 10^7 samples cheap.

K = 1 is accepted: every prediction is then class 0 and correct, and c_i = p_i0.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from calibration.binning import DEFAULT_BINS, BinStatistics, bin_indices
from calibration.errors import MetricInputError
from calibration.smooth import sece_top_label, smooth_ece_top_label

FloatArray = NDArray[np.floating[Any]]
Metric = Callable[..., float]

_PROB_TOL = 1e-6
_BLOCK_ROWS = 1 << 15  # rows per block: a (block, K) slice stays in cache
_NARROW_K = 32  # up to this many classes, a running column maximum beats a per-row argmax


def _validated(probs: ArrayLike, labels: ArrayLike) -> tuple[FloatArray, NDArray[np.intp]]:
    """check_inputs without the float64 copy: float32 and float64 probabilities are kept as is."""
    p = np.asarray(probs)
    if p.dtype not in (np.float32, np.float64):
        if not (np.issubdtype(p.dtype, np.number) or p.dtype == np.bool_) or np.iscomplexobj(p):
            raise MetricInputError(f"probs must be real numbers, got dtype {p.dtype}")
        p = p.astype(np.float64)
    y = np.asarray(labels)
    if p.ndim != 2:
        raise MetricInputError(f"probs must be 2-D (N, K), got shape {p.shape}")
    if y.ndim != 1 or y.shape[0] != p.shape[0]:
        raise MetricInputError(f"labels must be 1-D of length {p.shape[0]}, got shape {y.shape}")
    if p.shape[0] == 0 or p.shape[1] == 0:
        raise MetricInputError(f"metrics need at least one sample and one class, got shape {p.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise MetricInputError(f"labels must be integers, got dtype {y.dtype}")
    low, high = float(p.min()), float(p.max())  # NaN propagates through min / max
    if not (np.isfinite(low) and np.isfinite(high)):
        raise MetricInputError("probs contain NaN or infinity")
    if low < -_PROB_TOL or high > 1 + _PROB_TOL:
        raise MetricInputError(f"probs must lie in [0, 1], got [{low}, {high}]")
    if y.min() < 0 or y.max() >= p.shape[1]:
        raise MetricInputError(f"labels must lie in [0, {p.shape[1]}), got [{y.min()}, {y.max()}]")
    if low < 0 or high > 1:
        p = np.clip(p, 0.0, 1.0)
    return p, y.astype(np.intp, copy=False)


def check_inputs(probs: ArrayLike, labels: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.intp]]:
    """Validate and convert: probs finite (N, K) float64 in [0, 1], labels integers in [0, K)."""
    p, y = _validated(probs, labels)
    return p.astype(np.float64, copy=False), y


def _check_n_bins(n_bins: int) -> None:
    if isinstance(n_bins, bool) or not isinstance(n_bins, int | np.integer) or n_bins < 1:
        raise MetricInputError(f"n_bins must be an integer >= 1, got {n_bins!r}")


def _row_max(probs: FloatArray) -> tuple[FloatArray, int]:
    """max_k p_ik for every row, and how many entries of the matrix exceed 1/2."""
    n, k = probs.shape
    if k > _NARROW_K:
        return probs.max(axis=1), int(np.count_nonzero(probs > 0.5))
    conf = np.empty(n, dtype=probs.dtype)
    above_half = 0
    for start in range(0, n, _BLOCK_ROWS):
        block = probs[start : start + _BLOCK_ROWS]
        out = conf[start : start + block.shape[0]]
        np.copyto(out, block[:, 0])
        for j in range(1, k):
            np.maximum(out, block[:, j], out=out)
        above_half += int(np.count_nonzero(block > 0.5))
    return conf, above_half


def top_label(probs: FloatArray, labels: NDArray[np.intp]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Top-label confidence c_i = max_k p_ik and correctness a_i = 1[argmax_k p_ik = y_i].

    argmax takes the first maximal class, as np.argmax. The label is an argmax iff p_iy = c_i; a tie
    with an earlier class needs two entries equal to c_i, so only rows with c_i <= 1/2 (or rows with
    two entries above 1/2, which are off the simplex) are checked with a per-row argmax.
    """
    n = probs.shape[0]
    conf, above_half = _row_max(probs)
    correct = probs.reshape(-1)[np.arange(n) * probs.shape[1] + labels] == conf
    suspects = correct if above_half > np.count_nonzero(conf > 0.5) else correct & (conf <= 0.5)
    rows = np.flatnonzero(suspects)
    correct[rows] = probs[rows].argmax(axis=1) == labels[rows]
    return conf.astype(np.float64), correct.astype(np.float64)


def confidence_and_correct(probs: ArrayLike, labels: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Validated top-label pairs (c_i, a_i): what every top-label metric is computed from."""
    return top_label(*_validated(probs, labels))


def bin_statistics(probs: ArrayLike, labels: ArrayLike, n_bins: int = DEFAULT_BINS) -> BinStatistics:
    """The per-bin sums of the top-label confidences (the state behind ECE and MCE)."""
    _check_n_bins(n_bins)
    stats = BinStatistics(n_bins)
    stats.update(*confidence_and_correct(probs, labels))
    return stats


def ece(probs: ArrayLike, labels: ArrayLike, n_bins: int = DEFAULT_BINS) -> float:
    """Top-label ECE (Guo et al. 2017), equal-width bins: sum_m |B_m|/N * |acc(B_m) - conf(B_m)|."""
    return bin_statistics(probs, labels, n_bins).compute_ece()


def mce(probs: ArrayLike, labels: ArrayLike, n_bins: int = DEFAULT_BINS) -> float:
    """Maximum calibration error: max over non-empty equal-width bins of |acc - conf|."""
    return bin_statistics(probs, labels, n_bins).compute_mce()


def equal_mass_bin_indices(conf: NDArray[np.float64], n_bins: int = DEFAULT_BINS) -> NDArray[np.intp]:
    """Equal-mass bin of each confidence: the equal-width rule lower < c <= upper on data edges.

    With s the sorted confidences, edge m is s[ceil(mN/M) - 1] (m = 1..M-1; order statistics by
    np.partition, no sort). For distinct confidences the sample of rank r lands in bin
    floor(rM/N), so bins hold floor(N/M) or ceil(N/M); equal confidences always share a bin.
    """
    n = conf.shape[0]
    ranks = -(-np.arange(1, n_bins) * n // n_bins) - 1
    edges = np.partition(conf, ranks)[ranks] if ranks.size else ranks.astype(np.float64)
    return np.searchsorted(edges, conf, side="left")


def adaptive_ece(probs: ArrayLike, labels: ArrayLike, n_bins: int = DEFAULT_BINS) -> float:
    """AdaECE (equal-mass ECE, Nguyen & O'Connor 2015; Mukhoti et al. 2020) over M bins.

    Every sample lands in exactly one bin; the reference code drops the minimum (METHODS 1.3).
    """
    _check_n_bins(n_bins)
    conf, correct = confidence_and_correct(probs, labels)
    gaps = np.bincount(equal_mass_bin_indices(conf, n_bins), weights=conf - correct, minlength=n_bins)
    return float(np.abs(gaps).sum() / conf.shape[0])


def classwise_ece(
    probs: ArrayLike, labels: ArrayLike, n_bins: int = DEFAULT_BINS, num_classes: int | None = None
) -> float:
    """Classwise ECE (Kull et al. 2019): (1/K) sum_k sum_m |B_mk|/N |mean 1[y=k] - mean p_k|.

    Equal-width bins of p_ik over all N samples. K is probs.shape[1] (never inferred from the
    labels, which may miss a class); ``num_classes``, when given, must agree with it.
    """
    _check_n_bins(n_bins)
    p, y = _validated(probs, labels)
    n, k = p.shape
    if num_classes is not None and num_classes != k:
        raise MetricInputError(f"num_classes={num_classes} but probs have {k} columns")
    offsets = n_bins * np.arange(k)
    gaps = np.zeros(n_bins * k)
    for start in range(0, n, _BLOCK_ROWS):
        block = p[start : start + _BLOCK_ROWS]
        idx = bin_indices(block, n_bins) + offsets
        gaps += np.bincount(idx.ravel(), weights=block.ravel(), minlength=n_bins * k)
    label_bins = bin_indices(p[np.arange(n), y], n_bins) + n_bins * y
    gaps -= np.bincount(label_bins, minlength=n_bins * k)
    return float(np.abs(gaps).sum() / (n * k))


def sece(probs: ArrayLike, labels: ArrayLike, n_bins: int = DEFAULT_BINS, bandwidth: float | None = None) -> float:
    """SECE, our reconstruction (METHODS 4, reading 1): Gaussian soft binning to M bin centres.

    (1/N) sum_m |sum_i o_im (a_i - c_i)|, o_im ~ exp(-(c_i - mu_m)^2 / 2 sigma^2) normalised over m,
    sigma = 1/(2M) by default; tends to ECE with the same M bins as sigma -> 0.
    """
    _check_n_bins(n_bins)
    return sece_top_label(*confidence_and_correct(probs, labels), n_bins, bandwidth)


def smooth_ece(probs: ArrayLike, labels: ArrayLike, bandwidth: float | None = None) -> float:
    """smECE (Blasiok & Nakkiran 2023): reflected-Gaussian-smoothed |c - a| integrated over [0, 1].

    bandwidth None: the fixed point smECE_s = s, found by bisection as relplot does.
    """
    return smooth_ece_top_label(*confidence_and_correct(probs, labels), bandwidth)


def nll(probs: ArrayLike, labels: ArrayLike, eps: float = 1e-12) -> float:
    """Negative log-likelihood mean_i -log p_{i, y_i} (probabilities floored at eps)."""
    p, y = _validated(probs, labels)
    on_label = p[np.arange(p.shape[0]), y].astype(np.float64)
    return float(-np.log(np.maximum(on_label, eps)).mean())


def brier(probs: ArrayLike, labels: ArrayLike) -> float:
    """Brier score (1/N) sum_i sum_k (p_ik - 1[y_i = k])^2, in [0, 2] (Brier 1950)."""
    p, y = _validated(probs, labels)
    n = int(p.shape[0])
    squares = 0.0
    for start in range(0, n, _BLOCK_ROWS):
        squares += float(np.square(p[start : start + _BLOCK_ROWS], dtype=np.float64).sum())
    on_label = float(p[np.arange(n), y].sum(dtype=np.float64))
    return max(0.0, (squares - 2.0 * on_label + n) / n)


def accuracy(probs: ArrayLike, labels: ArrayLike) -> float:
    """Fraction of samples whose argmax equals the label."""
    return float(confidence_and_correct(probs, labels)[1].mean())


def bootstrap_ci(
    metric: Metric,
    probs: ArrayLike,
    labels: ArrayLike,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    **options: Any,
) -> tuple[float, float]:
    """Percentile bootstrap interval (Efron & Tibshirani 1993) of metric(probs, labels, **options).

    Resamples the N rows with replacement n_resamples times; returns the (1 - confidence)/2 and
    (1 + confidence)/2 quantiles. ECE-type metrics are biased upwards at small N, so for a
    well-calibrated model the interval can sit above the point estimate.
    """
    if n_resamples < 1:
        raise MetricInputError(f"n_resamples must be >= 1, got {n_resamples}")
    if not 0 < confidence < 1:
        raise MetricInputError(f"confidence must lie in (0, 1), got {confidence}")
    p, y = _validated(probs, labels)
    rng = np.random.default_rng(seed)
    n = p.shape[0]
    values = [metric(p[idx], y[idx], **options) for idx in (rng.integers(0, n, n) for _ in range(n_resamples))]
    low, high = np.quantile(values, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)
