"""Request metrics on a per-app registry: counter by route/method/status and a latency histogram.

A pure ASGI middleware (no BaseHTTPMiddleware: that wraps every response body in a stream).
A client that disconnects before its request is answered (mid-body, typically) is counted with
status 499 ("client closed request", as nginx does), not 500: nothing was answered, no server fault.

Worker slots (``candor serve --workers N``): prometheus_client's multiprocess mode. Each worker
counts into its own files under PROMETHEUS_MULTIPROC_DIR (set by the supervisor before the worker
starts, so prometheus_client picks its file-backed values at import) and every worker's /metrics
sums all the files, those of killed workers included: one set of series whichever worker a scrape
reaches, counters monotonic across a kill -9. The in-flight gauge sums live workers only (the
supervisor marks a dead worker's files dead).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import ServiceError

CLIENT_CLOSED_REQUEST = 499  # the status label of a request whose client left before the answer
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class HttpMetrics:
    """``candor_http_requests_total{route,method,status}``, ``candor_http_request_duration_seconds{route}``,
    ``candor_http_requests_in_flight`` (received, not yet answered)."""

    def __init__(self, registry: CollectorRegistry, multiprocess_dir: Path | None = None) -> None:
        """Metrics on ``registry``; with ``multiprocess_dir`` (a worker slot), they count into that
        directory and ``registry`` exposes the sum over every worker's files (module docstring)."""
        own: CollectorRegistry | None = registry
        if multiprocess_dir is not None:
            if os.environ.get("PROMETHEUS_MULTIPROC_DIR") != str(multiprocess_dir):
                raise ServiceError(
                    f"PROMETHEUS_MULTIPROC_DIR must be {multiprocess_dir} before prometheus_client loads"
                )
            MultiProcessCollector(registry, path=str(multiprocess_dir))  # type: ignore[no-untyped-call]
            own = None  # this process's values are read back from its files
        self.requests = Counter(
            "candor_http_requests", "HTTP requests answered", ["route", "method", "status"], registry=own
        )
        self.latency = Histogram(
            "candor_http_request_duration_seconds",
            "Time to answer a request",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=own,
        )
        self.in_flight = Gauge(
            "candor_http_requests_in_flight",
            "HTTP requests received and not yet answered",
            registry=own,
            multiprocess_mode="livesum",
        )
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe(self, scope: Scope, status: int, seconds: float) -> None:
        """Count one answered request under its route template (labelled children looked up once)."""
        key = (route_template(scope), str(scope["method"]), status)
        children = self._children.get(key)
        if children is None:
            children = (self.requests.labels(key[0], key[1], str(status)), self.latency.labels(key[0]))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def started(self) -> float:
        """One more request in flight; returns its start time for ``finished``."""
        self.in_flight.inc()
        return time.perf_counter()

    def finished(self, scope: Scope, status: int, started: float) -> None:
        """The request started at ``started`` was answered with ``status``."""
        self.in_flight.dec()
        self.observe(scope, status, time.perf_counter() - started)


class HttpMetricsMiddleware:
    """Times every HTTP request and labels it by its route template (never by raw path or ids)."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        started = self.metrics.started()
        try:
            await self.app(scope, receive, send_with_status)
        except ClientDisconnect:  # no one to answer: counted as 499, no traceback
            status = CLIENT_CLOSED_REQUEST
        finally:
            self.metrics.finished(scope, status, started)


def route_template(scope: Scope) -> str:
    """The matched route's path template, e.g. ``/v1/models/{model_name}:predict``, or 'unmatched'.

    Starlette's router records the matched route in ``scope["route"]`` (the same scope dict).
    """
    return str(getattr(scope.get("route"), "path", "unmatched"))
