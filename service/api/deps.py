"""Annotated dependencies: everything a handler needs comes from the app's lifespan state."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.repository import Repository
from service.settings import Settings


def get_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


def get_repository(request: Request) -> Repository:
    """The loaded model repository."""
    repository: Repository = request.app.state.repository
    return repository


SettingsDep = Annotated[Settings, Depends(get_settings)]
RepositoryDep = Annotated[Repository, Depends(get_repository)]
