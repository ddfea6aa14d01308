"""Hot reload: load, reload and unload a model's versions from models_dir, atomically per model.

A load verifies every version directory of the model off the event loop (sha256, schema, ONNX
Runtime load, graph I/O against the manifest), then swaps the model's whole version map in one
assignment. Requests holding an old engine finish on it; new ones get the new map. Any failure
refuses the whole load (LoadRefused, naming file and field) and the previous versions keep serving.
Every load re-reads and re-hashes each version's files; a version whose verified manifest equals
the served one's (so its ONNX bytes hash the same) keeps its engine and queue.
``watch`` polls models_dir and applies the same load or unload when a model's files change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from calibration.errors import CandorError
from calibration.manifest import MANIFEST_FILE, load_verified
from service.errors import LoadRefused, ModelNotFound
from service.inference.engine import Engine, engine_of
from service.inference.repository import Repository, artifact_directories
from service.settings import Settings

log = logging.getLogger("candor.models")
NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")  # fullmatch: '$' would accept a trailing newline
Fingerprint = tuple[tuple[str, int, int, int, int], ...]


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One version directory on disk and whether it is being served."""

    name: str
    version: str
    state: str
    reason: str = ""


class ModelManager:
    """Owns changes to a Repository after start-up; the engines it builds record with the
    repository's recorder; ``on_change`` runs after each swap."""

    def __init__(
        self, repository: Repository, settings: Settings, on_change: Callable[[Repository], None] | None = None
    ) -> None:
        self.repository = repository
        self.settings = settings
        self.on_change = on_change
        self._lock = asyncio.Lock()
        self._loaded: dict[str, Fingerprint] = {
            name: model_fingerprint(settings.models_dir, name) for name in repository.models
        }
        self._refused: dict[str, Fingerprint] = {}

    async def load(self, name: str) -> list[str]:
        """(Re)load every version of ``name`` from disk; returns the versions now served (and logs
        them, INFO, one line)."""
        directories = self._directories(name)
        async with self._lock:
            fingerprint = model_fingerprint(self.settings.models_dir, name)
            current = self.repository.models.get(name, {})
            try:
                engines = await asyncio.to_thread(self._build, name, directories, current)
            except LoadRefused:
                self._refused[name] = fingerprint
                raise
            self.repository.replace(name, engines)
            self._loaded[name] = fingerprint
            self._refused.pop(name, None)
            self._changed()
            versions = sorted(engines, key=int)
            log.info("candor: loaded %s versions %s", name, ", ".join(versions))
            return versions

    async def unload(self, name: str) -> list[str]:
        """Stop serving ``name``; requests already holding its engines finish on them."""
        async with self._lock:
            removed = sorted(self.repository.remove(name), key=int)
            self._loaded.pop(name, None)
            if removed:
                self._changed()
                log.info("candor: unloaded %s versions %s", name, ", ".join(removed))
            return removed

    def _directories(self, name: str) -> list[Path]:
        if not NAME.fullmatch(name):
            raise ModelNotFound(f"'{name}' is not a valid model name", field="model_name")
        directories = artifact_directories(self.settings.models_dir, name)
        if not directories:
            raise ModelNotFound(f"no artifact for model '{name}' under {self.settings.models_dir}", field="model_name")
        return directories

    def _build(self, name: str, directories: list[Path], current: dict[str, Engine]) -> dict[str, Engine]:
        """Engines for every directory (blocking), each verified from disk; an engine whose
        manifest is unchanged is reused."""
        reusable = {str(e.directory): e for e in current.values()}
        engines: dict[str, Engine] = {}
        for directory in directories:
            engine = self._verified(name, directory, reusable.get(str(directory)))
            engines[engine.manifest.version] = engine
        return engines

    def _verified(self, name: str, directory: Path, served: Engine | None) -> Engine:
        """Re-hash the artifact; the served engine when its manifest is the same, else a new one."""
        where = str(directory / MANIFEST_FILE)
        try:
            manifest, model = load_verified(directory)
        except CandorError as exc:
            raise LoadRefused(f"refused {directory}: {exc}", field=where) from exc
        if manifest.name != name or manifest.version != directory.name:
            raise LoadRefused(
                f"manifest says {manifest.name}/{manifest.version} but the artifact is in {directory}", field=where
            )
        if served is not None and served.manifest == manifest:
            return served
        try:
            return engine_of(
                directory,
                manifest,
                model,
                self.settings.providers,
                self.settings.intra_op_threads,
                self.repository.recorder,
            )
        except CandorError as exc:
            raise LoadRefused(f"refused {directory}: {exc}", field=where) from exc

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self.repository)

    def index(self) -> list[IndexEntry]:
        """Every version directory on disk (READY when served) and served versions gone from disk."""
        entries = []
        for directory in artifact_directories(self.settings.models_dir):
            name, version = directory.parent.name, directory.name
            served = self.repository.models.get(name, {}).get(version)
            ready = served is not None and str(served.directory) == str(directory)
            entries.append(
                IndexEntry(name, version, "READY" if ready else "UNAVAILABLE", "" if ready else "not loaded")
            )
        on_disk = {(e.name, e.version) for e in entries}
        entries += [
            IndexEntry(n, v, "READY", "served; no longer on disk")
            for n, vs in self.repository.models.items()
            for v in vs
            if (n, v) not in on_disk
        ]
        return sorted(entries, key=lambda e: (e.name, int(e.version)))

    async def sync(self) -> None:
        """One watch pass: reload models whose files changed, unload those removed from disk."""
        on_disk = {d.parent.name for d in artifact_directories(self.settings.models_dir)}
        for name in sorted(on_disk | set(self.repository.models)):
            fingerprint = model_fingerprint(self.settings.models_dir, name)
            if fingerprint in (self._loaded.get(name), self._refused.get(name)):
                continue
            await self._apply(name, name in on_disk)

    async def _apply(self, name: str, present: bool) -> None:
        try:
            await (self.load(name) if present else self.unload(name))  # each logs what it did
        except (LoadRefused, ModelNotFound) as exc:
            log.error("candor: %s; previous versions keep serving", exc)

    async def watch(self, interval_s: float) -> None:
        """Poll models_dir every ``interval_s`` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            await self.sync()


def model_fingerprint(models_dir: Path, name: str) -> Fingerprint:
    """(version, size and mtime of manifest and ONNX file) for each version directory of a model."""
    entries = []
    for directory in artifact_directories(models_dir, name):
        files = [directory / MANIFEST_FILE, *(p for p in directory.glob("*.onnx"))]
        stats = [f.stat() for f in files if f.exists()]
        entries.append(
            (directory.name, len(stats), sum(s.st_size for s in stats), max(s.st_mtime_ns for s in stats), len(files))
        )
    return tuple(entries)


@asynccontextmanager
async def watching(manager: ModelManager, settings: Settings) -> AsyncIterator[None]:
    """Run ``manager.watch`` for the block when settings.watch_models is set."""
    if not settings.watch_models:
        yield
        return
    task = asyncio.create_task(manager.watch(settings.watch_interval_s))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
