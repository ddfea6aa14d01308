"""Response models and OpenAPI documentation of the V2 endpoints (the wire format is KServe V2)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from service.api.v2.tensors import INPUT_DTYPES, OUTPUTS
from service.inference.engine import Engine
from service.inference.repository import Repository


class ServerMetadata(BaseModel):
    """``GET /v2``."""

    name: str
    version: str
    extensions: list[str]


class TensorMetadata(BaseModel):
    """A tensor's name, datatype and shape (-1: any batch size)."""

    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(BaseModel):
    """``GET /v2/models/{m}[/versions/{v}]``."""

    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]
    parameters: dict[str, Any]


class ModelReady(BaseModel):
    """``GET /v2/models/{m}[/versions/{v}]/ready``."""

    name: str
    version: str
    ready: bool


class OutputTensor(BaseModel):
    """One output: ``data`` inline, or ``parameters.binary_data_size`` bytes after the header."""

    name: str
    datatype: str
    shape: list[int]
    data: list[float | str] | None = None
    parameters: dict[str, int] | None = None


class InferResponse(BaseModel):
    """``POST .../infer`` (JSON header; binary data, if asked for, follows it)."""

    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[OutputTensor]


def model_metadata_of(engine: Engine, repository: Repository) -> ModelMetadata:
    """Metadata from the manifest; parameters carry the map, reference figures and provider."""
    m = engine.manifest
    n_classes = len(m.classes)
    return ModelMetadata(
        name=m.name,
        versions=sorted(repository.models.get(m.name, {}), key=int),
        platform="onnxruntime_onnx",
        inputs=[TensorMetadata(name=m.input.name, datatype="FP32", shape=[-1, *map(_dim, m.input.shape[1:])])],
        outputs=[
            TensorMetadata(name="probabilities", datatype="FP32", shape=[-1, n_classes]),
            TensorMetadata(name="label", datatype="BYTES", shape=[-1]),
            TensorMetadata(name="confidence", datatype="FP32", shape=[-1]),
            TensorMetadata(name="prediction_id", datatype="BYTES", shape=[-1]),
        ],
        parameters={
            "version": m.version,
            "classes": m.classes,
            "input_datatypes": sorted(INPUT_DTYPES),
            "calibration_map": m.calibration.kind,
            "temperature": m.calibration.temperature,
            "gamma": m.calibration.gamma,
            "reference_ece": m.reference.ece,
            "reference_accuracy": m.reference.accuracy,
            "reference_n": m.reference.n,
            "execution_provider": engine.provider,
            "preprocessing": m.preprocessing.model_dump(),
        },
    )


def _dim(d: int | None) -> int:
    return -1 if d is None else d


_TENSOR_INPUT = {
    "type": "object",
    "required": ["name", "shape", "datatype"],
    "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 2},
        "datatype": {"type": "string", "enum": sorted(INPUT_DTYPES)},
        "data": {
            "type": "array",
            "description": "row-major values (flat or nested); omit when the tensor is sent as binary data",
        },
        "parameters": {"type": "object", "properties": {"binary_data_size": {"type": "integer"}}},
    },
}
_REQUESTED_OUTPUT = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "enum": list(OUTPUTS)},
        "parameters": {"type": "object", "properties": {"binary_data": {"type": "boolean"}}},
    },
}
INFER_REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["inputs"],
    "properties": {
        "id": {"type": "string"},
        "parameters": {"type": "object", "properties": {"binary_data_output": {"type": "boolean"}}},
        "inputs": {"type": "array", "minItems": 1, "maxItems": 1, "items": _TENSOR_INPUT},
        "outputs": {"type": "array", "minItems": 1, "items": _REQUESTED_OUTPUT},
    },
}
INFER_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": INFER_REQUEST_SCHEMA},
            "application/octet-stream": {
                "schema": {"type": "string", "format": "binary"},
                "description": "binary tensor data extension: Inference-Header-Content-Length "
                "bytes of JSON header, then the raw tensors",
            },
        },
    }
}
BINARY_OUTPUTS: dict[str, Any] = {
    "application/octet-stream": {
        "schema": {"type": "string", "format": "binary"},
        "description": "binary outputs requested: Inference-Header-Content-Length bytes of JSON header "
        "(InferResponse), then the raw tensors",
    }
}
INFER_ERRORS = (400, 401, 404, 408, 413, 503)
