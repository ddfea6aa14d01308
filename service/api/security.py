"""Bearer-token checks: admin endpoints (feedback, repository) always, inference when configured.

The token comes from settings (``CANDOR_AUTH_TOKEN``, a SecretStr: never logged nor echoed) and is
compared in constant time. Without a configured token every endpoint is open (settings refuse an
empty or blank token, and ``auth_required`` refuses none at all); an empty bearer never passes.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.api.deps import SettingsDep
from service.errors import Unauthorized
from service.settings import Settings

bearer = HTTPBearer(auto_error=False, description="CANDOR_AUTH_TOKEN, when configured")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def check_token(settings: Settings, credentials: HTTPAuthorizationCredentials | None) -> None:
    """401 unless a token is configured and the request carries it as ``Bearer <token>``."""
    check_bearer(settings, None if credentials is None else credentials.credentials)


def check_bearer(settings: Settings, token: str | None) -> None:
    """401 when a token is configured and ``token`` is not it (constant-time comparison)."""
    expected = settings.auth_token
    if expected is None:
        return
    given = b"" if token is None else token.encode()
    if not given or not hmac.compare_digest(given, expected.get_secret_value().encode()):
        raise Unauthorized("a valid 'Authorization: Bearer <token>' header is required", field="Authorization")


async def require_admin(settings: SettingsDep, credentials: Credentials) -> None:
    """Dependency of feedback and repository routes."""
    check_token(settings, credentials)


def check_inference_token(request: Request, settings: Settings) -> None:
    """The inference routes' check (plain Starlette endpoints, no dependencies): the bearer token
    of the Authorization header, as HTTPBearer reads it, only when ``auth_inference`` is set."""
    if not settings.auth_inference:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    check_bearer(settings, token if scheme.lower() == "bearer" and token else None)


AdminAuth = Depends(require_admin)


def install_cors(app: FastAPI, settings: Settings) -> None:
    """CORS only for the configured origins (none by default: no CORS headers at all)."""
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
