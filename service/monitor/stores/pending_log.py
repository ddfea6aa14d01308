"""PendingLogStore: an append-only log in front of a SQLite store, so that a served prediction costs
one ``write()`` instead of one SQLite transaction.

``put`` appends the records to ``<db>.pending`` (one JSON line each: id, model, version, confidence,
predicted, created_at and, when kept, the scores blob in base64; one ``os.write`` per call;
with a store opened ``sync="full"``, an ``fdatasync`` too) and returns: from then on they survive
``kill -9`` exactly as a SQLite commit in WAL mode with ``synchronous=NORMAL`` does (the bytes are
in the kernel's page cache). The records move into the store in one transaction ("flush") once
``flush_rows`` are pending and before every read (``fetch``, ``resolve``, ``len``, ``evicted``), so
reads see every ``put`` that returned before them. After a flush the log is truncated. On open, a log left by a
process that died is replayed into the store; the store ignores ids it has already (a crash between
a flush's commit and the truncation replays records already stored: harmless). The log never holds
a torn line before a record: an append that fails part-way (disk full) is cut back to the last
complete record before ``put`` raises, and until that succeeds nothing more is appended.

One handle owns the log (``flock``, service.monitor.stores.ownership): a second handle, in this process or
another, is refused with StoreError (the service also opens the SQLite store itself exclusively).
Replicas that share predictions use a Redis store instead.

Worker slots (``candor serve --workers N``, service.supervisor): the N worker processes share the
SQLite file (WAL; the supervisor owns ``<db>.lock``) and slot s owns the log ``<db>.pending.<s>``.
A read must see every ``put`` that returned in any slot, so when a read misses ids it reads the
other slots' logs (complete lines only), stores the records of the missing ids (INSERT OR IGNORE:
a record stored twice, by its slot's flush and by a sibling, is stored once) and reads again. A
sibling's flush commits before it truncates its log, and this read reads the log before it reads
the store again: a record is in the log when read or committed before, so it is found either way.
A killed slot's log is replayed by the worker restarted into that slot. ``len`` and ``evicted``
count the shared file and this slot's log only (a sibling's records count once it flushes).
"""

from __future__ import annotations

import base64
import logging
import os
import threading
from collections.abc import Callable, Sequence
from glob import escape as glob_escape
from pathlib import Path

import orjson

from service.monitor.errors import StoreError
from service.monitor.stores.ownership import open_exclusively
from service.monitor.stores.sqlite_store import SQLiteStore
from service.monitor.stores.store import PredictionRecord, Resolution, ServedRows

log = logging.getLogger(__name__)

DEFAULT_FLUSH_ROWS = 1024


def pending_log_path(db: Path, slot: int | None = None) -> Path:
    """The log of the SQLite file ``db``: ``<db>.pending`` beside it, ``<db>.pending.<slot>`` for a
    worker slot."""
    return db.with_name(db.name + ".pending" + ("" if slot is None else f".{slot}"))


def leftover_logs(db: Path) -> list[Path]:
    """Every log of ``db`` on disk: the single process's and any worker slot's."""
    single = pending_log_path(db)
    slots = [p for p in db.parent.glob(glob_escape(single.name) + ".*") if p.name.rpartition(".")[2].isdigit()]
    return ([single] if single.exists() else []) + sorted(slots)


class PendingLogStore:
    """PredictionStore: SQLiteStore with puts logged first, moved in bulk (module docstring)."""

    def __init__(
        self, store: SQLiteStore, flush_rows: int = DEFAULT_FLUSH_ROWS, slot: int | None = None, n_slots: int = 1
    ) -> None:
        """With ``slot``, this is worker slot ``slot`` of ``n_slots`` sharing the store (module
        docstring); the siblings' logs are read on a miss."""
        if flush_rows < 1:
            raise StoreError(f"flush_rows must be >= 1, got {flush_rows}")
        self.store = store
        self.limits = store.limits
        self.path = pending_log_path(store.path, slot)
        self.siblings = [] if slot is None else [pending_log_path(store.path, s) for s in range(n_slots) if s != slot]
        self.flush_rows = flush_rows
        self._sync = store.sync == "full"  # as durable as the store's own commits
        self._lock = threading.Lock()
        self._pending: list[PredictionRecord] = []
        self._complete = 0  # bytes of the log that are whole records; beyond: a torn append
        self._torn = False
        self._fd = open_owned_log(self.path)
        try:
            self._replay()
        except BaseException:
            os.close(self._fd)
            raise

    def put(self, records: Sequence[PredictionRecord]) -> None:
        """Append the records to the log (durable against kill -9 when this returns)."""
        if not records:
            return
        data = b"".join([log_line(r) for r in records])
        with self._lock:
            self._append(data)
            self._pending.extend(records)
            if len(self._pending) >= self.flush_rows:
                self._flush()

    def fetch(self, ids: Sequence[str]) -> dict[str, PredictionRecord]:
        self.flush()
        found = self.store.fetch(ids)
        missing = [pid for pid in ids if pid not in found]
        if missing and self._ingest_siblings(missing):
            found.update(self.store.fetch(missing))
        return found

    def resolve(self, labels: Sequence[tuple[str, int]], now: float) -> list[Resolution]:
        self.flush()
        if self.siblings:
            ids = list({pid for pid, _ in labels})
            found = self.store.fetch(ids)
            self._ingest_siblings([pid for pid in ids if pid not in found])
        return self.store.resolve(labels, now)

    def served_rows(self, model: str, version: str, since: float, until: float) -> ServedRows:
        """The window's rows, the other slots' logged ones included (stored first, so none is missed)."""
        self.flush()
        if self.siblings:
            self._store_sibling_records(
                lambda r: r.model == model and r.version == version and since <= r.created_at < until
            )
        return self.store.served_rows(model, version, since, until)

    def _ingest_siblings(self, missing: Sequence[str]) -> int:
        """Store the records of ``missing`` ids found in the other slots' logs; how many."""
        if not self.siblings or not missing:
            return 0
        wanted = set(missing)
        return self._store_sibling_records(lambda r: r.prediction_id in wanted)

    def _store_sibling_records(self, keep: Callable[[PredictionRecord], bool]) -> int:
        """Store the records of the other slots' logs that ``keep`` selects (ids stored already are
        ignored by the store); how many were selected."""
        records = [r for path in self.siblings for r in read_complete_records(path) if keep(r)]
        self.store.put(records)
        return len(records)

    def evicted(self) -> int:
        self.flush()
        return self.store.evicted()

    def __len__(self) -> int:
        self.flush()
        return len(self.store)

    def flush(self) -> None:
        """Move every pending record into the store (one transaction), then empty the log."""
        with self._lock:
            self._flush()

    def close(self) -> None:
        """Flush (a failure leaves the records in the log for the next open), release the log."""
        with self._lock:
            try:
                self._flush()
            except StoreError as exc:
                log.error("prediction log %s kept for the next start: %s", self.path, exc)
            finally:
                os.close(self._fd)  # releases the flock
                self.store.close()

    def _append(self, data: bytes) -> None:
        """Write all of ``data`` at the log's end (fdatasync with sync=full); on failure the log
        is cut back to its last complete record, so no later record is glued to a torn one."""
        self._cut_torn_tail()
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
            if self._sync:
                os.fdatasync(self._fd)
        except OSError as exc:
            self._torn = True
            self._cut_torn_tail(quiet=True)
            raise StoreError(f"cannot append to prediction log {self.path}: {exc}") from exc
        self._complete += len(data)

    def _cut_torn_tail(self, quiet: bool = False) -> None:
        """(lock held) Truncate a torn append away; StoreError (unless ``quiet``) while it cannot be."""
        if not self._torn:
            return
        try:
            os.ftruncate(self._fd, self._complete)
        except OSError as exc:
            if quiet:
                return
            raise StoreError(f"cannot repair prediction log {self.path} after a failed append: {exc}") from exc
        self._torn = False

    def _flush(self) -> None:
        """(lock held) Pending records into the store; the log is truncated once they are in."""
        if not self._pending:
            return
        self.store.put(self._pending)  # StoreError: records stay pending and in the log
        self._pending = []
        self._empty_log()

    def _empty_log(self) -> None:
        """(lock held) Truncate the log, whose records are all stored (a failure only means that a
        later replay finds them again)."""
        try:
            os.ftruncate(self._fd, 0)
        except OSError as exc:
            log.warning("cannot truncate prediction log %s: %s", self.path, exc)
            return
        self._complete, self._torn = 0, False

    def _replay(self) -> None:
        """Records in a log left by a process that died go into the store; the log is emptied,
        a torn last line (a write cut short, never answered) with it."""
        with self._lock:
            self._pending, self._complete, size = read_log(self.path)
            self._torn = size > self._complete
            replayed = len(self._pending)
            self._flush()
            if self._complete or self._torn:  # nothing to replay, but a torn line to drop
                self._empty_log()
            if replayed:
                log.info("replayed %d predictions from %s into %s", replayed, self.path, self.store.path)


def log_line(r: PredictionRecord) -> bytes:
    """One record as a JSON line: 6 fields, a 7th (the scores in base64) when they are kept."""
    fields: list[str | float | int] = [
        r.prediction_id,
        r.model,
        r.version,
        float(r.confidence),
        int(r.predicted),
        float(r.created_at),
    ]
    if r.scores:
        fields.append(base64.b64encode(r.scores).decode("ascii"))
    return orjson.dumps(fields) + b"\n"


def parse_line(line: bytes) -> PredictionRecord:
    """The record of a ``log_line`` (a log written before scores existed has 6 fields: replayed
    without scores); ValueError, TypeError or a JSONDecodeError when it is not one."""
    pid, model, version, confidence, predicted, created, *rest = orjson.loads(line)
    if len(rest) > 1:
        raise ValueError(f"{6 + len(rest)} fields")
    scores = base64.b64decode(rest[0], validate=True) if rest else None
    return PredictionRecord(
        str(pid), str(model), str(version), float(confidence), int(predicted), float(created), scores or None
    )


def open_owned_log(path: Path) -> int:
    """Open (create) the log for appending and take its exclusive flock; StoreError if held."""
    return open_exclusively(path, os.O_WRONLY | os.O_APPEND, f"prediction log {path}")


def read_complete_records(path: Path) -> list[PredictionRecord]:
    """The records of another slot's log, complete lines only (its owner may be appending to it,
    or truncating it after a flush); nothing when there is no such log."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise StoreError(f"cannot read prediction log {path}: {exc}") from exc
    records = []
    for line in data[: data.rfind(b"\n") + 1].splitlines():
        try:
            records.append(parse_line(line))
        except (orjson.JSONDecodeError, TypeError, ValueError):
            continue  # a line cut by a truncation racing this read: its record is in the store
    return records


def replay_logs(store: SQLiteStore, paths: Sequence[Path]) -> int:
    """Move the records of logs no process owns now (e.g. worker slots of an earlier run, taken
    by the supervisor before it starts workers) into ``store``, then delete the logs; how many."""
    moved = 0
    for path in paths:
        fd = open_owned_log(path)
        try:
            records, _, _ = read_log(path)
            store.put(records)
            moved += len(records)
            path.unlink()
        finally:
            os.close(fd)
    return moved


def read_log(path: Path) -> tuple[list[PredictionRecord], int, int]:
    """The records of a log, the length in bytes of its complete lines, and its size; a line that
    does not parse (a write cut short by kill -9, never answered) is skipped with a warning."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise StoreError(f"cannot read prediction log {path}: {exc}") from exc
    records: list[PredictionRecord] = []
    for number, line in enumerate(data.splitlines(), start=1):
        try:
            records.append(parse_line(line))
        except (orjson.JSONDecodeError, TypeError, ValueError):
            log.warning("prediction log %s: line %d is not a record, skipped", path, number)
    return records, data.rfind(b"\n") + 1, len(data)
