"""Bearer token on admin (and optionally inference) routes, CORS off by default, no unsafe loaders."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr, ValidationError

from service.api.security import check_bearer
from service.app import create_app
from service.cli import load_settings
from service.errors import ServiceError, Unauthorized
from service.settings import Settings

TOKEN = "s3cret-token-value"
SERVICE = Path(__file__).resolve().parents[2] / "service"
IMAGE = [[0.0] * 8] * 8
V2_BODY = {"inputs": [{"name": "images", "datatype": "FP32", "shape": [1, 8, 8], "data": [0.0] * 64}]}


@pytest.fixture(scope="module", params=[False, True], ids=["open-inference", "auth-inference"])
def secured(request, digits_artifact, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, bool]]:
    settings = Settings(
        models_dir=digits_artifact.models_dir,
        auth_token=TOKEN,
        auth_inference=request.param,
        state_dir=tmp_path_factory.mktemp("secured-state"),
    )
    with TestClient(create_app(settings)) as client:
        yield client, request.param


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/v1/feedback", {"labels": [{"prediction_id": "0" * 32, "label": "1"}]}),
        ("post", "/v2/repository/index", None),
        ("post", "/v2/repository/models/digits-cnn/load", None),
    ],
)
def test_admin_routes_need_the_token(secured, method: str, path: str, body) -> None:
    client, _ = secured
    for headers in ({}, bearer("wrong"), {"Authorization": TOKEN}, {"Authorization": f"Basic {TOKEN}"}):
        response = client.request(method, path, json=body, headers=headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.json()["error"] and response.headers["www-authenticate"] == "Bearer"
        assert TOKEN not in response.text
    assert client.request(method, path, json=body, headers=bearer()).status_code == 200


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/models/digits-cnn:predict", {"instances": [IMAGE]}),
        ("/v2/models/digits-cnn/infer", V2_BODY),
        ("/v2/models/digits-cnn/versions/1/infer", V2_BODY),
    ],
)
def test_inference_needs_the_token_only_when_configured(secured, path: str, body) -> None:
    client, auth_inference = secured
    assert client.post(path, json=body).status_code == (401 if auth_inference else 200)
    assert client.post(path, json=body, headers=bearer()).status_code == 200


def test_health_metadata_and_metrics_stay_open(secured) -> None:
    client, _ = secured
    for path in ("/v2/health/live", "/v2/health/ready", "/v2", "/v2/models/digits-cnn", "/metrics"):
        assert client.get(path).status_code == 200, path


def test_the_token_is_a_secret_never_shown_in_settings() -> None:
    settings = Settings(auth_token=TOKEN)
    assert TOKEN not in repr(settings) and TOKEN not in str(settings.model_dump())


@pytest.mark.parametrize("blank", ["", " ", "\t\n"])
def test_an_empty_or_blank_token_stops_start_up_with_one_line(monkeypatch: pytest.MonkeyPatch, blank: str) -> None:
    """CANDOR_AUTH_TOKEN="" (e.g. an empty Secret) must not turn authentication off."""
    with pytest.raises(ValidationError, match="auth_token"):
        Settings(auth_token=blank)
    monkeypatch.setenv("CANDOR_AUTH_TOKEN", blank)
    with pytest.raises(ServiceError) as info:
        load_settings({})
    assert "CANDOR_AUTH_TOKEN" in str(info.value) and "\n" not in str(info.value)


def test_auth_required_refuses_to_start_without_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANDOR_AUTH_REQUIRED", "true")
    monkeypatch.delenv("CANDOR_AUTH_TOKEN", raising=False)
    with pytest.raises(ServiceError, match="CANDOR_AUTH_TOKEN is not set"):
        load_settings({})
    monkeypatch.setenv("CANDOR_AUTH_TOKEN", TOKEN)
    assert load_settings({}).auth_token == SecretStr(TOKEN)


@pytest.mark.parametrize("given", [None, ""])
def test_an_empty_bearer_never_matches_even_an_empty_configured_token(given: str | None) -> None:
    """Defence in depth behind the settings check (model_construct skips validation)."""
    settings = Settings.model_construct(auth_token=SecretStr(""), auth_inference=False)
    with pytest.raises(Unauthorized):
        check_bearer(settings, given)


def test_cors_is_off_by_default_and_on_for_configured_origins(client: TestClient, digits_artifact) -> None:
    preflight = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    assert "access-control-allow-origin" not in client.options("/v2/models/digits-cnn/infer", headers=preflight).headers
    assert "access-control-allow-origin" not in client.get("/v2", headers={"Origin": "https://a.example"}).headers
    settings = Settings(models_dir=digits_artifact.models_dir, cors_origins=["https://a.example"])
    with TestClient(create_app(settings)) as allowed:
        response = allowed.get("/v2", headers={"Origin": "https://a.example"})
        assert response.headers["access-control-allow-origin"] == "https://a.example"
        assert "access-control-allow-origin" not in allowed.get("/v2", headers=preflight).headers


def test_the_service_never_unpickles() -> None:
    """No pickle, torch.load, joblib/dill or np.load(allow_pickle=True) anywhere in service/."""
    for path in SERVICE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert not {"pickle", "dill", "joblib", "torch", "cloudpickle"} & {n.split(".")[0] for n in names}, path
            if isinstance(node, ast.keyword) and node.arg == "allow_pickle":
                pytest.fail(f"{path}: allow_pickle")
