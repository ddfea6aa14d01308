"""The artifact manifest: the one seam between training and the service.

A frozen, versioned pydantic model written as ``manifest.json`` beside ``model.onnx``. The service
refuses an artifact whose schema or sha256 does not match, naming the file and the field.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from calibration.errors import ManifestError

SCHEMA_VERSION: Literal[1] = 1
MANIFEST_FILE = "manifest.json"
ONNX_FILE = "model.onnx"

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Preprocessing(_Frozen):
    """x_model = (x_raw * scale - mean[c]) / std[c], per channel c; raw values must lie in input_range."""

    scale: float = Field(gt=0, description="multiplier applied to raw values first (1/255 for uint8)")
    mean: list[float] = Field(min_length=1)
    std: list[Annotated[float, Field(gt=0)]] = Field(min_length=1)
    layout: Literal["NCHW"] = "NCHW"
    input_range: tuple[float, float] = Field(description="inclusive range of raw input values")

    @model_validator(mode="after")
    def _same_channels(self) -> Preprocessing:
        if len(self.mean) != len(self.std):
            raise ValueError("mean and std must have one value per channel")
        if self.input_range[0] >= self.input_range[1]:
            raise ValueError("input_range must be (low, high) with low < high")
        return self


class TensorSpec(_Frozen):
    """An ONNX graph input or output: name, dtype, shape with None for the dynamic batch axis."""

    name: str = Field(min_length=1)
    dtype: Literal["float32"] = "float32"
    shape: list[int | None] = Field(min_length=1)


class CalibrationMap(_Frozen):
    """The map fused into the ONNX graph: p = Phi_gamma(softmax(z / T)) (gamma = 0: plain TS)."""

    kind: Literal["none", "temperature", "focal_temperature"]
    temperature: float = Field(default=1.0, gt=0)
    gamma: float = 0.0
    fitted_on: Literal["validation"] = "validation"
    objective: str = Field(default="nll", description="what the fit minimised on validation data")


class TrainingInfo(_Frozen):
    """How the network was trained (recorded for users; the service does not read it)."""

    data: str
    architecture: str
    loss: str
    loss_params: dict[str, float] = Field(default_factory=dict)
    epochs: int = Field(ge=0)
    seed: int
    validation_size: int = Field(ge=0)


class ReliabilityBins(_Frozen):
    """Per-bin sums over equal-width top-label confidence bins (calibration.binning)."""

    n_bins: int = Field(ge=1)
    counts: list[int]
    confidence_sums: list[float]
    correct_sums: list[float]

    @model_validator(mode="after")
    def _lengths(self) -> ReliabilityBins:
        for name in ("counts", "confidence_sums", "correct_sums"):
            if len(getattr(self, name)) != self.n_bins:
                raise ValueError(f"{name} must have n_bins={self.n_bins} entries")
        return self


class ConfidenceHistogram(_Frozen):
    """Fraction of held-out samples per top-label confidence bin (reference for label-free drift)."""

    edges: list[float] = Field(min_length=2)
    fractions: list[Fraction]

    @model_validator(mode="after")
    def _lengths(self) -> ConfidenceHistogram:
        if len(self.fractions) != len(self.edges) - 1:
            raise ValueError("fractions must have len(edges) - 1 entries")
        return self


class ReferenceFigures(_Frozen):
    """Calibration figures measured on held-out data (the test split) through the ONNX graph."""

    split: Literal["test", "validation"]
    n: int = Field(ge=1)
    accuracy: Fraction
    ece: Fraction
    adaptive_ece: Fraction
    classwise_ece: Fraction
    nll: float = Field(ge=0)
    brier: float = Field(ge=0, le=2)
    bins: ReliabilityBins
    confidence_histogram: ConfidenceHistogram


class UncalibratedFigures(_Frozen):
    """The same network without the map (T = 1), on the same split, for before/after comparison."""

    accuracy: Fraction
    ece: Fraction
    nll: float = Field(ge=0)
    brier: float = Field(ge=0, le=2)


class Manifest(_Frozen):
    """Everything the service needs to serve, check and monitor one model version."""

    schema_version: Literal[1] = SCHEMA_VERSION
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$", max_length=128)
    version: str = Field(pattern=r"^[1-9][0-9]*$", description="positive integer, newest is highest")
    created_at: datetime
    onnx_file: str = ONNX_FILE
    onnx_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    input: TensorSpec
    output: TensorSpec
    preprocessing: Preprocessing
    classes: list[str] = Field(min_length=2)
    calibration: CalibrationMap
    training: TrainingInfo
    reference: ReferenceFigures
    reference_uncalibrated: UncalibratedFigures

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        if len(set(self.classes)) != len(self.classes):
            raise ValueError("classes must be unique")
        if self.output.shape[-1] != len(self.classes):
            raise ValueError(f"output shape {self.output.shape} does not end in {len(self.classes)}")
        return self


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def manifest_json_schema() -> dict[str, object]:
    """The JSON Schema committed as models/manifest.schema.json."""
    return Manifest.model_json_schema()


def write_manifest(manifest: Manifest, directory: Path) -> Path:
    """Write manifest.json into an artifact directory."""
    path = directory / MANIFEST_FILE
    path.write_text(manifest.model_dump_json(indent=2) + "\n")
    return path


def load_manifest(directory: Path) -> Manifest:
    """Read and validate manifest.json; ManifestError names the file and the offending field."""
    path = directory / MANIFEST_FILE
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ManifestError(str(path), "-", "file not found") from exc
    except json.JSONDecodeError as exc:
        raise ManifestError(str(path), "-", f"not valid JSON: {exc}") from exc
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "-"
        raise ManifestError(str(path), field, first["msg"]) from exc


def verify_artifact(directory: Path) -> Manifest:
    """Load the manifest and check the ONNX file's sha256 against it."""
    manifest = load_manifest(directory)
    onnx_path = directory / manifest.onnx_file
    if not onnx_path.is_file():
        raise ManifestError(str(directory / MANIFEST_FILE), "onnx_file", f"{onnx_path} does not exist")
    actual = sha256_of(onnx_path)
    if actual != manifest.onnx_sha256:
        raise ManifestError(
            str(directory / MANIFEST_FILE),
            "onnx_sha256",
            f"does not match {onnx_path.name} (file hashes to {actual})",
        )
    return manifest


def write_json_schema(path: Path) -> None:
    """Write the manifest's JSON Schema (sorted keys, trailing newline) to ``path``."""
    path.write_text(json.dumps(manifest_json_schema(), indent=2, sort_keys=True) + "\n")
