"""The Monitor facade: predictions in, labels in, status out; thread-safe."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from monitor_data import T0, FakeClock, draw_confidences, draw_outcomes, make_reference

from calibration.binning import BinStatistics
from service.monitor import Monitor, MonitorConfig, SQLiteStore
from service.monitor.errors import MonitorInputError, UnknownModelError
from service.monitor.stores.store import Outcome


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    return SQLiteStore(tmp_path / "p.db")


def serve(
    monitor: Monitor, rng: np.random.Generator, n: int, gap: float = 0.0, tag: str = "a", model: str = "fm"
) -> list[tuple[str, int]]:
    """Record n predictions (class 0 predicted) and return labels: 0 when correct, 1 otherwise."""
    conf = draw_confidences(rng, n)
    ids = [f"{tag}{i}" for i in range(n)]
    monitor.record_predictions(model, "1", ids, conf, np.zeros(n, dtype=int))
    hit = draw_outcomes(rng, conf, gap)
    return [(pid, 0 if ok else 1) for pid, ok in zip(ids, hit, strict=True)]


def test_labels_update_the_window_like_the_batch_formula(store: SQLiteStore) -> None:
    rng = np.random.default_rng(1)
    clock = FakeClock()
    monitor = Monitor(store, {("fm", "1"): make_reference(rng)}, clock=clock)
    conf = np.array([0.95, 0.85, 0.6, 0.99, 0.7])
    monitor.record_predictions("fm", "1", list("abcde"), conf, [3, 1, 4, 1, 5])
    clock.t += 30
    result = monitor.record_feedback([("a", 3), ("b", 2), ("c", 4), ("a", 3), ("zz", 0)])
    assert result.model_dump() == {"accepted": 3, "unknown": 1, "duplicate": 1, "expired": 0}
    expected = BinStatistics()
    expected.update(conf[:3], [1, 0, 1])
    status = monitor.status("fm", "1")
    assert status.window.labels == 3 and status.predictions_since_start == 5
    assert status.window.ece == pytest.approx(expected.compute_ece())
    assert status.window.accuracy == pytest.approx(2 / 3)
    assert status.label_coverage == pytest.approx(3 / 5)
    assert status.drift.verdict == "insufficient_data"
    assert [b.count for b in status.reliability if b.count] == [1, 1, 1]
    assert status.reference is not None and status.label_free.confidence_psi is not None
    assert monitor.snapshot("fm", "1").delays.total == pytest.approx(90.0)


def test_window_slides_but_since_start_keeps_everything(store: SQLiteStore) -> None:
    clock = FakeClock()
    monitor = Monitor(store, config=MonitorConfig(window_seconds=600, n_buckets=10), clock=clock)
    monitor.record_predictions("fm", "1", ["a", "b"], [0.9, 0.8], [0, 0])
    monitor.record_feedback([("a", 0)])
    clock.t += 600
    monitor.record_feedback([("b", 1)])
    status = monitor.status("fm", "1")
    assert (status.window.labels, status.since_start.labels) == (1, 2)
    assert status.window.accuracy == 0.0 and status.since_start.accuracy == 0.5
    assert status.label_free.predictions == 0 and status.label_coverage is None


def test_drift_and_label_free_shift_show_in_the_status(store: SQLiteStore) -> None:
    rng = np.random.default_rng(2)
    monitor = Monitor(store, {("fm", "1"): make_reference(rng)}, clock=FakeClock())
    monitor.record_feedback(serve(monitor, rng, 2000, gap=0.08))
    status = monitor.status("fm", "1")
    assert status.drift.verdict == "drift" and status.drift.n == 2000
    assert status.drift.threshold is not None and status.drift.statistic > status.drift.threshold
    assert status.label_free.confidence_psi is not None and status.label_free.confidence_psi < 0.1
    low = [f"low{i}" for i in range(500)]
    monitor.record_predictions("fm", "1", low, np.full(500, 0.3), np.zeros(500, dtype=int))
    assert monitor.status("fm", "1").label_free.confidence_shift


def test_label_for_another_replicas_prediction_creates_the_model(tmp_path: Path) -> None:
    replica_a = Monitor(SQLiteStore(tmp_path / "shared.db"), clock=FakeClock())
    replica_b = Monitor(SQLiteStore(tmp_path / "shared.db"), clock=FakeClock(T0 + 5))
    replica_a.record_predictions("fm", "2", ["x"], [0.7], [1])
    assert replica_b.record_feedback([("x", 1)]).accepted == 1
    assert replica_b.models() == [("fm", "2")]
    status = replica_b.status("fm", "2")
    assert status.window.labels == 1 and status.reference is None
    with pytest.raises(UnknownModelError, match="'nope' version '1'"):
        replica_b.status("nope", "1")


@pytest.mark.parametrize(
    ("ids", "conf", "pred"),
    [
        (["a", "b"], [0.5], [0]),
        (["a"], [1.2], [0]),
        (["a"], [0.5], [-1]),
        (["a"], [0.5], [0.5]),
        (["a", "b"], [0.5, float("nan")], [0, 1]),
        (["a"], [float("inf")], [0]),
        (["a"], [0.5], [True]),
    ],
)
def test_bad_predictions_are_rejected_before_storing(
    store: SQLiteStore, ids: list[str], conf: list[float], pred: list[float]
) -> None:
    monitor = Monitor(store)
    with pytest.raises(MonitorInputError):
        monitor.record_predictions("fm", "1", ids, conf, pred)
    assert len(store) == 0


def test_concurrent_calls_from_a_thread_pool_lose_nothing(store: SQLiteStore) -> None:
    monitor = Monitor(store, clock=FakeClock())

    def work(k: int) -> int:
        rng = np.random.default_rng(k)
        labels = serve(monitor, rng, 50, tag=f"w{k}-")
        return monitor.record_feedback(labels + labels[:10]).accepted

    with ThreadPoolExecutor(max_workers=8) as pool:
        accepted = sum(pool.map(work, range(24)))
    status = monitor.status("fm", "1")
    assert accepted == status.window.labels == 24 * 50
    assert status.predictions_since_start == 24 * 50
    assert monitor.feedback_counts()[Outcome.DUPLICATE] == 24 * 10
