"""Monitor.served_rows: what the recorder stored, read back for a recalibration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from service.monitor import Monitor, MonitorConfig, SQLiteStore
from service.monitor.errors import MonitorInputError
from service.monitor.predictions import PredictionRecorder
from service.monitor.stores.scores import DEFAULT_TOP_K
from service.monitor.wiring import monitor_config
from service.settings import Settings

T0 = 1_700_000_000.0


def served(n: int, classes: int) -> np.ndarray:
    return np.random.default_rng(classes).dirichlet(np.ones(classes), size=n).astype(np.float32)


def test_recorded_probabilities_and_labels_come_back_in_the_window(tmp_path: Path) -> None:
    monitor = Monitor(SQLiteStore(tmp_path / "p.db"), clock=lambda: T0)
    probs = served(4, 10)
    ids = PredictionRecorder(monitor).record("fm", "1", probs)
    monitor.record_feedback([(ids[2], 5)], now=T0 + 1)
    rows = monitor.served_rows("fm", "1", T0, T0 + 1)
    assert sorted(rows.ids) == sorted(ids)
    order = [ids.index(pid) for pid in rows.ids]
    np.testing.assert_array_equal(rows.log_probs, np.log(probs[order].astype(np.float64)))
    assert rows.labels.tolist() == [5 if pid == ids[2] else -1 for pid in rows.ids]
    assert len(monitor.served_rows("fm", "1", T0 + 1, T0 + 2)) == 0


def test_many_classes_keep_the_configured_top_k(tmp_path: Path) -> None:
    monitor = Monitor(SQLiteStore(tmp_path / "p.db"), config=MonitorConfig(score_top_k=5), clock=lambda: T0)
    probs = served(3, 40)
    monitor.record_predictions("fm", "1", ["a", "b", "c"], probs.max(axis=1), probs.argmax(axis=1), probs=probs)
    (record,) = monitor.lookup(["a"]).values()
    assert record.scores is not None and len(record.scores) == 12 + 8 * 5
    log_p = monitor.served_rows("fm", "1", T0, T0 + 1).log_probs
    assert log_p.shape == (3, 40) and np.unique(log_p[0]).size == 6


def test_top_k_zero_keeps_no_scores(tmp_path: Path) -> None:
    monitor = Monitor(SQLiteStore(tmp_path / "p.db"), config=MonitorConfig(score_top_k=0), clock=lambda: T0)
    PredictionRecorder(monitor).record("fm", "1", served(2, 10))
    assert len(monitor.served_rows("fm", "1", T0, T0 + 1)) == 0
    assert monitor.snapshot("fm", "1").predictions_total == 2


def test_probabilities_of_the_wrong_shape_are_refused_before_anything_is_stored(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "p.db")
    monitor = Monitor(store, clock=lambda: T0)
    with pytest.raises(MonitorInputError, match="probabilities"):
        monitor.record_predictions("fm", "1", ["a", "b"], [0.5, 0.5], [0, 1], probs=served(3, 10))
    assert len(store) == 0


def test_the_setting_reaches_the_monitor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANDOR_STORE_TOP_K", "7")
    assert monitor_config(Settings()).score_top_k == 7
    assert MonitorConfig().score_top_k == DEFAULT_TOP_K == Settings.model_fields["store_top_k"].default
