"""One pydantic-settings object for the service; read once, at start-up, from CANDOR_* variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

BUNDLED_MODELS_DIR = Path(__file__).resolve().parent.parent / "models"


class Settings(BaseSettings):
    """Service configuration. Every field can be set as CANDOR_<FIELD> in the environment."""

    model_config = SettingsConfigDict(env_prefix="CANDOR_", extra="forbid")

    models_dir: Path = Field(default=BUNDLED_MODELS_DIR, description="root of <name>/<version>/ artifacts")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    providers: Literal["auto", "cpu", "cuda"] = Field(
        default="auto", description="auto: CUDA when it actually loads, else CPU")
    intra_op_threads: int = Field(default=0, ge=0, description="ONNX Runtime intra-op threads (0: default)")
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024, description="larger bodies get 413")
    max_instances: int = Field(default=1024, ge=1, description="instances per request")
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
