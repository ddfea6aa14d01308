"""Recording served predictions for the label join: ids made here, stored before the response.

Every handler that serves probabilities (V1 predict, V2 infer) calls, after inference::

    ids = await record_predictions(recorder, engine, probs)   # one prediction_id per row

where ``recorder`` is ``app.state.monitoring.recorder`` (``RecorderDep`` in service.api.deps).
It stores each row's top-label confidence and predicted class with a fresh id and returns only once
the rows are durably stored (an fsync'd SQLite commit or a Redis script), so a kill -9 after the
response loses nothing. The store write never runs on the event loop: concurrent calls are
coalesced into one write per (model, version) in the thread pool (group commit, as the batcher
coalesces inference), so the fsync is paid once per group, not once per request. Call it once per
request, or once per merged batch and split the ids.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from starlette.concurrency import run_in_threadpool

from service.engine import Engine
from service.monitor import Monitor


@dataclass(eq=False, slots=True)
class _Pending:
    """One call's rows and the future its caller awaits."""

    model: str
    version: str
    ids: list[str]
    confidences: NDArray[np.float64]
    predicted: NDArray[np.int64]
    future: asyncio.Future[None]


class PredictionRecorder:
    """Group commit of served predictions into the monitor's store (see the module docstring)."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        self._queue: list[_Pending] = []
        self._writer: asyncio.Task[None] | None = None

    async def record(self, model: str, version: str, confidences: NDArray[np.float64],
                     predicted: NDArray[np.int64]) -> list[str]:
        """Store the rows under fresh prediction ids; returns the ids once they are durable."""
        ids = new_prediction_ids(len(confidences))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(model, version, ids, confidences, predicted, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_queued())
        await future
        return ids

    async def _write_queued(self) -> None:
        """Write whatever queued while the previous write ran, until the queue is empty."""
        while self._queue:
            group, self._queue = self._queue, []
            try:
                await run_in_threadpool(write_group, self.monitor, group)
            except Exception as exc:  # StoreError and the like: every caller of the group sees it
                _settle(group, exc)
            else:
                _settle(group, None)

    async def drain(self) -> None:
        """Wait for the write in progress (shutdown, before the store is closed)."""
        if self._writer is not None:
            await self._writer


def write_group(monitor: Monitor, group: list[_Pending]) -> None:
    """One ``record_predictions`` (one store transaction) per (model, version) of the group."""
    keys = dict.fromkeys((p.model, p.version) for p in group)
    for model, version in keys:
        members = [p for p in group if (p.model, p.version) == (model, version)]
        monitor.record_predictions(
            model, version, [pid for p in members for pid in p.ids],
            np.concatenate([p.confidences for p in members]),
            np.concatenate([p.predicted for p in members]))


def _settle(group: list[_Pending], error: Exception | None) -> None:
    """Wake every caller still waiting (a cancelled caller's future is already done)."""
    for pending in group:
        if pending.future.done():
            continue
        if error is None:
            pending.future.set_result(None)
        else:
            pending.future.set_exception(error)


def new_prediction_ids(n: int) -> list[str]:
    """n random 32-hex-digit ids (uuid4)."""
    return [uuid.uuid4().hex for _ in range(n)]


def top_label(probs: NDArray[np.float32]) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Top-label confidence max_k p_ik and predicted class argmax_k p_ik of every row."""
    predicted = probs.argmax(axis=1).astype(np.int64)
    confidences = probs[np.arange(probs.shape[0]), predicted].astype(np.float64)
    return np.clip(confidences, 0.0, 1.0), predicted  # float32 rounding may pass 1 by an ulp


async def record_predictions(recorder: PredictionRecorder, engine: Engine,
                             probs: NDArray[np.float32]) -> list[str]:
    """Record every row of ``probs`` (N, K) served by ``engine``; returns their prediction ids."""
    confidences, predicted = top_label(probs)
    return await recorder.record(engine.manifest.name, engine.manifest.version,
                                 confidences, predicted)
