"""Promotion: a candidate moves into models_dir/<model>/<version>/ atomically, then is served.

``install`` copies the sealed candidate into a hidden staging directory inside models_dir/<model>/
(skipped by the repository scan; the same file system as the target) and renames it into place in
one ``os.rename``: a scan sees either no version directory or a complete one. The candidate
directory is removed afterwards. ``promote_served`` then goes through the repository's own load path
(ModelManager.load: every version re-verified off the event loop, the version map swapped in one
assignment, so no request fails during the switch); a refused load moves the artifact back to the
candidates and the versions served before keep serving. A pin in settings.default_versions naming
another version is overridden at run time only: the pin wins again at the next start. In a worker
of ``candor serve --workers N`` the whole promotion goes through the fleet's desired repository
state (service.inference.fleet_repository): the reload and the run-time default are recorded and
every worker follows before the answer (at most settings.fleet_wait_s).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from service.errors import LoadRefused, ServiceError
from service.inference.fleet_repository import FleetRepository
from service.inference.model_manager import ModelManager


class PromotionError(ServiceError):
    """The candidate could not be moved into models_dir (target exists, file system error)."""

    status = 409


def install(candidate: Path, models_dir: Path) -> Path:
    """Move ``candidate`` (<...>/candidates/<model>/<version>) to models_dir/<model>/<version>."""
    model, version = candidate.parent.name, candidate.name
    target = models_dir / model / version
    if target.exists():
        raise PromotionError(f"{target} exists: a version is never replaced; the candidate stays at {candidate}")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{version}-promoting-", dir=target.parent))
    try:
        shutil.copytree(candidate, staging, dirs_exist_ok=True)
        os.rename(staging, target)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise PromotionError(f"cannot move {candidate} to {target}: {exc.strerror}") from exc
    shutil.rmtree(candidate, ignore_errors=True)
    return target


def withdraw(target: Path, candidate: Path) -> None:
    """Undo ``install``: the artifact goes back to the candidates (a refused load)."""
    candidate.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(target, candidate)
    shutil.rmtree(target)


async def promote_served(manager: ModelManager, candidate: Path, fleet: FleetRepository | None = None) -> str:
    """Install and load the candidate (recorded for every worker through ``fleet``); returns a
    note on the default version (pins included)."""
    if fleet is None:
        return await _promote(manager, candidate)
    return await fleet.change(candidate.parent.name, True, lambda: _promote(manager, candidate))


async def _promote(manager: ModelManager, candidate: Path) -> str:
    name, version = candidate.parent.name, candidate.name
    target = install(candidate, manager.settings.models_dir)
    try:
        versions = await manager.load(name)
    except LoadRefused:
        withdraw(target, candidate)
        raise
    if version not in versions:  # pragma: no cover - load serves every directory on disk
        raise PromotionError(f"version {version} was installed but not loaded; loaded: {versions}")
    return _default_note(manager, name, version)


def _default_note(manager: ModelManager, name: str, version: str) -> str:
    """Make ``version`` the runtime default; say so, and that a configured pin wins at restart."""
    repository = manager.repository
    pinned = repository.default_versions.get(name)
    if pinned is None or pinned == version:
        return f"version {version} is now the default of {name} (the highest version wins)"
    repository.default_versions = {**repository.default_versions, name: version}
    return (
        f"version {version} is now the default of {name} at run time; CANDOR_DEFAULT_VERSIONS pins version "
        f"{pinned}, which wins again at the next start: update the pin to keep {version}"
    )


def install_offline(candidate: Path, models_dir: Path) -> str:
    """Promotion without a server: the artifact moves into models_dir; the next start serves it."""
    target = install(candidate, models_dir)
    return f"moved to {target}: the next `candor serve` serves it (the highest version is the default unless pinned)"
