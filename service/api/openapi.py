"""OpenAPI documentation: errors, and the inference routes that bypass FastAPI's request handling.

Every error answer is ``{"error", "field"}`` (ErrorBody). ``error_responses`` documents chosen
statuses on a route; ``document_errors`` rewrites FastAPI's generated 422 (HTTPValidationError) to
the shape our handler really sends, and adds the operations of ``DocumentedRoute``s: plain
Starlette routes for the hot inference paths (FastAPI's per-request dependency resolution and
routing cost 3 to 4 times a whole bare Starlette request, bench/README.md), whose operation is
written out here instead of derived from the handler's signature.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Scope

from service.settings import Settings

DESCRIPTIONS = {
    400: "invalid request; `error` says what, `field` says where",
    401: "missing or wrong bearer token",
    404: "unknown model or version",
    408: "body not fully arrived within body_timeout_s; the connection is closed",
    409: "a recalibration of this model is already running, or its version directory exists",
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


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON Schema with its ``$defs`` substituted in place (for hand-written operations)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


Endpoint = Callable[[Request], Awaitable[Response]]


class DocumentedRoute(Route):
    """A plain Starlette route (the endpoint takes the Request and reads ``path_params`` itself)
    with its OpenAPI operation spelled out. Matching records the route in ``scope["route"]``, as
    FastAPI's routes do, so request metrics are labelled by its path template."""

    def __init__(self, path: str, endpoint: Endpoint, *, method: str, operation: dict[str, Any]) -> None:
        super().__init__(path, endpoint, methods=[method], include_in_schema=False)
        self.method = method.lower()
        self.operation = operation

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match != Match.NONE:
            child_scope["route"] = self
        return match, child_scope


def operation(
    endpoint: Endpoint,
    path: str,
    *,
    tags: list[str],
    body: dict[str, Any],
    response: type[BaseModel],
    errors: tuple[int, ...],
    secured: bool,
    extra_200: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An OpenAPI operation like FastAPI's: summary and description from the endpoint, string path
    parameters, the request body, 200 with ``response``'s schema, ``errors`` as ErrorBody and, when
    ``secured``, the bearer requirement (dropped later if the configuration does not enforce it)."""
    name = endpoint.__name__
    ok = {
        "description": "Successful Response",
        "content": {"application/json": {"schema": inline_schema(response)}, **(extra_200 or {})},
    }
    op: dict[str, Any] = {
        "tags": tags,
        "summary": name.replace("_", " ").title(),
        "description": (endpoint.__doc__ or "").strip(),
        "operationId": re.sub(r"\W", "_", f"{name}{path}") + "_post",  # as FastAPI names them
        "parameters": [path_parameter(p) for p in re.findall(r"{(\w+)}", path)],
        **body,
        "responses": {
            "200": ok,
            **{
                str(status): {
                    "description": DESCRIPTIONS[status],
                    "content": {"application/json": {"schema": {"$ref": ERROR_REF}}},
                }
                for status in errors
            },
        },
    }
    if secured:
        op["security"] = [{"HTTPBearer": []}]
    return op


def path_parameter(name: str) -> dict[str, Any]:
    """A required string path parameter, titled as FastAPI titles them."""
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string", "title": name.replace("_", " ").title()},
    }


def document_errors(app: FastAPI, settings: Settings | None = None) -> None:
    """Generate the schema once with every 422 answer described as ErrorBody, the operations of
    DocumentedRoutes added, and the bearer requirement only where this configuration enforces it
    (see ``_fix_security``)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            schema.setdefault("components", {}).setdefault("schemas", {})["ErrorBody"] = ErrorBody.model_json_schema()
            for route in app.routes:
                if isinstance(route, DocumentedRoute):
                    schema.setdefault("paths", {}).setdefault(route.path, {})[route.method] = copy.deepcopy(
                        route.operation
                    )  # per document: _fix_security edits it
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
        responses["422"] = {
            "description": DESCRIPTIONS[422],
            "content": {"application/json": {"schema": {"$ref": ERROR_REF}}},
        }
