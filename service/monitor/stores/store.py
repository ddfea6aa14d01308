"""The label join store: remembers predictions until their label arrives, then answers once.

Contract shared by every backend (SQLiteStore, RedisStore):

- ``put(records)`` remembers predictions; a prediction_id already stored is left unchanged.
- ``fetch(ids)`` reads the stored records of ids (labelled or not, expired ones until purged), so a
  caller can check labels against the predicted model's classes before ``resolve``; read-only.
- ``resolve(labels, now)`` joins labels to predictions, one outcome per label, in order:
  ``unknown`` (never stored, purged, or evicted for capacity), ``duplicate`` (already labelled,
  including earlier in the same call; the first label wins), ``expired`` (created more than
  ``retention`` seconds before ``now``), else ``accepted`` with the stored record. Atomic: the same
  label sent twice, from anywhere, is accepted once.
- ``served_rows(model, version, since, until)`` reads back what a refit needs: the served
  probability vectors (as log-probabilities) and labels of one (model, version)'s predictions
  created in ``[since, until)``, oldest first (``ServedRows``); rows stored without scores are left
  out. Read-only. What a record keeps of its vector (all of it up to ``top_k`` classes, above it
  the top k and the rest's mass) and why: service.monitor.stores.scores.
- Records are kept ``retention + expired_grace`` seconds (so late labels read ``expired``, not
  ``unknown``), then purged. At most ``capacity`` records are kept: a put into a full store drops
  the oldest records, and each one dropped while still unlabelled counts in ``evicted``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from operator import itemgetter
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from service.monitor.errors import MonitorInputError
from service.monitor.stores.scores import decode_log_probs

DAY_SECONDS = 86_400.0
DEFAULT_RETENTION_SECONDS = 7 * DAY_SECONDS
DEFAULT_EXPIRED_GRACE_SECONDS = 1 * DAY_SECONDS
DEFAULT_CAPACITY = 10_000_000


class Outcome(StrEnum):
    """What happened to one label sent as feedback."""

    ACCEPTED = "accepted"
    UNKNOWN = "unknown"
    DUPLICATE = "duplicate"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class PredictionRecord:
    """One served prediction: top-label confidence in [0, 1], predicted class, epoch seconds, and
    the served probability vector encoded by service.monitor.stores.scores (None: not kept)."""

    prediction_id: str
    model: str
    version: str
    confidence: float
    predicted: int
    created_at: float
    scores: bytes | None = None


@dataclass(frozen=True, slots=True, eq=False)  # arrays: no field-wise ==, compare the fields
class ServedRows:
    """Stored predictions of one (model, version) created in [since, until), oldest first.

    ``log_probs[i]`` is the log of the probability vector served for ``ids[i]`` (the calibrated
    output, floored at service.monitor.stores.scores.PROB_FLOOR before the log); for top-k rows
    of many-class models the mass not kept is spread evenly over the classes not kept (an
    approximation, see service.monitor.stores.scores). ``labels[i]`` is the class index of the
    label received, -1 while unlabelled. With no rows, ``log_probs`` has shape (0, 0).
    """

    ids: list[str]
    created_at: NDArray[np.float64]  # (n,) epoch seconds
    log_probs: NDArray[np.float64]  # (n, C) log of the served (calibrated) probabilities
    labels: NDArray[np.int64]  # (n,) class index, -1 while unlabelled

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def empty(cls) -> ServedRows:
        """No rows (shapes (0,), (0,), (0, 0), (0,))."""
        return cls([], np.zeros(0), np.zeros((0, 0)), np.zeros(0, dtype=np.int64))


@dataclass(frozen=True, slots=True)
class Resolution:
    """The outcome of one label; ``record`` is set exactly when the outcome is ``accepted``."""

    prediction_id: str
    label: int
    outcome: Outcome
    record: PredictionRecord | None = None


@dataclass(frozen=True, slots=True)
class StoreLimits:
    """Retention (later labels are expired), grace before purge, and capacity in records."""

    retention_seconds: float = DEFAULT_RETENTION_SECONDS
    expired_grace_seconds: float = DEFAULT_EXPIRED_GRACE_SECONDS
    capacity: int = DEFAULT_CAPACITY

    def __post_init__(self) -> None:
        if self.retention_seconds <= 0 or self.expired_grace_seconds < 0 or self.capacity < 1:
            raise MonitorInputError(f"invalid store limits: {self}")

    @property
    def keep_seconds(self) -> float:
        """How long a record is kept at all: retention plus the grace that answers ``expired``."""
        return self.retention_seconds + self.expired_grace_seconds


@runtime_checkable
class PredictionStore(Protocol):
    """Where predictions wait for their labels (see the module docstring for the contract)."""

    def put(self, records: Sequence[PredictionRecord]) -> None:
        """Remember predictions (ids already stored are ignored); durable once it returns."""
        ...

    def fetch(self, ids: Sequence[str]) -> dict[str, PredictionRecord]:
        """The stored records of these ids (absent ids are left out); changes nothing."""
        ...

    def resolve(self, labels: Sequence[tuple[str, int]], now: float) -> list[Resolution]:
        """Join (prediction_id, label index) pairs to stored predictions, atomically, in order."""
        ...

    def served_rows(self, model: str, version: str, since: float, until: float) -> ServedRows:
        """The stored predictions of (model, version) created in [since, until) that carry their
        served probability vector, oldest first, with their labels (-1 while unlabelled);
        changes nothing."""
        ...

    def evicted(self) -> int:
        """How many unlabelled records were dropped for capacity since the store was created."""
        ...

    def __len__(self) -> int:
        """Records currently kept (pending, labelled, and expired ones not yet purged)."""
        ...

    def close(self) -> None:
        """Release connections; the stored data stays."""
        ...


MAX_LABEL = 2**63 - 1  # the largest integer every backend stores (SQLite INTEGER)


def check_labels(labels: Sequence[tuple[str, int]]) -> None:
    """Reject label indices outside [0, MAX_LABEL] before anything is written (the caller maps
    class names to indices)."""
    for prediction_id, label in labels:
        if not 0 <= int(label) <= MAX_LABEL:
            raise MonitorInputError(f"label of prediction '{prediction_id}' is out of range [0, {MAX_LABEL}]: {label}")


def decide(record: PredictionRecord | None, labelled: bool, now: float, retention: float) -> Outcome:
    """The outcome rule of every backend, in this order: unknown, duplicate, expired, accepted."""
    if record is None:
        return Outcome.UNKNOWN
    if labelled:
        return Outcome.DUPLICATE
    if record.created_at < now - retention:
        return Outcome.EXPIRED
    return Outcome.ACCEPTED


StoredRow = tuple[str, float, bytes | None, int | None]  # prediction_id, created_at, scores, label


def served_rows_of(rows: Sequence[StoredRow]) -> ServedRows:
    """ServedRows of raw stored rows of one (model, version), in any order (fastest when nearly
    oldest first): rows without scores are left out, the rest sorted oldest first (ties by id),
    unlabelled ones read label -1."""
    kept = sorted((row for row in rows if row[2]), key=itemgetter(1, 0))
    if not kept:
        return ServedRows.empty()
    return ServedRows(
        ids=[row[0] for row in kept],
        created_at=np.fromiter((row[1] for row in kept), dtype=np.float64, count=len(kept)),
        log_probs=decode_log_probs([row[2] or b"" for row in kept]),
        labels=np.fromiter((-1 if row[3] is None else row[3] for row in kept), dtype=np.int64, count=len(kept)),
    )
