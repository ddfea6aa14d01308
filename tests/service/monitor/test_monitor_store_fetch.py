"""``fetch`` on both backends: a read of stored records that changes no outcome."""

from __future__ import annotations

from collections.abc import Callable

from service.monitor import Monitor
from service.monitor.stores.store import Outcome, PredictionRecord, PredictionStore, StoreLimits

T0 = 1_700_000_000.0
StoreFactory = Callable[[StoreLimits], PredictionStore]
STORED = [PredictionRecord("a", "fm", "1", 0.75, 3, T0), PredictionRecord("b", "fm", "2", 0.5, 0, T0)]


def test_fetch_returns_stored_records_and_leaves_out_unknown_ids(make_store: StoreFactory) -> None:
    store = make_store(StoreLimits())
    store.put(STORED)
    assert store.fetch(["b", "nope", "a", "a"]) == {"a": STORED[0], "b": STORED[1]}
    assert store.fetch([]) == {}


def test_fetch_changes_nothing_and_still_sees_labelled_records(make_store: StoreFactory) -> None:
    store = make_store(StoreLimits())
    store.put(STORED)
    store.fetch(["a", "b"])
    assert [r.outcome for r in store.resolve([("a", 3)], T0 + 1)] == [Outcome.ACCEPTED]
    assert store.fetch(["a"]) == {"a": STORED[0]}  # labelled: still readable (for duplicates)


def test_fetch_sees_what_another_handle_stored(make_shared_store: StoreFactory) -> None:
    make_shared_store(StoreLimits()).put(STORED)
    assert set(make_shared_store(StoreLimits()).fetch(["a", "b"])) == {"a", "b"}


def test_monitor_lookup_reads_the_store(make_store: StoreFactory) -> None:
    monitor = Monitor(make_store(StoreLimits()), clock=lambda: T0)
    monitor.record_predictions("fm", "1", ["x"], [0.9], [7])
    (record,) = monitor.lookup(["x", "y"]).values()
    assert (record.model, record.version, record.predicted) == ("fm", "1", 7)
    assert record.confidence == 0.9
