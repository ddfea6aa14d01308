"""POST /v1/feedback: labels by class name or index, idempotent counts, every bad input a 4xx."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from model_copies import edit_manifest

from service.app import create_app
from service.errors import BadRequest
from service.monitor import FeedbackResult
from service.settings import Settings
from training.data import load_digits

URL = "/v1/feedback"
PREDICT = "/v1/models/digits-cnn:predict"
NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
NONE_YET = {"accepted": 0, "unknown": 0, "duplicate": 0, "expired": 0}
ApiFactory = Callable[..., TestClient]


@pytest.fixture(scope="module")
def named_models(digits_artifact, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The digits artifact with classes named zero..nine, so names and indices differ."""
    models = tmp_path_factory.mktemp("named") / "models"
    shutil.copytree(digits_artifact.models_dir, models)
    edit_manifest(models / "digits-cnn" / "1", lambda m: m.update(classes=NAMES))  # resealed, as an export would
    return models


@pytest.fixture
def make_api(named_models: Path, tmp_path: Path) -> Iterator[ApiFactory]:
    """Apps over the named model, each with a fresh SQLite store; closed at the end."""
    with_stack: list[TestClient] = []

    def build(**overrides: Any) -> TestClient:
        settings = Settings(models_dir=named_models, state_dir=tmp_path / f"s{len(with_stack)}", **overrides)
        client = TestClient(create_app(settings)).__enter__()
        with_stack.append(client)
        return client

    yield build
    for client in with_stack:
        client.__exit__(None, None, None)


@pytest.fixture
def api(make_api: ApiFactory) -> TestClient:
    return make_api()


def predict(api: TestClient, n: int) -> list[dict[str, Any]]:
    """Predictions for the first n digits test images."""
    images = load_digits().test_x[:n, 0].tolist()
    response = api.post(PREDICT, json={"instances": images})
    assert response.status_code == 200, response.text
    predictions: list[dict[str, Any]] = response.json()["predictions"]
    return predictions


def send(api: TestClient, labels: list[dict[str, Any]]) -> dict[str, int]:
    response = api.post(URL, json={"labels": labels})
    assert response.status_code == 200, response.text
    counts: dict[str, int] = response.json()
    return counts


def since_start(api: TestClient) -> dict[str, Any]:
    body: dict[str, Any] = api.get("/v1/models/digits-cnn/calibration").json()["since_start"]
    return body


def test_labels_by_name_and_by_index_are_accepted(api: TestClient) -> None:
    """Names right (the predicted class), indices wrong (the next class): accuracy exactly 1/2."""
    predictions = predict(api, 6)
    by_name = [{"prediction_id": p["prediction_id"], "label": p["label"]} for p in predictions[:3]]
    by_index = [
        {"prediction_id": p["prediction_id"], "label": (NAMES.index(p["label"]) + 1) % 10} for p in predictions[3:]
    ]
    assert send(api, by_name + by_index) == {**NONE_YET, "accepted": 6}
    figures = since_start(api)
    assert figures["labels"] == 6 and figures["accuracy"] == 0.5


def test_a_label_sent_twice_counts_once(api: TestClient) -> None:
    (prediction,) = predict(api, 1)
    label = {"prediction_id": prediction["prediction_id"], "label": prediction["label"]}
    assert send(api, [label, label]) == {**NONE_YET, "accepted": 1, "duplicate": 1}
    assert send(api, [label]) == {**NONE_YET, "duplicate": 1}
    conflicting = {"prediction_id": prediction["prediction_id"], "label": 0}
    assert send(api, [conflicting]) == {**NONE_YET, "duplicate": 1}  # the first label wins
    assert since_start(api)["labels"] == 1 and since_start(api)["accuracy"] == 1.0


def test_unknown_ids_are_counted_whatever_their_label(api: TestClient) -> None:
    labels = [
        {"prediction_id": "never-served", "label": "seven"},
        {"prediction_id": "nor-this", "label": 99},
        {"prediction_id": "x", "label": "?"},
    ]
    assert send(api, labels) == {**NONE_YET, "unknown": 3}


def test_labels_after_the_retention_are_expired(make_api: ApiFactory) -> None:
    api = make_api(retention_seconds=0.05)
    (prediction,) = predict(api, 1)
    time.sleep(0.1)
    label = {"prediction_id": prediction["prediction_id"], "label": 3}
    assert send(api, [label]) == {**NONE_YET, "expired": 1}


def test_a_bad_label_rejects_the_whole_request_and_names_it(api: TestClient) -> None:
    first, second = predict(api, 2)
    good = {"prediction_id": first["prediction_id"], "label": "three"}
    cases = [
        ("seventeen", "'seventeen' is not a class of model 'digits-cnn' version '1'"),
        (10, "class index 10 is out of range"),
        ("7", "'7' is not a class"),
    ]
    for bad_label, message in cases:
        bad = {"prediction_id": second["prediction_id"], "label": bad_label}
        response = api.post(URL, json={"labels": [good, bad]})
        assert response.status_code == 400
        assert response.json()["field"] == "labels[1].label"
        assert message in response.json()["error"]
    assert send(api, [good]) == {**NONE_YET, "accepted": 1}  # nothing was recorded before


LABEL = {"prediction_id": "p", "label": 1}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"", "body"),
        (b"{not json", "body"),
        (b"[]", "body"),
        (b"{}", "labels"),
        (b'{"labels": []}', "labels"),
        (b'{"labels": "p"}', "labels"),
        (b'{"labels": [1]}', "labels[0]"),
        (b'{"labels": [{"label": 1}]}', "labels[0].prediction_id"),
        (b'{"labels": [{"prediction_id": "", "label": 1}]}', "labels[0].prediction_id"),
        (b'{"labels": [{"prediction_id": 7, "label": 1}]}', "labels[0].prediction_id"),
        (b'{"labels": [{"prediction_id": "p"}]}', "labels[0].label"),
        (b'{"labels": [{"prediction_id": "p", "label": 1}, {"prediction_id": "p", "label": 2.5}]}', "labels[1].label"),
        (b'{"labels": [{"prediction_id": "p", "label": true}]}', "labels[0].label"),
        (b'{"labels": [{"prediction_id": "p", "label": null}]}', "labels[0].label"),
        (b'{"labels": [{"prediction_id": "p", "label": [1]}]}', "labels[0].label"),
        (b'{"labels": [{"prediction_id": "p", "label": -1}]}', "labels[0].label"),
    ],
)
def test_invalid_bodies_are_400_naming_the_field(api: TestClient, body: bytes, field: str) -> None:
    response = api.post(URL, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["field"] == field
    assert response.json()["error"].startswith(f"{field}: ")


def test_too_many_labels_and_oversized_bodies_are_refused(make_api: ApiFactory) -> None:
    api = make_api(max_feedback_labels=3, max_body_bytes=1024)
    too_many = api.post(URL, json={"labels": [LABEL] * 4})
    assert too_many.status_code == 400 and too_many.json()["field"] == "labels"
    oversized = api.post(URL, json={"labels": [{"prediction_id": "p" * 2000, "label": 1}]})
    assert oversized.status_code == 413 and oversized.json()["field"] == "body"


def test_store_failure_is_503_with_retry_after(make_api: ApiFactory) -> None:
    api = make_api(store_url="redis://127.0.0.1:1/0")  # nothing listens on port 1
    for response in (
        api.post(PREDICT, json={"instances": load_digits().test_x[:1, 0].tolist()}),
        api.post(URL, json={"labels": [LABEL]}),
    ):
        assert response.status_code == 503, response.text
        assert "prediction store" in response.json()["error"]
        assert response.headers["retry-after"] == "1"


def test_outcomes_are_counted_in_metrics(api: TestClient) -> None:
    (prediction,) = predict(api, 1)
    send(api, [{"prediction_id": prediction["prediction_id"], "label": 1}, LABEL])
    text = api.get("/metrics").text
    assert 'candor_feedback_labels_total{outcome="accepted"} 1.0' in text
    assert 'candor_feedback_labels_total{outcome="unknown"} 1.0' in text
    assert 'candor_predictions_total{model="digits-cnn",version="1"} 1.0' in text


def test_openapi_documents_the_typed_body_and_counts(api: TestClient) -> None:
    operation = api.get("/openapi.json").json()["paths"][URL]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    item = schema["properties"]["labels"]["items"]
    assert set(item["required"]) == {"prediction_id", "label"}
    assert {"type": "string"} in item["properties"]["label"]["anyOf"]
    ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok["$ref"].endswith("/FeedbackResult")
    assert {"400", "413", "503"} <= set(operation["responses"])


def test_requests_joined_in_one_store_call_are_checked_and_counted_separately(api: TestClient) -> None:
    first, second = predict(api, 2)
    monitor = api.app.state.monitoring.monitor  # the group commit's write, called directly
    good = [(first["prediction_id"], "one")]
    bad = [(second["prediction_id"], "eleven")]
    again = [(first["prediction_id"], 1)]
    ok, refused, duplicate = monitor.resolve_feedback_batches([good, bad, again])
    assert ok == FeedbackResult(accepted=1) and duplicate == FeedbackResult(duplicate=1)
    assert isinstance(refused, BadRequest) and refused.field == "labels[0].label"
