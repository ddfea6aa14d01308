"""The app's calibration monitoring: prediction store, Monitor and recorders built from settings.

``open_monitoring`` is entered in the lifespan (``app.state.monitoring``) before any engine is
built: it opens the store (SQLite file by default, Redis when ``store_url`` is redis://), makes the
prediction recorder the app's engines are built with (service.inference.repository), registers the
Prometheus collector on the app's registry, and on exit waits for the last feedback write and
closes the store (predictions are written by the engines' batchers, drained before). Call
``app.state.monitoring.register(repository)`` after each load or reload so every version is
monitored against its manifest's reference and its class names are known to feedback.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry

from service.inference.repository import Repository
from service.monitor import (
    DriftConfig,
    Monitor,
    MonitorCollector,
    MonitorConfig,
    PredictionStore,
    SQLiteStore,
    StoreError,
    StoreLimits,
)
from service.monitor.feedback import FeedbackRecorder
from service.monitor.predictions import PredictionRecorder
from service.monitor.stores.pending_log import PendingLogStore, leftover_logs, pending_log_path, replay_logs
from service.settings import Settings
from service.worker_slot import WorkerSlot

SQLITE_PREFIX = "sqlite://"
DEFAULT_STORE_FILE = "predictions.db"


def sqlite_path(settings: Settings) -> Path:
    """The SQLite file: ``sqlite:///ABS/PATH`` from store_url, else state_dir/predictions.db."""
    if settings.store_url is None:
        return settings.state_dir / DEFAULT_STORE_FILE
    return Path("/" + settings.store_url.removeprefix(SQLITE_PREFIX).lstrip("/"))


def open_store(settings: Settings, worker: WorkerSlot | None = None) -> PredictionStore:
    """A Redis store for redis:// URLs (replicas share it), else the SQLite file (dir created),
    owned by this process whatever ``store_log`` (a second owner is a StoreError), behind its
    pending log unless ``store_log`` is off (service.monitor.stores.pending_log). A worker slot
    shares the file with its siblings (their supervisor owns it) behind the slot's own log."""
    limits = StoreLimits(retention_seconds=settings.retention_seconds, capacity=settings.store_capacity)
    url = settings.store_url
    if url is not None and url.startswith(("redis://", "rediss://")):
        from service.monitor.stores.redis_store import RedisStore

        return RedisStore(url, limits)
    path = sqlite_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    # one process per file, or one supervisor's workers
    store = SQLiteStore(path, limits, sync=settings.store_sync, exclusive=worker is None)
    try:
        if worker is None:
            replay_logs(store, leftover_slot_logs(path))
        if not settings.store_log:
            return store
        if worker is not None:
            return PendingLogStore(store, slot=worker.slot, n_slots=worker.n_slots)
        return PendingLogStore(store)
    except StoreError:
        store.close()
        raise


def leftover_slot_logs(db: Path) -> list[Path]:
    """Logs of worker slots of an earlier ``--workers N`` run (a single process replays them)."""
    return [p for p in leftover_logs(db) if p != pending_log_path(db)]


def monitor_config(settings: Settings) -> MonitorConfig:
    """Window length and buckets, the drift test's minimum labels, the class-mix flag's PSI floor
    and the scores kept per stored prediction, from the settings."""
    return MonitorConfig(
        window_seconds=settings.monitor_window_seconds,
        n_buckets=settings.monitor_buckets,
        drift=DriftConfig(min_labels=settings.drift_min_labels, class_mix_psi=settings.drift_class_mix_psi),
        score_top_k=settings.store_top_k,
    )


@dataclass(frozen=True, eq=False)
class Monitoring:
    """The app's monitor and its prediction and feedback recorders."""

    monitor: Monitor
    recorder: PredictionRecorder
    feedback: FeedbackRecorder

    @classmethod
    def of(cls, monitor: Monitor) -> Monitoring:
        """The monitor with a prediction recorder and a feedback recorder of its own."""
        return cls(monitor, PredictionRecorder(monitor), FeedbackRecorder(monitor))

    def register(self, repository: Repository) -> None:
        """Monitor every loaded (model, version) against its manifest's reference, with its class
        names (state of models already monitored is kept; a version unloaded later stays known,
        since labels for its predictions keep arriving); call again after a reload."""
        for name, versions in repository.models.items():
            for version, engine in versions.items():
                manifest = engine.manifest
                self.monitor.add_model(name, version, manifest.reference, manifest.classes)


@asynccontextmanager
async def open_monitoring(
    settings: Settings, registry: CollectorRegistry, worker: WorkerSlot | None = None
) -> AsyncIterator[Monitoring]:
    """Monitoring for the app's lifetime; on exit the last write finishes and the store closes.
    A worker slot's monitor starts from, publishes to and reads the run's state files
    (service.monitor.fleet)."""
    store = open_store(settings, worker)
    try:
        fleet = None if worker is None else worker.states()
        monitoring = Monitoring.of(Monitor(store, config=monitor_config(settings), fleet=fleet))
        collector = MonitorCollector(monitoring.monitor)
        registry.register(collector)
        try:
            yield monitoring
        finally:
            await monitoring.feedback.drain()
            registry.unregister(collector)
            monitoring.monitor.publish()
    finally:
        store.close()
