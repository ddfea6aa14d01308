"""The stored score vector and ``served_rows``, part of the PredictionStore contract: run against
every backend (SQLite, SQLite behind its pending log, a real redis-server)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from service.monitor.stores.scores import PROB_FLOOR, encode_scores
from service.monitor.stores.store import PredictionRecord, PredictionStore, StoreLimits

T0 = 1_700_000_000.0
StoreFactory = Callable[[StoreLimits], PredictionStore]


def served(n: int, classes: int, seed: int = 0) -> NDArray[np.float32]:
    """n softmax rows over ``classes``, float32 as the engine serves them."""
    logits = np.random.default_rng(seed).normal(scale=3.0, size=(n, classes))
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


def scored(
    probs: NDArray[np.float32], top_k: int = 32, start: float = T0, tag: str = "p", model: str = "m"
) -> list[PredictionRecord]:
    """One record per row, one second apart, each with its encoded probability vector."""
    blobs = encode_scores(probs, top_k)
    return [
        PredictionRecord(f"{tag}{i}", model, "1", float(p.max()), int(p.argmax()), start + i, blob)
        for i, (p, blob) in enumerate(zip(probs, blobs, strict=True))
    ]


def test_the_served_vector_round_trips_bit_for_bit(make_store: StoreFactory) -> None:
    store = make_store(StoreLimits())
    probs = served(6, 10)
    probs[0, 3] = 0.0  # an underflowed class reads as the floor, not -inf
    store.put(scored(probs))
    rows = store.served_rows("m", "1", T0, T0 + 6)
    assert rows.ids == [f"p{i}" for i in range(6)]
    assert rows.log_probs.shape == (6, 10) and np.isfinite(rows.log_probs).all()
    got = np.exp(rows.log_probs).astype(np.float32)
    others = np.arange(10) != 3
    assert np.array_equal(got[1:], probs[1:]) and np.array_equal(got[0, others], probs[0, others])
    assert rows.log_probs[0, 3] == np.log(PROB_FLOOR)
    np.testing.assert_array_equal(rows.created_at, T0 + np.arange(6))


def test_fetch_and_resolve_give_back_the_stored_scores(make_store: StoreFactory) -> None:
    store = make_store(StoreLimits())
    stored = scored(served(2, 10))
    store.put(stored)
    assert store.fetch(["p0"])["p0"] == stored[0]
    (resolution,) = store.resolve([("p1", 4)], T0 + 10)
    assert resolution.record == stored[1]


def test_top_k_keeps_the_kept_classes_and_spreads_the_rest_evenly(make_store: StoreFactory) -> None:
    store = make_store(StoreLimits())
    probs = served(5, 100, seed=1)
    store.put(scored(probs, top_k=8))
    p = np.exp(store.served_rows("m", "1", T0, T0 + 5).log_probs)
    assert p.shape == (5, 100)
    for row, q in zip(probs, p, strict=True):
        top = np.argsort(row)[-8:]
        np.testing.assert_array_equal(q[top].astype(np.float32), row[top])
        others = np.setdiff1d(np.arange(100), top)
        np.testing.assert_allclose(q[others], row[others].sum(dtype=np.float64) / 92, rtol=1e-6)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)


def test_the_window_is_half_open_and_per_model_and_version(make_store: StoreFactory) -> None:
    store = make_store(StoreLimits())
    store.put(scored(served(10, 4)))  # created T0 .. T0 + 9
    store.put(scored(served(3, 4), tag="o", model="other"))
    store.put([PredictionRecord("v2", "m", "2", 0.5, 0, T0 + 3, encode_scores(served(1, 4))[0])])
    assert store.served_rows("m", "1", T0 + 2, T0 + 5).ids == ["p2", "p3", "p4"]
    assert store.served_rows("m", "1", T0 + 9, T0 + 9).ids == []
    assert store.served_rows("m", "2", T0, T0 + 10).ids == ["v2"]
    assert len(store.served_rows("m", "1", float("-inf"), float("inf"))) == 10
    assert store.served_rows("absent", "1", T0, T0 + 10).log_probs.shape == (0, 0)


def test_ties_read_oldest_first_then_by_id(make_store: StoreFactory) -> None:
    store = make_store(StoreLimits())
    blobs = encode_scores(served(4, 3))
    stamps = zip("dcba", (1, 0, 1, 0), blobs, strict=True)
    store.put([PredictionRecord(pid, "m", "1", 0.5, 0, T0 + t, b) for pid, t, b in stamps])
    assert store.served_rows("m", "1", T0, T0 + 2).ids == ["a", "c", "b", "d"]


def test_labels_read_minus_one_until_they_arrive(make_store: StoreFactory) -> None:
    store = make_store(StoreLimits())
    store.put(scored(served(4, 10)))
    store.resolve([("p1", 7), ("p3", 0)], T0 + 10)
    rows = store.served_rows("m", "1", T0, T0 + 4)
    assert rows.labels.tolist() == [-1, 7, -1, 0] and rows.labels.dtype == np.int64


def test_rows_stored_without_scores_are_left_out(make_store: StoreFactory) -> None:
    store = make_store(StoreLimits())
    store.put(scored(served(2, 10)) + [PredictionRecord("bare", "m", "1", 0.5, 1, T0 + 1)])
    assert store.served_rows("m", "1", T0, T0 + 10).ids == ["p0", "p1"]
    assert store.fetch(["bare"])["bare"].scores is None


def test_eviction_and_purge_take_the_scores_with_the_row(make_store: StoreFactory) -> None:
    store = make_store(StoreLimits(retention_seconds=100, expired_grace_seconds=0, capacity=3))
    store.put(scored(served(3, 10)))
    store.put(scored(served(2, 10), start=T0 + 50, tag="q"))  # capacity: p0 and p1 go
    assert store.served_rows("m", "1", T0, T0 + 200).ids == ["p2", "q0", "q1"]
    store.put(scored(served(1, 10), start=T0 + 152, tag="r"))  # past retention: p2, q0, q1 purged
    assert store.served_rows("m", "1", T0, T0 + 200).ids == ["r0"]
    assert len(store) == 1
