"""SQLiteStore: the embedded default prediction store (one file, WAL journal).

Each commit is written to the WAL before ``put`` or ``resolve`` returns, so what they returned
survives a clean restart and ``kill -9`` of the process in either mode. ``synchronous=NORMAL`` (the
default) leaves the fsync to checkpoints; ``synchronous=FULL`` fsyncs every commit, so it also
survives power loss or an OS crash, at the price of one fsync per commit. One connection guarded
by a lock serves every thread; each call is one ``BEGIN IMMEDIATE`` transaction, so several
handles may share the file. Opened ``exclusive=True`` (as the service does, whatever its
``store_log``), the handle owns the file: it holds an exclusive flock on ``<db>.lock`` until
closed, and any other exclusive handle, in this process or another, is refused with StoreError.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from service.monitor.errors import StoreError
from service.monitor.stores.ownership import open_exclusively
from service.monitor.stores.store import (
    Outcome,
    PredictionRecord,
    Resolution,
    ServedRows,
    StoredRow,
    StoreLimits,
    check_labels,
    decide,
    served_rows_of,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
    prediction_id TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    confidence REAL NOT NULL,
    predicted INTEGER NOT NULL,
    created_at REAL NOT NULL,
    label INTEGER,
    labeled_at REAL,
    scores BLOB
);
CREATE INDEX IF NOT EXISTS predictions_by_time ON predictions (created_at);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (name, value) VALUES ('rows', 0), ('evicted', 0);
"""
# After the scores column exists (a file of the old schema gets it first, see _migrate).
_WINDOW_INDEX = "CREATE INDEX IF NOT EXISTS predictions_by_model_time ON predictions (model, version, created_at)"
_INSERT = (
    "INSERT OR IGNORE INTO predictions "
    "(prediction_id, model, version, confidence, predicted, created_at, scores) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_SELECT = (
    "SELECT prediction_id, model, version, confidence, predicted, created_at, scores, label "
    "FROM predictions WHERE prediction_id IN ({marks})"
)
_WINDOW = (  # one chunk of a window, resuming after (created_at, rowid); index order, no sort
    "SELECT rowid, prediction_id, created_at, scores, label FROM predictions "
    "WHERE model = ? AND version = ? AND (created_at, rowid) > (?, ?) AND created_at < ? "
    "AND scores IS NOT NULL ORDER BY created_at, rowid LIMIT ?"
)
_WINDOW_CHUNK = 5000  # rows per lock hold of served_rows (about 10 to 30 ms here)
_MARK = "UPDATE predictions SET label = ?, labeled_at = ? WHERE prediction_id = ? AND label IS NULL"
_EVICT = (
    "DELETE FROM predictions WHERE rowid IN "
    "(SELECT rowid FROM predictions ORDER BY created_at LIMIT ?) RETURNING label IS NULL"
)
_CHUNK = 500  # ids per SELECT ... IN (...), below SQLite's variable limit


SYNC_MODES = {"normal": "NORMAL", "full": "FULL"}


def store_lock_path(db: Path) -> Path:
    """The file an exclusive handle of ``db`` holds its flock on: ``<db>.lock`` beside it (never
    the database itself: closing any descriptor of it would drop SQLite's own POSIX locks)."""
    return db.with_name(db.name + ".lock")


class SQLiteStore:
    """PredictionStore on one SQLite file; see service.monitor.stores.store for the contract."""

    def __init__(
        self, path: str | Path, limits: StoreLimits | None = None, sync: str = "normal", exclusive: bool = False
    ) -> None:
        if sync not in SYNC_MODES:
            raise StoreError(f"sync must be one of {sorted(SYNC_MODES)}, got {sync!r}")
        self.path = Path(path)
        self.sync = sync
        self.limits = limits or StoreLimits()
        self._lock = threading.Lock()
        self._owner_fd = self._own_file() if exclusive else None
        try:
            self._conn = self._connect()
        except BaseException:
            self._release_file()
            raise

    def _own_file(self) -> int:
        """The exclusive flock on ``<db>.lock``; StoreError naming the store when held elsewhere."""
        lock = store_lock_path(self.path)
        return open_exclusively(lock, os.O_RDONLY, f"prediction store {self.path} (lock {lock.name})")

    def _release_file(self) -> None:
        if self._owner_fd is not None:
            os.close(self._owner_fd)
            self._owner_fd = None

    def _connect(self) -> sqlite3.Connection:
        """The connection, in WAL mode at the store's sync level, with the schema created."""
        try:
            conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False, timeout=30.0)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={SYNC_MODES[self.sync]}")
            conn.executescript(_SCHEMA)
            _migrate(conn)
            conn.execute(_WINDOW_INDEX)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open prediction store {self.path}: {exc}") from exc
        return conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One locked, immediate transaction; rolled back and re-raised as StoreError on failure."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self._conn
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StoreError(f"prediction store {self.path} failed: {exc}") from exc

    def put(self, records: Sequence[PredictionRecord]) -> None:
        """Insert new predictions, purge those past retention + grace, then enforce capacity."""
        if not records:
            return
        rows = [
            (r.prediction_id, r.model, r.version, float(r.confidence), int(r.predicted), float(r.created_at), r.scores)
            for r in records
        ]
        newest = max(r.created_at for r in records)
        with self._transaction() as conn:
            inserted = conn.executemany(_INSERT, rows).rowcount
            purged = conn.execute(
                "DELETE FROM predictions WHERE created_at < ?", (newest - self.limits.keep_seconds,)
            ).rowcount
            rows_kept = self._add_meta(conn, "rows", inserted - purged)
            self._evict_over_capacity(conn, rows_kept)

    def _evict_over_capacity(self, conn: sqlite3.Connection, rows_kept: int) -> None:
        """Drop the oldest rows beyond capacity; count the unlabelled ones as evicted."""
        excess = rows_kept - self.limits.capacity
        if excess <= 0:
            return
        pending = sum(int(row[0]) for row in conn.execute(_EVICT, (excess,)).fetchall())
        self._add_meta(conn, "rows", -excess)
        self._add_meta(conn, "evicted", pending)

    def fetch(self, ids: Sequence[str]) -> dict[str, PredictionRecord]:
        """Stored records of these ids, labelled or not (plain reads, no write transaction)."""
        with self._lock:
            try:
                found = self._fetch(self._conn, list(dict.fromkeys(ids)))
            except sqlite3.Error as exc:
                raise StoreError(f"prediction store {self.path} failed: {exc}") from exc
        return {pid: record for pid, (record, _) in found.items()}

    def resolve(self, labels: Sequence[tuple[str, int]], now: float) -> list[Resolution]:
        """Join labels to stored predictions in one transaction (first label wins)."""
        check_labels(labels)
        if not labels:
            return []
        with self._transaction() as conn:
            found = self._fetch(conn, list({pid for pid, _ in labels}))
            labelled = {pid for pid, (_, label) in found.items() if label is not None}
            out: list[Resolution] = []
            for pid, label in labels:
                record = found[pid][0] if pid in found else None
                outcome = decide(record, pid in labelled, now, self.limits.retention_seconds)
                accepted = record if outcome is Outcome.ACCEPTED else None
                if accepted is not None:
                    labelled.add(pid)
                out.append(Resolution(pid, int(label), outcome, accepted))
            marks = [(r.label, now, r.prediction_id) for r in out if r.record is not None]
            conn.executemany(_MARK, marks)
        return out

    @staticmethod
    def _fetch(conn: sqlite3.Connection, ids: list[str]) -> dict[str, tuple[PredictionRecord, int | None]]:
        """Stored records and their labels (None while pending) for the given ids."""
        found: dict[str, tuple[PredictionRecord, int | None]] = {}
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            query = _SELECT.format(marks=",".join("?" * len(chunk)))
            for pid, model, version, conf, pred, created, scores, label in conn.execute(query, chunk):
                found[pid] = (PredictionRecord(pid, model, version, conf, pred, created, scores), label)
        return found

    def served_rows(self, model: str, version: str, since: float, until: float) -> ServedRows:
        """Stored rows of (model, version) created in [since, until) with scores: range scans of
        the (model, version, created_at) index, O(log N + rows in the window), in chunks of
        ``_WINDOW_CHUNK`` rows with the lock released between them, so puts (a pending log's
        flush on the request path) wait for one chunk at most; plain reads, not a snapshot."""
        rows: list[StoredRow] = []
        after: tuple[float, int] = (float(since), -1)
        while True:
            chunk = self._window_chunk((model, version, *after, float(until), _WINDOW_CHUNK))
            rows += [(pid, created, scores, label) for _, pid, created, scores, label in chunk]
            if len(chunk) < _WINDOW_CHUNK:
                return served_rows_of(rows)
            after = (chunk[-1][2], chunk[-1][0])

    def _window_chunk(self, args: tuple[str | float | int, ...]) -> list[tuple[int, str, float, bytes, int | None]]:
        with self._lock:
            try:
                return self._conn.execute(_WINDOW, args).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"prediction store {self.path} failed: {exc}") from exc

    def evicted(self) -> int:
        """Unlabelled records dropped for capacity, over the file's whole life."""
        return self._read_meta("evicted")

    def __len__(self) -> int:
        """Records currently kept (pending, labelled and expired-but-not-yet-purged)."""
        return self._read_meta("rows")

    def _read_meta(self, name: str) -> int:
        with self._lock:
            try:
                return self._meta(self._conn, name)
            except sqlite3.Error as exc:
                raise StoreError(f"prediction store {self.path} failed: {exc}") from exc

    def close(self) -> None:
        """Close the connection (the WAL is checkpointed; data stays on disk), then release the file."""
        with self._lock:
            self._conn.close()
            self._release_file()

    @staticmethod
    def _meta(conn: sqlite3.Connection, name: str) -> int:
        return int(conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()[0])

    @staticmethod
    def _add_meta(conn: sqlite3.Connection, name: str, delta: int) -> int:
        """Add ``delta`` to a counter; returns its new value (one statement)."""
        row = conn.execute("UPDATE meta SET value = value + ? WHERE name = ? RETURNING value", (delta, name)).fetchone()
        return int(row[0])


def _migrate(conn: sqlite3.Connection) -> None:
    """Add the ``scores`` column to a file written before it existed (its rows read as stored
    without scores). One immediate transaction, so handles opening the file together add it once;
    ADD COLUMN rewrites no rows."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(predictions)")}
        if "scores" not in columns:
            conn.execute("ALTER TABLE predictions ADD COLUMN scores BLOB")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
