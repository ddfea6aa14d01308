"""The app factory: settings in, a FastAPI app out; artifacts are loaded in the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.telemetry import TelemetryConfig
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Receive, Scope, Send

from service.api import calibration, feedback, ui, v1
from service.api.direct import DirectRoutes
from service.api.http_metrics import HttpMetrics, HttpMetricsMiddleware
from service.api.openapi import document_errors, error_responses
from service.api.reliability import ReliabilityRenderer
from service.api.security import AdminAuth, install_cors
from service.api.v2 import infer as v2
from service.api.v2 import recalibration as v2_recalibration
from service.api.v2 import repository as v2_repository
from service.errors import ServiceError
from service.grpc.server import serving_grpc
from service.inference.fleet_repository import following
from service.inference.model_manager import ModelManager, watching
from service.inference.repository import Repository, load_from_settings
from service.inference.served import Recorder
from service.monitor.wiring import open_monitoring
from service.recalibration.runner import Recalibrator
from service.settings import Settings
from service.ui.cache import PageCache
from service.worker_slot import WorkerSlot

# Metrics are ours (Prometheus, /metrics). FastAPI's OpenTelemetry bridge, when left on, looks up
# the global providers on every request (30 us here) to find that none is configured.
NO_OPENTELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


class CandorApp(FastAPI):
    """FastAPI, with the inference routes answered ahead of its middleware stack (service.api.direct)."""

    direct: DirectRoutes | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        direct = self.direct
        route = None if direct is None else direct.match(scope)
        if direct is None or route is None:
            await super().__call__(scope, receive, send)
        else:
            await direct.serve(self, route, scope, receive, send)


def create_app(settings: Settings, repository: Repository | None = None, worker: WorkerSlot | None = None) -> FastAPI:
    """Build the app. Without ``repository``, every artifact under settings.models_dir is loaded
    (and verified) at start-up; a bad artifact stops start-up with an error naming file and field.
    ``worker``: this app is one slot of ``candor serve --workers N`` (service.supervisor): its
    monitor and request metrics are summed over every slot."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_monitoring(settings, registry, worker) as monitoring:
            app.state.repository = recorded_repository(settings, repository, monitoring.recorder)
            monitoring.register(app.state.repository)
            app.state.monitoring = monitoring
            app.state.model_manager = ModelManager(app.state.repository, settings, monitoring.register)
            app.state.reliability = renderer = ReliabilityRenderer()
            try:
                async with (
                    following(app.state.model_manager, worker, settings) as app.state.fleet_repository,
                    watching(app.state.model_manager, settings),
                    serving_grpc(settings, app.state.repository, app.version, reuseport=worker is not None),
                ):
                    yield
                await app.state.repository.drain()  # queued requests finish before the monitor flushes
            finally:
                renderer.close()

    app = CandorApp(
        title="Candor",
        version="0.1.0",
        lifespan=lifespan,
        description="Calibrated probabilities for neural classifiers, with calibration monitoring.",
        telemetry=NO_OPENTELEMETRY,
    )
    app.state.settings = settings
    app.state.registry = registry = CollectorRegistry()
    http_metrics = HttpMetrics(registry, None if worker is None else worker.metrics_dir)
    app.add_middleware(HttpMetricsMiddleware, metrics=http_metrics)
    install_error_handlers(app)
    app.include_router(v2.router)
    app.include_router(feedback.router, dependencies=[AdminAuth], responses=error_responses(401))
    app.include_router(v2_repository.router)
    app.include_router(v2_recalibration.router)
    # candor_recalibrations_total: in a worker slot, counted into the multiprocess files and exposed
    # summed over every worker by http_metrics' MultiProcessCollector (on the app registry it would
    # show this worker's count beside the fleet's sum, a different value per worker answering)
    app.state.recalibrator = Recalibrator(settings, registry if worker is None else None)
    app.router.routes[0:0] = [*v1.ROUTES, *v2.ROUTES]  # also here: documented, and for CORS requests
    app.direct = DirectRoutes([*v1.ROUTES, *v2.ROUTES], http_metrics, skip_origin=bool(settings.cors_origins))
    install_cors(app, settings)
    document_errors(app, settings)
    app.include_router(calibration.router)
    app.include_router(ui.router)
    app.state.ui_pages = PageCache()  # /ui rendered at most once a second

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        """Prometheus exposition of this app's registry (served at /metrics, no redirect)."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app


def recorded_repository(settings: Settings, repository: Repository | None, recorder: Recorder) -> Repository:
    """The app's repository, every engine built to record with ``recorder``: ``repository``'s
    engines rebuilt on their verified sessions, or, without one, every artifact loaded now."""
    if repository is None:
        return load_from_settings(settings, recorder)
    return repository.recorded_by(recorder)


def install_error_handlers(app: FastAPI) -> None:
    """ServiceError (the monitor's errors included) -> its status, headers and ``{"error", "field"}``;
    request validation -> 422 and Starlette's own errors (404 no route, 405 wrong method) -> their
    status, same shape. The one handler of the app's own errors."""

    @app.exception_handler(ServiceError)
    async def service_error(_: Request, exc: ServiceError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers())

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        field = {404: "path", 405: "method"}.get(exc.status_code, "request")
        return JSONResponse(
            {"error": f"{exc.detail}: {request.method} {request.url.path}", "field": field},
            status_code=exc.status_code,
            headers=exc.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
        return JSONResponse({"error": f"{field}: {first.get('msg')}", "field": field}, status_code=422)
