"""PendingLogStore: puts go to an append-only log first, into the SQLite file in bulk, and survive
kill -9 through a replay on the next open."""

from __future__ import annotations

import os
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from monitor_procs import run_then_sigkill

from service.monitor.errors import StoreError
from service.monitor.stores.pending_log import PendingLogStore, pending_log_path
from service.monitor.stores.sqlite_store import SQLiteStore
from service.monitor.stores.store import Outcome, PredictionRecord

T0 = 1_700_000_000.0
REPO = Path(__file__).resolve().parents[3]


def records(n: int, tag: str = "p", start: int = 0) -> list[PredictionRecord]:
    return [
        PredictionRecord(f"{tag}{i}", "m", "1", 0.25 + i / (4 * n), i % 10, T0 + i) for i in range(start, start + n)
    ]


def stored_directly(db: Path) -> int:
    """Rows in the SQLite file itself, read with a separate plain handle."""
    plain = SQLiteStore(db)
    try:
        return len(plain)
    finally:
        plain.close()


def test_puts_wait_in_the_log_until_flush_rows_then_move_in_bulk(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    store = PendingLogStore(SQLiteStore(db), flush_rows=10)
    store.put(records(6))
    assert stored_directly(db) == 0
    assert pending_log_path(db).read_bytes().count(b"\n") == 6
    store.put(records(6, start=6))  # 12 >= 10: flushed in this put
    assert stored_directly(db) == 12
    assert pending_log_path(db).stat().st_size == 0
    store.close()


def test_every_read_sees_every_put_before_it(tmp_path: Path) -> None:
    store = PendingLogStore(SQLiteStore(tmp_path / "p.db"), flush_rows=1000)
    store.put(records(3))
    assert set(store.fetch(["p0", "p2"])) == {"p0", "p2"}
    store.put(records(2, tag="q"))
    assert len(store) == 5
    store.put(records(1, tag="r"))
    assert [r.outcome for r in store.resolve([("r0", 1), ("p1", 1)], T0 + 10)] == [Outcome.ACCEPTED, Outcome.ACCEPTED]
    store.close()


def test_close_moves_the_pending_records_into_the_file(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    store = PendingLogStore(SQLiteStore(db), flush_rows=1000)
    store.put(records(7))
    store.close()
    assert stored_directly(db) == 7
    assert pending_log_path(db).stat().st_size == 0


CHILD = textwrap.dedent("""
    import sys, time
    from service.monitor.stores.pending_log import PendingLogStore
    from service.monitor.stores.sqlite_store import SQLiteStore
    from service.monitor.stores.store import PredictionRecord
    store = PendingLogStore(SQLiteStore(sys.argv[1], sync=sys.argv[2]), flush_rows=40)
    for i in range(50):  # 40 flushed into the file, 10 only in the log
        store.put([PredictionRecord(f"k{i}", "m", "1", 0.75, 2, 1_700_000_000.0)])
    print("stored", flush=True)
    time.sleep(60)
""")


@pytest.mark.parametrize("sync", ["normal", "full"])
def test_what_put_returned_survives_sigkill_and_is_replayed(tmp_path: Path, sync: str) -> None:
    db = tmp_path / "p.db"
    run_then_sigkill(CHILD, str(db), sync)
    assert stored_directly(db) == 40
    store = PendingLogStore(SQLiteStore(db))  # replays the 10 left in the log
    assert stored_directly(db) == 50
    assert pending_log_path(db).stat().st_size == 0
    got = store.resolve([("k3", 2), ("k49", 2)], T0 + 1)
    assert [r.outcome for r in got] == [Outcome.ACCEPTED, Outcome.ACCEPTED]
    assert got[1].record == PredictionRecord("k49", "m", "1", 0.75, 2, T0)
    store.close()


def test_a_torn_last_line_is_skipped_and_the_rest_replayed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = tmp_path / "p.db"
    store = PendingLogStore(SQLiteStore(db), flush_rows=1000)
    store.put(records(3))
    os.close(store._fd)  # the process "dies": no flush, the lock goes with the descriptor
    store.store.close()
    with pending_log_path(db).open("ab") as log:
        log.write(b'["p3","m","1",0.5')  # a write cut short by kill -9: never answered
    replayed = PendingLogStore(SQLiteStore(db))
    assert set(replayed.fetch(["p0", "p1", "p2", "p3"])) == {"p0", "p1", "p2"}
    assert "line 4 is not a record" in caplog.text
    replayed.close()


def test_a_second_handle_on_the_same_file_is_refused_until_the_first_closes(tmp_path: Path) -> None:
    first = PendingLogStore(SQLiteStore(tmp_path / "p.db"))
    second_sqlite = SQLiteStore(tmp_path / "p.db")
    with pytest.raises(StoreError, match=r"p\.db\.pending is in use .* own state_dir"):
        PendingLogStore(second_sqlite)
    first.put(records(2))
    first.close()
    again = PendingLogStore(second_sqlite)
    assert len(again) == 2
    again.close()


class FailingOnce(SQLiteStore):
    """A SQLite store whose next ``put`` fails (disk full, locked file...)."""

    fail_next = False

    def put(self, records: list[PredictionRecord]) -> None:  # type: ignore[override]
        if self.fail_next:
            self.fail_next = False
            raise StoreError("disk full")
        super().put(records)


def test_a_failed_flush_keeps_the_records_for_the_next_one(tmp_path: Path) -> None:
    sqlite = FailingOnce(tmp_path / "p.db")
    store = PendingLogStore(sqlite, flush_rows=1000)
    store.put(records(4))
    sqlite.fail_next = True
    with pytest.raises(StoreError, match="disk full"):
        store.fetch(["p0"])
    assert pending_log_path(tmp_path / "p.db").read_bytes().count(b"\n") == 4
    store.put(records(1, tag="q"))
    assert set(store.fetch(["p0", "p3", "q0"])) == {"p0", "p3", "q0"}
    store.close()


def test_puts_from_many_threads_all_land(tmp_path: Path) -> None:
    store = PendingLogStore(SQLiteStore(tmp_path / "p.db"), flush_rows=64)

    def put_batch(k: int) -> None:
        store.put(records(7, tag=f"b{k}-"))

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(put_batch, range(40)))
    assert len(store) == 280
    store.close()


def test_flush_rows_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="flush_rows"):
        PendingLogStore(SQLiteStore(tmp_path / "p.db"), flush_rows=0)


@settings(max_examples=25, deadline=None)
@given(batches=st.lists(st.lists(st.integers(0, 30), max_size=6), max_size=12), flush_rows=st.integers(1, 20))
def test_same_outcomes_as_the_plain_store(
    tmp_path_factory: pytest.TempPathFactory, batches: list[list[int]], flush_rows: int
) -> None:
    """Any puts (ids repeated within and across puts: the first record wins), at any flush size,
    give the same store content as the plain SQLite store (capacity: the store contract tests)."""
    tmp = tmp_path_factory.mktemp("same")
    plain = SQLiteStore(tmp / "plain.db")
    logged = PendingLogStore(SQLiteStore(tmp / "logged.db"), flush_rows=flush_rows)
    for n, ids in enumerate(batches):
        batch = [PredictionRecord(f"p{i}", "m", str(n), 0.5, i % 10, T0 + n) for i in ids]
        plain.put(batch)
        logged.put(batch)
    every = [f"p{i}" for i in range(31)]
    assert logged.fetch(every) == plain.fetch(every)
    assert (len(logged), logged.evicted()) == (len(plain), plain.evicted())
    plain.close()
    logged.close()


def test_a_log_path_that_cannot_be_opened_is_a_store_error_naming_it(tmp_path: Path) -> None:
    pending_log_path(tmp_path / "p.db").mkdir()  # a directory where the log belongs
    sqlite = SQLiteStore(tmp_path / "p.db")
    with pytest.raises(StoreError, match=r"cannot open prediction log .*p\.db\.pending"):
        PendingLogStore(sqlite)
    sqlite.close()
