"""The Prometheus collector: samples read at scrape time, names promtool accepts, fleet ECE."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from monitor_data import T0, FakeClock, draw_confidences, draw_outcomes, make_reference
from monitor_procs import promtool
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

from calibration.binning import BinStatistics
from service.monitor import Monitor, MonitorCollector, SQLiteStore
from service.monitor.collector import bin_label

MV = {"model": "fm", "version": "1"}


def replica(tmp_path: Path, name: str, clock: FakeClock) -> tuple[Monitor, CollectorRegistry]:
    monitor = Monitor(
        SQLiteStore(tmp_path / f"{name}.db"), {("fm", "1"): make_reference(np.random.default_rng(0))}, clock=clock
    )
    registry = CollectorRegistry()
    registry.register(MonitorCollector(monitor))
    return monitor, registry


def feed(monitor: Monitor, rng: np.random.Generator, n: int, gap: float, tag: str) -> tuple[np.ndarray, np.ndarray]:
    conf = draw_confidences(rng, n)
    hit = draw_outcomes(rng, conf, gap)
    ids = [f"{tag}{i}" for i in range(n)]
    monitor.record_predictions("fm", "1", ids, conf, np.zeros(n, dtype=int))
    monitor.record_feedback([(pid, 0 if ok else 1) for pid, ok in zip(ids, hit, strict=True)])
    return conf, hit


def test_samples_are_read_at_scrape_time(tmp_path: Path) -> None:
    clock = FakeClock()
    monitor, registry = replica(tmp_path, "a", clock)
    get = registry.get_sample_value
    assert get("candor_predictions_total", MV) == 0
    assert get("candor_calibration_window_ece_ratio", MV) is None  # undefined: left out
    assert get("candor_calibration_drift_insufficient_data", MV) == 1
    monitor.record_predictions("fm", "1", ["a", "b", "c"], [0.95, 0.5, 0.55], [1, 2, 2])
    clock.t += 42
    monitor.record_feedback([("a", 1), ("b", 0), ("b", 0), ("zz", 1)])
    assert get("candor_predictions_total", MV) == 3
    assert get("candor_feedback_labels_total", {"outcome": "accepted"}) == 2
    assert get("candor_feedback_labels_total", {"outcome": "duplicate"}) == 1
    assert get("candor_feedback_labels_total", {"outcome": "unknown"}) == 1
    assert get("candor_feedback_labels_total", {"outcome": "expired"}) == 0
    top, mid = {**MV, "bin": "1.0000"}, {**MV, "bin": bin_label(8 / 15)}
    assert get("candor_calibration_bin_labeled_total", top) == 1
    assert get("candor_calibration_bin_correct_total", top) == 1
    assert get("candor_calibration_bin_confidence_total", mid) == pytest.approx(0.5)
    assert get("candor_calibration_bin_correct_total", mid) == 0
    assert get("candor_calibration_window_ece_ratio", MV) == pytest.approx((0.05 + 0.5) / 2)
    assert get("candor_calibration_window_label_coverage_ratio", MV) == pytest.approx(2 / 3)
    assert get("candor_label_delay_seconds_bucket", {**MV, "le": "60.0"}) == 2
    assert get("candor_label_delay_seconds_bucket", {**MV, "le": "10.0"}) == 0
    assert get("candor_label_delay_seconds_sum", MV) == pytest.approx(84.0)
    assert get("candor_calibration_reference_ece_ratio", MV) is not None
    assert get("candor_prediction_store_evicted_total") == 0
    assert REGISTRY.get_sample_value("candor_predictions_total", MV) is None


def test_drift_gauges_follow_the_verdict(tmp_path: Path) -> None:
    monitor, registry = replica(tmp_path, "a", FakeClock())
    feed(monitor, np.random.default_rng(3), 2000, gap=0.1, tag="d")
    get = registry.get_sample_value
    assert (
        get("candor_calibration_drift_detected", MV),
        get("candor_calibration_drift_ok", MV),
        get("candor_calibration_drift_insufficient_data", MV),
    ) == (1, 0, 0)
    threshold = get("candor_calibration_drift_threshold_ratio", MV)
    assert threshold is not None
    assert get("candor_calibration_drift_statistic_ratio", MV) > threshold  # type: ignore[operator]


def test_bin_counters_give_the_fleet_ece_across_replicas(tmp_path: Path) -> None:
    clock = FakeClock()
    replicas = [replica(tmp_path, name, clock) for name in ("a", "b")]
    rng = np.random.default_rng(4)
    data = [feed(m, rng, 700, gap=gap, tag=f"r{gap}") for (m, _), gap in zip(replicas, (0.1, -0.1), strict=True)]
    fleet = BinStatistics()
    for conf, hit in data:
        fleet.update(conf, hit)
    edges = [bin_label((b + 1) / 15) for b in range(15)]

    def total(part: str, b: str) -> float:
        return sum(
            r.get_sample_value(f"candor_calibration_bin_{part}_total", {**MV, "bin": b}) or 0.0 for _, r in replicas
        )

    gaps = sum(abs(total("confidence", b) - total("correct", b)) for b in edges)
    assert gaps / sum(total("labeled", b) for b in edges) == pytest.approx(fleet.compute_ece())


def test_promtool_check_metrics_finds_no_problem(tmp_path: Path) -> None:
    monitor, registry = replica(tmp_path, "a", FakeClock(T0))
    feed(monitor, np.random.default_rng(5), 300, gap=0.0, tag="p")
    exposition = generate_latest(registry).decode()
    result = promtool("check", "metrics", stdin=exposition)
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stdout + result.stderr
