"""Worker slots share one SQLite file, each behind its own pending log (``<db>.pending.<slot>``):
a read in any slot sees every put that returned in any slot, records are stored once, and a
killed slot's log is replayed by its successor."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from service.monitor.stores.pending_log import (
    PendingLogStore,
    leftover_logs,
    pending_log_path,
    read_complete_records,
    replay_logs,
)
from service.monitor.stores.sqlite_store import SQLiteStore
from service.monitor.stores.store import Outcome, PredictionRecord

T0 = 1_700_000_000.0


def record(pid: str, i: int = 0) -> PredictionRecord:
    return PredictionRecord(pid, "m", "1", 0.5 + (i % 40) / 100, i % 10, T0 + i)


def slots(db: Path, n: int, flush_rows: int = 1000) -> list[PendingLogStore]:
    return [PendingLogStore(SQLiteStore(db), flush_rows=flush_rows, slot=s, n_slots=n) for s in range(n)]


# one step: (slot that acts, action, argument)
STEP = st.tuples(st.integers(0, 2), st.sampled_from(["put", "flush", "fetch", "label"]), st.integers(0, 30))


@settings(max_examples=40, deadline=None)
@given(steps=st.lists(STEP, max_size=40), flush_rows=st.integers(1, 8))
def test_every_slot_sees_every_returned_put_and_stores_it_once(
    steps: list[tuple[int, str, int]], flush_rows: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "p.db"
        stores = slots(db, 3, flush_rows)
        put: list[str] = []
        labelled: set[str] = set()
        for slot, action, arg in steps:
            store = stores[slot]
            if action == "put":
                pid = f"p{len(put)}"
                store.put([record(pid, len(put))])
                put.append(pid)
            elif action == "flush":
                store.flush()
            elif action == "fetch":
                assert set(store.fetch(put)) == set(put)
            elif put:
                pid = put[arg % len(put)]
                (res,) = store.resolve([(pid, 1)], T0 + 100)
                assert res.outcome is (Outcome.DUPLICATE if pid in labelled else Outcome.ACCEPTED)
                labelled.add(pid)
        for store in stores:
            store.close()
        plain = SQLiteStore(db)
        assert len(plain) == len(put) and set(plain.fetch(put)) == set(put)  # stored once each
        plain.close()


def test_a_killed_slots_log_is_replayed_by_the_next_worker_in_that_slot(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    a, b = slots(db, 2)
    a.put([record("x"), record("y", 1)])
    os.close(a._fd)  # kill -9: the flock goes, the log stays, nothing is flushed
    a.store.close()
    assert len(read_complete_records(pending_log_path(db, 0))) == 2
    a2 = PendingLogStore(SQLiteStore(db), slot=0, n_slots=2)
    assert pending_log_path(db, 0).stat().st_size == 0  # replayed into the store, then emptied
    assert set(b.fetch(["x", "y"])) == {"x", "y"}
    a2.close()
    b.close()


def test_a_torn_sibling_line_is_left_out_not_misread(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    a, b = slots(db, 2)
    a.put([record("x")])
    with pending_log_path(db, 0).open("ab") as log:
        log.write(b'["half-written", "m"')  # an append in progress: no newline yet
    assert set(b.fetch(["x", "half-written"])) == {"x"}
    a.close()
    b.close()


def test_the_supervisor_replays_every_log_an_earlier_run_left(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    a, b, c = slots(db, 3)
    for store, pid in ((a, "x"), (b, "y"), (c, "z")):
        store.put([record(pid)])
        os.close(store._fd)
        store.store.close()
    assert leftover_logs(db) == [pending_log_path(db, s) for s in range(3)]
    plain = SQLiteStore(db)
    assert replay_logs(plain, leftover_logs(db)) == 3
    assert set(plain.fetch(["x", "y", "z"])) == {"x", "y", "z"} and leftover_logs(db) == []
    plain.close()


def test_served_rows_in_one_slot_holds_the_rows_another_slot_has_not_flushed(tmp_path: Path) -> None:
    import numpy as np

    from service.monitor.stores.scores import encode_scores

    probs = np.full((6, 4), 0.25, dtype=np.float32)
    scores = encode_scores(probs, 32)
    a, b = slots(tmp_path / "p.db", 2)
    a.put([PredictionRecord(f"a{i}", "m", "1", 0.25, 0, T0 + i, scores[i]) for i in range(3)])
    b.put([PredictionRecord(f"b{i}", "m", "1", 0.25, 0, T0 + 3 + i, scores[3 + i]) for i in range(3)])
    a.put([PredictionRecord("other", "m", "2", 0.25, 0, T0 + 1, scores[0])])  # another version
    rows = a.served_rows("m", "1", T0, T0 + 5)  # b's log is still unflushed (flush_rows 1000)
    assert rows.ids == ["a0", "a1", "a2", "b0", "b1"]
    np.testing.assert_allclose(np.exp(rows.log_probs), probs[:5])
    for s in (a, b):
        s.close()
