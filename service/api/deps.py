"""What a handler needs, from the app's state: plain accessors for the inference routes (plain
Starlette endpoints, service.api.openapi.DocumentedRoute) and Annotated dependencies for the rest.

The dependencies are ``async def``: FastAPI runs plain ``def`` dependencies in the thread pool, a
thread hop per dependency per request."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.api.reliability import ReliabilityRenderer
from service.inference.repository import Repository
from service.monitor.wiring import Monitoring
from service.settings import Settings


def settings_of(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


def repository_of(request: Request) -> Repository:
    """The loaded model repository."""
    repository: Repository = request.app.state.repository
    return repository


async def get_settings(request: Request) -> Settings:
    """``settings_of`` as a dependency."""
    return settings_of(request)


async def get_repository(request: Request) -> Repository:
    """``repository_of`` as a dependency."""
    return repository_of(request)


async def get_monitoring(request: Request) -> Monitoring:
    """The calibration monitor, its prediction recorder and the models' class names."""
    monitoring: Monitoring = request.app.state.monitoring
    return monitoring


async def get_reliability(request: Request) -> ReliabilityRenderer:
    """The reliability-diagram renderer (its own thread, its cache)."""
    renderer: ReliabilityRenderer = request.app.state.reliability
    return renderer


SettingsDep = Annotated[Settings, Depends(get_settings)]
RepositoryDep = Annotated[Repository, Depends(get_repository)]
MonitoringDep = Annotated[Monitoring, Depends(get_monitoring)]
ReliabilityDep = Annotated[ReliabilityRenderer, Depends(get_reliability)]
