"""Every engine is built with the recorder it records with: by the repository, by the model
manager on a reload, and in the app, where it is the monitor's, so served rows reach the store."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from model_copies import copy_version

from service.app import create_app
from service.inference.model_manager import ModelManager
from service.inference.repository import load_repository
from service.inference.served import Unrecorded
from service.settings import Settings

MODEL = "digits-cnn"


@pytest.fixture
def models(digits_artifact, tmp_path: Path) -> Path:
    """A models dir holding digits-cnn version 1 only."""
    root = tmp_path / "models"
    copy_version(digits_artifact.models_dir, root, MODEL, "1", "1")
    return root


def test_the_repository_and_the_model_manager_build_engines_with_the_recorder(models: Path) -> None:
    recorder = Unrecorded()
    repository = load_repository(models, "cpu", recorder=recorder)
    assert repository.get(MODEL, "1").recorder is recorder
    copy_version(models, models, MODEL, "1", "2")
    asyncio.run(ModelManager(repository, Settings(models_dir=models, providers="cpu")).load(MODEL))
    assert repository.get(MODEL, "2").recorder is recorder


def test_recorded_by_rebuilds_the_engines_on_their_sessions(models: Path) -> None:
    loaded = load_repository(models, "cpu")
    recorder = Unrecorded()
    rebuilt = loaded.recorded_by(recorder)
    old, new = loaded.get(MODEL, "1"), rebuilt.get(MODEL, "1")
    assert new is not old and new.recorder is recorder and rebuilt.recorder is recorder
    assert new.session is old.session and new.batcher is not None and new.batcher is not old.batcher


@pytest.mark.parametrize("preloaded", [False, True])
def test_the_apps_engines_record_with_the_monitors_recorder(models: Path, tmp_path: Path, preloaded: bool) -> None:
    settings = Settings(models_dir=models, providers="cpu", state_dir=tmp_path / "state")
    app = create_app(settings, load_repository(models, "cpu") if preloaded else None)
    with TestClient(app) as client:
        recorder = client.app.state.monitoring.recorder
        assert [engine.recorder for engine in client.app.state.repository.engines()] == [recorder]
        answer = client.post(f"/v1/models/{MODEL}:predict", json={"instances": np.zeros((1, 8, 8)).tolist()})
        pid = answer.json()["predictions"][0]["prediction_id"]
        assert list(client.app.state.monitoring.monitor.lookup([pid])) == [pid]


def test_the_app_stores_the_probabilities_it_served(models: Path, tmp_path: Path) -> None:
    settings = Settings(models_dir=models, providers="cpu", state_dir=tmp_path / "state")
    with TestClient(create_app(settings)) as client:
        answer = client.post(f"/v1/models/{MODEL}:predict", json={"instances": np.ones((2, 8, 8)).tolist()})
        served = {p["prediction_id"]: p["probabilities"] for p in answer.json()["predictions"]}
        rows = client.app.state.monitoring.monitor.served_rows(MODEL, "1", 0.0, float("inf"))
        classes = client.app.state.repository.get(MODEL, "1").manifest.classes
    assert sorted(rows.ids) == sorted(served)
    for pid, log_p in zip(rows.ids, rows.log_probs, strict=True):
        expected = np.array([served[pid][name] for name in classes], dtype=np.float32)
        np.testing.assert_array_equal(np.exp(log_p).astype(np.float32), expected)
