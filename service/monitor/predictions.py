"""Recording served predictions for the label join: ids made and rows stored before the response.

The app builds every engine with its ``PredictionRecorder`` (made by
service.monitor.wiring.open_monitoring; the repository and the model manager hand it to each engine
they build). The engine calls ``record`` in its batcher's worker thread right after the model call
(service.inference.engine.Engine.serve_rows), so one batched call is one store write (an append to the
pending log, service.monitor.stores.pending_log, or one SQLite transaction), never on the event loop, and
a request is answered only once its rows are stored: a kill -9 after the response loses nothing. A
store failure fails the requests of that call (503 with Retry-After).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from service.inference.served import new_prediction_ids
from service.monitor import Monitor


class PredictionRecorder:
    """Stores served rows in the monitor's store (see the module docstring); thread-safe."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor

    def record(self, model: str, version: str, probs: NDArray[np.float32]) -> list[str]:
        """Store each row's top-label confidence, predicted class and probability vector (what a
        recalibration refits from) under a fresh id; returns the ids once stored (blocking: call
        off the event loop)."""
        ids = new_prediction_ids(len(probs))
        confidences, predicted = top_label(probs)
        self.monitor.record_predictions(model, version, ids, confidences, predicted, probs=probs)
        return ids


def top_label(probs: NDArray[np.float32]) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Top-label confidence max_k p_ik and predicted class argmax_k p_ik of every row."""
    predicted = probs.argmax(axis=1).astype(np.int64)
    confidences = probs.max(axis=1).astype(np.float64)  # the value at argmax
    return np.minimum(np.maximum(confidences, 0.0), 1.0), predicted  # float32 may pass 1 by an ulp
