"""Equal-width confidence binning and the streaming statistics behind ECE.

One binning definition for offline evaluation, the manifest's reference figures and the live monitor
(METHODS "Decisions" 1): M equal-width bins, membership ``lower < c <= upper``, the first bin also
holds c = 0 and c = 1.0 lands in the last bin.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

DEFAULT_BINS = 15


def bin_edges(n_bins: int = DEFAULT_BINS) -> NDArray[np.float64]:
    """Edges 0 = e_0 < e_1 < ... < e_M = 1 of M equal-width bins."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    return np.linspace(0.0, 1.0, n_bins + 1)


def bin_indices(confidences: NDArray[np.floating], n_bins: int = DEFAULT_BINS) -> NDArray[np.intp]:
    """Bin index m (0-based) with e_m < c <= e_{m+1}; c = 0 goes to bin 0.

    ``searchsorted`` on the interior edges counts the edges strictly below c, which is exactly the
    bin index under the ``lower < c <= upper`` rule, with no float fix-ups.
    """
    interior = bin_edges(n_bins)[1:-1]
    return np.searchsorted(interior, confidences, side="left")


@dataclass
class BinStatistics:
    """Per-bin sums (count, confidence sum, correct sum): the O(M) state ECE is computed from.

    ECE = sum_b |sum conf_b - sum correct_b| / N. ``update`` adds a batch, ``merge`` adds another
    state (e.g. another replica or time bucket), ``compute_ece`` reads the metric.
    """

    n_bins: int = DEFAULT_BINS
    counts: NDArray[np.int64] = field(init=False)
    confidence_sums: NDArray[np.float64] = field(init=False)
    correct_sums: NDArray[np.float64] = field(init=False)

    def __post_init__(self) -> None:
        bin_edges(self.n_bins)  # validates n_bins
        self.reset()

    def reset(self) -> None:
        """Forget everything seen so far."""
        self.counts = np.zeros(self.n_bins, dtype=np.int64)
        self.confidence_sums = np.zeros(self.n_bins, dtype=np.float64)
        self.correct_sums = np.zeros(self.n_bins, dtype=np.float64)

    def update(self, confidences: ArrayLike, correct: ArrayLike) -> None:
        """Add a batch of top-label confidences c_i in [0, 1] and correctness a_i in {0, 1}."""
        conf = np.asarray(confidences, dtype=np.float64).reshape(-1)
        hit = np.asarray(correct, dtype=np.float64).reshape(-1)
        if conf.shape != hit.shape:
            raise ValueError(f"confidences {conf.shape} and correct {hit.shape} differ in length")
        idx = bin_indices(conf, self.n_bins)
        self.counts += np.bincount(idx, minlength=self.n_bins).astype(np.int64)
        self.confidence_sums += np.bincount(idx, weights=conf, minlength=self.n_bins)
        self.correct_sums += np.bincount(idx, weights=hit, minlength=self.n_bins)

    def merge(self, other: BinStatistics) -> None:
        """Add another state with the same number of bins (stream A + stream B)."""
        if other.n_bins != self.n_bins:
            raise ValueError(f"cannot merge {other.n_bins} bins into {self.n_bins} bins")
        self.counts += other.counts
        self.confidence_sums += other.confidence_sums
        self.correct_sums += other.correct_sums

    @property
    def total(self) -> int:
        """Number of samples seen."""
        return int(self.counts.sum())

    def compute_ece(self) -> float:
        """ECE = sum_b |sum conf_b - sum correct_b| / N (0.0 when nothing was seen)."""
        n = self.total
        if n == 0:
            return 0.0
        return float(np.abs(self.confidence_sums - self.correct_sums).sum() / n)

    def compute_mce(self) -> float:
        """MCE = max over non-empty bins of |acc_b - conf_b|."""
        seen = self.counts > 0
        if not seen.any():
            return 0.0
        gaps = np.abs(self.confidence_sums[seen] - self.correct_sums[seen]) / self.counts[seen]
        return float(gaps.max())

    def bin_accuracy(self) -> NDArray[np.float64]:
        """Per-bin accuracy (NaN for empty bins)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.correct_sums / self.counts

    def bin_confidence(self) -> NDArray[np.float64]:
        """Per-bin mean confidence (NaN for empty bins)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.confidence_sums / self.counts
