"""Repository extension over HTTP: index, load (new version, refused artifact), unload, watch."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from model_copies import BREAKERS, copy_version, edit_manifest

from service.app import create_app
from service.settings import Settings

MODEL = "digits-cnn"
BODY = {"inputs": [{"name": "images", "datatype": "FP32", "shape": [1, 8, 8], "data": [0.0] * 64}]}


@pytest.fixture
def models(digits_artifact, tmp_path: Path) -> Path:
    root = tmp_path / "models"
    copy_version(digits_artifact.models_dir, root, MODEL, "1", "1")
    return root


@pytest.fixture
def client(models: Path) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(models_dir=models))) as test_client:
        yield test_client


def served_version(client: TestClient) -> str:
    response = client.post(f"/v2/models/{MODEL}/infer", json=BODY)
    assert response.status_code == 200, response.text
    return str(response.json()["model_version"])


def test_load_a_new_version_then_unload(client: TestClient, models: Path) -> None:
    copy_version(models, models, MODEL, "1", "2")
    index = client.post("/v2/repository/index").json()
    assert [(e["version"], e["state"]) for e in index] == [("1", "READY"), ("2", "UNAVAILABLE")]
    assert client.post(f"/v2/repository/models/{MODEL}/load").json() == {"name": MODEL, "versions": ["1", "2"]}
    assert served_version(client) == "2"
    assert client.get(f"/v2/models/{MODEL}/versions/2/ready").json()["ready"] is True
    assert client.post(f"/v2/repository/models/{MODEL}/unload", json={"parameters": {}}).status_code == 200
    assert client.get(f"/v2/models/{MODEL}/ready").status_code == 404
    assert client.post(f"/v2/models/{MODEL}/infer", json=BODY).status_code == 404


@pytest.mark.parametrize("breaker", sorted(BREAKERS))
def test_a_refused_load_answers_400_naming_the_file_and_v1_keeps_serving(
    client: TestClient, models: Path, breaker: str
) -> None:
    phrase = BREAKERS[breaker](copy_version(models, models, MODEL, "1", "2"))
    response = client.post(f"/v2/repository/models/{MODEL}/load")
    assert response.status_code == 400
    body = response.json()
    assert phrase in body["error"] and body["field"].endswith("2/manifest.json")
    assert served_version(client) == "1"


def test_load_errors(client: TestClient) -> None:
    assert client.post("/v2/repository/models/nope/load").status_code == 404
    config = {"parameters": {"config": "{}"}}
    assert client.post(f"/v2/repository/models/{MODEL}/load", json=config).status_code == 400
    assert client.post(f"/v2/repository/models/{MODEL}/load", content=b"[1]").status_code == 400


def test_watch_loads_a_new_version_without_a_call(models: Path) -> None:
    settings = Settings(models_dir=models, watch_models=True, watch_interval_s=0.1)
    with TestClient(create_app(settings)) as client:
        copy_version(models, models, MODEL, "1", "2")
        deadline = time.monotonic() + 10
        while served_version(client) != "2" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert served_version(client) == "2"
        status = client.get(f"/v1/models/{MODEL}/calibration", params={"version": "2"})
        assert status.status_code == 200 and status.json()["version"] == "2"  # monitored after reload


@pytest.mark.parametrize("how", ["load call", "watch"])
def test_predictions_of_a_version_loaded_later_are_stored_for_the_label_join(models: Path, how: str) -> None:
    """A version loaded after start-up records what it serves before answering: its prediction
    ids are accepted as feedback, and it is counted in its own window."""
    settings = Settings(models_dir=models, watch_models=how == "watch", watch_interval_s=0.1)
    with TestClient(create_app(settings)) as client:
        copy_version(models, models, MODEL, "1", "2")
        if how == "load call":
            assert client.post(f"/v2/repository/models/{MODEL}/load").status_code == 200
        deadline = time.monotonic() + 10
        while served_version(client) != "2" and time.monotonic() < deadline:
            time.sleep(0.1)
        answer = client.post(f"/v1/models/{MODEL}:predict", json={"instances": [[[0.0] * 8] * 8] * 3})
        assert answer.status_code == 200 and answer.json()["model_version"] == "2"
        labels = [{"prediction_id": p["prediction_id"], "label": p["label"]} for p in answer.json()["predictions"]]
        assert client.post("/v1/feedback", json={"labels": labels}).json()["accepted"] == 3
        status = client.get(f"/v1/models/{MODEL}/calibration", params={"version": "2"}).json()
        assert status["predictions_since_start"] >= 3


def test_a_refused_load_never_echoes_the_digest_of_a_file_outside_the_artifact(
    client: TestClient, models: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "elsewhere.onnx"
    secret.write_bytes(b"any readable file on the server")
    target = copy_version(models, models, MODEL, "1", "2")
    edit_manifest(target, lambda m: m.update(onnx_file=str(secret)))
    response = client.post(f"/v2/repository/models/{MODEL}/load")
    assert response.status_code == 400 and response.json()["field"].endswith("2/manifest.json")
    assert hashlib.sha256(secret.read_bytes()).hexdigest() not in response.text
    assert served_version(client) == "1"
