"""Annotated dependencies: everything a handler needs comes from the app's lifespan state.

They are ``async def``: FastAPI runs plain ``def`` dependencies in the thread pool, a thread hop
per dependency per request."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.monitoring import Monitoring
from service.predictions import PredictionRecorder
from service.repository import Repository
from service.settings import Settings


async def get_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


async def get_repository(request: Request) -> Repository:
    """The loaded model repository."""
    repository: Repository = request.app.state.repository
    return repository


async def get_monitoring(request: Request) -> Monitoring:
    """The calibration monitor, its prediction recorder and the models' class names."""
    monitoring: Monitoring = request.app.state.monitoring
    return monitoring


async def get_recorder(request: Request) -> PredictionRecorder:
    """Records served predictions (see service.predictions.record_predictions)."""
    recorder: PredictionRecorder = request.app.state.monitoring.recorder
    return recorder


SettingsDep = Annotated[Settings, Depends(get_settings)]
RepositoryDep = Annotated[Repository, Depends(get_repository)]
MonitoringDep = Annotated[Monitoring, Depends(get_monitoring)]
RecorderDep = Annotated[PredictionRecorder, Depends(get_recorder)]
