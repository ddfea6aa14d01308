"""Drift tests: a sample-size-aware ECE test against the reference, and label-free signals.

The ECE test is a conditional parametric bootstrap (consistency resampling, Broecker & Smith
2007, with the reference's calibration as the null instead of the diagonal). Given a window with
n_b labels and confidence sum S_b in bin b, H0 says each bin is as far from the diagonal as on the
reference data: P(correct) = w_b - delta_b, with w_b = S_b / n_b the window's mean confidence and
delta_b = r_b - a_b the reference's gap (mean confidence r_b, accuracy a_b). The reference accuracy
a_b is drawn from its Beta posterior (a prior of strength k centred on r_b), so a small reference
widens the null instead of causing false alarms. Per resample: C_b ~ Binomial(n_b, p_b) and
ECE* = sum_b |S_b - C_b| / n. The threshold is the q-quantile of ECE*; the p-value is
(1 + #{ECE* >= ECE}) / (R + 1). Without a reference, delta_b = 0 (plain consistency resampling).

The class-mix test (label-free, ``class_mix_test``) compares the window's mean served posterior
with the reference class priors q (the mean posterior on the reference split). Its null is
multinomial: PSI(Multinomial(n, q) / n, q) over R draws. That null is conservative for a mean of
posteriors: with y one-hot and p = E[y | x], Cov(y) = Cov(p) + E[Cov(y | x)] (so Cov(p) <= Cov(y)),
so a mean posterior scatters less around q than label frequencies do (asymptotically PSI ~ chi2_{C-1} / n).
The null is drawn at n rounded down to a quarter-octave grid (``null_size``: a slightly wider null,
cached per grid point, so a scrape pays no resampling). The threshold is the larger of the null's
q-quantile and a floor on the effect size (``class_mix_psi``),
so a large window does not flag a trivial mix change, nor a small one a sampling wobble.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike, NDArray

from calibration.binning import BinStatistics
from calibration.manifest import ReliabilityBins
from service.monitor.errors import MonitorInputError

PSI_EPSILON = 1e-4
PSI_SHIFT = 0.25  # the usual reading: < 0.1 stable, 0.1-0.25 moderate, > 0.25 shifted
CLASS_MIX_PSI = 0.1  # default effect-size floor of the class-mix flag ("moderate" on that reading)


class Verdict(StrEnum):
    """Drift verdict of one window."""

    OK = "ok"
    DRIFT = "drift"
    INSUFFICIENT_DATA = "insufficient_data"


@dataclass(frozen=True, slots=True)
class DriftConfig:
    """Minimum labels for a verdict, resamples R, quantile q, prior strength k, seed, and the
    class-mix flag's PSI floor (label-free; min_labels is its minimum of predictions too)."""

    min_labels: int = 200
    resamples: int = 1000
    quantile: float = 0.995
    prior_strength: float = 2.0
    seed: int = 0
    class_mix_psi: float = CLASS_MIX_PSI

    def __post_init__(self) -> None:
        if self.min_labels < 1 or self.resamples < 10 or not 0.5 < self.quantile < 1 or self.class_mix_psi <= 0:
            raise MonitorInputError(f"invalid drift settings: {self}")


@dataclass(frozen=True, slots=True)
class DriftResult:
    """The window ECE (statistic), its null quantile (threshold), p-value, n and the verdict."""

    verdict: Verdict
    statistic: float
    threshold: float | None
    p_value: float | None
    n: int


def reference_gaps(
    reference: ReliabilityBins | None,
    n_bins: int,
    draws: int,
    prior: float,
    rng: np.random.Generator,
) -> NDArray[np.float64]:
    """Draws (R, M) of the reference gap delta_b = r_b - a_b, a_b ~ Beta posterior; 0 if unseen."""
    if reference is None:
        return np.zeros((draws, n_bins))
    if reference.n_bins != n_bins:
        raise MonitorInputError(f"reference has {reference.n_bins} bins, the monitor {n_bins}")
    counts = np.asarray(reference.counts, dtype=np.float64)
    correct = np.asarray(reference.correct_sums, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(counts > 0, np.asarray(reference.confidence_sums) / counts, 0.5)
    alpha = correct + prior * r
    beta = np.maximum(counts - correct, 0.0) + prior * (1.0 - r)
    accuracy = rng.beta(alpha, beta, size=(draws, n_bins))
    return np.where(counts > 0, r - accuracy, 0.0)


def simulate_ece(window: BinStatistics, gaps: NDArray[np.float64], rng: np.random.Generator) -> NDArray[np.float64]:
    """ECE* per resample: sum_b |S_b - C_b| / n with C_b ~ Binomial(n_b, w_b - delta_b)."""
    counts = window.counts
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(counts > 0, window.confidence_sums / np.maximum(counts, 1), 0.0)
    p = np.clip(w[None, :] - gaps, 0.0, 1.0)
    correct = rng.binomial(counts[None, :], p)
    ece: NDArray[np.float64] = np.abs(window.confidence_sums[None, :] - correct).sum(axis=1)
    return ece / window.total


def drift_test(
    window: BinStatistics, reference: ReliabilityBins | None, config: DriftConfig | None = None
) -> DriftResult:
    """Verdict for one window: drift when its ECE exceeds the q-quantile of ECE* on its bins."""
    config = config or DriftConfig()
    n, statistic = window.total, window.compute_ece()
    if n == 0:
        return DriftResult(Verdict.INSUFFICIENT_DATA, 0.0, None, None, 0)
    rng = np.random.default_rng(config.seed)
    gaps = reference_gaps(reference, window.n_bins, config.resamples, config.prior_strength, rng)
    null = simulate_ece(window, gaps, rng)
    threshold = float(np.quantile(null, config.quantile))
    p_value = float((1 + np.count_nonzero(null >= statistic - 1e-12)) / (null.size + 1))
    if n < config.min_labels:
        verdict = Verdict.INSUFFICIENT_DATA
    else:
        verdict = Verdict.DRIFT if statistic > threshold else Verdict.OK
    return DriftResult(verdict, statistic, threshold, p_value, n)


def ece_interval(
    window: BinStatistics, level: float = 0.95, resamples: int = 1000, seed: int = 0
) -> tuple[float, float] | None:
    """Percentile bootstrap interval (Efron & Tibshirani 1993) of the window's ECE from its bin sums.

    Resampling the N labelled rows with replacement, as ``calibration.metrics.bootstrap_ci`` does,
    draws bin counts n*_b ~ Multinomial(N, n_b / N) and correct counts ~ Binomial(n*_b, a_b); a
    resampled bin's confidence sum is n*_b times its mean confidence (the monitor keeps sums, not
    rows). ECE is biased upward at small N, so the interval can sit above a calibrated model's
    ECE: the drift threshold, not this interval, decides the verdict. None without labels.
    """
    n = window.total
    if n == 0:
        return None
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, window.counts / n, size=resamples)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(window.counts > 0, window.correct_sums / window.counts, 0.0)
        confidence = np.where(window.counts > 0, window.confidence_sums / window.counts, 0.0)
    correct = rng.binomial(counts, accuracy[None, :])
    ece = np.abs(counts * confidence[None, :] - correct).sum(axis=1) / n
    low, high = np.quantile(ece, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def psi(observed_counts: ArrayLike, reference_fractions: ArrayLike, epsilon: float = PSI_EPSILON) -> float | None:
    """Population stability index sum_i (p_i - q_i) ln(p_i / q_i), empty bins floored at epsilon.

    None when nothing was observed.
    """
    counts = np.asarray(observed_counts, dtype=np.float64)
    q = np.asarray(reference_fractions, dtype=np.float64)
    if counts.shape != q.shape:
        raise MonitorInputError(f"histogram has {counts.size} bins, the reference {q.size}")
    if counts.sum() <= 0:
        return None
    p = np.maximum(counts / counts.sum(), epsilon)
    q = np.maximum(q, epsilon)
    return float(((p - q) * np.log(p / q)).sum())


@dataclass(frozen=True, slots=True)
class ClassMixResult:
    """PSI of the window's mean posterior against the reference priors (statistic), the flag's
    threshold at the window's n, the null's p-value, n and whether the mix shifted."""

    statistic: float
    threshold: float
    p_value: float
    n: int
    shift: bool


def mix_psi(
    mix: NDArray[np.float64], reference: NDArray[np.float64], epsilon: float = PSI_EPSILON
) -> NDArray[np.float64]:
    """PSI sum_k (p_k - q_k) ln(p_k / q_k) of each row of ``mix`` (fractions) against ``reference``."""
    p = np.maximum(mix, epsilon)
    q = np.maximum(reference, epsilon)
    out: NDArray[np.float64] = ((p - q) * np.log(p / q)).sum(axis=-1)
    return out


def null_size(n: int) -> int:
    """n rounded down to the quarter-octave grid floor(2^(k/4)) (n itself below 16): the class-mix
    null is drawn at that many predictions, at most 19% fewer than n, so its spread is a little
    wider (conservative) and one draw serves every n up to the next grid point."""
    if n < 16:
        return n
    k = math.floor(4 * math.log2(n))
    while math.floor(2 ** (k / 4)) > n:  # float rounding at exact powers
        k -= 1
    return math.floor(2 ** (k / 4))


@lru_cache(maxsize=512)
def mix_null(n: int, priors: tuple[float, ...], resamples: int, seed: int) -> NDArray[np.float64]:
    """Sorted PSI of R multinomial samples of n draws from ``priors`` against ``priors`` (read-only;
    cached: a scrape reads it for every model, and R x C draws cost ~0.1 s at C = 1000)."""
    q = np.asarray(priors, dtype=np.float64)
    rng = np.random.default_rng(seed)
    null = np.sort(mix_psi(rng.multinomial(n, q, size=resamples) / n, q))
    null.flags.writeable = False
    return null


def class_mix_test(
    probability_sums: ArrayLike, n: int, priors: ArrayLike, config: DriftConfig | None = None
) -> ClassMixResult | None:
    """Class-mix shift of n served predictions whose probability vectors sum to ``probability_sums``
    (the mean posterior is that over n) against the reference ``priors``; shift when n >= min_labels
    and PSI > max(class_mix_psi, q-quantile of the multinomial null at ``null_size(n)``). None when
    n is 0."""
    config = config or DriftConfig()
    sums = np.asarray(probability_sums, dtype=np.float64)
    q = np.asarray(priors, dtype=np.float64)
    if sums.shape != q.shape or q.ndim != 1:
        raise MonitorInputError(f"class mix has {sums.size} classes, the reference priors {q.size}")
    if n <= 0:
        return None
    q = q / q.sum()
    statistic = float(mix_psi(sums / sums.sum(), q))
    null = mix_null(null_size(n), tuple(q.tolist()), config.resamples, config.seed)
    threshold = max(config.class_mix_psi, float(np.quantile(null, config.quantile)))
    above = null.size - int(np.searchsorted(null, statistic - 1e-12, side="left"))
    p_value = (1 + above) / (null.size + 1)
    return ClassMixResult(statistic, threshold, p_value, n, n >= config.min_labels and statistic > threshold)
