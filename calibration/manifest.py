"""The artifact manifest: the one seam between training and the service.

A frozen, versioned pydantic model written as ``manifest.json`` beside ``model.onnx``. The service
refuses an artifact whose schema or digests do not match, naming the file and the field.

Integrity: ``onnx_sha256`` covers the ONNX bytes; ``manifest_sha256`` covers the manifest itself
(its canonical JSON without that field, which includes ``onnx_sha256``, so both files). It detects
a manifest edited, truncated or paired with the wrong model by anything that did not re-seal it
(a hand edit, a partial copy, a tool bug). It is not a signature: whoever can write the models
directory can replace both files and re-seal them. An artifact is only ever the regular files of
its version directory: no path in ``onnx_file``, no symlinks.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
from collections.abc import Mapping
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)

from calibration.errors import ManifestError
from calibration.preprocessing import Preprocessing

SCHEMA_VERSION: Literal[1] = 1
MANIFEST_FILE = "manifest.json"
ONNX_FILE = "model.onnx"
DIGEST_FIELD = "manifest_sha256"
SHA256 = r"^[0-9a-f]{64}$"

log = logging.getLogger("candor.manifest")

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TensorSpec(_Frozen):
    """An ONNX graph input or output: name, dtype, shape with None for the dynamic batch axis."""

    name: str = Field(min_length=1)
    dtype: Literal["float32"] = "float32"
    shape: list[int | None] = Field(min_length=1)


class CalibrationMap(_Frozen):
    """The map fused into the ONNX graph. temperature: softmax(z / T); focal_temperature:
    Phi_gamma(softmax(z / T)) (gamma = 0: plain TS); vector: softmax(w * z + b), one weight and one
    bias per class (Guo et al. 2017). The kinds are implemented in candor/maps (one file each)."""

    kind: Literal["none", "temperature", "focal_temperature", "vector"]
    temperature: float = Field(default=1.0, gt=0)
    gamma: float = 0.0
    weights: list[float] | None = Field(default=None, description="vector scaling: w, one per class")
    biases: list[float] | None = Field(default=None, description="vector scaling: b, one per class")
    fitted_on: Literal["validation"] = "validation"
    objective: str = Field(default="nll", description="what the fit minimised on validation data")

    @model_validator(mode="after")
    def _vector_parameters(self) -> CalibrationMap:
        per_class = (self.weights, self.biases)
        if self.kind == "vector" and (None in per_class or len(self.weights or ()) != len(self.biases or ())):
            raise ValueError("vector scaling needs weights and biases, one of each per class")
        if self.kind != "vector" and per_class != (None, None):
            raise ValueError("weights and biases belong to vector scaling only")
        return self

    @model_serializer(mode="wrap")
    def _without_unused(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Absent per-class parameters are left out, so other kinds serialise as before."""
        data: dict[str, Any] = handler(self)
        return {k: v for k, v in data.items() if not (k in ("weights", "biases") and v is None)}


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
    """Calibration figures measured on held-out data (the test split) through the ONNX graph;
    a recalibrated version's come from the held-out half of its production window ("production")."""

    split: Literal["test", "validation", "production"]
    n: int = Field(ge=1)
    accuracy: Fraction
    ece: Fraction
    adaptive_ece: Fraction
    classwise_ece: Fraction
    nll: float = Field(ge=0)
    brier: float = Field(ge=0, le=2)
    bins: ReliabilityBins
    confidence_histogram: ConfidenceHistogram
    class_priors: list[Fraction] | None = Field(
        default=None,
        description="mean predicted probability per class on this split: the training priors a "
        "prior-shift recalibration corrects from (absent in artifacts written before it existed)",
    )

    @model_serializer(mode="wrap")
    def _without_absent_priors(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Absent class priors are left out, so older manifests serialise as before."""
        return _drop_none(handler(self), ("class_priors",))


class UncalibratedFigures(_Frozen):
    """The same network without the map (T = 1), on the same split, for before/after comparison."""

    accuracy: Fraction
    ece: Fraction
    nll: float = Field(ge=0)
    brier: float = Field(ge=0, le=2)


class Lineage(_Frozen):
    """Where a recalibrated version comes from (service/recalibration): its base version, the
    production window and labels it was fitted on, and the map appended to the base graph's output.

    ``map`` takes the base version's log-probabilities (floored at -87.34, the log of the smallest
    normal float32) as its logits; the base graph's own map (``calibration``) is unchanged under it."""

    base_version: str = Field(pattern=r"^[1-9][0-9]*$")
    method: Literal["ts", "fts", "best", "prior-shift"]
    map: CalibrationMap
    window_start: datetime
    window_end: datetime
    n_labels_fit: int = Field(ge=0)
    n_labels_heldout: int = Field(ge=0)
    n_unlabelled: int = Field(ge=0)
    parameters: dict[str, float | int | bool | list[float]] = Field(default_factory=dict)
    seed: int
    created_by: str
    reference_from: Literal["heldout", "base"] = Field(
        description="heldout: reference figures measured on the held-out labelled half; base: too few "
        "labels there, the base version's reference figures were kept"
    )


class Manifest(_Frozen):
    """Everything the service needs to serve, check and monitor one model version."""

    schema_version: Literal[1] = SCHEMA_VERSION
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$", max_length=128)
    version: str = Field(pattern=r"^[1-9][0-9]*$", description="positive integer, newest is highest")
    created_at: datetime
    onnx_file: str = Field(
        default=ONNX_FILE,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*\.onnx$",
        max_length=255,
        description="a file name in the version directory (no path, no symlink)",
    )
    onnx_sha256: str = Field(pattern=SHA256)
    manifest_sha256: str | None = Field(
        default=None,
        pattern=SHA256,
        description="sha256 of this manifest's canonical JSON without this field (manifest_digest); "
        "written by every export. Absent (an artifact exported before it existed): served with a "
        "warning, since edits of such a manifest go unnoticed",
    )
    input: TensorSpec
    output: TensorSpec
    preprocessing: Preprocessing
    classes: list[str] = Field(min_length=2)
    calibration: CalibrationMap
    training: TrainingInfo
    reference: ReferenceFigures
    reference_uncalibrated: UncalibratedFigures
    lineage: Lineage | None = Field(
        default=None, description="set on versions written by recalibration: what they were derived from"
    )

    @model_serializer(mode="wrap")
    def _without_absent_lineage(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """An absent lineage is left out, so existing manifests serialise (and seal) as before."""
        return _drop_none(handler(self), ("lineage",))

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        if len(set(self.classes)) != len(self.classes):
            raise ValueError("classes must be unique")
        if self.output.shape[-1] != len(self.classes):
            raise ValueError(f"output shape {self.output.shape} does not end in {len(self.classes)}")
        return self

    @cached_property
    def instance_shape(self) -> tuple[int, ...]:
        """Per-instance input shape (C, H, W): the input's shape without the batch axis."""
        return tuple(int(d) for d in self.input.shape[1:] if d is not None)


def _drop_none(data: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if not (k in keys and v is None)}


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def manifest_digest(raw: Mapping[str, Any]) -> str:
    """sha256 of the manifest's canonical JSON (sorted keys, no spaces, ASCII) without manifest_sha256."""
    body = {key: value for key, value in raw.items() if key != DIGEST_FIELD}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def sealed(manifest: Manifest) -> Manifest:
    """The manifest with ``manifest_sha256`` set over its JSON form (what write_manifest writes)."""
    raw = json.loads(manifest.model_dump_json())
    return manifest.model_copy(update={DIGEST_FIELD: manifest_digest(raw)})


def manifest_json_schema() -> dict[str, object]:
    """The JSON Schema committed as models/manifest.schema.json."""
    return Manifest.model_json_schema()


def write_manifest(manifest: Manifest, directory: Path) -> Path:
    """Write manifest.json, sealed (manifest_sha256 computed), into an artifact directory."""
    path = directory / MANIFEST_FILE
    path.write_text(sealed(manifest).model_dump_json(indent=2) + "\n")
    return path


def read_artifact_file(directory: Path, name: str, field: str) -> bytes:
    """The bytes of ``directory/name``: a regular file directly in the directory, not a symlink.
    Errors name the manifest and ``field`` but never echo anything read from outside the artifact."""
    where = str(directory / MANIFEST_FILE)
    if name != Path(name).name or name in ("", ".", ".."):
        raise ManifestError(where, field, f"{name!r} must be a file name in the version directory, not a path")
    path = directory / name
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError as exc:
        raise ManifestError(where, field, f"file not found: {path}") from exc
    except OSError as exc:  # ELOOP: a symlink (O_NOFOLLOW); EACCES and the like
        raise ManifestError(where, field, f"{path} is a symlink or cannot be opened ({exc.strerror})") from exc
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise ManifestError(where, field, f"{path} is not a regular file")
        return fh.read()


def load_manifest(directory: Path) -> Manifest:
    """Read and validate manifest.json and check its manifest_sha256 (warning when it has none);
    ManifestError names the file and the offending field."""
    path = directory / MANIFEST_FILE
    try:
        raw = json.loads(read_artifact_file(directory, MANIFEST_FILE, "-"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ManifestError(str(path), "-", f"not valid JSON: {exc}") from exc
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "-"
        raise ManifestError(str(path), field, first["msg"]) from exc
    check_manifest_digest(raw, manifest, path)
    return manifest


def check_manifest_digest(raw: Mapping[str, Any], manifest: Manifest, path: Path) -> None:
    """The manifest's own digest must match its content; an unsealed manifest is only warned about."""
    if manifest.manifest_sha256 is None:
        log.warning(
            "%s has no %s: edits of this manifest cannot be detected; re-export the artifact to seal it",
            path,
            DIGEST_FIELD,
        )
        return
    if manifest_digest(raw) != manifest.manifest_sha256:
        raise ManifestError(
            str(path), DIGEST_FIELD, "does not match the manifest's content: it was edited after export; re-export it"
        )


def load_verified(directory: Path) -> tuple[Manifest, bytes]:
    """The verified manifest and the ONNX bytes it describes, read once and hashed (so what is
    checked is what is loaded)."""
    manifest = load_manifest(directory)
    model = read_artifact_file(directory, manifest.onnx_file, "onnx_file")
    if hashlib.sha256(model).hexdigest() != manifest.onnx_sha256:
        raise ManifestError(
            str(directory / MANIFEST_FILE), "onnx_sha256", f"does not match the sha256 of {manifest.onnx_file}"
        )
    return manifest, model


def verify_artifact(directory: Path) -> Manifest:
    """Load the manifest and check both digests (the manifest's own and the ONNX file's)."""
    return load_verified(directory)[0]


def write_json_schema(path: Path) -> None:
    """Write the manifest's JSON Schema (sorted keys, trailing newline) to ``path``."""
    path.write_text(json.dumps(manifest_json_schema(), indent=2, sort_keys=True) + "\n")
