"""The window ECE's bootstrap interval (from bin sums) and the label delay of the status."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from monitor_data import FakeClock

from calibration.binning import BinStatistics
from calibration.metrics import bootstrap_ci, ece
from service.monitor import Monitor, SQLiteStore
from service.monitor.drift import ece_interval


def test_interval_from_bin_sums_matches_the_row_bootstrap() -> None:
    """The bin-sum bootstrap agrees with calibration.metrics.bootstrap_ci over the rows."""
    rng = np.random.default_rng(3)
    n = 2000
    probs = rng.dirichlet(np.full(4, 0.4), size=n)
    conf = probs.max(axis=1)
    correct = rng.uniform(size=n) < conf - 0.08  # overconfident by about 8 points
    labels = np.where(correct, probs.argmax(axis=1), (probs.argmax(axis=1) + 1) % 4)
    stats = BinStatistics()
    stats.update(conf, correct)
    low, high = ece_interval(stats, resamples=2000)
    row_low, row_high = bootstrap_ci(ece, probs, labels, n_resamples=300)
    assert low < ece(probs, labels) < high
    assert low == pytest.approx(row_low, abs=0.01) and high == pytest.approx(row_high, abs=0.01)


def test_interval_is_none_without_labels_and_deterministic() -> None:
    assert ece_interval(BinStatistics()) is None
    stats = BinStatistics()
    stats.update([0.9, 0.8, 0.7], [1, 0, 1])
    assert ece_interval(stats) == ece_interval(stats)


def test_status_carries_interval_and_label_delay(tmp_path: Path) -> None:
    clock = FakeClock()
    monitor = Monitor(SQLiteStore(tmp_path / "p.db"), clock=clock)
    monitor.record_predictions("m", "1", ["a", "b", "c"], [0.9, 0.8, 0.7], [0, 0, 0])
    empty = monitor.status("m", "1")
    assert empty.drift.ece_interval is None and empty.label_delay is not None
    assert empty.label_delay.labels == 0 and empty.label_delay.mean_seconds is None
    clock.t += 5
    monitor.record_feedback([("a", 0)])
    clock.t += 100
    monitor.record_feedback([("b", 0), ("c", 1)])
    status = monitor.status("m", "1")
    assert status.label_delay is not None and status.label_delay.labels == 3
    assert status.label_delay.mean_seconds == pytest.approx((5 + 105 + 105) / 3)
    assert status.label_delay.median_at_most_seconds == 300.0  # 105 s lies in the (60, 300] bucket
    low, high = status.drift.ece_interval or (np.nan, np.nan)
    assert 0 <= low <= high <= 1
