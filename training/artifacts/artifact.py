"""Where an artifact goes: name and version checked against the manifest, no silent overwrite."""

from __future__ import annotations

import re
from pathlib import Path

from calibration.manifest import Manifest
from training.errors import TrainingError


def refuse_existing(target: Path, force: bool) -> None:
    """Name and version must fit the manifest (checked before any work); an existing version is
    never silently replaced."""
    check_name_and_version(target.parent.name, target.name)
    if target.exists() and not force:
        raise TrainingError(f"{target} exists: choose another --version or pass --force")


def check_name_and_version(name: str, version: str) -> None:
    """--name: lowercase letters, digits, '.', '_', '-' (starting alphanumeric); --version: 1, 2, ..."""
    fields = Manifest.model_fields
    rules = {"--name": (name, fields["name"]), "--version": (version, fields["version"])}
    for option, (value, field) in rules.items():
        pattern = next(m.pattern for m in field.metadata if hasattr(m, "pattern"))
        if not re.fullmatch(pattern, value):
            raise TrainingError(
                f"{option} {value!r} is not allowed: it must match {pattern} "
                "(e.g. --name fashion-mnist-cnn --version 2)"
            )
