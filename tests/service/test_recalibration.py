"""Recalibration in the service: candidates, the rule's outcomes, promotion, lineage, parity, 409."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import numpy as np
import onnx
import pytest
from model_copies import copy_version
from prometheus_client import CollectorRegistry
from recalibration_rows import FakeSource, served_rows

from calibration.manifest import load_verified
from calibration.recalibration import apply_recalibration
from candor.artifact import run_onnx
from candor.recalibrated import synthetic_inputs
from service.inference.model_manager import ModelManager
from service.inference.repository import load_from_settings
from service.recalibration.candidate import CANDIDATES
from service.recalibration.runner import RecalibrationBusy, RecalibrationFailed, Recalibrator, WindowUnfit, run_offline
from service.settings import Settings

MODEL = "digits-cnn"


@pytest.fixture
def settings(digits_artifact, tmp_path: Path) -> Settings:
    models = tmp_path / "models"
    copy_version(digits_artifact.models_dir, models, MODEL, "1", "1")
    return Settings(
        models_dir=models, state_dir=tmp_path / "state", recalibration_min_labels=300, recalibration_resamples=200
    )


def manager_of(settings: Settings, default_versions: dict[str, str] | None = None) -> ModelManager:
    pinned = settings.model_copy(update={"default_versions": default_versions or {}})
    return ModelManager(load_from_settings(pinned), pinned)


def run(recalibrator: Recalibrator, manager: ModelManager, source: FakeSource, method: str, promote: str):
    return asyncio.run(recalibrator.run(manager, source, MODEL, None, method, 3600.0, promote))


def test_a_better_map_is_written_as_a_candidate_outside_models_dir(settings: Settings) -> None:
    manager, registry = manager_of(settings), CollectorRegistry()
    verdict = run(Recalibrator(settings, registry), manager, FakeSource(served_rows(2000)), "ts", "never")
    assert verdict.outcome == "written" and verdict.promote and verdict.new_version == "2"
    candidate = settings.state_dir / CANDIDATES / MODEL / "2"
    assert verdict.artifact_path == candidate and (candidate / "manifest.json").is_file()
    assert not (settings.models_dir / MODEL / "2").exists()
    assert [e.version for e in manager.index()] == ["1"]  # never served by accident
    assert verdict.comparison is not None and verdict.comparison.nll.high < 0
    assert "promote was never" in verdict.reason and "mv " in verdict.reason
    assert (
        registry.get_sample_value("candor_recalibrations_total", {"model": MODEL, "method": "ts", "outcome": "written"})
        == 1.0
    )


def test_the_candidate_records_its_lineage_and_heldout_reference(settings: Settings) -> None:
    verdict = run(
        Recalibrator(settings, CollectorRegistry()), manager_of(settings), FakeSource(served_rows(2000)), "ts", "never"
    )
    manifest, _ = load_verified(verdict.artifact_path)
    lineage = manifest.lineage
    assert lineage is not None and manifest.version == "2"
    assert (lineage.base_version, lineage.method, lineage.map.kind) == ("1", "ts", "temperature")
    assert lineage.n_labels_fit == verdict.n_fit and lineage.n_labels_heldout == verdict.n_heldout
    assert lineage.n_labels_fit + lineage.n_labels_heldout == 2000
    assert lineage.parameters["temperature"] == pytest.approx(lineage.map.temperature)
    assert lineage.window_end > lineage.window_start and lineage.reference_from == "heldout"
    assert manifest.reference.split == "production" and manifest.reference.n == verdict.n_heldout
    assert manifest.reference.class_priors is not None


def test_the_composed_graph_equals_the_map_on_the_base_graph(settings: Settings) -> None:
    verdict = run(
        Recalibrator(settings, CollectorRegistry()), manager_of(settings), FakeSource(served_rows(2000)), "fts", "never"
    )
    new_manifest, new_bytes = load_verified(verdict.artifact_path)
    _, base_bytes = load_verified(settings.models_dir / MODEL / "1")
    x = synthetic_inputs(new_manifest.input.shape, rows=200, seed=9)
    base = run_onnx(onnx.load_from_string(base_bytes), x)
    composed = run_onnx(onnx.load_from_string(new_bytes), x)
    assert new_manifest.lineage is not None
    expected = apply_recalibration(np.log(base), new_manifest.lineage.map)
    assert np.abs(composed - expected).max() < 1e-5
    assert verdict.parameters["parity_graph_max_abs"] < 1e-5 and verdict.parameters["parity_map_max_abs"] < 1e-5


def test_promote_auto_installs_and_serves_the_better_version(settings: Settings) -> None:
    manager = manager_of(settings)
    verdict = run(Recalibrator(settings, CollectorRegistry()), manager, FakeSource(served_rows(2000)), "best", "auto")
    assert verdict.outcome == "promoted", verdict.reason
    assert verdict.artifact_path == settings.models_dir / MODEL / "2"
    assert manager.repository.get(MODEL).manifest.version == "2"
    assert not (settings.state_dir / CANDIDATES / MODEL / "2").exists()
    assert not [p for p in (settings.models_dir / MODEL).iterdir() if p.name.startswith(".")]  # no staging left


def test_a_pin_is_overridden_at_run_time_and_the_answer_says_so(settings: Settings) -> None:
    manager = manager_of(settings, {MODEL: "1"})
    verdict = run(Recalibrator(settings, CollectorRegistry()), manager, FakeSource(served_rows(2000)), "ts", "auto")
    assert verdict.outcome == "promoted"
    assert manager.repository.get(MODEL).manifest.version == "2"
    assert "pins version 1" in verdict.reason and "next start" in verdict.reason


def test_a_map_that_is_not_better_is_rejected_and_stays_a_candidate(settings: Settings) -> None:
    manager, registry = manager_of(settings), CollectorRegistry()
    calibrated = FakeSource(served_rows(2000, sharpen=1.0, seed=3))
    verdict = run(Recalibrator(settings, registry), manager, calibrated, "ts", "auto")
    assert verdict.outcome == "rejected" and not verdict.promote
    assert "not better" in verdict.reason and "mv " in verdict.reason
    assert (settings.state_dir / CANDIDATES / MODEL / "2").is_dir()
    assert manager.repository.get(MODEL).manifest.version == "1"
    assert (
        registry.get_sample_value(
            "candor_recalibrations_total", {"model": MODEL, "method": "ts", "outcome": "rejected"}
        )
        == 1.0
    )


def test_too_few_labels_write_nothing(settings: Settings) -> None:
    verdict = run(
        Recalibrator(settings, CollectorRegistry()),
        manager_of(settings),
        FakeSource(served_rows(2000, labelled=0.1)),
        "ts",
        "auto",
    )
    assert verdict.outcome == "insufficient_labels" and verdict.new_version is None
    assert "CANDOR_RECALIBRATION_MIN_LABELS" in verdict.reason
    assert not (settings.state_dir / CANDIDATES / MODEL).exists()  # only the model's lock file is there


def test_prior_shift_without_labels_writes_a_candidate_and_never_promotes(settings: Settings) -> None:
    priors = np.array([0.4, 0.3, 0.1, 0.05, 0.05, 0.04, 0.03, 0.01, 0.01, 0.01])
    rows = served_rows(3000, sharpen=1.0, labelled=0.0, priors=priors)
    manager = manager_of(settings)
    verdict = run(Recalibrator(settings, CollectorRegistry()), manager, FakeSource(rows), "prior-shift", "auto")
    assert verdict.outcome == "insufficient_labels" and verdict.new_version == "2"
    assert "never promoted" in verdict.reason
    assert manager.repository.get(MODEL).manifest.version == "1"
    assert verdict.parameters["iterations"] >= 1 and len(verdict.parameters["priors"]) == 10
    manifest, _ = load_verified(verdict.artifact_path)
    assert manifest.lineage is not None and manifest.lineage.reference_from == "base"
    assert manifest.lineage.map.kind == "vector" and manifest.lineage.n_unlabelled == 3000


def test_a_second_recalibration_of_the_same_model_gets_409(settings: Settings) -> None:
    recalibrator, manager = Recalibrator(settings, CollectorRegistry()), manager_of(settings)
    gate = threading.Event()
    slow = FakeSource(served_rows(2000), gate=gate)

    async def both() -> None:
        first = asyncio.create_task(recalibrator.run(manager, slow, MODEL, None, "ts", 3600.0, "never"))
        await asyncio.sleep(0.05)  # the first holds the model (it waits in its thread for the gate)
        with pytest.raises(RecalibrationBusy) as busy:
            await recalibrator.run(manager, slow, MODEL, None, "ts", 3600.0, "never")
        assert busy.value.status == 409
        gate.set()
        assert (await first).outcome == "written"

    asyncio.run(both())


def test_versions_count_candidates_so_none_is_overwritten(settings: Settings) -> None:
    recalibrator, manager = Recalibrator(settings, CollectorRegistry()), manager_of(settings)
    first = run(recalibrator, manager, FakeSource(served_rows(2000, sharpen=1.0, seed=3)), "ts", "auto")
    second = run(recalibrator, manager, FakeSource(served_rows(2000)), "ts", "auto")
    assert (first.new_version, first.outcome) == ("2", "rejected")
    assert (second.new_version, second.outcome) == ("3", "promoted")


def test_offline_promotion_moves_the_candidate_into_models_dir(settings: Settings) -> None:
    verdict = run_offline(settings, FakeSource(served_rows(2000)), MODEL, None, "ts", 3600.0, "auto")
    assert verdict.outcome == "promoted" and "next `candor serve`" in verdict.reason
    manifest, _ = load_verified(settings.models_dir / MODEL / "2")
    assert manifest.lineage is not None and manifest.lineage.created_by == "candor recalibrate"


def test_a_parity_failure_is_a_500_naming_it_and_counted_as_failed(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from candor.errors import ParityError

    def fails(*args: object) -> dict[str, float]:
        raise ParityError("ONNX Runtime differs from the reference by 1.00e-02 at batch 7")

    monkeypatch.setattr("service.recalibration.candidate.check_recalibrated", fails)
    registry, manager = CollectorRegistry(), manager_of(settings)
    with pytest.raises(RecalibrationFailed) as failed:
        run(Recalibrator(settings, registry), manager, FakeSource(served_rows(2000)), "ts", "auto")
    assert failed.value.status == 500 and "differs from the reference" in str(failed.value)
    assert not (settings.state_dir / CANDIDATES / MODEL / "2").exists()
    assert manager.repository.get(MODEL).manifest.version == "1"
    assert (
        registry.get_sample_value("candor_recalibrations_total", {"model": MODEL, "method": "ts", "outcome": "failed"})
        == 1.0
    )


def test_prior_shift_with_labels_under_a_label_shift_is_promoted(settings: Settings) -> None:
    """Labels follow shifted class priors the served posteriors do not know: the EM finds them and
    the correction is better on the held-out half."""
    shift = np.array([0.3, 0.25, 0.15, 0.1, 0.06, 0.05, 0.04, 0.03, 0.01, 0.01])
    rows = served_rows(6000, sharpen=1.0, label_shift=shift, seed=11)
    manager = manager_of(settings)
    verdict = run(Recalibrator(settings, CollectorRegistry()), manager, FakeSource(rows), "prior-shift", "auto")
    assert verdict.outcome == "promoted", verdict.reason
    estimated = np.asarray(verdict.parameters["priors"])
    assert estimated[:2].sum() > 0.4 and estimated[-2:].sum() < 0.08  # the shift's direction, recovered
    assert manager.repository.get(MODEL).manifest.version == "2"


def test_a_window_the_fit_refuses_is_a_422_naming_the_window_not_a_500(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from calibration.errors import CalibrationError

    def refuses(*args: object, **kwargs: object) -> object:
        raise CalibrationError("every row has the same label")

    monkeypatch.setattr("service.recalibration.candidate.fit_on_log_probs", refuses)
    registry, manager = CollectorRegistry(), manager_of(settings)
    with pytest.raises(WindowUnfit) as refused:
        run(Recalibrator(settings, registry), manager, FakeSource(served_rows(2000)), "ts", "auto")
    assert refused.value.status == 422 and refused.value.field == "window_seconds"
    assert "every row has the same label" in str(refused.value)
    assert not (settings.state_dir / CANDIDATES / MODEL / "2").exists()
    assert manager.repository.get(MODEL).manifest.version == "1"
