"""One pydantic-settings object for the service; read once, at start-up, from CANDOR_* variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

BUNDLED_MODELS_DIR = Path(__file__).resolve().parent.parent / "models"


class ModelBatching(BaseModel):
    """One model's overrides of the batching settings (a field left out keeps the global value)."""

    model_config = ConfigDict(extra="forbid")

    max_batch_size: int | None = Field(default=None, ge=1)
    max_queue_delay_ms: float | None = Field(default=None, ge=0)
    max_queue_size: int | None = Field(default=None, ge=1)


class Settings(BaseSettings):
    """Service configuration. Every field can be set as CANDOR_<FIELD> in the environment."""

    model_config = SettingsConfigDict(env_prefix="CANDOR_", extra="forbid")

    models_dir: Path = Field(default=BUNDLED_MODELS_DIR, description="root of <name>/<version>/ artifacts")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(
        default=1,
        ge=1,
        description="server processes on the port (SO_REUSEPORT), each with its own engines, one "
        "monitor summed across them (service/supervisor.py); 1: one process, no supervisor",
    )
    fleet_poll_interval_s: float = Field(
        default=0.25,
        gt=0,
        le=10,
        description="--workers N: how often each worker checks the fleet's desired repository state "
        "(service/inference/fleet_repository.py); other workers follow a change within about this",
    )
    fleet_wait_s: float = Field(
        default=10.0,
        ge=0,
        description="--workers N: how long a load, unload or promotion waits for every worker to "
        "report it applied before answering (then answers anyway, logging the slots behind)",
    )
    providers: Literal["auto", "cpu", "cuda"] = Field(
        default="auto", description="auto: CUDA when it actually loads, else CPU"
    )
    intra_op_threads: int = Field(default=0, ge=0, description="ONNX Runtime intra-op threads (0: default)")
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024, description="larger bodies get 413")
    max_instances: int = Field(default=1024, ge=1, description="instances per request")
    body_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="longest a request body may take to arrive; past it: 408, connection closed",
    )
    grpc_port: int | None = Field(
        default=None, ge=1, le=65535, description="KServe V2 gRPC port (service/grpc); unset: no gRPC server"
    )
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    # serving: dynamic batching, backpressure, deadlines (service/inference/batching.py)
    # CPU defaults: small batches, no wait. The event loop parses the next batch's requests while
    # the model runs this one; one large batch leaves the two taking turns (docs/benchmarks.md).
    max_batch_size: int = Field(default=8, ge=1, description="most instances coalesced into one ONNX Runtime call")
    max_queue_delay_ms: float = Field(
        default=0.0, ge=0, description="longest wait for announced requests to join a batch"
    )
    max_queue_size: int = Field(default=1024, ge=1, description="instances queued per model version; beyond: 503")
    model_batching: dict[str, ModelBatching] = Field(
        default_factory=dict,
        description="per-model overrides of the three settings above, e.g. "
        '{"resnet18": {"max_batch_size": 16, "max_queue_delay_ms": 20}}',
    )
    request_timeout_s: float = Field(default=30.0, gt=0, description="per-request deadline; past it: 503")
    retry_after_s: int = Field(default=1, ge=0, description="Retry-After (seconds) sent with 503")
    shutdown_timeout_s: float = Field(default=30.0, gt=0, description="SIGTERM: longest drain of in-flight requests")
    # versions and hot reload (service/inference/model_manager.py)
    default_versions: dict[str, str] = Field(
        default_factory=dict, description='version for unversioned calls, e.g. {"digits-cnn": "1"}'
    )
    watch_models: bool = Field(default=False, description="poll models_dir and reload changed artifacts")
    watch_interval_s: float = Field(default=2.0, gt=0, description="polling interval of watch_models")
    # security (service/api/security.py)
    auth_token: SecretStr | None = Field(
        default=None,
        description="bearer token for feedback and repository endpoints (never logged); unset: those "
        "endpoints are open; empty or blank: refused at start-up",
    )
    auth_required: bool = Field(
        default=False, description="refuse to start without auth_token (the compose and Kubernetes configs set it)"
    )
    auth_inference: bool = Field(default=False, description="require the token for inference too")
    cors_origins: list[str] = Field(default_factory=list, description="allowed CORS origins; empty: CORS off")
    access_log: bool = Field(default=False, description="uvicorn access log (method, path, status; never payloads)")
    event_loop: Literal["asyncio", "uvloop"] = Field(
        default="asyncio",
        description="uvicorn's event loop. asyncio keeps answering new connections "
        "under overload; uvloop, saturated by 1024 connections, left a new connection unanswered for "
        "10 s and more, and was no faster here otherwise (docs/benchmarks.md)",
    )
    # calibration monitor (service/monitor/wiring.py): prediction store and windows
    state_dir: Path = Field(default=Path(".candor"), description="directory of the default SQLite store (created)")
    store_url: str | None = Field(
        default=None,
        description="sqlite:///ABS/PATH or redis://host:port/db; default: sqlite in state_dir/predictions.db",
    )
    store_sync: Literal["normal", "full"] = Field(
        default="normal",
        description="SQLite durability: normal (WAL, no fsync per commit) keeps "
        "every answered prediction across kill -9 and restarts; full also "
        "fsyncs each commit, surviving power loss, at ~4 ms per commit",
    )
    store_log: bool = Field(
        default=True,
        description="SQLite store: a served prediction is appended to a log beside the "
        "file (one write) and moved into it in bulk, instead of one SQLite "
        "transaction per model call. false: one SQLite transaction per model call. "
        "Either way one candor process (or one --workers supervisor) per store file (a second one exits 2)",
    )
    retention_seconds: float = Field(
        default=7 * 86_400.0, gt=0, description="labels for older predictions count as expired"
    )
    store_capacity: int = Field(
        default=10_000_000, ge=1, description="predictions kept; beyond, the oldest are evicted"
    )
    store_top_k: int = Field(
        default=32,
        ge=0,
        description="served probability vector kept per prediction for recalibration: all of it up to "
        "this many classes, above it the top k and the rest's mass; 0: none kept "
        "(service/monitor/stores/scores.py)",
    )
    monitor_window_seconds: float = Field(default=3600.0, gt=0, description="sliding calibration window")
    monitor_buckets: int = Field(default=60, ge=1, description="time buckets per window")
    drift_min_labels: int = Field(
        default=200, ge=1, description="fewer labels in the window: drift verdict insufficient_data"
    )
    drift_class_mix_psi: float = Field(
        default=0.1,
        gt=0,
        description="label-free class-mix flag: the window's mean served posterior must be more than this "
        "PSI from the reference class priors, and beyond the sampling noise at its n (service/monitor/drift.py)",
    )
    # recalibration (service/recalibration): the promotion rule's minimum and the comparison
    recalibration_min_labels: int = Field(
        default=200,
        ge=2,
        description="labelled predictions needed in each half of the window (fit, held-out) to fit a "
        "map and to promote its result; fewer: outcome insufficient_labels",
    )
    recalibration_seed: int = Field(default=0, description="seed of the fit / held-out split and the bootstrap")
    recalibration_resamples: int = Field(
        default=1000, ge=100, description="paired bootstrap replicates of the old / new comparison"
    )
    max_feedback_labels: int = Field(default=10_000, ge=1, description="labels per POST /v1/feedback")
    ui_refresh_s: int = Field(default=30, ge=0, description="the /ui status page reloads every N seconds (0: never)")

    @field_validator("store_url")
    @classmethod
    def _store_url_has_a_known_scheme(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("sqlite:///", "redis://", "rediss://")):
            raise ValueError("must start with sqlite:/// (then an absolute path), redis:// or rediss://")
        return url

    @field_validator("auth_token")
    @classmethod
    def _token_is_not_blank(cls, token: SecretStr | None) -> SecretStr | None:
        if token is not None and not token.get_secret_value().strip():
            raise ValueError(
                "is empty or blank, which would leave the admin endpoints open: set a token "
                "(e.g. openssl rand -hex 32) or unset the variable"
            )
        return token

    @model_validator(mode="after")
    def _token_when_required(self) -> Settings:
        if self.auth_required and self.auth_token is None:
            raise ValueError("CANDOR_AUTH_REQUIRED is true but CANDOR_AUTH_TOKEN is not set")
        return self

    @model_validator(mode="after")
    def _queue_holds_a_request(self) -> Settings:
        queues = {"max_queue_size": self.max_queue_size} | {
            f"model_batching.{name}.max_queue_size": override.max_queue_size
            for name, override in self.model_batching.items()
            if override.max_queue_size is not None
        }
        for where, size in queues.items():
            if size < self.max_instances:
                raise ValueError(
                    f"{where} ({size}) must be >= max_instances "
                    f"({self.max_instances}), or large requests could never be queued"
                )
        return self
