"""The inference routes answered straight from ASGI, ahead of FastAPI's middleware stack.

FastAPI's stack (error, telemetry, body-limit, metrics, exception and exit-stack middlewares, the
router, Starlette's request/response wrapper) awaits through a dozen layers on every receive and
send; on the hot paths that cost more than the handler itself (bench/request_path.py). A POST whose
path matches a ``DocumentedRoute`` in ``routes`` is answered here with the same behaviour: the
app's exception handlers turn exceptions into answers, request metrics are recorded, and an
exception no handler takes propagates to uvicorn (500), as from the full stack; a client that
disconnects before its answer is counted as 499 (service.api.http_metrics), with no answer sent. Requests carrying
an ``Origin`` header take the full stack when CORS is configured, so its middleware sees them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import Receive, Scope, Send

from service.api.http_metrics import CLIENT_CLOSED_REQUEST, HttpMetrics
from service.api.openapi import DocumentedRoute

ExceptionHandler = Callable[[Request, Any], Awaitable[Response]]


class DirectRoutes:
    """Matches and answers the direct routes; ``match`` is None for every other request."""

    def __init__(self, routes: Sequence[DocumentedRoute], metrics: HttpMetrics, *, skip_origin: bool) -> None:
        self.routes = list(routes)
        self.metrics = metrics
        self.skip_origin = skip_origin  # CORS configured: browser requests go through its middleware

    def match(self, scope: Scope) -> DocumentedRoute | None:
        """The direct route for this request, with ``path_params`` and ``route`` set in ``scope``."""
        if scope["type"] != "http" or scope["method"] != "POST":
            return None
        if self.skip_origin and any(name == b"origin" for name, _ in scope["headers"]):
            return None
        for route in self.routes:
            matched, child = route.matches(scope)
            if matched is Match.FULL:
                scope.update(child)
                return route
        return None

    async def serve(self, app: Any, route: DocumentedRoute, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the endpoint, map its exception through ``app.exception_handlers``, send the answer."""
        scope["app"] = app
        started = self.metrics.started()
        status = 500
        try:
            request = Request(scope, receive)
            try:
                response = await route.endpoint(request)
            except ClientDisconnect:  # no one to answer, no server fault: no traceback either
                status = CLIENT_CLOSED_REQUEST
                return
            except Exception as exc:
                handler = lookup_handler(app.exception_handlers, exc)
                if handler is None:
                    raise
                response = await handler(request, exc)
            status = response.status_code
            await response(scope, receive, send)
        finally:
            self.metrics.finished(scope, status, started)


def lookup_handler(handlers: dict[Any, ExceptionHandler], exc: Exception) -> ExceptionHandler | None:
    """The handler registered for the nearest class in ``type(exc).__mro__``, as Starlette looks it up."""
    for cls in type(exc).__mro__:
        if cls in handlers:
            return handlers[cls]
    return None
