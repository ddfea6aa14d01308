"""POST /v2/repository/models/{m}[/versions/{v}]/recalibrate: refit from production, compare, promote.

Bearer-protected like the rest of the repository extension. The body
``{"method": "ts"|"fts"|"best"|"prior-shift", "window_seconds": N, "promote": "auto"|"never"}`` is
validated (400 naming the field); the work runs in a thread (service.recalibration.runner), one
at a time per model on the state directory, across worker processes and the offline CLI (a second
concurrent call: 409; service.recalibration.guard); a promotion is served by every worker before
the answer (service.inference.fleet_repository). The answer carries the comparison, the new
version and what was done (``outcome``: promoted, rejected, insufficient_labels, written).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service.api.deps import MonitoringDep
from service.api.openapi import error_responses, inline_schema
from service.api.security import AdminAuth
from service.api.v2.repository import FleetDep, ManagerDep, control_body
from service.errors import BadRequest
from service.recalibration.candidate import Verdict
from service.recalibration.runner import Recalibrator

router = APIRouter(tags=["repository"], dependencies=[AdminAuth])
RECALIBRATE_ERRORS = error_responses(400, 401, 404, 408, 409, 413)


class RecalibrationBody(BaseModel):
    """What to fit (method), on which window (the last window_seconds), and whether to promote."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["ts", "fts", "best", "prior-shift"]
    window_seconds: float = Field(gt=0, le=366 * 86_400)
    promote: Literal["auto", "never"] = "never"


class Interval(BaseModel):
    """A metric on the held-out half: old, new, new - old and its 95% paired bootstrap interval."""

    old: float
    new: float
    diff: float
    low: float
    high: float


class ComparisonBody(BaseModel):
    n: int
    nll: Interval
    ece: Interval


class RecalibrationAnswer(BaseModel):
    model: str
    base_version: str
    new_version: str | None
    method: str
    parameters: dict[str, Any]
    n_fit: int
    n_heldout: int
    n_unlabelled: int
    comparison: ComparisonBody | None
    outcome: Literal["promoted", "rejected", "insufficient_labels", "written"]
    reason: str
    artifact_path: str | None


RECALIBRATE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": inline_schema(RecalibrationBody),
                "example": {"method": "best", "window_seconds": 7200, "promote": "auto"},
            }
        },
    }
}


async def get_recalibrator(request: Request) -> Recalibrator:
    recalibrator: Recalibrator = request.app.state.recalibrator
    return recalibrator


RecalibratorDep = Annotated[Recalibrator, Depends(get_recalibrator)]


@router.post(
    "/v2/repository/models/{model_name}/recalibrate",
    response_model=RecalibrationAnswer,
    responses=RECALIBRATE_ERRORS,
    openapi_extra=RECALIBRATE_BODY,
)
async def recalibrate(
    model_name: str,
    request: Request,
    manager: ManagerDep,
    fleet: FleetDep,
    monitoring: MonitoringDep,
    recalibrator: RecalibratorDep,
) -> RecalibrationAnswer:
    """Recalibrate the default version of the model from its recent production window."""
    return await _recalibrate(model_name, None, request, manager, fleet, monitoring, recalibrator)


@router.post(
    "/v2/repository/models/{model_name}/versions/{model_version}/recalibrate",
    response_model=RecalibrationAnswer,
    responses=RECALIBRATE_ERRORS,
    openapi_extra=RECALIBRATE_BODY,
)
async def recalibrate_version(
    model_name: str,
    model_version: str,
    request: Request,
    manager: ManagerDep,
    fleet: FleetDep,
    monitoring: MonitoringDep,
    recalibrator: RecalibratorDep,
) -> RecalibrationAnswer:
    """Recalibrate one version of the model from its recent production window."""
    return await _recalibrate(model_name, model_version, request, manager, fleet, monitoring, recalibrator)


async def _recalibrate(
    name: str,
    version: str | None,
    request: Request,
    manager: ManagerDep,
    fleet: FleetDep,
    monitoring: MonitoringDep,
    recalibrator: Recalibrator,
) -> RecalibrationAnswer:
    body = parse_body(await control_body(request))
    verdict = await recalibrator.run(
        manager, monitoring.monitor, name, version, body.method, body.window_seconds, body.promote, fleet
    )
    return answer_of(verdict)


def parse_body(raw: dict[str, Any]) -> RecalibrationBody:
    """The validated body; 400 naming the first bad field."""
    try:
        return RecalibrationBody.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "body"
        raise BadRequest(first["msg"], field=field) from None


def answer_of(verdict: Verdict) -> RecalibrationAnswer:
    """The JSON answer of a verdict (shared with ``candor recalibrate`` offline)."""
    c = verdict.comparison
    comparison = None
    if c is not None:
        comparison = ComparisonBody(
            n=c.n,
            nll=Interval(old=c.nll_old, new=c.nll_new, diff=c.nll.mean, low=c.nll.low, high=c.nll.high),
            ece=Interval(old=c.ece_old, new=c.ece_new, diff=c.ece.mean, low=c.ece.low, high=c.ece.high),
        )
    return RecalibrationAnswer(
        model=verdict.model,
        base_version=verdict.base_version,
        new_version=verdict.new_version,
        method=verdict.method,
        parameters=verdict.parameters,
        n_fit=verdict.n_fit,
        n_heldout=verdict.n_heldout,
        n_unlabelled=verdict.n_unlabelled,
        comparison=comparison,
        outcome=verdict.outcome,
        reason=verdict.reason,
        artifact_path=None if verdict.artifact_path is None else str(verdict.artifact_path),
    )
