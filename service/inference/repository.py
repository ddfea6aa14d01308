"""The model repository: every artifact under models_dir/<name>/<version>/, loaded and verified.

Each engine gets its own batching queue and records what it serves with the repository's
``recorder`` (the app's monitor recorder, given when the repository is built). Unversioned
requests go to the pinned default version when one is configured, else to the highest. ``replace``
and ``remove`` swap a model's whole version map in one assignment on the event loop: a request
that already holds an engine finishes on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from calibration.manifest import MANIFEST_FILE
from service.errors import ModelNotFound
from service.inference.batching import BatchConfig
from service.inference.engine import Engine, load_engine
from service.inference.served import Recorder, Unrecorded
from service.settings import Settings


@dataclass
class Repository:
    """name -> version -> Engine, with the batching config given to every engine added (the
    model's own from ``model_batching``, else ``batching``) and the recorder every engine built
    for it records with (service.inference.model_manager builds them with it)."""

    models: dict[str, dict[str, Engine]] = field(default_factory=dict)
    batching: BatchConfig = field(default_factory=BatchConfig)
    default_versions: Mapping[str, str] = field(default_factory=dict)
    model_batching: Mapping[str, BatchConfig] = field(default_factory=dict)
    recorder: Recorder = field(default_factory=Unrecorded, repr=False)

    def recorded_by(self, recorder: Recorder) -> Repository:
        """A new repository with the same configuration and the same verified sessions, whose
        engines are rebuilt to record with ``recorder`` (for one loaded before the app's monitor)."""
        repository = Repository(
            batching=self.batching,
            default_versions=self.default_versions,
            model_batching=self.model_batching,
            recorder=recorder,
        )
        for engine in self.engines():
            repository.add(engine.recorded_by(recorder))
        return repository

    def add(self, engine: Engine) -> None:
        """Register a loaded engine under its manifest's name and version."""
        self._ready(engine)
        self.models.setdefault(engine.manifest.name, {})[engine.manifest.version] = engine

    def replace(self, name: str, engines: Mapping[str, Engine]) -> None:
        """Swap in a model's complete version map atomically (empty: the model is removed)."""
        for engine in engines.values():
            self._ready(engine)
        if engines:
            self.models[name] = dict(engines)
        else:
            self.models.pop(name, None)

    def remove(self, name: str) -> dict[str, Engine]:
        """Unload a model; returns its engines (so the caller can let their queues drain)."""
        return self.models.pop(name, {})

    def _ready(self, engine: Engine) -> None:
        if engine.batcher is None:
            engine.attach_batcher(self.model_batching.get(engine.manifest.name, self.batching))

    def get(self, name: str, version: str | None = None) -> Engine:
        """The engine for name (and version); ModelNotFound names what is available."""
        versions = self.models.get(name)
        if not versions:
            raise ModelNotFound(f"unknown model '{name}'; loaded: {sorted(self.models)}", field="model_name")
        if version is None:
            return self._default(name, versions)
        if version not in versions:
            raise ModelNotFound(
                f"model '{name}' has no version '{version}'; loaded: {sorted(versions, key=int)}", field="model_version"
            )
        return versions[version]

    def _default(self, name: str, versions: Mapping[str, Engine]) -> Engine:
        """The pinned default version (settings.default_versions), else the highest."""
        pinned = self.default_versions.get(name)
        if pinned is None:
            return versions[max(versions, key=int)]
        if pinned not in versions:
            raise ModelNotFound(
                f"pinned default version '{pinned}' of model '{name}' is not loaded; "
                f"loaded: {sorted(versions, key=int)}",
                field="model_version",
            )
        return versions[pinned]

    def engines(self) -> list[Engine]:
        """Every loaded engine."""
        return [engine for versions in self.models.values() for engine in versions.values()]

    async def drain(self) -> None:
        """Wait until every engine's queue is empty (graceful shutdown)."""
        for engine in self.engines():
            if engine.batcher is not None:
                await engine.batcher.drain()

    def __len__(self) -> int:
        return sum(len(v) for v in self.models.values())


def artifact_directories(models_dir: Path, name: str = "*") -> list[Path]:
    """Every <name>/<version>/ directory holding a manifest.json (hidden staging dirs skipped)."""
    return sorted(
        p.parent
        for p in models_dir.glob(f"{name}/*/{MANIFEST_FILE}")
        if not p.parent.name.startswith(".") and not p.parent.parent.name.startswith(".")
    )


def load_repository(
    models_dir: Path,
    providers: str = "auto",
    intra_op_threads: int = 0,
    batching: BatchConfig | None = None,
    default_versions: Mapping[str, str] | None = None,
    model_batching: Mapping[str, BatchConfig] | None = None,
    recorder: Recorder | None = None,
) -> Repository:
    """Load and verify every artifact, each engine recording with ``recorder`` (default: stored
    nowhere); the first bad one raises an error naming its file and field."""
    repository = Repository(
        batching=batching or BatchConfig(),
        default_versions=dict(default_versions or {}),
        model_batching=dict(model_batching or {}),
        recorder=recorder or Unrecorded(),
    )
    for directory in artifact_directories(models_dir):
        repository.add(load_engine(directory, providers, intra_op_threads, repository.recorder))
    return repository


def load_from_settings(settings: Settings, recorder: Recorder | None = None) -> Repository:
    """``load_repository`` with the providers, threads, batching (global and per model) and pinned
    versions of settings, and ``recorder``."""
    return load_repository(
        settings.models_dir,
        settings.providers,
        settings.intra_op_threads,
        BatchConfig.from_settings(settings),
        settings.default_versions,
        {name: BatchConfig.from_settings(settings, name) for name in settings.model_batching},
        recorder,
    )
