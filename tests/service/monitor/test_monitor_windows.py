"""Sliding windows against the batch formula (calibration.metrics) on the same data."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calibration.metrics import accuracy, ece
from service.monitor.errors import MonitorInputError
from service.monitor.windows import CalibrationWindow, PredictionWindow

T0 = 1_699_999_980.0  # a multiple of 60: bucket boundaries fall on whole minutes


class FakeClock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def sample(rng: np.random.Generator, n: int, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Random softmax probabilities (N, K) and labels drawn from them."""
    logits = rng.normal(scale=3.0, size=(n, k))
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    u = rng.uniform(size=(n, 1))
    labels = np.minimum((probs.cumsum(axis=1) < u).sum(axis=1), k - 1)
    return probs, labels


def top(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return probs.max(axis=1), (probs.argmax(axis=1) == labels).astype(float)


def feed(
    window: CalibrationWindow, probs: np.ndarray, labels: np.ndarray, times: np.ndarray, rng: np.random.Generator
) -> None:
    """Stream the data in random-sized chunks at the given (sorted) times."""
    conf, hit = top(probs, labels)
    cuts = np.sort(rng.choice(np.arange(1, len(conf)), size=20, replace=False))
    for part_c, part_h, part_t in zip(np.split(conf, cuts), np.split(hit, cuts), np.split(times, cuts), strict=True):
        window.update(part_c, part_h, now=float(part_t[0]))


def test_window_covering_everything_equals_the_batch_formula() -> None:
    rng = np.random.default_rng(1)
    probs, labels = sample(rng, 3000)
    window = CalibrationWindow()
    feed(window, probs, labels, np.linspace(T0, T0 + 3500, len(labels)), rng)
    stats = window.window(now=T0 + 3500)
    assert stats.total == 3000
    assert stats.compute_ece() == pytest.approx(ece(probs, labels), rel=1e-12)
    assert stats.correct_sums.sum() / 3000 == pytest.approx(accuracy(probs, labels), rel=1e-12)
    assert window.since_start().compute_ece() == pytest.approx(ece(probs, labels), rel=1e-12)


def test_old_buckets_fall_out_whole_and_since_start_keeps_them() -> None:
    rng = np.random.default_rng(2)
    probs_a, labels_a = sample(rng, 1000)
    probs_b, labels_b = sample(rng, 1500)
    window = CalibrationWindow(window_seconds=3600, n_buckets=60)
    feed(window, probs_a, labels_a, np.full(1000, T0 + 30.0), rng)  # all in bucket [T0, T0+60)
    feed(window, probs_b, labels_b, np.linspace(T0 + 600, T0 + 3599, 1500), rng)
    assert window.window(now=T0 + 3599).total == 2500
    after = window.window(now=T0 + 3600)  # bucket of T0 is 60 buckets old: gone, whole
    assert after.total == 1500
    assert after.compute_ece() == pytest.approx(ece(probs_b, labels_b), rel=1e-12)
    both = (np.vstack([probs_a, probs_b]), np.concatenate([labels_a, labels_b]))
    assert window.since_start().compute_ece() == pytest.approx(ece(*both), rel=1e-12)
    assert window.window(now=T0 + 3600 + 3600).total == 0


def test_event_older_than_the_ring_counts_since_start_only() -> None:
    window = CalibrationWindow(window_seconds=600, n_buckets=10)
    window.update([0.9], [1], now=T0 + 10_000)
    window.update([0.8], [0], now=T0)  # late by far more than the window
    assert window.window(now=T0 + 10_000).total == 1
    assert window.since_start().total == 2


def test_memory_is_fixed_whatever_the_traffic() -> None:
    clock = FakeClock(T0)
    window = CalibrationWindow(clock=clock)
    size = window._ring._sums.nbytes
    rng = np.random.default_rng(3)
    for step in range(500):
        clock.t = T0 + 37.0 * step
        window.update(rng.uniform(size=200), rng.integers(0, 2, size=200))
    assert window._ring._sums.nbytes == size == 60 * 3 * 15 * 8
    newest = (T0 + 37.0 * 499) // 60
    in_window = sum(1 for s in range(500) if newest - (T0 + 37.0 * s) // 60 < 60)
    assert window.window().total == 200 * in_window


def test_prediction_window_histogram_uses_lower_exclusive_edges() -> None:
    clock = FakeClock(T0)
    window = PredictionWindow(edges=[0.0, 0.5, 0.75, 1.0], clock=clock)
    window.update([0.0, 0.5, 0.5000001, 0.75, 0.9, 1.0])
    assert window.histogram().tolist() == [2, 2, 2]
    assert window.confidence_sum() == pytest.approx(3.6500001)
    clock.t = T0 + 3600
    assert window.histogram().tolist() == [0, 0, 0]
    assert window.since_start_count() == 6


@pytest.mark.parametrize(
    "bad", [[1.5], [-0.1], [float("nan")], [0.5, float("nan")], [float("inf")], [float("-inf"), 0.5]]
)
def test_confidences_outside_the_unit_interval_are_rejected(bad: list[float]) -> None:
    with pytest.raises(MonitorInputError):
        CalibrationWindow().update(bad, [1], now=T0)
    with pytest.raises(MonitorInputError):
        PredictionWindow().update(bad, now=T0)


def test_mismatched_lengths_are_rejected() -> None:
    with pytest.raises(MonitorInputError, match="differ"):
        CalibrationWindow().update([0.5, 0.6], [1], now=T0)


class EagerPredictionWindow(PredictionWindow):
    """Folds on every update: the histogram as it was before updates were queued."""

    FOLD_ROWS = 1


class SmallQueueWindow(PredictionWindow):
    """Folds after 7 queued confidences, so that size-triggered folds happen in short tests."""

    FOLD_ROWS = 7


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=20), st.floats(0.0, 3 * 3600.0), st.booleans()),
        min_size=1,
        max_size=40,
    )
)
def test_queued_prediction_counts_read_the_same_as_counting_at_once(
    calls: list[tuple[list[float], float, bool]],
) -> None:
    """Updates queued and folded later (in runs of the same time bucket, also past FOLD_ROWS)
    give the histogram, confidence sum and count of folding each update at once, whenever read;
    out-of-order times, and times that fell out of the ring, included."""
    queued, eager = SmallQueueWindow(clock=FakeClock(T0)), EagerPredictionWindow(clock=FakeClock(T0))
    for conf, offset, read in calls:
        for window in (queued, eager):
            window.update(conf, now=T0 + offset)
        if read:
            now = T0 + offset
            assert queued.histogram(now).tolist() == eager.histogram(now).tolist()
            assert queued.confidence_sum(now) == pytest.approx(eager.confidence_sum(now), abs=1e-9)
    end = T0 + 3 * 3600.0
    assert queued.histogram(end).tolist() == eager.histogram(end).tolist()
    assert queued.since_start_count() == eager.since_start_count() == sum(len(c) for c, _, _ in calls)
    assert len(queued._queue) == 0


def test_queued_prediction_counts_stay_bounded() -> None:
    """However many one-row updates come between reads, at most FOLD_ROWS confidences wait."""
    window = PredictionWindow(clock=FakeClock(T0))
    for i in range(5 * PredictionWindow.FOLD_ROWS + 3):
        window.update([0.9], now=T0 + i * 0.01)
        assert window._queued_rows < PredictionWindow.FOLD_ROWS
    assert window.since_start_count() == 5 * PredictionWindow.FOLD_ROWS + 3
