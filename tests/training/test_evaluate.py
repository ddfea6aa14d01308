"""candor evaluate: metrics before/after measured through the served graph, report files written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from calibration.manifest import load_manifest
from training.artifacts.evaluate import METRICS, evaluate


def test_evaluate_artifact_matches_the_manifest(digits_artifact, tmp_path: Path) -> None:
    result = evaluate(digits_artifact.artifact_dir, "test", tmp_path, ci=True, resamples=20)
    manifest = load_manifest(digits_artifact.artifact_dir)
    assert result["after"]["ece"]["value"] == pytest.approx(manifest.reference.ece, abs=1e-6)
    assert result["before"]["nll"]["value"] == pytest.approx(manifest.reference_uncalibrated.nll, abs=1e-5)
    assert result["before"]["accuracy"]["value"] == result["after"]["accuracy"]["value"]
    assert set(result["after"]) == set(METRICS)
    low, high = result["after"]["brier"]["ci95"]
    assert low <= high
    assert json.loads((tmp_path / "metrics.json").read_text())["n"] == manifest.reference.n
    report = (tmp_path / "report.md").read_text()
    assert "| ece (%) |" in report and "reliability-after.png" in report
    for stage in ("before", "after"):
        assert (tmp_path / f"reliability-{stage}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_a_run_directory_exports_it_first(digits_artifact, tmp_path: Path) -> None:
    result = evaluate(digits_artifact.run_dir, "validation", tmp_path)
    assert (
        result["split"] == "validation"
        and result["n"] == load_manifest(digits_artifact.artifact_dir).training.validation_size
    )
    assert 0 <= result["after"]["smooth_ece"]["value"] <= 1
    assert np.isfinite(result["after"]["sece"]["value"])
