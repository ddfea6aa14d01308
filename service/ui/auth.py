"""The status page behind the bearer token, in a browser: a cookie set from the token.

A browser cannot attach ``Authorization: Bearer`` to a page load, a meta refresh or a link without
script, and the page runs none. So when inference needs the token (``auth_inference`` with an
``auth_token``), /ui answers 401 with a form asking for it; ``POST /ui/login`` checks it and sets
``candor_ui`` = HMAC-SHA256(token, "candor-ui") (HttpOnly, SameSite=Strict, Path=/ui, Secure on
https). The cookie is not the token: it opens only /ui, never inference or feedback, and changing
the token revokes every cookie. A request with the bearer header itself (curl, a benchmark) passes
too.
"""

from __future__ import annotations

import hashlib
import hmac

from starlette.requests import Request
from starlette.responses import Response

from service.api.security import check_bearer
from service.errors import Unauthorized
from service.settings import Settings

COOKIE = "candor_ui"
COOKIE_MAX_AGE_S = 7 * 86_400


def required(settings: Settings) -> bool:
    """The page needs the token exactly when inference does."""
    return settings.auth_inference and settings.auth_token is not None


def cookie_value(settings: Settings) -> str:
    """HMAC of a fixed message keyed by the token (empty without a token)."""
    if settings.auth_token is None:
        return ""
    key = settings.auth_token.get_secret_value().encode()
    return hmac.new(key, b"candor-ui", hashlib.sha256).hexdigest()


def signed_in(request: Request, settings: Settings) -> bool:
    """True when no token is needed, or the request carries the cookie or the bearer token."""
    if not required(settings):
        return True
    given = request.cookies.get(COOKIE, "")
    if given and hmac.compare_digest(given.encode(), cookie_value(settings).encode()):
        return True
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and bool(token) and token_ok(settings, token)


def token_ok(settings: Settings, token: str) -> bool:
    """The token check of every other endpoint (constant time)."""
    try:
        check_bearer(settings, token)
    except Unauthorized:
        return False
    return True


def set_cookie(response: Response, request: Request, settings: Settings) -> None:
    response.set_cookie(
        COOKIE,
        cookie_value(settings),
        max_age=COOKIE_MAX_AGE_S,
        path="/ui",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_cookie(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/ui", httponly=True, samesite="strict")


def safe_next(path: str) -> str:
    """Where to go after signing in: a /ui path of this site, else /ui (no open redirect)."""
    ok = path.startswith("/ui") and not path.startswith("//") and "\\" not in path and "\n" not in path
    return path if ok else "/ui"
