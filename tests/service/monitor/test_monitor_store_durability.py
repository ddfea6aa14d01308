"""Durability: what a store call returned survives kill -9 (SQLite) and a Redis AOF restart."""

from __future__ import annotations

import signal
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from monitor_procs import RedisServer, free_port, run_then_sigkill

from service.monitor.stores.redis_store import RedisStore
from service.monitor.stores.sqlite_store import SQLiteStore
from service.monitor.stores.store import Outcome, PredictionRecord

T0 = 1_700_000_000.0
REPO = Path(__file__).resolve().parents[3]

CHILD = textwrap.dedent("""
    import sys, time
    from service.monitor.stores.sqlite_store import SQLiteStore
    from service.monitor.stores.store import PredictionRecord
    store = SQLiteStore(sys.argv[1], sync=sys.argv[2])
    store.put([PredictionRecord(f"k{i}", "m", "1", 0.75, 2, 1_700_000_000.0) for i in range(50)])
    store.resolve([("k0", 2)], 1_700_000_100.0)
    print("stored", flush=True)
    time.sleep(60)
""")


@pytest.mark.parametrize("sync", ["normal", "full"])
def test_sqlite_keeps_what_was_returned_after_sigkill(tmp_path: Path, sync: str) -> None:
    db = tmp_path / "p.db"
    run_then_sigkill(CHILD, str(db), sync)  # right after the calls returned: no close, no checkpoint
    assert Path(f"{db}-wal").exists()
    store = SQLiteStore(db)
    got = store.resolve([("k0", 2), ("k1", 2), ("k49", 2)], T0 + 200)
    assert [r.outcome for r in got] == [Outcome.DUPLICATE, Outcome.ACCEPTED, Outcome.ACCEPTED]
    assert got[1].record == PredictionRecord("k1", "m", "1", 0.75, 2, T0)
    assert len(store) == 50
    store.close()


def test_sqlite_second_handle_sees_state_before_first_is_closed(tmp_path: Path) -> None:
    first = SQLiteStore(tmp_path / "p.db")
    first.put([PredictionRecord(pid, "m", "1", 0.5, 0, T0) for pid in ("a", "b")])
    first.resolve([("a", 0)], T0 + 1)
    second = SQLiteStore(tmp_path / "p.db")
    assert [r.outcome.value for r in second.resolve([("a", 0), ("b", 1)], T0 + 2)] == ["duplicate", "accepted"]
    first.close()
    second.close()


def test_sqlite_concurrent_puts_from_a_thread_pool_all_land(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "p.db")

    def put_batch(k: int) -> None:
        store.put([PredictionRecord(f"b{k}-{i}", "m", "1", 0.9, 1, T0 + k) for i in range(20)])

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(put_batch, range(40)))
    assert len(store) == 800
    store.close()


@pytest.mark.e2e
def test_redis_with_appendonly_keeps_state_across_a_restart(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, free_port(), appendonly=True).start()
    try:
        store = RedisStore(server.url)
        store.put([PredictionRecord(f"r{i}", "m", "1", 0.8, 3, T0) for i in range(10)])
        store.resolve([("r0", 3)], T0 + 5)
        store.close()
        assert server.process is not None
        server.process.send_signal(signal.SIGKILL)  # appendfsync always: acknowledged = on disk
        server.process.wait(timeout=10)
        server.start()
        store = RedisStore(server.url)
        assert [r.outcome.value for r in store.resolve([("r0", 3), ("r1", 3)], T0 + 6)] == ["duplicate", "accepted"]
        assert len(store) == 10
        store.close()
    finally:
        server.stop()
