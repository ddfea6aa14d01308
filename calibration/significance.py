"""Paired comparisons of two methods, and the ECE a perfectly calibrated model would show.

- ``paired_seed_interval``: the per-seed differences d_s = m(A_s) - m(B_s) (same seed, same test
  set), their mean, the Student-t 95% interval mean +- t_{n-1} sd / sqrt(n) and the paired t-test
  p-value (training variability; Dietterich 1998).
- ``paired_bootstrap``: the test-set bootstrap of the seed-averaged difference: resample the N test
  rows once per replicate, the same rows for both methods and every seed; percentile interval, and
  the two-sided p-value 2 Phi(-|d| / se*) from the bootstrap standard error se* (Efron & Tibshirani
  1993, ch. 6 and 13), whose resolution does not depend on the number of replicates.
- ``holm``: Holm's step-down adjustment of m p-values (Holm 1979), controlling the family-wise
  error rate.
- ``ece_floor``: the ECE of a model with the same confidences whose labels are drawn from them
  (a_i ~ Bernoulli(c_i)): the finite-sample floor of binned ECE (consistency resampling,
  Broecker & Smith 2007).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from calibration.binning import DEFAULT_BINS, BinStatistics
from calibration.errors import MetricInputError
from calibration.metrics import confidence_and_correct
from calibration.smooth import smooth_ece_top_label

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class TopLabel:
    """What every compared metric needs per test row: confidence c_i, correctness a_i and the
    log-probability of the true class (for NLL)."""

    confidence: FloatArray
    correct: FloatArray
    log_p_true: FloatArray

    @classmethod
    def from_probs(cls, probs: ArrayLike, labels: ArrayLike, eps: float = 1e-12) -> TopLabel:
        """(c, a, log p_y) of probabilities (N, K) and labels (N,); p_y floored at eps as in NLL."""
        p, y = np.asarray(probs, dtype=np.float64), np.asarray(labels, dtype=np.intp)
        conf, correct = confidence_and_correct(p, y)
        return cls(conf, correct, np.log(np.maximum(p[np.arange(len(y)), y], eps)))

    def take(self, rows: NDArray[np.intp]) -> TopLabel:
        """The rows ``rows`` (with repetition: a bootstrap replicate)."""
        return TopLabel(self.confidence[rows], self.correct[rows], self.log_p_true[rows])


def top_label_ece(record: TopLabel, n_bins: int = DEFAULT_BINS) -> float:
    """Equal-width top-label ECE from (c, a) (calibration.binning's rule)."""
    statistics = BinStatistics(n_bins)
    statistics.update(record.confidence, record.correct)
    return statistics.compute_ece()


def top_label_smooth_ece(record: TopLabel) -> float:
    """smECE (Blasiok & Nakkiran 2023) from (c, a)."""
    return smooth_ece_top_label(record.confidence, record.correct)


def top_label_nll(record: TopLabel) -> float:
    """NLL = mean_i -log p_{i, y_i}."""
    return float(-record.log_p_true.mean())


TOP_LABEL_METRICS: dict[str, Callable[[TopLabel], float]] = {
    "nll": top_label_nll,
    "smooth_ece": top_label_smooth_ece,
    "ece": top_label_ece,
}


@dataclass(frozen=True)
class PairedDifference:
    """Mean difference A - B, its 95% interval and a two-sided p-value (n: seeds or replicates)."""

    mean: float
    low: float
    high: float
    p_value: float
    n: int


def paired_seed_interval(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> PairedDifference:
    """Student-t interval and paired t-test of d_s = a_s - b_s over n >= 2 seeds."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if d.ndim != 1 or len(d) < 2:
        raise MetricInputError(f"a paired interval needs two or more paired values, got {len(d)}")
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    if sd == 0.0:
        return PairedDifference(mean, mean, mean, 1.0 if mean == 0 else 0.0, len(d))
    half = float(stats.t.ppf((1 + level) / 2, len(d) - 1)) * sd / np.sqrt(len(d))
    p_value = float(2 * stats.t.sf(abs(mean) / (sd / np.sqrt(len(d))), len(d) - 1))
    return PairedDifference(mean, mean - half, mean + half, p_value, len(d))


def paired_bootstrap(
    metric: Callable[[TopLabel], float],
    a: Sequence[TopLabel],
    b: Sequence[TopLabel],
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> PairedDifference:
    """Bootstrap of mean_s [metric(a_s) - metric(b_s)] over the shared test rows (see module)."""
    if len(a) != len(b) or not a:
        raise MetricInputError(f"paired_bootstrap needs as many A as B runs (>= 1), got {len(a)} and {len(b)}")
    n = len(a[0].confidence)
    rng = np.random.default_rng(seed)
    point = float(np.mean([metric(x) - metric(y) for x, y in zip(a, b, strict=True)]))
    replicates = np.empty(n_resamples)
    for r in range(n_resamples):
        rows = rng.integers(0, n, n)
        replicates[r] = np.mean([metric(x.take(rows)) - metric(y.take(rows)) for x, y in zip(a, b, strict=True)])
    low, high = np.quantile(replicates, [(1 - level) / 2, (1 + level) / 2])
    se = float(replicates.std(ddof=1)) if n_resamples > 1 else 0.0
    p_value = float(2 * stats.norm.sf(abs(point) / se)) if se > 0 else (1.0 if point == 0 else 0.0)
    return PairedDifference(point, float(low), float(high), p_value, n_resamples)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values, in the input order: p_(i) -> max_{j <= i} min(1, (m - j + 1) p_(j))."""
    p = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (len(p) - np.arange(len(p))) * p[order])
    adjusted = np.empty_like(p)
    adjusted[order] = np.maximum.accumulate(scaled)
    return [float(v) for v in adjusted]


def ece_floor(
    confidence: ArrayLike, n_draws: int = 200, level: float = 0.95, seed: int = 0, n_bins: int = DEFAULT_BINS
) -> tuple[float, float, float]:
    """(mean, low, high) of the ECE of a perfectly calibrated model with these confidences: labels
    a_i ~ Bernoulli(c_i) redrawn ``n_draws`` times; the interval is the central ``level`` range."""
    c = np.asarray(confidence, dtype=np.float64)
    rng = np.random.default_rng(seed)
    values = [
        top_label_ece(TopLabel(c, (rng.random(len(c)) < c).astype(np.float64), np.zeros_like(c)), n_bins)
        for _ in range(n_draws)
    ]
    low, high = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(np.mean(values)), float(low), float(high)
