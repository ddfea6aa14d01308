"""Export: the fused graph reproduces torch within 1e-5, or no artifact is written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from calibration.errors import CalibrationError
from calibration.manifest import load_manifest, verify_artifact
from calibration.maps import softmax
from calibration.metrics import ece
from candor.errors import ParityError
from training import export as export_module
from training.calibrate_run import CALIBRATION_FILE, fit_map, load_calibration
from training.errors import RunDirectoryError, TrainingError
from training.export import export_run, run_onnx
from training.trainer import TrainConfig, load_checkpoint, predict_logits, prepare_data


def test_graph_contains_division_by_T_and_softmax(digits_artifact) -> None:
    graph = onnx.load(str(digits_artifact.artifact_dir / "model.onnx"))
    ops = [node.op_type for node in graph.graph.node]
    assert ops[-2:] == ["Div", "Softmax"]
    assert [o.name for o in graph.graph.output] == ["probabilities"]
    assert graph.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch axis


@pytest.mark.parametrize("batch", [1, 7, 64, 300])
def test_onnx_equals_softmax_logits_over_T(digits_artifact, batch: int) -> None:
    model, ckpt = load_checkpoint(digits_artifact.run_dir)
    temperature = load_calibration(digits_artifact.run_dir).temperature
    x = prepare_data(TrainConfig(**ckpt["config"])).test[0][:batch]
    expected = softmax(predict_logits(model, x).double().numpy() / temperature)
    got = run_onnx(onnx.load(str(digits_artifact.artifact_dir / "model.onnx")), x.numpy())
    assert np.abs(got - expected).max() < 1e-5


def test_manifest_records_map_and_reference_figures(digits_artifact) -> None:
    manifest = verify_artifact(digits_artifact.artifact_dir)
    record = json.loads((digits_artifact.run_dir / CALIBRATION_FILE).read_text())
    assert manifest.calibration.kind == "temperature"
    assert manifest.calibration.temperature == pytest.approx(record["map"]["temperature"])
    ref = manifest.reference
    assert ref.split == "test" and ref.n == 359 and sum(ref.bins.counts) == ref.n
    assert sum(ref.confidence_histogram.fractions) == pytest.approx(1.0)
    recomputed = np.abs(np.array(ref.bins.confidence_sums) - np.array(ref.bins.correct_sums)).sum() / ref.n
    assert ref.ece == pytest.approx(recomputed)
    assert manifest.reference_uncalibrated.accuracy == pytest.approx(ref.accuracy)  # TS keeps argmax


def test_reference_ece_is_measured_on_the_test_split(digits_artifact) -> None:
    model, ckpt = load_checkpoint(digits_artifact.run_dir)
    manifest = load_manifest(digits_artifact.artifact_dir)
    x, y = prepare_data(TrainConfig(**ckpt["config"])).test
    probs = softmax(predict_logits(model, x).double().numpy() / manifest.calibration.temperature)
    assert manifest.reference.ece == pytest.approx(ece(probs, y.numpy()), abs=1e-5)


def test_parity_failure_writes_nothing(digits_artifact, tmp_path: Path, monkeypatch) -> None:
    def skewed(model, x, cmap):  # the torch reference drifts: ONNX no longer matches
        with torch.no_grad():
            return torch.softmax(model(x) / (cmap.temperature * 1.5), dim=1).double().numpy()

    monkeypatch.setattr(export_module, "torch_probabilities", skewed)
    with pytest.raises(ParityError, match="no artifact written"):
        export_run(digits_artifact.run_dir, "digits-cnn", "9", tmp_path)
    assert not (tmp_path / "digits-cnn" / "9").exists()


def test_existing_version_is_not_overwritten(digits_artifact) -> None:
    with pytest.raises(TrainingError, match="--force"):
        export_run(digits_artifact.run_dir, "digits-cnn", "1", digits_artifact.models_dir)


def test_export_needs_calibration_first(digits_artifact, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "best.pt").write_bytes((digits_artifact.run_dir / "best.pt").read_bytes())
    with pytest.raises(RunDirectoryError, match="candor calibrate"):
        export_run(run, "digits-cnn", "1", tmp_path / "models")


def test_focal_map_is_fused_and_recorded(digits_artifact, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(digits_artifact.run_dir, run)
    record = json.loads((run / CALIBRATION_FILE).read_text())
    record["map"] = {**record["map"], "kind": "focal_temperature", "gamma": 2.0}
    (run / CALIBRATION_FILE).write_text(json.dumps(record))
    target = export_run(run, "digits-fts", "1", tmp_path / "models")
    manifest = verify_artifact(target)
    assert manifest.calibration.kind == "focal_temperature" and manifest.calibration.gamma == 2.0
    ops = {node.op_type for node in onnx.load(str(target / "model.onnx")).graph.node}
    assert {"ArgMax", "IsNaN", "IsInf", "Cast"} <= ops  # focal map nodes in float64, guard included


def test_fit_map_methods() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=4, size=(2000, 5))
    labels = np.array([rng.choice(5, p=p) for p in softmax(logits / 2.5)])
    ts, _ = fit_map(logits, labels, "ts")
    fts, figures = fit_map(logits, labels, "fts")
    best, _ = fit_map(logits, labels, "best")
    assert ts.kind == "temperature" and fts.kind == "focal_temperature"
    assert figures["validation_nll_fts"] <= figures["validation_nll_ts"] + 1e-9
    assert best.kind in ("temperature", "focal_temperature")
    with pytest.raises(CalibrationError, match="--method"):
        fit_map(logits, labels, "platt")


@pytest.mark.parametrize("scale", [0.5, 1.0, 2.5])
def test_best_map_is_the_lowest_validation_nll_of_none_ts_fts(scale: float) -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(scale=3, size=(500, 4))
    labels = np.array([rng.choice(4, p=p) for p in softmax(logits / scale)])
    best, figures = fit_map(logits, labels, "best")
    nll = {"none": figures["validation_nll_before"], "temperature": figures["validation_nll_ts"]}
    nll["focal_temperature"] = figures["validation_nll_fts"]
    assert nll[best.kind] == min(nll.values()) or (best.kind == "temperature" and figures["fts_gamma"] == 0)


@pytest.mark.parametrize(("name", "version", "option"), [("Bad Name", "1", "--name"), ("ok", "0", "--version")])
def test_bad_name_or_version_is_refused_before_any_work(tmp_path: Path, name: str, version: str, option: str) -> None:
    with pytest.raises(TrainingError, match=option):
        export_run(tmp_path / "no-run-needed", name, version, tmp_path / "models")
