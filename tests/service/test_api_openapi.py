"""The OpenAPI document of the inference routes, which are plain Starlette routes documented by hand
(service.api.openapi.DocumentedRoute): named, parametrised and secured as FastAPI would."""

from __future__ import annotations

import pytest

from service.app import create_app
from service.inference.repository import Repository
from service.settings import Settings

INFERENCE = {
    "/v1/models/{model_name}:predict": ("predict_v1_models__model_name__predict_post", ["model_name"]),
    "/v2/models/{model_name}/infer": ("infer_v2_models__model_name__infer_post", ["model_name"]),
    "/v2/models/{model_name}/versions/{model_version}/infer": (
        "version_infer_v2_models__model_name__versions__model_version__infer_post",
        ["model_name", "model_version"],
    ),
}


def document(**settings: object) -> dict:
    return create_app(Settings(**settings), Repository()).openapi()


@pytest.mark.parametrize("path", sorted(INFERENCE))
def test_inference_operations_are_documented_like_fastapi_ones(path: str) -> None:
    operation = document()["paths"][path]["post"]
    operation_id, parameters = INFERENCE[path]
    assert operation["operationId"] == operation_id
    assert [(p["name"], p["in"], p["required"]) for p in operation["parameters"]] == [
        (name, "path", True) for name in parameters
    ]
    assert operation["requestBody"]["required"] is True
    assert "application/json" in operation["responses"]["200"]["content"]
    assert operation["responses"]["503"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorBody"
    }
    assert "security" not in operation and "401" not in operation["responses"]


@pytest.mark.parametrize(("auth_inference", "secured"), [(True, True), (False, False)])
def test_inference_operations_require_the_token_only_when_configured(auth_inference: bool, secured: bool) -> None:
    paths = document(auth_token="t", auth_inference=auth_inference)["paths"]
    for path in INFERENCE:
        operation = paths[path]["post"]
        assert ("security" in operation) is secured and ("401" in operation["responses"]) is secured
    assert "security" in paths["/v1/feedback"]["post"]  # admin routes always, with a token configured


def test_operation_ids_are_unique() -> None:
    ids = [op["operationId"] for item in document()["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))
