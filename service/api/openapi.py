"""OpenAPI documentation of errors: every error answer is ``{"error", "field"}`` (ErrorBody).

``error_responses`` documents chosen statuses on a route; ``document_errors`` rewrites FastAPI's
generated 422 (HTTPValidationError) to the shape our handler really sends.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from service.settings import Settings

DESCRIPTIONS = {
    400: "invalid request; `error` says what, `field` says where",
    401: "missing or wrong bearer token",
    404: "unknown model or version",
    413: "body larger than max_body_bytes",
    422: "request not valid against this schema",
    503: "queue full, deadline passed or store unavailable; retry after Retry-After seconds",
}
ERROR_REF = "#/components/schemas/ErrorBody"


class ErrorBody(BaseModel):
    """Every error answer: a message (tritonclient reads ``error``) and where it applies."""

    error: str
    field: str | None = None


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: each status documented with the ErrorBody model."""
    return {status: {"model": ErrorBody, "description": DESCRIPTIONS[status]} for status in statuses}


def document_errors(app: FastAPI, settings: Settings | None = None) -> None:
    """Generate the schema once with every 422 answer described as ErrorBody, and the bearer
    requirement only where this configuration enforces it (see ``_fix_security``)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            schema.setdefault("components", {}).setdefault("schemas", {})["ErrorBody"] = (
                ErrorBody.model_json_schema())
            for route, path in schema.get("paths", {}).items():
                for operation in path.values():
                    _fix_validation_error(operation.get("responses", {}))
                    _fix_security(route, operation, settings)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _fix_security(route: str, operation: dict[str, Any], settings: Settings | None) -> None:
    """No token configured: nothing requires one; inference needs it only with auth_inference."""
    if settings is None or "security" not in operation:
        return
    inference = route.endswith(("/infer", ":predict"))
    if settings.auth_token is None or (inference and not settings.auth_inference):
        del operation["security"]
        operation.get("responses", {}).pop("401", None)


def _fix_validation_error(responses: dict[str, Any]) -> None:
    if "422" in responses:
        responses["422"] = {"description": DESCRIPTIONS[422],
                            "content": {"application/json": {"schema": {"$ref": ERROR_REF}}}}
