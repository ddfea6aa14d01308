"""Open Inference Protocol tensors: parse an infer request (JSON or binary extension), encode outputs.

Binary tensor data extension: with ``Inference-Header-Content-Length: L`` the body is L bytes of JSON
followed by raw little-endian tensors, each announced by ``parameters.binary_data_size`` in order.
Outputs are sent binary when asked per output (``parameters.binary_data``) or for all
(request ``parameters.binary_data_output``); BYTES elements are 4-byte little-endian length + data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from service.api.body import decode_json_object, numbers_array
from service.errors import BadRequest

INPUT_DTYPES: dict[str, np.dtype[Any]] = {"FP32": np.dtype("<f4"), "UINT8": np.dtype("u1")}
OUTPUTS = ("probabilities", "label", "confidence", "prediction_id")
HEADER_LENGTH = "inference-header-content-length"
MAX_DIMS = 32  # numpy holds at most 64; no model input needs more than a handful


@dataclass(frozen=True, slots=True)
class RequestedOutput:
    """One output to return and whether its data goes in the binary section."""

    name: str
    binary: bool


@dataclass(frozen=True, slots=True)
class InferRequest:
    """A parsed request: its id, the raw input tensor (N, ...) and the outputs to return."""

    id: str | None
    input: NDArray[np.float64]
    outputs: tuple[RequestedOutput, ...]


def split_body(body: bytes, header_length: str | None) -> tuple[dict[str, Any], bytes]:
    """The JSON header (whole body without the extension header) and the binary section."""
    if header_length is None:
        return decode_json_object(body), b""
    if not (header_length.isascii() and header_length.isdigit()) or int(header_length) > len(body):
        raise BadRequest(
            f"Inference-Header-Content-Length {header_length!r} is not a length within the {len(body)}-byte body",
            field="Inference-Header-Content-Length",
        )
    cut = int(header_length)
    return decode_json_object(body[:cut]), body[cut:]


def parse_infer_request(
    header: dict[str, Any], binary: bytes, input_name: str, max_instances: int, booleans: bool = True
) -> InferRequest:
    """Validate the header against the protocol and our model's single input (``booleans``: whether
    JSON true / false may be among the data, service.api.body.may_hold_booleans)."""
    request_id = header.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest("must be a string", field="id")
    params = _parameters(header, "parameters")
    inputs = header.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1:
        raise BadRequest(f"must be a list holding exactly one input tensor named '{input_name}'", field="inputs")
    tensor = read_input(_object(inputs[0], "inputs[0]"), binary, input_name, max_instances, booleans)
    outputs = requested_outputs(header.get("outputs"), _flag(params, "binary_data_output", False, "parameters"))
    return InferRequest(request_id, tensor, outputs)


def read_input(
    spec: dict[str, Any], binary: bytes, input_name: str, max_instances: int, booleans: bool = True
) -> NDArray[np.float64]:
    """The input tensor as float64 of its declared shape, from ``data`` or the binary section."""
    field = "inputs[0]"
    if spec.get("name") != input_name:
        raise BadRequest(f"input must be named '{input_name}', got {spec.get('name')!r}", field=f"{field}.name")
    dtype = INPUT_DTYPES.get(str(spec.get("datatype")))
    if dtype is None:
        raise BadRequest(
            f"datatype must be one of {sorted(INPUT_DTYPES)}, got {spec.get('datatype')!r}", field=f"{field}.datatype"
        )
    shape = _shape(spec.get("shape"), f"{field}.shape", max_instances)
    params = _parameters(spec, f"{field}.parameters")
    if "shared_memory_region" in params:
        raise BadRequest("shared memory is not supported", field=f"{field}.parameters")
    if "binary_data_size" in params:
        flat = _binary_values(params["binary_data_size"], binary, dtype, shape, field)
    else:
        if binary:
            raise BadRequest(
                f"{len(binary)} bytes follow the header but no input announces binary_data_size",
                field=f"{field}.parameters.binary_data_size",
            )
        flat = _json_values(spec.get("data"), dtype, shape, f"{field}.data", booleans)
    return flat.reshape(shape).astype(np.float64, copy=False)


def _shape(value: Any, field: str, max_instances: int) -> tuple[int, ...]:
    """A shape [N, ...] of positive ints with N within the per-request limit."""
    if (
        not isinstance(value, list)
        or not 2 <= len(value) <= MAX_DIMS
        or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in value)
    ):
        raise BadRequest(f"must be a list of 2 to {MAX_DIMS} positive integers [N, ...]", field=field)
    if value[0] > max_instances:
        raise BadRequest(
            f"{value[0]} instances exceed the limit of {max_instances} per request (max_instances)", field=field
        )
    if math.prod(value) > 1 << 28:
        raise BadRequest(f"shape {value} is too large", field=field)
    return tuple(value)


def _binary_values(size: Any, binary: bytes, dtype: np.dtype[Any], shape: tuple[int, ...], field: str) -> NDArray[Any]:
    expected = math.prod(shape) * dtype.itemsize
    if not isinstance(size, int) or size != expected or len(binary) != size:
        raise BadRequest(
            f"binary_data_size must equal shape x {dtype.itemsize} bytes = {expected} "
            f"and the {len(binary)} bytes after the header, got {size!r}",
            field=f"{field}.parameters.binary_data_size",
        )
    return np.frombuffer(binary, dtype=dtype)


def _json_values(data: Any, dtype: np.dtype[Any], shape: tuple[int, ...], field: str, booleans: bool) -> NDArray[Any]:
    """Flat (or nested, row-major) JSON numbers, as many as the shape holds."""
    if not isinstance(data, list):
        raise BadRequest("must be a list of numbers (or send the tensor as binary data)", field=field)
    flat = numbers_array(data, field, booleans).reshape(-1)
    if flat.size != math.prod(shape):
        raise BadRequest(f"holds {flat.size} values but shape {list(shape)} needs {math.prod(shape)}", field=field)
    if dtype == np.uint8 and flat.size and (flat.min() < 0 or flat.max() > 255 or (flat % 1).any()):
        raise BadRequest("UINT8 values must be integers in [0, 255]", field=field)
    return flat


def requested_outputs(value: Any, binary_default: bool) -> tuple[RequestedOutput, ...]:
    """The outputs asked for (all four when absent), each with its binary flag."""
    if value is None:
        return tuple(RequestedOutput(name, binary_default) for name in OUTPUTS)
    if not isinstance(value, list) or not value:
        raise BadRequest(f"must be a non-empty list of outputs from {list(OUTPUTS)}", field="outputs")
    chosen = []
    for i, item in enumerate(value):
        spec = _object(item, f"outputs[{i}]")
        if spec.get("name") not in OUTPUTS:
            raise BadRequest(
                f"unknown output {spec.get('name')!r}; outputs are {list(OUTPUTS)}", field=f"outputs[{i}].name"
            )
        flag = _flag(_parameters(spec, f"outputs[{i}].parameters"), "binary_data", binary_default, f"outputs[{i}]")
        chosen.append(RequestedOutput(str(spec["name"]), flag))
    return tuple(chosen)


def _object(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest(f"must be a JSON object, got {type(value).__name__}", field=field)
    return value


def _flag(params: dict[str, Any], name: str, default: bool, field: str) -> bool:
    """A boolean parameter: JSON true or false only (never "no" read as true)."""
    value = params.get(name, default)
    if not isinstance(value, bool):
        raise BadRequest(f"must be true or false, got {value!r:.40}", field=f"{field}.parameters.{name}")
    return value


def _parameters(spec: dict[str, Any], field: str) -> dict[str, Any]:
    value = spec.get("parameters", {})
    return _object(value if value is not None else {}, field)


def output_tensors(
    probs: NDArray[np.float32], classes: list[str], ids: list[str]
) -> dict[str, tuple[str, NDArray[Any] | list[str]]]:
    """name -> (datatype, values) for every output; BYTES values as Python strings."""
    top = probs.argmax(axis=1)
    return {
        "probabilities": ("FP32", probs),
        "label": ("BYTES", [classes[int(k)] for k in top]),
        "confidence": ("FP32", probs[np.arange(len(probs)), top]),
        "prediction_id": ("BYTES", ids),
    }


def encode_response(
    meta: dict[str, Any], tensors: dict[str, tuple[str, NDArray[Any] | list[str]]], outputs: tuple[RequestedOutput, ...]
) -> tuple[bytes, int | None]:
    """The body and, when any output is binary, the JSON header's length."""
    entries, blobs = [], []
    for out in outputs:
        datatype, values = tensors[out.name]
        entry: dict[str, Any] = {"name": out.name, "datatype": datatype, "shape": _shape_of(values)}
        if out.binary:
            blob = _to_bytes(datatype, values)
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = values if isinstance(values, list) else values.reshape(-1)
        entries.append(entry)
    header = orjson.dumps({**meta, "outputs": entries}, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return header, None
    return b"".join([header, *blobs]), len(header)


def _shape_of(values: NDArray[Any] | list[str]) -> list[int]:
    return [len(values)] if isinstance(values, list) else list(values.shape)


def _to_bytes(datatype: str, values: NDArray[Any] | list[str]) -> bytes:
    """Raw little-endian FP32, or BYTES as 4-byte length-prefixed UTF-8 elements."""
    if isinstance(values, list):
        parts = [s.encode() for s in values]
        return b"".join(len(p).to_bytes(4, "little") + p for p in parts)
    return np.ascontiguousarray(values, dtype="<f4").tobytes()
