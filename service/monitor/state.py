"""Per-(model, version) monitor state and the immutable snapshot a status or a scrape reads.

The state is mutated under the Monitor's lock; ``snapshot`` copies what readers need (O(bins x
buckets)), so drift tests and exposition run outside the lock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from calibration.binning import BinStatistics
from calibration.manifest import ReferenceFigures
from service.monitor.windows import CalibrationWindow, Clock, PredictionWindow

# Seconds from prediction to label: 1 s .. 7 days (the default retention).
DELAY_BUCKETS: tuple[float, ...] = (1.0, 10.0, 60.0, 300.0, 900.0, 3600.0, 14_400.0, 86_400.0, 259_200.0, 604_800.0)


class DelayHistogram:
    """Counts of label delays per bucket (upper bounds DELAY_BUCKETS, then +Inf) and their sum."""

    def __init__(self, bounds: tuple[float, ...] = DELAY_BUCKETS) -> None:
        self.bounds = np.asarray(bounds, dtype=np.float64)
        self.counts = np.zeros(self.bounds.size + 1, dtype=np.int64)
        self.total = 0.0

    def observe(self, delays: NDArray[np.float64]) -> None:
        """Add delays (negative ones, from clock skew, count as 0): bucket i holds d <= bound_i."""
        d = np.maximum(delays, 0.0)
        self.counts += np.bincount(np.searchsorted(self.bounds, d, side="left"), minlength=self.counts.size).astype(
            np.int64
        )
        self.total += float(d.sum())

    def copy(self) -> DelayHistogram:
        out = DelayHistogram(tuple(self.bounds.tolist()))
        out.counts, out.total = self.counts.copy(), self.total
        return out


def reference_statistics(reference: ReferenceFigures) -> BinStatistics:
    """The manifest's reliability bins as BinStatistics."""
    stats = BinStatistics(reference.bins.n_bins)
    stats.counts = np.asarray(reference.bins.counts, dtype=np.int64)
    stats.confidence_sums = np.asarray(reference.bins.confidence_sums, dtype=np.float64)
    stats.correct_sums = np.asarray(reference.bins.correct_sums, dtype=np.float64)
    return stats


@dataclass(frozen=True)
class ModelSnapshot:
    """A consistent copy of one model's state at time ``now``."""

    model: str
    version: str
    now: float
    window: BinStatistics
    since_start: BinStatistics
    predictions_total: int
    window_predictions: int
    window_confidence_sum: float
    histogram: NDArray[np.int64]
    delays: DelayHistogram
    reference: ReferenceFigures | None


@dataclass
class ModelState:
    """Windows, counters and reference of one (model, version)."""

    model: str
    version: str
    labelled: CalibrationWindow
    predicted: PredictionWindow
    reference: ReferenceFigures | None
    predictions_total: int = 0
    delays: DelayHistogram = field(default_factory=DelayHistogram)

    @classmethod
    def create(
        cls,
        model: str,
        version: str,
        reference: ReferenceFigures | None,
        n_bins: int,
        window_seconds: float,
        n_buckets: int,
        clock: Clock,
    ) -> ModelState:
        """Empty windows; the prediction histogram uses the reference histogram's edges if any."""
        edges = None if reference is None else reference.confidence_histogram.edges
        return cls(
            model,
            version,
            CalibrationWindow(n_bins, window_seconds, n_buckets, clock),
            PredictionWindow(edges, window_seconds, n_buckets, clock),
            reference,
        )

    def snapshot(self, now: float) -> ModelSnapshot:
        """Copy what a status or a scrape needs."""
        return ModelSnapshot(
            model=self.model,
            version=self.version,
            now=now,
            window=self.labelled.window(now),
            since_start=self.labelled.since_start(),
            predictions_total=self.predictions_total,
            window_predictions=int(self.predicted.histogram(now).sum()),
            window_confidence_sum=self.predicted.confidence_sum(now),
            histogram=self.predicted.histogram(now),
            delays=self.delays.copy(),
            reference=self.reference,
        )
