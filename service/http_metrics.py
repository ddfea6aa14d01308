"""Request metrics on a per-app registry: counter by route/method/status and a latency histogram."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import Request, Response
from prometheus_client import CollectorRegistry, Counter, Histogram

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class HttpMetrics:
    """``candor_http_requests_total{route,method,status}``, ``candor_http_request_duration_seconds{route}``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter("candor_http_requests", "HTTP requests answered",
                                ["route", "method", "status"], registry=registry)
        self.latency = Histogram("candor_http_request_duration_seconds", "Time to answer a request",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=registry)

    async def middleware(self, request: Request,
                         call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        """Time every request and label it by its route template (never by raw path or ids)."""
        started = time.perf_counter()
        response = await call_next(request)
        route = route_template(request)
        self.requests.labels(route, request.method, str(response.status_code)).inc()
        self.latency.labels(route).observe(time.perf_counter() - started)
        return response


def route_template(request: Request) -> str:
    """The matched route's path template, e.g. ``/v1/models/{model_name}:predict``, or 'unmatched'.

    Starlette records the matched route in ``scope["route"]`` while routing.
    """
    route = request.scope.get("route")
    return str(getattr(route, "path", "unmatched"))
