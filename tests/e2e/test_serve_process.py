"""End to end: a real `candor serve` process answers over real HTTP with softmax(logits / T)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from e2e_processes import REPO_ROOT, serve_process

from calibration.manifest import load_manifest
from service.monitor.stores.pending_log import PendingLogStore
from service.monitor.stores.sqlite_store import SQLiteStore
from training.data import load_digits, load_fashion_mnist
from training.networks import SmallCNN

pytestmark = pytest.mark.e2e


def independent_probabilities(run_dir: Path, images: np.ndarray) -> np.ndarray:
    """softmax(logits / T) from the raw checkpoint and calibration.json, without the export code."""
    ckpt = torch.load(run_dir / "best.pt", map_location="cpu", weights_only=True)
    net = SmallCNN(tuple(ckpt["input_shape"]), len(ckpt["classes"]))
    net.load_state_dict(ckpt["model_state"])
    net.eval()
    temperature = json.loads((run_dir / "calibration.json").read_text())["map"]["temperature"]
    x = (images[:, None].astype(np.float64) / 255.0 - ckpt["mean"][0]) / ckpt["std"][0]
    with torch.no_grad():
        logits = net(torch.from_numpy(x.astype(np.float32))).double()
    return torch.softmax(logits / temperature, dim=1).numpy()


def test_served_probabilities_equal_softmax_logits_over_T(digits_artifact) -> None:
    images = load_digits().test_x[:40, 0]
    expected = independent_probabilities(digits_artifact.run_dir, images)
    with serve_process(digits_artifact.models_dir) as url:
        response = httpx.post(f"{url}/v1/models/digits-cnn:predict", json={"instances": images.tolist()}, timeout=30)
        metrics = httpx.get(f"{url}/metrics").text
    assert response.status_code == 200
    served = np.array([[p["probabilities"][str(k)] for k in range(10)] for p in response.json()["predictions"]])
    assert np.abs(served - expected).max() < 1e-5
    assert 'route="/v1/models/{model_name}:predict",status="200"' in metrics


def test_bundled_default_model_serves_fashion_mnist() -> None:
    """`candor serve` with no --models-dir override semantics: the committed default artifact."""
    models = REPO_ROOT / "models"
    manifest = load_manifest(models / "fashion-mnist-cnn" / "1")
    ds = load_fashion_mnist()
    images, labels = ds.test_x[:500, 0], ds.test_y[:500]
    with serve_process(models) as url:
        response = httpx.post(
            f"{url}/v1/models/fashion-mnist-cnn:predict", json={"instances": images.tolist()}, timeout=60
        )
    assert response.status_code == 200
    predictions = response.json()["predictions"]
    assert all(abs(sum(p["probabilities"].values()) - 1) < 1e-5 for p in predictions)
    assert set(predictions[0]["probabilities"]) == set(manifest.classes)
    accuracy = np.mean([p["label"] == manifest.classes[y] for p, y in zip(predictions, labels, strict=True)])
    assert abs(accuracy - manifest.reference.accuracy) < 0.05  # 500-image subset of the same test split


def test_tampered_artifact_stops_start_up_naming_file_and_field(digits_artifact, tmp_path: Path) -> None:
    models = tmp_path / "models"
    shutil.copytree(digits_artifact.models_dir, models)
    onnx_path = models / "digits-cnn" / "1" / "model.onnx"
    onnx_path.write_bytes(onnx_path.read_bytes() + b"\0")
    result = subprocess.run(
        [sys.executable, "-m", "candor.cli", "serve", "--models-dir", str(models), "--port", "0"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "manifest.json" in result.stderr and "onnx_sha256" in result.stderr


def test_missing_models_directory_is_a_cli_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "candor.cli", "serve", "--models-dir", str(tmp_path / "nope"), "--port", "0"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "nope does not exist" in result.stderr and "--models-dir" in result.stderr


@pytest.mark.parametrize(
    ("env", "phrases"),
    [
        ({"CANDOR_PORT": "eighty"}, ["CANDOR_PORT", "valid integer"]),
        ({"CANDOR_WORKERS": "0"}, ["CANDOR_WORKERS", "greater than or equal to 1"]),
        ({"CANDOR_MAX_QUEUE_SIZE": "8"}, ["max_queue_size (8) must be >= max_instances"]),
        ({"CANDOR_MODEL_BATCHING": "{bad"}, ["CANDOR_MODEL_BATCHING: not valid JSON"]),
        (
            {"CANDOR_MODEL_BATCHING": '{"m": {"max_batch_size": 0}}'},
            ["CANDOR_MODEL_BATCHING (m.max_batch_size)", "greater than or equal to 1"],
        ),
    ],
)
def test_invalid_settings_are_a_cli_error_naming_the_setting(
    tmp_path: Path, env: dict[str, str], phrases: list[str]
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "candor.cli", "serve", "--models-dir", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("candor: error: invalid settings") and all(p in result.stderr for p in phrases)


def test_a_store_in_use_by_another_process_is_a_cli_error(digits_artifact, tmp_path: Path) -> None:
    """A second `candor serve` on the same state_dir stops before serving, naming the file and the fix."""
    held = PendingLogStore(SQLiteStore(tmp_path / "predictions.db"))  # as a running candor holds it
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "candor.cli",
                "serve",
                "--models-dir",
                str(digits_artifact.models_dir),
                "--port",
                "0",
            ],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "CANDOR_STATE_DIR": str(tmp_path)},
        )
    finally:
        held.close()
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("candor: error: prediction log")
    assert "predictions.db.pending is in use" in result.stderr and "own state_dir" in result.stderr
