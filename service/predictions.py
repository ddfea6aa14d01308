"""Recording served predictions for the label join: ids made here, stored before the response.

Every handler that serves probabilities (V1 predict, V2 infer) calls, after inference::

    ids = await record_predictions(recorder, engine, probs)   # one prediction_id per row

where ``recorder`` is ``app.state.monitoring.recorder`` (``RecorderDep`` in service.api.deps).
It stores each row's top-label confidence and predicted class with a fresh id and returns only once
the rows are durably stored (an fsync'd SQLite commit or a Redis script), so a kill -9 after the
response loses nothing. The store write never runs on the event loop: concurrent calls are
coalesced into one write per (model, version) in the thread pool (service.group_commit, as the
batcher coalesces inference), so the fsync is paid once per group, not once per request. Call it
once per request, or once per merged batch and split the ids.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import partial

import numpy as np
from numpy.typing import NDArray

from service.engine import Engine
from service.group_commit import GroupCommit
from service.monitor import Monitor


@dataclass(frozen=True, slots=True)
class ServedRows:
    """One call's rows: model version, prediction ids, top-label confidences, predicted classes."""

    model: str
    version: str
    ids: list[str]
    confidences: NDArray[np.float64]
    predicted: NDArray[np.int64]


class PredictionRecorder:
    """Group commit of served predictions into the monitor's store (see the module docstring)."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        self._commit: GroupCommit[ServedRows, None] = GroupCommit(partial(write_rows, monitor))

    async def record(self, model: str, version: str, confidences: NDArray[np.float64],
                     predicted: NDArray[np.int64]) -> list[str]:
        """Store the rows under fresh prediction ids; returns the ids once they are durable."""
        ids = new_prediction_ids(len(confidences))
        await self._commit.submit(ServedRows(model, version, ids, confidences, predicted))
        return ids

    async def drain(self) -> None:
        """Wait for the writes in progress (shutdown, before the store is closed)."""
        await self._commit.drain()


def write_rows(monitor: Monitor, group: list[ServedRows]) -> list[None | Exception]:
    """One ``record_predictions`` (one store transaction) per (model, version) of the group; a
    failure fails only the rows of its (model, version)."""
    outcome: dict[tuple[str, str], None | Exception] = {}
    for key in dict.fromkeys((rows.model, rows.version) for rows in group):
        members = [rows for rows in group if (rows.model, rows.version) == key]
        try:
            monitor.record_predictions(
                key[0], key[1], [pid for rows in members for pid in rows.ids],
                np.concatenate([rows.confidences for rows in members]),
                np.concatenate([rows.predicted for rows in members]))
            outcome[key] = None
        except Exception as exc:  # StoreError, MonitorInputError: answered to these callers
            outcome[key] = exc
    return [outcome[(rows.model, rows.version)] for rows in group]


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
