"""``GET /v1/models/{m}/calibration`` (JSON status) and ``.../calibration/reliability.png``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from starlette.concurrency import run_in_threadpool

from service.api.deps import MonitoringDep, ReliabilityDep, RepositoryDep
from service.api.openapi import error_responses
from service.inference.repository import Repository
from service.monitor import CalibrationStatus, Monitor

router = APIRouter(tags=["monitoring"])

VersionQuery = Annotated[str | None, Query(description="model version (default: the served one)")]
ERRORS = error_responses(404, 503)
PNG: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"image/png": {}},
        "description": "reliability diagram of the window: per-bin accuracy vs confidence, "
        "gaps, the diagonal, the reference, and the confidence histogram",
    },
}


def monitored_key(model: str, version: str | None, repository: Repository, monitor: Monitor) -> tuple[str, str]:
    """(model, version) to report: a version the monitor knows (even unloaded since), else the
    repository's resolution of the request (404 naming what is loaded)."""
    if version is not None and (model, version) in monitor.models():
        return model, version
    manifest = repository.get(model, version).manifest
    return manifest.name, manifest.version


@router.get("/v1/models/{model_name}/calibration", response_model=CalibrationStatus, responses=ERRORS)
async def calibration_status(
    model_name: str, repository: RepositoryDep, monitoring: MonitoringDep, version: VersionQuery = None
) -> CalibrationStatus:
    """Window and since-start ECE, accuracy and confidence, per-bin reliability against the
    reference, the sample-size-aware drift verdict and the label-free signals."""
    model, ver = monitored_key(model_name, version, repository, monitoring.monitor)
    return await run_in_threadpool(monitoring.monitor.status, model, ver)


@router.get("/v1/models/{model_name}/calibration/reliability.png", response_class=Response, responses={**PNG, **ERRORS})
async def reliability_diagram(
    model_name: str,
    repository: RepositoryDep,
    monitoring: MonitoringDep,
    renderer: ReliabilityDep,
    version: VersionQuery = None,
) -> Response:
    """The window's reliability diagram as a PNG (the same bins as the JSON status); rendered on
    a thread of its own, again only when the window has changed."""
    model, ver = monitored_key(model_name, version, repository, monitoring.monitor)
    return Response(await renderer.png(monitoring.monitor, model, ver), media_type="image/png")
