"""Model repository extension (Triton/KServe): index, load (reload) and unload; bearer-protected.

In a worker of ``candor serve --workers N``, load and unload go through the fleet's desired
repository state (service.inference.fleet_repository): applied here, recorded, followed by every
worker before the answer (at most settings.fleet_wait_s)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from service.api.body import decode_json_object, read_limited_body
from service.api.deps import settings_of
from service.api.openapi import error_responses
from service.api.security import AdminAuth
from service.errors import BadRequest
from service.inference.fleet_repository import FleetRepository
from service.inference.model_manager import ModelManager

router = APIRouter(tags=["repository"], dependencies=[AdminAuth])
CONTROL_ERRORS = error_responses(400, 401, 408, 413)
LOAD_ERRORS = error_responses(400, 401, 404, 408, 413)
MAX_CONTROL_BODY = 64 * 1024


async def get_manager(request: Request) -> ModelManager:
    """The app's model manager (lifespan state)."""
    manager: ModelManager = request.app.state.model_manager
    return manager


ManagerDep = Annotated[ModelManager, Depends(get_manager)]


async def get_fleet(request: Request) -> FleetRepository | None:
    """The worker's side of the fleet's repository state (lifespan state); None in a single process."""
    fleet: FleetRepository | None = request.app.state.fleet_repository
    return fleet


FleetDep = Annotated[FleetRepository | None, Depends(get_fleet)]


class RepositoryEntry(BaseModel):
    """A version directory on disk: READY when served, else UNAVAILABLE with the reason."""

    name: str
    version: str
    state: str
    reason: str


class LoadResult(BaseModel):
    """Versions served (load) or no longer served (unload) after the call."""

    name: str
    versions: list[str]


@router.post("/v2/repository/index", response_model=list[RepositoryEntry], responses=CONTROL_ERRORS)
async def repository_index(request: Request, manager: ManagerDep) -> list[RepositoryEntry]:
    """Every artifact on disk and its state; body ``{"ready": true}`` lists only served ones."""
    options = await control_body(request)
    entries = [RepositoryEntry(name=e.name, version=e.version, state=e.state, reason=e.reason) for e in manager.index()]
    if options.get("ready") is True:
        entries = [e for e in entries if e.state == "READY"]
    return entries


@router.post("/v2/repository/models/{model_name}/load", response_model=LoadResult, responses=LOAD_ERRORS)
async def load_model(model_name: str, request: Request, manager: ManagerDep, fleet: FleetDep) -> LoadResult:
    """(Re)load every version of the model from models_dir, atomically; a bad artifact is refused
    (400 naming file and field) and the versions served before keep serving."""
    options = await control_body(request)
    if set(_parameters(options)) - {"unload_dependents"}:
        raise BadRequest(
            "loading from a config or files is not supported; place the artifact under models_dir/<name>/<version>/",
            field="parameters",
        )
    versions = await (manager.load(model_name) if fleet is None else fleet.load(model_name))
    return LoadResult(name=model_name, versions=versions)


@router.post("/v2/repository/models/{model_name}/unload", response_model=LoadResult, responses=CONTROL_ERRORS)
async def unload_model(model_name: str, request: Request, manager: ManagerDep, fleet: FleetDep) -> LoadResult:
    """Stop serving the model (idempotent); requests already running finish."""
    await control_body(request)
    versions = await (manager.unload(model_name) if fleet is None else fleet.unload(model_name))
    return LoadResult(name=model_name, versions=versions)


async def control_body(request: Request) -> dict[str, Any]:
    """The optional JSON object of a repository call ({} when the body is empty)."""
    body = await read_limited_body(request, MAX_CONTROL_BODY, settings_of(request).body_timeout_s)
    return decode_json_object(body) if body.strip() else {}


def _parameters(options: dict[str, Any]) -> dict[str, Any]:
    value = options.get("parameters") or {}
    if not isinstance(value, dict):
        raise BadRequest("must be a JSON object", field="parameters")
    return value
