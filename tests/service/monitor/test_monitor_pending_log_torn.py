"""PendingLogStore after a failed append (disk full): the log is cut back to its last complete
record, so every record answered OK survives kill -9 and the replay (issue 16 item 4)."""

from __future__ import annotations

import errno
import json
import logging
import os
import textwrap
from pathlib import Path

import pytest
from monitor_procs import run_then_sigkill

from service.monitor.errors import StoreError
from service.monitor.stores.pending_log import PendingLogStore, pending_log_path
from service.monitor.stores.sqlite_store import SQLiteStore
from service.monitor.stores.store import PredictionRecord

T0 = 1_700_000_000.0

# The child puts one record per call; calls 3 and 6 hit a full disk: os.write writes only part of
# the line, then the next os.write raises ENOSPC. It writes the ids answered OK, then is killed.
CHILD = textwrap.dedent("""
    import errno, json, os, sys, time
    from service.monitor.stores import pending_log
    from service.monitor.errors import StoreError
    from service.monitor.stores.pending_log import PendingLogStore
    from service.monitor.stores.sqlite_store import SQLiteStore
    from service.monitor.stores.store import PredictionRecord
    store = PendingLogStore(SQLiteStore(sys.argv[1], sync=sys.argv[2]), flush_rows=1000)
    real_write, full = os.write, [False]
    def write(fd, data):
        if fd != store._fd or not full[0]:
            return real_write(fd, data)
        if full[0] == "cut":
            raise OSError(errno.ENOSPC, "No space left on device")
        full[0] = "cut"
        return real_write(fd, bytes(data[: len(data) // 2]))
    pending_log.os.write = write
    answered = []
    for i in range(9):
        full[0] = i in (3, 6)
        try:
            store.put([PredictionRecord(f"k{i}", "m", "1", 0.75, i, 1_700_000_000.0)])
            answered.append(f"k{i}")
        except StoreError:
            pass
    pending_log.os.write = real_write
    with open(sys.argv[3], "w") as out:
        json.dump(answered, out)
    print("stored", flush=True)
    time.sleep(60)
""")


@pytest.mark.parametrize("sync", ["normal", "full"])
def test_every_record_answered_ok_after_a_disk_full_append_survives_sigkill(tmp_path: Path, sync: str) -> None:
    db, answered_file = tmp_path / "p.db", tmp_path / "answered.json"
    run_then_sigkill(CHILD, str(db), sync, str(answered_file))
    answered = json.loads(answered_file.read_text())
    assert answered == [f"k{i}" for i in range(9) if i not in (3, 6)]
    assert pending_log_path(db).read_bytes().count(b"\n") == 7  # whole lines only, none torn
    store = PendingLogStore(SQLiteStore(db))  # the replay after kill -9
    assert sorted(store.fetch([f"k{i}" for i in range(9)])) == answered
    store.close()


def test_a_failed_append_is_cut_back_before_put_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = PendingLogStore(SQLiteStore(tmp_path / "p.db"), flush_rows=1000)
    store.put([record(0)])
    whole = pending_log_path(store.store.path).read_bytes()
    real_write = os.write
    calls = iter([lambda fd, data: real_write(fd, bytes(data[:7])), raise_enospc])  # part, then disk full

    def write(fd: int, data: bytes) -> int:
        return int(next(calls)(fd, data)) if fd == store._fd else real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    with pytest.raises(StoreError, match="No space left"):
        store.put([record(1)])
    monkeypatch.undo()
    assert pending_log_path(store.store.path).read_bytes() == whole
    store.put([record(2)])
    assert sorted(store.fetch(["k0", "k1", "k2"])) == ["k0", "k2"]
    store.close()


def test_a_log_holding_only_a_torn_line_is_emptied_on_open(tmp_path: Path) -> None:
    """With no whole record to replay the torn line was left, and the next append glued onto it."""
    db = tmp_path / "p.db"
    pending_log_path(db).write_bytes(b'["k9","m","1",0.5')  # kill -9 during the only write
    store = PendingLogStore(SQLiteStore(db), flush_rows=1000)
    assert pending_log_path(db).stat().st_size == 0
    store.put([record(0)])
    os.close(store._fd)  # the process "dies": no flush
    store.store.close()
    replayed = PendingLogStore(SQLiteStore(db))
    assert list(replayed.fetch(["k0"])) == ["k0"]
    replayed.close()


def test_a_replay_is_logged_once_it_has_succeeded(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = tmp_path / "p.db"
    store = PendingLogStore(SQLiteStore(db), flush_rows=1000)
    store.put([record(0), record(1)])
    os.close(store._fd)
    store.store.close()
    with caplog.at_level(logging.INFO, logger="service.monitor.stores.pending_log"):
        PendingLogStore(SQLiteStore(db)).close()
    (line,) = [r for r in caplog.records if r.name == "service.monitor.stores.pending_log"]
    assert line.levelno == logging.INFO
    assert line.getMessage() == f"replayed 2 predictions from {pending_log_path(db)} into {db}"


def record(i: int) -> PredictionRecord:
    return PredictionRecord(f"k{i}", "m", "1", 0.75, i, T0)


def raise_enospc(fd: int, data: bytes) -> int:
    raise OSError(errno.ENOSPC, "No space left on device")
