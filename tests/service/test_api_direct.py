"""The inference routes answered ahead of FastAPI's middleware stack (service.api.direct) behave
as they do through the stack: same answers, same error mapping, metrics, CORS for browsers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.api.direct import lookup_handler
from service.app import create_app
from service.errors import ServiceError
from service.monitor.errors import StoreError
from service.settings import Settings
from training.data import load_digits

PREDICT = "/v1/models/digits-cnn:predict"
INFER = "/v2/models/digits-cnn/infer"


def _instances(n: int) -> list[Any]:
    return load_digits().test_x[:n, 0].tolist()


@pytest.fixture
def apps(digits_artifact, tmp_path: Path) -> Iterator[tuple[TestClient, TestClient]]:
    """The same configuration twice: the shipped app, and one with its direct routes switched off
    (with a store of its own: one app per store file)."""
    settings = Settings(models_dir=digits_artifact.models_dir, max_body_bytes=64 * 1024, max_instances=50)
    stacked = create_app(settings.model_copy(update={"state_dir": tmp_path}))
    stacked.direct = None  # type: ignore[attr-defined]
    with TestClient(create_app(settings)) as direct, TestClient(stacked) as full:
        yield direct, full


def _without_ids(body: dict[str, Any]) -> dict[str, Any]:
    for prediction in body.get("predictions", []):
        prediction.pop("prediction_id")
    for output in body.get("outputs", []):
        if output["name"] == "prediction_id":
            output.pop("data")
    return body


REQUESTS = [
    (PREDICT, {"json": {"instances": _instances(3)}}),
    (PREDICT, {"json": {"instances": []}}),
    (PREDICT, {"content": b'{"instances": [[[NaN, 1, 2, 3, 4, 5, 6, 7]]]}'}),
    (PREDICT, {"content": b"{not json"}),
    (PREDICT, {"content": b"x" * (65 * 1024)}),
    (PREDICT, {"json": {"instances": _instances(51)}}),
    ("/v1/models/nope:predict", {"json": {"instances": _instances(1)}}),
    (
        INFER,
        {
            "json": {
                "inputs": [
                    {"name": "images", "shape": [1, 1, 8, 8], "datatype": "FP32", "data": sum(_instances(1)[0], [])}
                ],
                "id": "r1",
            }
        },
    ),
    (INFER, {"json": {"inputs": []}}),
]


@pytest.mark.parametrize(("url", "kwargs"), REQUESTS)
def test_direct_answers_equal_the_full_stack_answers(apps, url: str, kwargs: dict[str, Any]) -> None:
    direct, full = apps
    a, b = direct.post(url, **kwargs), full.post(url, **kwargs)
    assert a.status_code == b.status_code
    assert a.headers["content-type"] == b.headers["content-type"]
    assert a.headers.get("retry-after") == b.headers.get("retry-after")
    if a.headers["content-type"] == "application/json":
        assert _without_ids(a.json()) == _without_ids(b.json())
    else:
        assert a.content == b.content


def test_an_error_type_is_answered_by_the_handler_of_its_nearest_base(apps, monkeypatch) -> None:
    direct, _ = apps
    engine = direct.app.state.repository.get("digits-cnn")  # type: ignore[attr-defined]

    async def store_down(*_: Any, **__: Any) -> None:
        raise StoreError("disk full")

    monkeypatch.setattr(engine, "infer", store_down)
    response = direct.post(PREDICT, json={"instances": _instances(1)})
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert response.json() == {"error": "disk full", "field": None}
    handlers = direct.app.exception_handlers  # type: ignore[attr-defined]
    assert lookup_handler(handlers, StoreError("x")) is handlers[ServiceError]
    assert lookup_handler(handlers, KeyError("x")) is None


def test_an_unhandled_exception_is_a_500_and_is_counted(digits_artifact, monkeypatch) -> None:
    def broken(*_: Any, **__: Any) -> None:
        raise RuntimeError("bug")

    app = create_app(Settings(models_dir=digits_artifact.models_dir))
    with TestClient(app, raise_server_exceptions=False) as client:
        monkeypatch.setattr(app.state.repository.get("digits-cnn"), "preprocess", broken)
        assert client.post(PREDICT, json={"instances": _instances(1)}).status_code == 500
        metrics = client.get("/metrics").text
    assert 'route="/v1/models/{model_name}:predict",status="500"} 1.0' in metrics
    assert "candor_http_requests_in_flight 1.0" in metrics  # only the /metrics request itself


def test_browser_requests_take_the_cors_middleware_when_cors_is_configured(digits_artifact) -> None:
    settings = Settings(models_dir=digits_artifact.models_dir, cors_origins=["https://a.example"])
    with TestClient(create_app(settings)) as client:
        with_origin = client.post(PREDICT, json={"instances": _instances(1)}, headers={"Origin": "https://a.example"})
        without = client.post(PREDICT, json={"instances": _instances(1)})
    assert with_origin.status_code == without.status_code == 200
    assert with_origin.headers["access-control-allow-origin"] == "https://a.example"
    assert "access-control-allow-origin" not in without.headers


def test_other_methods_and_paths_go_through_fastapi(apps) -> None:
    direct, _ = apps
    assert direct.get(PREDICT).status_code == 405
    assert direct.post("/v2/repository/index").status_code == 200
