"""Stores written before the score vector existed keep working, and the score vector survives what
the rest of a record survives: a kill -9 in front of the pending log, Redis pages of tied times."""

from __future__ import annotations

import sqlite3
import textwrap
from pathlib import Path

import numpy as np
import pytest
from monitor_procs import RedisServer, run_then_sigkill

from service.monitor.stores import redis_store, sqlite_store
from service.monitor.stores.pending_log import PendingLogStore, pending_log_path
from service.monitor.stores.redis_store import RedisStore
from service.monitor.stores.scores import decode_log_probs, encode_scores
from service.monitor.stores.sqlite_store import _WINDOW, SQLiteStore
from service.monitor.stores.store import Outcome, PredictionRecord

T0 = 1_700_000_000.0

OLD_SCHEMA = """
CREATE TABLE predictions (
    prediction_id TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    confidence REAL NOT NULL,
    predicted INTEGER NOT NULL,
    created_at REAL NOT NULL,
    label INTEGER,
    labeled_at REAL
);
CREATE INDEX predictions_by_time ON predictions (created_at);
CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO meta (name, value) VALUES ('rows', 2), ('evicted', 0);
INSERT INTO predictions VALUES ('old0', 'm', '1', 0.75, 2, 1700000000.0, NULL, NULL);
INSERT INTO predictions VALUES ('old1', 'm', '1', 0.5, 1, 1700000001.0, 1, 1700000002.0);
"""


def probs(n: int) -> np.ndarray:
    p = np.random.default_rng(n).dirichlet(np.ones(10), size=n)
    return p.astype(np.float32)


def scored(n: int, tag: str, start: float = T0) -> list[PredictionRecord]:
    blobs = encode_scores(probs(n))
    return [PredictionRecord(f"{tag}{i}", "m", "1", 0.5, 0, start + i, b) for i, b in enumerate(blobs)]


def test_a_file_of_the_old_schema_gains_the_column_and_its_rows_read_without_scores(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as conn:
        conn.executescript(OLD_SCHEMA)
    store = SQLiteStore(db)
    assert store.fetch(["old0"])["old0"] == PredictionRecord("old0", "m", "1", 0.75, 2, T0)
    assert store.served_rows("m", "1", T0, T0 + 100).ids == []
    store.put(scored(2, "new", start=T0 + 10))
    assert [r.outcome for r in store.resolve([("old0", 2), ("old1", 1)], T0 + 20)] == [
        Outcome.ACCEPTED,
        Outcome.DUPLICATE,
    ]
    assert store.served_rows("m", "1", T0, T0 + 100).ids == ["new0", "new1"]
    assert len(store) == 4
    store.close()
    again = SQLiteStore(db)  # opening a migrated file again changes nothing
    assert again.served_rows("m", "1", T0, T0 + 100).ids == ["new0", "new1"]
    again.close()


def test_the_window_read_walks_the_model_time_index_without_sorting(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "p.db")
    store.close()
    with sqlite3.connect(tmp_path / "p.db") as conn:
        plan = " ".join(str(row[-1]) for row in conn.execute("EXPLAIN QUERY PLAN " + _WINDOW, ("m", "1", 0, -1, 1, 10)))
    assert "predictions_by_model_time" in plan and "TEMP B-TREE" not in plan


def test_sqlite_window_chunks_lose_no_tied_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_store, "_WINDOW_CHUNK", 3)
    store = SQLiteStore(tmp_path / "p.db")
    blobs = encode_scores(probs(11))
    times = [0, 0, 0, 0, 0, 1, 1, 2, 2, 2, 3]  # ties longer than a chunk, and across chunk ends
    stamped = zip(times, blobs, strict=True)
    store.put([PredictionRecord(f"r{i:02d}", "m", "1", 0.5, 0, T0 + t, b) for i, (t, b) in enumerate(stamped)])
    assert store.served_rows("m", "1", T0, T0 + 3).ids == [f"r{i:02d}" for i in range(10)]
    assert store.served_rows("m", "1", T0 + 1, T0 + 10).ids == [f"r{i:02d}" for i in range(5, 11)]
    store.close()


CHILD = textwrap.dedent("""
    import sys, time
    import numpy as np
    from service.monitor.stores.pending_log import PendingLogStore
    from service.monitor.stores.scores import encode_scores
    from service.monitor.stores.sqlite_store import _WINDOW, SQLiteStore
    from service.monitor.stores.store import PredictionRecord
    store = PendingLogStore(SQLiteStore(sys.argv[1]), flush_rows=1000)
    p = np.random.default_rng(5).dirichlet(np.ones(50), size=8).astype(np.float32)
    blobs = encode_scores(p, top_k=int(sys.argv[2]))
    store.put([PredictionRecord(f"k{i}", "m", "1", 0.5, 0, 1_700_000_000.0 + i, b) for i, b in enumerate(blobs)])
    print("stored", flush=True)
    time.sleep(60)
""")


@pytest.mark.parametrize("top_k", [64, 8])
def test_scores_in_the_pending_log_survive_sigkill_and_replay(tmp_path: Path, top_k: int) -> None:
    db = tmp_path / "p.db"
    run_then_sigkill(CHILD, str(db), str(top_k))
    assert pending_log_path(db).stat().st_size > 0  # nothing reached the file: all in the log
    store = PendingLogStore(SQLiteStore(db))
    expected = encode_scores(np.random.default_rng(5).dirichlet(np.ones(50), size=8).astype(np.float32), top_k)
    rows = store.served_rows("m", "1", T0, T0 + 8)
    assert rows.ids == [f"k{i}" for i in range(8)]
    np.testing.assert_array_equal(rows.log_probs, decode_log_probs(expected))
    assert [store.fetch([f"k{i}"])[f"k{i}"].scores for i in range(8)] == expected
    store.close()


def test_a_log_written_before_scores_existed_replays_without_them(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    pending_log_path(db).write_bytes(b'["a","m","1",0.75,2,1700000000.0]\n')
    store = PendingLogStore(SQLiteStore(db))
    assert store.fetch(["a"])["a"] == PredictionRecord("a", "m", "1", 0.75, 2, T0)
    assert store.served_rows("m", "1", T0, T0 + 1).ids == []
    store.close()


def test_a_log_line_with_bad_scores_is_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = tmp_path / "p.db"
    pending_log_path(db).write_bytes(b'["a","m","1",0.75,2,1700000000.0,"not base64!"]\n')
    store = PendingLogStore(SQLiteStore(db))
    assert store.fetch(["a"]) == {}
    assert "line 1 is not a record" in caplog.text
    store.close()


@pytest.mark.e2e
def test_redis_pages_of_the_window_lose_no_tied_row(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redis_store, "_PAGE", 3)
    store = RedisStore(redis_server.url, prefix="pages:")
    blobs = encode_scores(probs(11))
    times = [0, 0, 0, 0, 0, 1, 1, 2, 2, 2, 3]  # ties longer than a page, and across page ends
    store.put(
        [
            PredictionRecord(f"r{i:02d}", "m", "1", 0.5, 0, T0 + t, b)
            for i, (t, b) in enumerate(zip(times, blobs, strict=True))
        ]
    )
    store.put([PredictionRecord("x", "other", "1", 0.5, 0, T0 + 1, blobs[0])])
    assert store.served_rows("m", "1", T0, T0 + 3).ids == [f"r{i:02d}" for i in range(10)]
    assert store.served_rows("m", "1", T0 + 1, T0 + 10).ids == [f"r{i:02d}" for i in range(5, 11)]
    store.close()
