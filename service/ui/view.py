"""What a status page shows about one model version, read from one monitor snapshot."""

from __future__ import annotations

from dataclasses import dataclass

from calibration.binning import bin_edges
from calibration.manifest import Manifest
from service.errors import ModelNotFound
from service.inference.repository import Repository
from service.monitor import CalibrationStatus, Monitor


@dataclass(frozen=True)
class VersionView:
    """One (model, version): its status (what ``GET /v1/models/{m}/calibration`` answers), the
    window's confidence histogram with its edges, the reference fractions, and the manifest (None
    once the version is unloaded: the monitor keeps its window while labels still arrive)."""

    status: CalibrationStatus
    histogram: list[int]
    edges: list[float]
    reference_fractions: list[float] | None
    manifest: Manifest | None


def version_view(monitor: Monitor, repository: Repository, model: str, version: str) -> VersionView:
    """Status and histogram from the same snapshot, so the page agrees with itself (blocking: the
    drift test may run, a few milliseconds)."""
    snap = monitor.snapshot(model, version)
    reference = snap.reference
    histogram = [int(c) for c in snap.histogram]
    if reference is None:
        edges, fractions = [float(e) for e in bin_edges(len(histogram))], None
    else:
        edges, fractions = list(reference.confidence_histogram.edges), list(reference.confidence_histogram.fractions)
    manifest = loaded_manifest(repository, model, version)
    return VersionView(monitor.status_of(snap), histogram, edges, fractions, manifest)


def loaded_manifest(repository: Repository, model: str, version: str) -> Manifest | None:
    """The manifest of a loaded version, None when it is not loaded."""
    engine = repository.models.get(model, {}).get(version)
    return None if engine is None else engine.manifest


def page_views(monitor: Monitor, repository: Repository, model: str | None = None) -> list[VersionView]:
    """Every monitored version (of ``model`` only, when given), by model then version number;
    ModelNotFound (404) when ``model`` is neither monitored nor loaded."""
    keys = [(m, v) for m, v in monitor.models() if model is None or m == model]
    if model is not None and not keys:
        raise ModelNotFound(f"unknown model '{model}'; monitored: {sorted({m for m, _ in monitor.models()})}")
    keys.sort(key=lambda key: (key[0], int(key[1]) if key[1].isdigit() else 0, key[1]))
    return [version_view(monitor, repository, m, v) for m, v in keys]
