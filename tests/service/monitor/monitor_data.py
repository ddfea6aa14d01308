"""Synthetic data for the monitor tests: seeded confidences, outcomes and a manifest reference."""

from __future__ import annotations

import numpy as np

from calibration.binning import BinStatistics, bin_edges, bin_indices
from calibration.manifest import ConfidenceHistogram, ReferenceFigures, ReliabilityBins

T0 = 1_699_999_980.0  # a multiple of 60: one-minute buckets start on it


class FakeClock:
    """A settable clock for the monitor."""

    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def draw_confidences(rng: np.random.Generator, n: int) -> np.ndarray:
    """Top-label confidences of a 10-class model: in [0.1, 1], mass near 1."""
    return 0.1 + 0.9 * rng.beta(5.0, 1.2, size=n)


def draw_outcomes(rng: np.random.Generator, conf: np.ndarray, gap: float = 0.0) -> np.ndarray:
    """Correctness with P(correct) = confidence - gap."""
    return rng.uniform(size=conf.size) < conf - gap


def make_reference(rng: np.random.Generator, n: int = 10_000, gap: float = 0.0) -> ReferenceFigures:
    """A manifest reference measured on n held-out predictions of a model off by ``gap``."""
    conf = draw_confidences(rng, n)
    hit = draw_outcomes(rng, conf, gap)
    stats = BinStatistics()
    stats.update(conf, hit)
    hist = np.bincount(bin_indices(conf), minlength=15) / n
    return ReferenceFigures(
        split="test",
        n=n,
        accuracy=float(hit.mean()),
        ece=stats.compute_ece(),
        adaptive_ece=stats.compute_ece(),
        classwise_ece=0.01,
        nll=0.4,
        brier=0.3,
        bins=ReliabilityBins(
            n_bins=15,
            counts=stats.counts.tolist(),
            confidence_sums=stats.confidence_sums.tolist(),
            correct_sums=stats.correct_sums.tolist(),
        ),
        confidence_histogram=ConfidenceHistogram(edges=bin_edges().tolist(), fractions=hist.tolist()),
    )
