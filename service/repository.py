"""The model repository: every artifact under models_dir/<name>/<version>/, loaded and verified."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from calibration.manifest import MANIFEST_FILE
from service.engine import Engine, load_engine
from service.errors import ModelNotFound


@dataclass
class Repository:
    """name -> version -> Engine. Unversioned requests go to the highest version."""

    models: dict[str, dict[str, Engine]] = field(default_factory=dict)

    def add(self, engine: Engine) -> None:
        """Register a loaded engine under its manifest's name and version."""
        self.models.setdefault(engine.manifest.name, {})[engine.manifest.version] = engine

    def get(self, name: str, version: str | None = None) -> Engine:
        """The engine for name (and version); ModelNotFound names what is available."""
        versions = self.models.get(name)
        if not versions:
            raise ModelNotFound(f"unknown model '{name}'; loaded: {sorted(self.models)}", field="model_name")
        if version is None:
            return versions[max(versions, key=int)]
        if version not in versions:
            raise ModelNotFound(f"model '{name}' has no version '{version}'; loaded: {sorted(versions, key=int)}",
                                field="model_version")
        return versions[version]

    def __len__(self) -> int:
        return sum(len(v) for v in self.models.values())


def artifact_directories(models_dir: Path) -> list[Path]:
    """Every <name>/<version>/ directory holding a manifest.json (hidden staging dirs skipped)."""
    return sorted(p.parent for p in models_dir.glob(f"*/*/{MANIFEST_FILE}") if not p.parent.name.startswith("."))


def load_repository(models_dir: Path, providers: str = "auto", intra_op_threads: int = 0) -> Repository:
    """Load and verify every artifact; the first bad one raises an error naming its file and field."""
    repository = Repository()
    for directory in artifact_directories(models_dir):
        repository.add(load_engine(directory, providers, intra_op_threads))
    return repository
