"""record_feedback_batches: several callers' labels in one store call, each with its own counts."""

from __future__ import annotations

from pathlib import Path

from service.monitor import FeedbackResult, Monitor, Outcome, SQLiteStore

T0 = 1_700_000_000.0


def test_batches_get_their_own_counts_in_order(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "p.db")
    monitor = Monitor(store, clock=lambda: T0)
    monitor.record_predictions("fm", "1", ["a", "b"], [0.9, 0.6], [3, 1])
    first, second, empty = monitor.record_feedback_batches([[("a", 3), ("x", 0)], [("a", 1), ("b", 0)], []])
    assert first == FeedbackResult(accepted=1, unknown=1)
    assert second == FeedbackResult(accepted=1, duplicate=1)  # "a" was labelled by the first
    assert empty == FeedbackResult()
    counts = monitor.feedback_counts()
    assert [counts[o] for o in (Outcome.ACCEPTED, Outcome.UNKNOWN, Outcome.DUPLICATE)] == [2, 1, 1]
    window = monitor.status("fm", "1").window
    assert window.labels == 2 and window.accuracy == 0.5  # a right (3 == 3), b wrong (1 != 0)
    store.close()
