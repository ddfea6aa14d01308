"""Which worker of ``candor serve --workers N`` this process is (service.supervisor starts them).

The supervisor owns the SQLite store's ``<db>.lock`` and a run directory, made fresh for each
supervisor run and removed at its exit: ``monitor.<slot>.json`` (service.monitor.fleet),
``metrics/`` (prometheus_client's multiprocess directory, PROMETHEUS_MULTIPROC_DIR of every
worker) and the desired repository state ``repository.json`` with each slot's
``repository.applied.<slot>`` (service.inference.fleet_repository) live there. A worker restarted
into a slot finds its slot's files again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from service.monitor.fleet import SlotStates

METRICS_SUBDIR = "metrics"


@dataclass(frozen=True)
class WorkerSlot:
    """Slot ``slot`` (0 .. n_slots - 1) of the supervisor run whose files are under ``run_dir``."""

    slot: int
    n_slots: int
    run_dir: Path

    @property
    def metrics_dir(self) -> Path:
        """prometheus_client's multiprocess directory of this run."""
        return self.run_dir / METRICS_SUBDIR

    def states(self) -> SlotStates:
        """The monitor state files of this run, seen from this slot."""
        return SlotStates(self.run_dir, self.slot, self.n_slots)
