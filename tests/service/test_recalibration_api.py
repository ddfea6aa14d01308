"""POST /v2/repository/models/{m}/recalibrate: auth, validation, the answer, the metric, and a
promotion under concurrent traffic in which every request is answered 200."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from model_copies import copy_version
from recalibration_rows import FakeSource, served_rows

from service.app import create_app
from service.settings import Settings
from training.data import load_digits

MODEL = "digits-cnn"
TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BODY = {"inputs": [{"name": "images", "datatype": "FP32", "shape": [1, 8, 8], "data": [0.0] * 64}]}
URL = f"/v2/repository/models/{MODEL}/recalibrate"


@pytest.fixture
def client(digits_artifact, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    models = tmp_path / "models"
    copy_version(digits_artifact.models_dir, models, MODEL, "1", "1")
    settings = Settings(
        models_dir=models,
        state_dir=tmp_path / "state",
        auth_token=TOKEN,
        recalibration_min_labels=300,
        recalibration_resamples=200,
    )
    with TestClient(create_app(settings)) as test_client:
        source = FakeSource(served_rows(2000))
        monkeypatch.setattr(test_client.app.state.monitoring.monitor, "served_rows", source.served_rows, raising=False)
        yield test_client


def served_version(client: TestClient) -> str:
    response = client.post(f"/v2/models/{MODEL}/infer", json=BODY)
    assert response.status_code == 200, response.text
    return str(response.json()["model_version"])


def test_the_token_is_required(client: TestClient) -> None:
    response = client.post(URL, json={"method": "ts", "window_seconds": 60})
    assert response.status_code == 401 and response.json()["field"] == "Authorization"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"method": "vs", "window_seconds": 60}, "method"),
        ({"window_seconds": 60}, "method"),
        ({"method": "ts", "window_seconds": -1}, "window_seconds"),
        ({"method": "ts", "window_seconds": 60, "promote": "yes"}, "promote"),
        ({"method": "ts", "window_seconds": 60, "extra": 1}, "extra"),
    ],
)
def test_a_bad_body_answers_400_naming_the_field(client: TestClient, body: dict, field: str) -> None:
    response = client.post(URL, json=body, headers=AUTH)
    assert response.status_code == 400 and response.json()["field"] == field


def test_unknown_model_or_version_is_404(client: TestClient) -> None:
    body = {"method": "ts", "window_seconds": 60}
    assert client.post("/v2/repository/models/nope/recalibrate", json=body, headers=AUTH).status_code == 404
    assert (
        client.post(f"/v2/repository/models/{MODEL}/versions/7/recalibrate", json=body, headers=AUTH).status_code == 404
    )


def test_the_answer_carries_the_comparison_and_the_metric_counts_it(client: TestClient) -> None:
    response = client.post(
        f"/v2/repository/models/{MODEL}/versions/1/recalibrate",
        json={"method": "ts", "window_seconds": 3600, "promote": "never"},
        headers=AUTH,
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["model"], answer["base_version"], answer["new_version"], answer["outcome"]) == (
        MODEL,
        "1",
        "2",
        "written",
    )
    nll = answer["comparison"]["nll"]
    assert nll["new"] < nll["old"] and nll["low"] <= nll["diff"] <= nll["high"] < 0
    assert answer["n_fit"] + answer["n_heldout"] == 2000 and answer["parameters"]["temperature"] > 1
    assert served_version(client) == "1"  # a candidate is not served
    metrics = client.get("/metrics").text
    assert 'candor_recalibrations_total{method="ts",model="digits-cnn",outcome="written"} 1.0' in metrics


def test_promotion_under_traffic_answers_every_request(client: TestClient) -> None:
    """Eight threads predict without pause while the recalibration promotes version 2."""
    statuses: list[int] = []
    versions: list[str] = []
    stop = threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            response = client.post(f"/v2/models/{MODEL}/infer", json=BODY)
            statuses.append(response.status_code)
            if response.status_code == 200:
                versions.append(response.json()["model_version"])

    assert served_version(client) == "1"
    threads = [threading.Thread(target=traffic) for _ in range(8)]
    for thread in threads:
        thread.start()
    try:
        response = client.post(URL, json={"method": "ts", "window_seconds": 3600, "promote": "auto"}, headers=AUTH)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert response.status_code == 200 and response.json()["outcome"] == "promoted", response.text
    assert statuses and set(statuses) == {200}
    assert set(versions) <= {"1", "2"} and served_version(client) == "2"
    history = client.get(f"/ui/models/{MODEL}").text.split('<section class="recalibration"', 1)[1]
    assert "<tr><td>2</td><td>1</td><td>ts</td>" in history  # the promoted version's lineage


@pytest.fixture
def real_client(digits_artifact, tmp_path: Path) -> Iterator[TestClient]:
    """The app over its own SQLite store (pending log on), read through Monitor.served_rows."""
    models = tmp_path / "models"
    copy_version(digits_artifact.models_dir, models, MODEL, "1", "1")
    settings = Settings(
        models_dir=models, state_dir=tmp_path / "state", recalibration_min_labels=50, recalibration_resamples=200
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_the_endpoint_reads_served_predictions_and_feedback_from_the_store(real_client: TestClient) -> None:
    digits = load_digits()
    images, labels = digits.test_x[:300, 0], digits.test_y[:300]
    response = real_client.post(f"/v1/models/{MODEL}:predict", json={"instances": images.tolist()})
    ids = [p["prediction_id"] for p in response.json()["predictions"]]
    feedback = [{"prediction_id": i, "label": int(y)} for i, y in zip(ids[:200], labels[:200], strict=True)]
    assert real_client.post("/v1/feedback", json={"labels": feedback}).json()["accepted"] == 200
    response = real_client.post(URL, json={"method": "ts", "window_seconds": 600, "promote": "never"})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["n_fit"] + answer["n_heldout"], answer["n_unlabelled"]) == (200, 100)
    assert answer["outcome"] in ("written", "rejected") and answer["new_version"] == "2"
    prior = real_client.post(URL, json={"method": "prior-shift", "window_seconds": 600}).json()
    assert prior["new_version"] == "3" and prior["parameters"]["iterations"] >= 1
    assert prior["parameters"]["train_priors_from_manifest"] is True  # exported with class_priors
