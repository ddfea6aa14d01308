"""The engine: prediction ids, batched calls that record and hand back each request's own rows,
and the input checks' fast path against the element-by-element one."""

from __future__ import annotations

import asyncio
import re
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from service.batching import BatchConfig
from service.engine import check_finite_and_range, load_engine, new_prediction_ids
from service.errors import BadRequest


def test_prediction_ids_are_unique_hex_and_later_ids_sort_later() -> None:
    first = new_prediction_ids(5000)
    time.sleep(0.002)
    second = new_prediction_ids(3)
    assert all(re.fullmatch(r"[0-9a-f]{32}", pid) for pid in first + second)
    assert len(set(first + second)) == 5003
    assert max(first) < min(second)
    assert new_prediction_ids(0) == []


class ListRecorder:
    """Records what the engine stored, by id, and in which thread."""

    def __init__(self) -> None:
        self.rows: dict[str, NDArray[np.float32]] = {}
        self.threads: set[int] = set()

    def record(self, model: str, version: str, probs: NDArray[np.float32]) -> list[str]:
        ids = new_prediction_ids(len(probs))
        self.rows.update(zip(ids, probs, strict=True))
        self.threads.add(threading.get_ident())
        return ids


def test_concurrent_requests_get_their_own_rows_recorded_under_their_ids(digits_artifact) -> None:
    engine = load_engine(digits_artifact.artifact_dir, "cpu", 1)
    engine.attach_batcher(BatchConfig(max_batch_size=64, max_queue_delay_s=0.05))
    engine.recorder = recorder = ListRecorder()
    rng = np.random.default_rng(0)
    requests = [rng.uniform(0, 16, size=(n, *engine.instance_shape)) for n in (1, 3, 2, 5, 1, 4)]

    async def main() -> list:
        return await asyncio.gather(*(engine.infer(engine.preprocess(x, "x")) for x in requests))

    answers = asyncio.run(main())
    assert engine.batcher is not None and engine.batcher.calls < len(requests)  # coalesced
    assert threading.get_ident() not in recorder.threads  # recorded off the event loop's thread
    for x, served in zip(requests, answers, strict=True):
        assert len(served.ids) == len(x) and served.probs.shape == (len(x), 10)
        np.testing.assert_allclose(served.probs, engine.predict(engine.preprocess(x, "x")), atol=1e-6)
        for pid, row in zip(served.ids, served.probs, strict=True):
            np.testing.assert_array_equal(recorder.rows[pid], row)
    assert len(recorder.rows) == sum(len(x) for x in requests)


def slow_check(raw: np.ndarray, bounds: tuple[float, float]) -> str | None:
    """The first offending element, scanning in order: non-finite first, then out of range."""
    bad = np.argwhere(~np.isfinite(raw))
    if len(bad):
        return "x" + "".join(f"[{i}]" for i in bad[0])
    outside = np.argwhere((raw < bounds[0]) | (raw > bounds[1]))
    return "x" + "".join(f"[{i}]" for i in outside[0]) if len(outside) else None


values = st.one_of(st.floats(-1.0, 256.0), st.sampled_from([np.nan, np.inf, -np.inf, 255.0, 0.0]))


@settings(max_examples=200, deadline=None)
@given(st.lists(values, min_size=1, max_size=24), st.integers(1, 4))
def test_range_check_names_the_same_element_as_a_full_scan(flat: list[float], rows: int) -> None:
    raw = np.resize(np.asarray(flat, dtype=np.float64), (rows, len(flat)))
    expected = slow_check(raw, (0.0, 255.0))
    if expected is None:
        check_finite_and_range(raw, (0.0, 255.0), "x")
    else:
        with pytest.raises(BadRequest) as info:
            check_finite_and_range(raw, (0.0, 255.0), "x")
        assert info.value.field == expected


def test_infinite_bounds_still_refuse_infinite_values() -> None:
    with pytest.raises(BadRequest, match="NaN and infinity"):
        check_finite_and_range(np.array([[1.0, np.inf]]), (-np.inf, np.inf), "x")
