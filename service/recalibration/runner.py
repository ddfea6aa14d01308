"""Running recalibrations: in the server (counted in /metrics) or offline; one at a time per model
on a state directory, whichever process runs it (service.recalibration.guard).

``Recalibrator.run`` (POST /v2/repository/models/{m}/recalibrate) reads the window through the
monitor (``served_rows``), runs the job in a thread, and promotes through the repository's load
path when asked (``promote="auto"``) and the rule allows it. ``run_offline`` (``candor recalibrate``
with no server answering) opens the store itself and, when promoting, moves the candidate into
models_dir so that the next start serves it. With ``candor serve --workers N`` the promotion is
recorded in the fleet's desired repository state and every worker serves it
(service.inference.fleet_repository); the counter then lives in prometheus_client's multiprocess
files, summed over every worker by its MultiProcessCollector (service.api.http_metrics).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, Protocol

from prometheus_client import CollectorRegistry, Counter

from calibration.errors import CalibrationError, CandorError
from service.errors import ModelNotFound, ServiceError
from service.inference.fleet_repository import FleetRepository
from service.inference.model_manager import ModelManager
from service.inference.repository import artifact_directories
from service.monitor.stores.store import ServedRows
from service.recalibration.candidate import CANDIDATES, Job, Method, Verdict, run_job
from service.recalibration.guard import RecalibrationBusy as RecalibrationBusy  # its 409, raised there
from service.recalibration.guard import recalibrating
from service.recalibration.promotion import install_offline, promote_served
from service.settings import Settings

Promote = Literal["auto", "never"]
log = logging.getLogger("candor.recalibration")


class RowSource(Protocol):
    """The monitor or its store: stored predictions of one version created in [since, until)."""

    def served_rows(self, model: str, version: str, since: float, until: float) -> ServedRows: ...


class RecalibrationFailed(ServiceError):
    """Writing the candidate failed (a parity failure, the disk): nothing was written or promoted."""

    status = 500


class WindowUnfit(ServiceError):
    """The window's rows cannot be fitted (the client may pick another window): nothing was written."""

    status = 422


def make_job(settings: Settings, model: str, base_dir: Path, method: Method, window_s: float, now: float) -> Job:
    """The job for ``base_dir`` over the last ``window_s`` seconds, with the settings' rule."""
    return Job(
        model=model,
        base_dir=base_dir,
        method=method,
        window_start=datetime.fromtimestamp(now - window_s, UTC),
        window_end=datetime.fromtimestamp(now, UTC),
        models_dir=settings.models_dir,
        candidates_dir=settings.state_dir / CANDIDATES,
        min_labels=settings.recalibration_min_labels,
        seed=settings.recalibration_seed,
        resamples=settings.recalibration_resamples,
    )


def read_window(source: RowSource, model: str, version: str, job: Job) -> ServedRows:
    return source.served_rows(model, version, job.window_start.timestamp(), job.window_end.timestamp())


def hand_promotion(verdict: Verdict, settings: Settings) -> str:
    """How an operator promotes a candidate left on disk."""
    if verdict.artifact_path is None:
        return ""
    target = settings.models_dir / verdict.model / str(verdict.new_version)
    return (
        f"; the candidate stays at {verdict.artifact_path}: to serve it anyway, move it to {target} "
        f"(mv {verdict.artifact_path} {target}) and POST /v2/repository/models/{verdict.model}/load"
    )


class Recalibrator:
    """One recalibration at a time per model (service.recalibration.guard);
    ``candor_recalibrations_total{model,method,outcome}`` counts every finished one (outcome
    ``failed`` when it raised) on ``registry``, or, with None (a worker slot: multiprocess mode),
    into this process's multiprocess files, exposed summed by the app's MultiProcessCollector."""

    def __init__(self, settings: Settings, registry: CollectorRegistry | None) -> None:
        self.settings = settings
        self.total = Counter(
            "candor_recalibrations",
            "Recalibrations run, by model, method and outcome",
            ["model", "method", "outcome"],
            registry=registry,
        )

    async def run(
        self,
        manager: ModelManager,
        source: RowSource,
        model: str,
        version: str | None,
        method: Method,
        window_s: float,
        promote: Promote,
        fleet: FleetRepository | None = None,
    ) -> Verdict:
        """Fit, write the candidate, compare, and promote when asked and better (through ``fleet``,
        so every worker serves it, when this is a worker slot)."""
        engine = manager.repository.get(model, version)  # 404 for an unknown model or version
        job = replace(
            make_job(self.settings, model, engine.directory, method, window_s, time.time()),
            created_by="POST /v2/repository/models/{m}/recalibrate",
        )
        with recalibrating(self.settings.state_dir / CANDIDATES, model):  # 409 when one runs
            verdict = await self._counted(job, engine.manifest.version, manager, source, promote, fleet)
        log.info(
            "candor: recalibration of %s v%s (%s): %s, %s",
            model,
            verdict.base_version,
            method,
            verdict.outcome,
            verdict.reason,
        )
        return verdict

    async def _counted(
        self,
        job: Job,
        version: str,
        manager: ModelManager,
        source: RowSource,
        promote: Promote,
        fleet: FleetRepository | None,
    ) -> Verdict:
        """``_run``, counted by outcome; the fit's and the writing's errors mapped to their status."""
        model, method = job.model, job.method
        try:
            verdict = await self._run(job, version, manager, source, promote, fleet)
        except Exception as exc:
            self.total.labels(model, method, "failed").inc()
            if isinstance(exc, CalibrationError):  # the fit refused the window's rows
                raise WindowUnfit(f"cannot recalibrate {model} from this window: {exc}", "window_seconds") from exc
            if isinstance(exc, CandorError) and not isinstance(exc, ServiceError):  # artifact writing
                raise RecalibrationFailed(f"recalibration of {model} stopped: {exc}; nothing was promoted") from exc
            raise
        self.total.labels(model, method, verdict.outcome).inc()
        return verdict

    async def _run(
        self,
        job: Job,
        version: str,
        manager: ModelManager,
        source: RowSource,
        promote: Promote,
        fleet: FleetRepository | None,
    ) -> Verdict:
        """Read the window, fit and write the candidate (off the loop), then promote it when asked."""
        rows = await asyncio.to_thread(read_window, source, job.model, version, job)
        verdict = await asyncio.to_thread(run_job, job, rows)
        if not verdict.promote or verdict.artifact_path is None:
            verdict.reason += hand_promotion(verdict, self.settings)
        elif promote == "never":
            verdict.reason += "; not promoted: promote was never" + hand_promotion(verdict, self.settings)
        else:
            note = await promote_served(manager, verdict.artifact_path, fleet)
            verdict.outcome, verdict.reason = "promoted", f"{verdict.reason}; {note}"
            verdict.artifact_path = self.settings.models_dir / job.model / str(verdict.new_version)
        return verdict


def base_directory(settings: Settings, model: str, version: str | None) -> Path:
    """Offline: models_dir/<model>/<version>, else the pinned default, else the highest version."""
    directories = {d.name: d for d in artifact_directories(settings.models_dir, model)}
    if not directories:
        raise ModelNotFound(f"no artifact for model '{model}' under {settings.models_dir}", field="model_name")
    chosen = version or settings.default_versions.get(model) or max(directories, key=int)
    if chosen not in directories:
        raise ModelNotFound(f"model '{model}' has no version '{chosen}' under {settings.models_dir}", "model_version")
    return directories[chosen]


def run_offline(
    settings: Settings,
    source: RowSource,
    model: str,
    version: str | None,
    method: Method,
    window_s: float,
    promote: Promote,
) -> Verdict:
    """The same job without a server: the store is opened by the caller (no server owns it);
    RecalibrationBusy while another recalibration of the model runs on the state directory."""
    base_dir = base_directory(settings, model, version)
    with recalibrating(settings.state_dir / CANDIDATES, model):
        return _offline_job(
            settings, source, make_job(settings, model, base_dir, method, window_s, time.time()), promote
        )


def _offline_job(settings: Settings, source: RowSource, job: Job, promote: Promote) -> Verdict:
    model, base_dir = job.model, job.base_dir
    verdict = run_job(job, read_window(source, model, base_dir.name, job))
    if verdict.promote and verdict.artifact_path is not None and promote == "auto":
        note = install_offline(verdict.artifact_path, settings.models_dir)
        verdict.outcome, verdict.reason = "promoted", f"{verdict.reason}; {note}"
        verdict.artifact_path = settings.models_dir / model / str(verdict.new_version)
    elif verdict.promote and promote == "never":
        verdict.reason += "; not promoted: promote was never" + hand_promotion(verdict, settings)
    else:
        verdict.reason += hand_promotion(verdict, settings)
    return verdict
