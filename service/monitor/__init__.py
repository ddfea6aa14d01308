"""Calibration monitor: label join store, sliding windows, drift tests, Prometheus collector.

A library the app calls; it reads no settings and starts no threads. The API::

    store = SQLiteStore(path, StoreLimits(retention_seconds=7 * 86400, capacity=10_000_000))
    # or RedisStore("redis://host:6379/0", limits, prefix="candor:") when replicas share labels
    store = PendingLogStore(store)  # SQLite only: puts appended to a log, moved in bulk
    monitor = Monitor(store, {(name, version): manifest.reference, ...},
                      MonitorConfig(window_seconds=3600, n_buckets=60,
                                    drift=DriftConfig(min_labels=200)), clock=time.time)
    monitor.add_model(name, version, manifest.reference, manifest.classes)  # a model loaded later
    monitor.record_predictions(model, version, ids, confidences, predicted, now=None, probs=None) -> None
    monitor.resolve_feedback([(prediction_id, class name or index), ...], now=None) -> FeedbackResult
    monitor.resolve_feedback_batches([labels, ...]) -> [FeedbackResult | BadRequest, ...]  # one store call
    monitor.lookup([prediction_id, ...]) -> {prediction_id: PredictionRecord}  # model, classes
    monitor.record_feedback([(prediction_id, label_index), ...], now=None) -> FeedbackResult
    monitor.served_rows(model, version, since, until) -> ServedRows  # what a recalibration reads
    monitor.status(model, version, now=None) -> CalibrationStatus  # GET /v1/models/{m}/calibration
    registry.register(MonitorCollector(monitor))                 # the app's own CollectorRegistry

- ``record_predictions``: ids are the prediction_ids returned to the client, confidences the
  top-label probabilities in [0, 1], predicted the class indices, probs (optional) the served
  (n, C) probabilities, kept per prediction for recalibration (``MonitorConfig.score_top_k``).
  Stores them for the label join (durable when it returns) and counts them in the label-free window.
- ``served_rows``: the stored predictions of one (model, version) created in [since, until) that
  kept their vector: ids, created_at, log-probabilities (n, C), labels (-1 while unlabelled).
- ``resolve_feedback``: the labels of one feedback request, checked against the classes of the
  version that made each prediction (given to ``add_model``) before any is recorded (a bad one is
  a BadRequest naming ``labels[i].label``), then recorded as by ``record_feedback``; the
  ``_batches`` form joins several requests in one store read and one store write.
- ``lookup``: the stored records (model, version, predicted class) of ids, read-only.
- ``record_feedback``: labels already mapped to class indices, unchecked. Idempotent: a label for an id that
  already has one is ``duplicate`` (the first wins); ``unknown`` ids were never stored (or were
  purged/evicted); ``expired`` ones are older than the retention. Accepted labels update the window
  of the prediction's own (model, version), whichever replica served it.
- Errors: MonitorInputError (422), UnknownModelError (404), StoreError (503); all are
  MonitorError (a ServiceError) with ``status``. Every method is thread-safe.
- ``now`` (epoch seconds) defaults to the injected clock; windows are by label arrival time.
"""

from typing import TYPE_CHECKING

from service.monitor.collector import MonitorCollector
from service.monitor.drift import DriftConfig, DriftResult, Verdict
from service.monitor.errors import MonitorError, MonitorInputError, StoreError, UnknownModelError
from service.monitor.monitor import Monitor, MonitorConfig
from service.monitor.schemas import CalibrationStatus, FeedbackResult
from service.monitor.stores.sqlite_store import SQLiteStore
from service.monitor.stores.store import (
    Outcome,
    PredictionRecord,
    PredictionStore,
    Resolution,
    ServedRows,
    StoreLimits,
)

if TYPE_CHECKING:  # imported lazily: the redis client is only needed with a Redis store
    from service.monitor.stores.redis_store import RedisStore

__all__ = [
    "CalibrationStatus",
    "DriftConfig",
    "DriftResult",
    "FeedbackResult",
    "Monitor",
    "MonitorCollector",
    "MonitorConfig",
    "MonitorError",
    "MonitorInputError",
    "Outcome",
    "PredictionRecord",
    "PredictionStore",
    "RedisStore",
    "Resolution",
    "SQLiteStore",
    "ServedRows",
    "StoreError",
    "StoreLimits",
    "UnknownModelError",
    "Verdict",
]


def __getattr__(name: str) -> object:
    """Import RedisStore on first use, so the package works without the redis client."""
    if name == "RedisStore":
        from service.monitor.stores.redis_store import RedisStore

        return RedisStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
