"""``candor serve``: verify every artifact, then run uvicorn (httptools, one worker, the event loop
of settings.event_loop; idle keep-alive connections answer through the drain, service.api.http_protocol)."""

from __future__ import annotations

import argparse
import copy
import logging.config
import math
import signal
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from service.inference.repository import Repository
    from service.settings import Settings
    from service.worker_slot import WorkerSlot


def add_service_commands(commands: Any) -> None:
    """Register ``serve``, ``schema`` and ``recalibrate`` on the top-level subparsers."""
    from service.recalibration.cli import add_arguments

    serve = commands.add_parser("serve", help="serve calibrated probabilities over HTTP")
    serve.add_argument("--host", help="bind address (CANDOR_HOST; default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (CANDOR_PORT; default 8000)")
    serve.add_argument("--models-dir", type=Path, help="artifact root (CANDOR_MODELS_DIR; default: bundled)")
    serve.add_argument(
        "--workers", type=int, help="server processes on the port, one monitor across them (CANDOR_WORKERS; default 1)"
    )
    serve.add_argument("--worker-slot", type=int, help=argparse.SUPPRESS)  # set by the supervisor only
    serve.add_argument("--run-dir", type=Path, help=argparse.SUPPRESS)
    serve.set_defaults(handler=run_serve)

    schema = commands.add_parser("schema", help="write the manifest JSON Schema")
    schema.add_argument("--out", type=Path, default=Path("models/manifest.schema.json"))
    schema.set_defaults(handler=run_schema)

    recalibrate = commands.add_parser(
        "recalibrate", help="refit the calibration map from production feedback; promote only when better"
    )
    add_arguments(recalibrate)
    recalibrate.set_defaults(handler=run_recalibrate)


def run_serve(args: argparse.Namespace) -> int:
    """Load settings (CLI flags override CANDOR_* variables), verify artifacts, serve: one
    process, or with ``workers`` > 1 a supervisor of that many (service.supervisor)."""
    from service.errors import ServiceError
    from service.inference.repository import load_from_settings

    flags = {"host": args.host, "port": args.port, "models_dir": args.models_dir, "workers": args.workers}
    settings = load_settings({k: v for k, v in flags.items() if v is not None})
    log_config = serve_log_config(settings.log_level)
    logging.config.dictConfig(log_config)  # before the store opens: its replay is logged
    if args.worker_slot is not None:
        return run_worker(settings, args.worker_slot, args.run_dir, log_config)
    if not settings.models_dir.is_dir():
        raise ServiceError(
            f"models directory {settings.models_dir} does not exist: pass --models-dir "
            "(or CANDOR_MODELS_DIR) pointing at <name>/<version>/ artifacts"
        )
    if settings.workers > 1:
        from service.supervisor import supervise

        return supervise(settings, worker_argv, lambda: report_repository(settings, load_from_settings(settings)))
    check_store_opens(settings)
    repository = load_from_settings(settings)
    report_repository(settings, repository)
    serve_uvicorn(create_app_for(settings, repository, None), settings, log_config)
    return 0


def report_repository(settings: Settings, repository: Repository) -> None:
    """One line per served version, or a warning when there is none."""
    if len(repository) == 0:
        print(f"candor: warning: no artifacts under {settings.models_dir}; /v2/health/ready is false")
    for name, versions in repository.models.items():
        for version, engine in versions.items():
            print(f"candor: serving {name} v{version} ({engine.manifest.calibration.kind}, {engine.provider})")


def create_app_for(settings: Settings, repository: Repository, worker: WorkerSlot | None) -> Any:
    from service.app import create_app

    return create_app(settings, repository, worker)


def worker_argv(slot: int, run_dir: Path) -> list[str]:
    """The command line of worker ``slot`` (its settings come from the supervisor's environment)."""
    return [sys.executable, "-m", "candor.cli", "serve", "--worker-slot", str(slot), "--run-dir", str(run_dir)]


def run_worker(settings: Settings, slot: int, run_dir: Path | None, log_config: dict[str, Any]) -> int:
    """One worker slot of ``candor serve --workers N``: its own engines, the port bound with
    SO_REUSEPORT (service.supervisor), the run's shared monitor and metrics."""
    from service.errors import ServiceError
    from service.inference.repository import load_from_settings
    from service.supervisor import reuseport_socket
    from service.worker_slot import WorkerSlot

    if run_dir is None or not 0 <= slot < settings.workers:
        raise ServiceError(f"--worker-slot {slot} needs --run-dir and CANDOR_WORKERS > {slot} (set by the supervisor)")
    worker = WorkerSlot(slot, settings.workers, run_dir)
    repository = load_from_settings(settings)
    sock = reuseport_socket(settings.host, settings.port)
    serve_uvicorn(create_app_for(settings, repository, worker), settings, log_config, sock)
    return 0


def serve_uvicorn(app: Any, settings: Settings, log_config: dict[str, Any], sock: socket.socket | None = None) -> None:
    """uvicorn (httptools with the drain, settings.event_loop) on host:port, or on ``sock``;
    returns after the drain (exit 0 on SIGTERM / SIGINT)."""
    import uvicorn

    from service.api.http_protocol import DrainingHttpToolsProtocol

    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        loop=settings.event_loop,
        log_config=log_config,
        http=DrainingHttpToolsProtocol,
        access_log=settings.access_log,
        timeout_graceful_shutdown=math.ceil(settings.shutdown_timeout_s),
    )
    exit_zero_after_drain()
    uvicorn.Server(config).run(sockets=None if sock is None else [sock])


SERVICE_LOGGERS = ("candor", "service")  # candor.models (reloads), service.monitor.* (replays)


def serve_log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging configuration, plus the service's own loggers on uvicorn's stderr handler
    at ``level`` (without it their INFO lines reached no handler and were lost)."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    for name in SERVICE_LOGGERS:
        config["loggers"][name] = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    return config


def load_settings(overrides: dict[str, Any]) -> Settings:
    """The settings, or a ServiceError naming each bad setting as its CANDOR_* variable (or flag)."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from service.errors import ServiceError
    from service.settings import Settings

    fix = "(set them in the environment, CANDOR_*, or with the command-line flags)"
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(setting_name(e["loc"]) + e["msg"].removeprefix("Value error, ") for e in exc.errors())
        raise ServiceError(f"invalid settings: {problems} {fix}") from None
    except SettingsError as exc:  # a JSON-valued variable that is not JSON
        field = str(exc).partition('field "')[2].partition('"')[0]
        raise ServiceError(f"invalid settings: CANDOR_{field.upper()}: not valid JSON {fix}") from None


def check_store_opens(settings: Settings) -> None:
    """Open and close the SQLite prediction store before serving (replaying a log left by a crash),
    so that a store in use by another candor process is a one-line error, not a failed start-up."""
    from service.errors import ServiceError
    from service.monitor import MonitorError
    from service.monitor.wiring import open_store

    if settings.store_url is not None and not settings.store_url.startswith("sqlite://"):
        return  # Redis: reached in the lifespan (replicas may start before it answers)
    try:
        open_store(settings).close()
    except MonitorError as exc:
        raise ServiceError(str(exc)) from None


def setting_name(loc: tuple[int | str, ...]) -> str:
    """'CANDOR_MODEL_BATCHING (m.max_batch_size): ' for a nested location, '' for the whole model."""
    if not loc:
        return ""
    inner = ".".join(str(part) for part in loc[1:])
    return f"CANDOR_{str(loc[0]).upper()}" + (f" ({inner})" if inner else "") + ": "


def exit_zero_after_drain() -> None:
    """SIGTERM / SIGINT: uvicorn stops accepting, drains in-flight requests (and answers, with
    ``Connection: close``, what arrives on open keep-alive connections meanwhile), runs the lifespan
    shutdown (monitor flushed), then re-raises the signal; these handlers make that a clean exit 0."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)


def run_recalibrate(args: argparse.Namespace) -> int:
    """``candor recalibrate`` (service/recalibration/cli.py) with the settings of the environment."""
    from service.recalibration.cli import recalibrate

    return recalibrate(load_settings({}), args)


def run_schema(args: argparse.Namespace) -> int:
    """Write models/manifest.schema.json from the pydantic model."""
    from calibration.manifest import write_json_schema

    write_json_schema(args.out)
    print(f"wrote {args.out}")
    return 0
