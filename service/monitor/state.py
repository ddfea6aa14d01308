"""Per-(model, version) monitor state and the immutable snapshot a status or a scrape reads.

The state is mutated under the Monitor's lock; ``snapshot`` copies what readers need (O(bins x
buckets)), so drift tests and exposition run outside the lock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from calibration.binning import BinStatistics
from calibration.manifest import ReferenceFigures
from service.monitor.errors import MonitorInputError
from service.monitor.windows import CalibrationWindow, ClassMixWindow, Clock, PredictionWindow

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

    def merge(self, other: DelayHistogram) -> None:
        """Add another histogram with the same bounds."""
        if not np.array_equal(other.bounds, self.bounds):
            raise MonitorInputError("cannot merge label delay histograms with other bounds")
        self.counts += other.counts
        self.total += other.total

    def to_dict(self) -> dict[str, Any]:
        return {"bounds": self.bounds.tolist(), "counts": self.counts.tolist(), "total": self.total}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DelayHistogram:
        out = cls(tuple(float(b) for b in data["bounds"]))
        out.counts, out.total = np.asarray(data["counts"], dtype=np.int64), float(data["total"])
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
    class_mix: NDArray[np.float64] | None = None  # (2, C): per predicted class, count and probability sum


def _add_mix(a: NDArray[np.float64] | None, b: NDArray[np.float64] | None) -> NDArray[np.float64] | None:
    """Sum of two (2, C) class-mix sums, either possibly None (no probabilities seen yet)."""
    if a is None or b is None:
        return b if a is None else a
    if a.shape != b.shape:
        raise MonitorInputError(f"cannot merge class mixes of {a.shape[1]} and {b.shape[1]} classes")
    return a + b


def merge_snapshots(own: ModelSnapshot, others: Sequence[ModelSnapshot]) -> ModelSnapshot:
    """The sum of snapshots of one (model, version) taken at the same ``now`` in several
    processes (service.monitor.fleet): every field is a sum, the reference is ``own``'s."""
    window, since_start, delays = _copy(own.window), _copy(own.since_start), own.delays.copy()
    histogram, class_mix = own.histogram.copy(), own.class_mix
    for snap in others:
        class_mix = _add_mix(class_mix, snap.class_mix)
        window.merge(snap.window)
        since_start.merge(snap.since_start)
        delays.merge(snap.delays)
        histogram = histogram + snap.histogram
    return replace(
        own,
        window=window,
        since_start=since_start,
        predictions_total=own.predictions_total + sum(s.predictions_total for s in others),
        window_predictions=own.window_predictions + sum(s.window_predictions for s in others),
        window_confidence_sum=own.window_confidence_sum + sum(s.window_confidence_sum for s in others),
        histogram=histogram,
        delays=delays,
        class_mix=class_mix,
    )


def _copy(stats: BinStatistics) -> BinStatistics:
    out = BinStatistics(stats.n_bins)
    out.merge(stats)
    return out


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
    class_mix: ClassMixWindow = field(default_factory=ClassMixWindow)

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
            class_mix=ClassMixWindow(window_seconds, n_buckets, clock),
        )

    def to_dict(self) -> dict[str, Any]:
        """The state's sums (service.monitor.fleet publishes them; ``load`` reads them back)."""
        return {
            "labelled": self.labelled.to_dict(),
            "predicted": self.predicted.to_dict(),
            "predictions_total": self.predictions_total,
            "delays": self.delays.to_dict(),
            "class_mix": self.class_mix.to_dict(),
        }

    def load(self, data: Mapping[str, Any]) -> None:
        """Replace the sums by ``to_dict`` output of a state with the same bins, edges and buckets."""
        self.labelled.load(data["labelled"])
        self.predicted.load(data["predicted"])
        self.predictions_total = int(data["predictions_total"])
        self.delays = DelayHistogram.from_dict(data["delays"])
        if "class_mix" in data:  # a state published before the class mix was kept has none
            self.class_mix.load(data["class_mix"])

    @classmethod
    def from_dict(
        cls,
        model: str,
        version: str,
        data: Mapping[str, Any],
        n_bins: int,
        window_seconds: float,
        n_buckets: int,
        clock: Clock,
    ) -> ModelState:
        """A state holding ``to_dict`` output (its histogram edges are the data's), no reference."""
        state = cls(
            model,
            version,
            CalibrationWindow(n_bins, window_seconds, n_buckets, clock),
            PredictionWindow(data["predicted"]["edges"], window_seconds, n_buckets, clock),
            None,
            class_mix=ClassMixWindow(window_seconds, n_buckets, clock),
        )
        state.load(data)
        return state

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
            class_mix=self.class_mix.totals(now),
        )
