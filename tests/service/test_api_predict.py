"""POST /v1/models/{m}:predict: the happy path and every bad input answered 4xx naming the field."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from training.data import load_digits

URL = "/v1/models/digits-cnn:predict"


def _images(n: int) -> list:
    return load_digits().test_x[:n, 0].tolist()  # (n, 8, 8) uint8 values


def test_predict_returns_calibrated_probabilities_by_class_name(client: TestClient) -> None:
    response = client.post(URL, json={"instances": _images(5)})
    assert response.status_code == 200
    body = response.json()
    assert body["model_name"] == "digits-cnn" and body["model_version"] == "1"
    predictions = body["predictions"]
    assert len(predictions) == 5
    for p in predictions:
        probs = p["probabilities"]
        assert list(probs) == [str(d) for d in range(10)]
        assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
        assert p["label"] == max(probs, key=probs.get)
        assert p["confidence"] == pytest.approx(max(probs.values()))
    assert len({p["prediction_id"] for p in predictions}) == 5


def test_channel_axis_is_optional_for_single_channel_models(client: TestClient) -> None:
    with_channel = client.post(URL, json={"instances": [[row] for row in []] or [[_images(1)[0]]]})
    without = client.post(URL, json={"instances": _images(1)})
    assert with_channel.status_code == without.status_code == 200
    a = with_channel.json()["predictions"][0]["probabilities"]
    b = without.json()["predictions"][0]["probabilities"]
    assert a == b


def _bad(client: TestClient, content: bytes | str, status: int = 400) -> dict:
    response = client.post(URL, content=content, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "field"} and body["error"]
    return body


def _instances(value) -> str:
    return json.dumps({"instances": value})


zeros = np.zeros((8, 8)).tolist()


@pytest.mark.parametrize(
    ("content", "field", "phrase"),
    [
        (_instances([np.zeros((7, 8)).tolist()]), "instances", "shape [1, 8, 8] or [8, 8]"),
        (_instances([np.zeros(64).tolist()]), "instances", "shape"),
        (_instances([zeros, np.zeros((8, 7)).tolist()]), "instances", "equally shaped"),
        (_instances([[["a"] * 8] * 8]), "instances[0][0][0]", "must be a number, got a string"),
        (_instances("not a list"), "instances", "list of instances"),
        (_instances([]), "instances", "at least one"),
        (json.dumps({"inputs": [zeros]}), "instances", "is required"),
        (_instances([[[-1.0] * 8] * 8]), "instances[0][0][0][0]", "outside the input range"),
        (_instances([zeros[:7] + [[0] * 7 + [256]]]), "instances[0][0][7][7]", "256"),
        (
            '{"instances": [[[NaN, 0, 0, 0, 0, 0, 0, 0]' + ", [0,0,0,0,0,0,0,0]" * 7 + "]]}",
            "instances[0][0][0][0]",
            "NaN",
        ),
        (
            '{"instances": [[[0, Infinity, 0, 0, 0, 0, 0, 0]' + ", [0,0,0,0,0,0,0,0]" * 7 + "]]}",
            "instances[0][0][0][1]",
            "infinity",
        ),
        ("{not json", "body", "not valid JSON"),
        ("", "body", "empty"),
        ("[1, 2]", "body", "JSON object"),
        (_instances([zeros] * 51), "instances", "limit of 50"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(client: TestClient, content: str, field: str, phrase: str) -> None:
    body = _bad(client, content)
    assert body["field"] == field
    assert phrase in body["error"]


def test_unknown_model_is_404(client: TestClient) -> None:
    response = client.post("/v1/models/nope:predict", json={"instances": _images(1)})
    assert response.status_code == 404
    assert response.json()["field"] == "model_name" and "digits-cnn" in response.json()["error"]


def test_oversized_body_is_413(client: TestClient) -> None:
    response = client.post(URL, content=b"[" + b"0," * 40000 + b"0]", headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["field"] == "body"


def test_oversized_chunked_body_is_413(client: TestClient) -> None:
    def chunks():
        for _ in range(100):
            yield b" " * 1024

    response = client.post(URL, content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413
