"""The PredictionStore contract, run against both backends (SQLite file, real redis-server)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from service.monitor.errors import MonitorInputError
from service.monitor.stores.store import (
    DAY_SECONDS,
    Outcome,
    PredictionRecord,
    PredictionStore,
    StoreLimits,
)

T0 = 1_700_000_000.0
StoreFactory = Callable[[StoreLimits], PredictionStore]


def records(n: int, start: float = T0, tag: str = "p") -> list[PredictionRecord]:
    """n predictions one second apart, ids tag0..tag{n-1}."""
    return [PredictionRecord(f"{tag}{i}", "fmnist", "1", 0.5 + i / (2 * n), i % 10, start + i) for i in range(n)]


def outcomes(store: PredictionStore, ids: list[str], now: float, label: int = 3) -> list[str]:
    return [r.outcome.value for r in store.resolve([(i, label) for i in ids], now)]


def test_protocol_is_implemented(make_store: StoreFactory) -> None:
    assert isinstance(make_store(StoreLimits()), PredictionStore)


def test_accepted_once_then_duplicate_unknown_never_stored(make_store: StoreFactory) -> None:
    store = make_store(StoreLimits())
    stored = records(3)
    store.put(stored)
    first = store.resolve([("p1", 7), ("p1", 7), ("nope", 1)], now=T0 + 60)
    assert [r.outcome for r in first] == [Outcome.ACCEPTED, Outcome.DUPLICATE, Outcome.UNKNOWN]
    assert first[0].record == stored[1] and first[0].label == 7
    assert first[1].record is None and first[2].record is None
    assert outcomes(store, ["p1", "p0"], now=T0 + 120) == ["duplicate", "accepted"]


def test_conflicting_second_label_is_a_duplicate_and_first_wins(make_store: StoreFactory) -> None:
    store = make_store(StoreLimits())
    store.put(records(1))
    assert outcomes(store, ["p0"], T0 + 1, label=2) == ["accepted"]
    assert outcomes(store, ["p0"], T0 + 2, label=5) == ["duplicate"]


def test_put_keeps_the_first_version_of_an_id(make_store: StoreFactory) -> None:
    store = make_store(StoreLimits())
    store.put(records(1))
    store.put([PredictionRecord("p0", "other", "9", 0.9, 1, T0 + 5)])
    (resolution,) = store.resolve([("p0", 0)], T0 + 10)
    assert resolution.record == records(1)[0]


def test_label_after_retention_is_expired_until_purged(make_store: StoreFactory) -> None:
    limits = StoreLimits(retention_seconds=7 * DAY_SECONDS, expired_grace_seconds=DAY_SECONDS)
    store = make_store(limits)
    store.put(records(2, tag="old"))
    late = T0 + 7 * DAY_SECONDS + 10
    assert outcomes(store, ["old0"], late) == ["expired"]
    assert outcomes(store, ["old0"], late) == ["expired"]  # expiry does not consume the record
    store.put(records(1, start=T0 + 8 * DAY_SECONDS + 5, tag="new"))  # purges what is past 8 days
    assert outcomes(store, ["old0", "old1", "new0"], late + DAY_SECONDS) == ["unknown", "unknown", "accepted"]
    assert len(store) == 1


def test_capacity_drops_oldest_and_counts_only_unlabelled(make_store: StoreFactory) -> None:
    store = make_store(StoreLimits(capacity=3))
    store.put(records(3))
    assert outcomes(store, ["p0"], T0 + 10) == ["accepted"]
    store.put(records(2, start=T0 + 100, tag="q"))  # p0 (labelled) and p1 (pending) must go
    assert store.evicted() == 1
    assert outcomes(store, ["p1", "p2", "q0", "q1"], T0 + 200) == ["unknown", "accepted", "accepted", "accepted"]
    assert len(store) == 3


def test_negative_label_is_rejected(make_store: StoreFactory) -> None:
    store = make_store(StoreLimits())
    with pytest.raises(MonitorInputError, match="out of range"):
        store.resolve([("p0", -1)], T0)
    assert store.resolve([], T0) == []
    store.put([])


def test_a_label_above_what_the_store_holds_is_rejected_and_nothing_recorded(make_store: StoreFactory) -> None:
    """Issue 16 item 2: 2**64 raised OverflowError inside SQLite (a 500), not an input error."""
    store = make_store(StoreLimits())
    store.put(records(2))
    with pytest.raises(MonitorInputError, match=r"'p1' is out of range \[0, 9223372036854775807\]"):
        store.resolve([("p0", 1), ("p1", 2**64)], T0 + 1)
    assert outcomes(store, ["p0", "p1"], T0 + 2) == ["accepted", "accepted"]


def test_replicas_racing_on_the_same_labels_accept_each_once(make_shared_store: StoreFactory) -> None:
    replicas = [make_shared_store(StoreLimits()) for _ in range(2)]
    n = 300
    replicas[0].put(records(n))
    labels = [(f"p{i}", 1) for i in range(n)]

    def send(k: int) -> list[str]:
        chunk = labels[k % 3 :: 3] if k % 2 else labels[::-1]
        return [r.prediction_id for r in replicas[k % 2].resolve(chunk, T0 + 500) if r.outcome is Outcome.ACCEPTED]

    with ThreadPoolExecutor(max_workers=8) as pool:
        accepted = [pid for ids in pool.map(send, range(16)) for pid in ids]
    assert sorted(accepted) == sorted(pid for pid, _ in labels)
