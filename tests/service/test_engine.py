"""The engine: prediction ids, batched calls that record and hand back each request's own rows,
and the input checks' fast path against the element-by-element one."""

from __future__ import annotations

import asyncio
import re
import threading
import time

import numpy as np
from numpy.typing import NDArray

from service.inference.batching import BatchConfig
from service.inference.engine import load_engine
from service.inference.served import new_prediction_ids


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
    recorder = ListRecorder()
    engine = load_engine(digits_artifact.artifact_dir, "cpu", 1, recorder)
    engine.attach_batcher(BatchConfig(max_batch_size=64, max_queue_delay_s=0.05))
    rng = np.random.default_rng(0)
    requests = [rng.uniform(0, 16, size=(n, *engine.manifest.instance_shape)) for n in (1, 3, 2, 5, 1, 4)]

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
