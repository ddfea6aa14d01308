"""Sliding windows of per-bin sums: O(bins x buckets) memory whatever the traffic.

A window of W seconds is a ring of B time buckets of width W / B. An event at time t goes to bucket
floor(t / width); reading at time ``now`` sums the B buckets ending with the one holding ``now``, so
the window covers between (B - 1) * width and B * width seconds and a bucket falls out whole.
Events older than the ring's newest bucket minus B are left out of the window (not of since-start).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from calibration.binning import DEFAULT_BINS, BinStatistics, bin_edges
from service.monitor.errors import MonitorInputError

Clock = Callable[[], float]
DEFAULT_WINDOW_SECONDS = 3600.0
DEFAULT_BUCKETS = 60


class BucketRing:
    """Sums of arrays of a fixed ``shape`` over the last ``n_buckets`` time buckets."""

    def __init__(self, shape: tuple[int, ...], window_seconds: float, n_buckets: int) -> None:
        if window_seconds <= 0 or n_buckets < 1:
            raise MonitorInputError(f"window {window_seconds} s in {n_buckets} buckets is invalid")
        self.n_buckets = n_buckets
        self.width = window_seconds / n_buckets
        self._sums = np.zeros((n_buckets, *shape), dtype=np.float64)
        self._ids = np.full(n_buckets, np.iinfo(np.int64).min, dtype=np.int64)

    def bucket_of(self, t: float) -> int:
        """Absolute bucket number floor(t / width)."""
        return math.floor(t / self.width)

    def add(self, t: float, values: NDArray[np.float64]) -> bool:
        """Add ``values`` to the bucket of time t; False (nothing added) when t left the ring."""
        b = self.bucket_of(t)
        slot = b % self.n_buckets
        if b <= int(self._ids.max()) - self.n_buckets or self._ids[slot] > b:
            return False
        if self._ids[slot] != b:
            self._sums[slot] = 0.0
            self._ids[slot] = b
        self._sums[slot] += values
        return True

    def total(self, now: float) -> NDArray[np.float64]:
        """Sum over the buckets b with b_now - B < b <= b_now."""
        b_now = self.bucket_of(now)
        live = (self._ids > b_now - self.n_buckets) & (self._ids <= b_now)
        total: NDArray[np.float64] = self._sums[live].sum(axis=0)
        return total

    def to_dict(self) -> dict[str, Any]:
        """The ring's buckets (sums and absolute bucket numbers), for ``from_dict``."""
        return {"width": self.width, "sums": self._sums.tolist(), "ids": self._ids.tolist()}

    def load(self, data: Mapping[str, Any]) -> None:
        """Replace the buckets by those of ``to_dict`` output of a ring of the same shape and width."""
        sums = np.asarray(data["sums"], dtype=np.float64)
        if sums.shape != self._sums.shape or not math.isclose(float(data["width"]), self.width):
            raise MonitorInputError(f"ring state of shape {sums.shape} does not fit {self._sums.shape}")
        self._sums = sums
        self._ids = np.asarray(data["ids"], dtype=np.int64)


def _stats_from(n_bins: int, sums: NDArray[np.float64]) -> BinStatistics:
    """BinStatistics from stacked (counts, confidence sums, correct sums)."""
    stats = BinStatistics(n_bins)
    stats.counts = np.rint(sums[0]).astype(np.int64)
    stats.confidence_sums = sums[1].copy()
    stats.correct_sums = sums[2].copy()
    return stats


def _copy(stats: BinStatistics) -> BinStatistics:
    out = BinStatistics(stats.n_bins)
    out.merge(stats)
    return out


class CalibrationWindow:
    """Labelled predictions of one (model, version): per-bin sums over a window and since start.

    Times are when the label arrived (monitoring looks at what was learned recently).
    """

    def __init__(
        self,
        n_bins: int = DEFAULT_BINS,
        window_seconds: float = DEFAULT_WINDOW_SECONDS,
        n_buckets: int = DEFAULT_BUCKETS,
        clock: Clock = time.time,
    ) -> None:
        self.n_bins = n_bins
        self.window_seconds = window_seconds
        self._clock = clock
        self._ring = BucketRing((3, n_bins), window_seconds, n_buckets)
        self._since_start = BinStatistics(n_bins)

    def update(self, confidences: ArrayLike, correct: ArrayLike, now: float | None = None) -> None:
        """Add labelled predictions: top-label confidences in [0, 1] and correctness in {0, 1}."""
        batch = BinStatistics(self.n_bins)
        try:
            batch.update(_checked_confidences(confidences), correct)
        except ValueError as exc:
            raise MonitorInputError(str(exc)) from exc
        self._since_start.merge(batch)
        counts = batch.counts.astype(np.float64)
        sums = np.stack([counts, batch.confidence_sums, batch.correct_sums])
        self._ring.add(self._clock() if now is None else now, sums)

    def window(self, now: float | None = None) -> BinStatistics:
        """Per-bin sums of the labels that arrived within the window ending at ``now``."""
        return _stats_from(self.n_bins, self._ring.total(self._clock() if now is None else now))

    def since_start(self) -> BinStatistics:
        """Per-bin sums of every label since the monitor started (a copy)."""
        return _copy(self._since_start)

    def to_dict(self) -> dict[str, Any]:
        """The window's sums (service.monitor.fleet publishes them; ``load`` reads them back)."""
        s = self._since_start
        return {
            "ring": self._ring.to_dict(),
            "since_start": [s.counts.tolist(), s.confidence_sums.tolist(), s.correct_sums.tolist()],
        }

    def load(self, data: Mapping[str, Any]) -> None:
        """Replace the sums by ``to_dict`` output of a window with the same bins and buckets."""
        counts, conf, correct = data["since_start"]
        if len(counts) != self.n_bins:
            raise MonitorInputError(f"window state of {len(counts)} bins does not fit {self.n_bins}")
        self._ring.load(data["ring"])
        self._since_start.counts = np.asarray(counts, dtype=np.int64)
        self._since_start.confidence_sums = np.asarray(conf, dtype=np.float64)
        self._since_start.correct_sums = np.asarray(correct, dtype=np.float64)


class PredictionWindow:
    """Confidences of all predictions (labelled or not): histogram counts and confidence sums.

    ``edges`` are the reference confidence histogram's (membership lower < c <= upper, the first bin
    also holds its lower edge), so the live histogram compares with it bin for bin.

    ``update`` only checks and queues (a served call pays an append, not a histogram pass); the
    queue is folded in, one vectorised pass per time bucket, by the next read or once it holds
    ``FOLD_ROWS`` confidences, so memory stays bounded and reads see every update.
    """

    FOLD_ROWS = 1024

    def __init__(
        self,
        edges: ArrayLike | None = None,
        window_seconds: float = DEFAULT_WINDOW_SECONDS,
        n_buckets: int = DEFAULT_BUCKETS,
        clock: Clock = time.time,
    ) -> None:
        self.edges = np.asarray(bin_edges() if edges is None else edges, dtype=np.float64)
        if self.edges.ndim != 1 or self.edges.size < 2 or np.any(np.diff(self.edges) <= 0):
            raise MonitorInputError("histogram edges must be at least two increasing numbers")
        self._clock = clock
        n_hist = self.edges.size - 1
        self._ring = BucketRing((2, n_hist), window_seconds, n_buckets)
        self._since_start = np.zeros((2, n_hist), dtype=np.float64)
        self._queue: list[tuple[int, float, list[NDArray[np.float64]]]] = []  # (bucket, time, parts)
        self._queued_rows = 0

    def update(self, confidences: ArrayLike, now: float | None = None) -> None:
        """Count predictions' top-label confidences into the histogram (checked now, queued)."""
        self.add_checked(_checked_confidences(confidences), self._clock() if now is None else now)

    def add_checked(self, conf: NDArray[np.float64], t: float) -> None:
        """``update`` for confidences already checked: flat float64, finite, in [0, 1]."""
        bucket = self._ring.bucket_of(t)
        if self._queue and self._queue[-1][0] == bucket:
            self._queue[-1][2].append(conf)
        else:
            self._queue.append((bucket, t, [conf]))
        self._queued_rows += conf.size
        if self._queued_rows >= self.FOLD_ROWS:
            self._fold()

    def _fold(self) -> None:
        """Add the queued confidences, in order, one pass per run of the same time bucket."""
        n_hist = self.edges.size - 1
        for _, t, parts in self._queue:
            conf = parts[0] if len(parts) == 1 else np.concatenate(parts)
            idx = np.searchsorted(self.edges[1:-1], conf, side="left")
            sums = np.stack(
                [
                    np.bincount(idx, minlength=n_hist).astype(np.float64),
                    np.bincount(idx, weights=conf, minlength=n_hist),
                ]
            )
            self._since_start += sums
            self._ring.add(t, sums)
        self._queue.clear()
        self._queued_rows = 0

    def histogram(self, now: float | None = None) -> NDArray[np.int64]:
        """Predictions per histogram bin within the window."""
        self._fold()
        counts: NDArray[np.float64] = self._ring.total(self._clock() if now is None else now)[0]
        return np.rint(counts).astype(np.int64)

    def confidence_sum(self, now: float | None = None) -> float:
        """Sum of the predictions' confidences within the window."""
        self._fold()
        return float(self._ring.total(self._clock() if now is None else now)[1].sum())

    def to_dict(self) -> dict[str, Any]:
        """Edges and sums, the queue folded in first (``load`` reads them back)."""
        self._fold()
        return {"edges": self.edges.tolist(), "ring": self._ring.to_dict(), "since_start": self._since_start.tolist()}

    def load(self, data: Mapping[str, Any]) -> None:
        """Replace the sums by ``to_dict`` output of a window with the same edges and buckets."""
        if not np.array_equal(np.asarray(data["edges"], dtype=np.float64), self.edges):
            raise MonitorInputError("prediction window state has other histogram edges")
        self._fold()
        self._ring.load(data["ring"])
        self._since_start = np.asarray(data["since_start"], dtype=np.float64).reshape(self._since_start.shape)

    def since_start_count(self) -> int:
        """Predictions counted since start."""
        self._fold()
        return int(round(float(self._since_start[0].sum())))


class ClassMixWindow:
    """Served predictions per predicted class and the sums of their probability vectors, per
    time bucket: O(2 x classes x buckets). The class count C is the first batch's (or given).

    ``update`` is one vectorised pass per served batch (a bincount and a column sum); the window's
    mean posterior sum_i p_i / n estimates the class mix of the traffic (service.monitor.drift).
    """

    def __init__(
        self,
        window_seconds: float = DEFAULT_WINDOW_SECONDS,
        n_buckets: int = DEFAULT_BUCKETS,
        clock: Clock = time.time,
        n_classes: int | None = None,
    ) -> None:
        self.window_seconds = window_seconds
        self.n_buckets = n_buckets
        self._clock = clock
        self._ring: BucketRing | None = None
        self.n_classes: int | None = None  # C, None before the first batch
        if n_classes is not None:
            self._start(n_classes)

    def _start(self, n_classes: int) -> BucketRing:
        self._ring = BucketRing((2, n_classes), self.window_seconds, self.n_buckets)
        self.n_classes = n_classes
        return self._ring

    @staticmethod
    def batch_sums(probs: ArrayLike, predicted: ArrayLike) -> NDArray[np.float64]:
        """(2, C): predictions per predicted class and the column sums of the (n, C) probabilities
        (MonitorInputError for a shape, class or non-finite value that does not fit)."""
        p = np.asarray(probs)
        pred = np.asarray(predicted).reshape(-1)
        if p.ndim != 2 or p.shape[1] < 1 or p.shape[0] != pred.size:
            raise MonitorInputError(f"probabilities must be (n={pred.size}, C >= 1), got shape {p.shape}")
        column_sums = p.sum(axis=0, dtype=np.float64)
        if not np.isfinite(column_sums).all():  # a NaN or inf anywhere would poison the window's sums
            raise MonitorInputError("probabilities must be finite")
        try:
            counts = np.bincount(pred, minlength=p.shape[1])
        except (TypeError, ValueError) as exc:
            raise MonitorInputError(f"predicted classes must be non-negative integers: {exc}") from exc
        if counts.size > p.shape[1]:
            raise MonitorInputError(f"predicted class {counts.size - 1} is not one of {p.shape[1]} classes")
        return np.stack([counts.astype(np.float64), column_sums])

    def add(self, sums: NDArray[np.float64], now: float | None = None) -> None:
        """Add ``batch_sums`` output at time ``now``; MonitorInputError if its C is not the window's."""
        ring = self._start(sums.shape[1]) if self._ring is None else self._ring
        if sums.shape[1] != self.n_classes:
            raise MonitorInputError(f"{sums.shape[1]} classes, the window counts {self.n_classes}")
        ring.add(self._clock() if now is None else now, sums)

    def update(self, probs: ArrayLike, predicted: ArrayLike, now: float | None = None) -> None:
        """Count a batch of served (n, C) probabilities and their predicted classes."""
        self.add(self.batch_sums(probs, predicted), now)

    def totals(self, now: float | None = None) -> NDArray[np.float64] | None:
        """(2, C) sums within the window ending at ``now`` (None before the first batch)."""
        if self._ring is None:
            return None
        return self._ring.total(self._clock() if now is None else now)

    def to_dict(self) -> dict[str, Any]:
        """C and the ring's buckets (``load`` reads them back)."""
        return {"n_classes": self.n_classes, "ring": None if self._ring is None else self._ring.to_dict()}

    def load(self, data: Mapping[str, Any]) -> None:
        """Replace the sums by ``to_dict`` output of a window with the same buckets."""
        n_classes = data["n_classes"]
        if n_classes is None:
            self._ring, self.n_classes = None, None
            return
        self._start(int(n_classes)).load(data["ring"])


def _checked_confidences(confidences: ArrayLike) -> NDArray[np.float64]:
    """Flattened float64 confidences, each finite and in [0, 1]."""
    conf = np.asarray(confidences, dtype=np.float64).reshape(-1)
    if conf.size and not (conf.min() >= 0.0 and conf.max() <= 1.0):  # NaN and +-inf fail too
        raise MonitorInputError("confidences must be finite and lie in [0, 1]")
    return conf
