"""The request bodies of each kind (one image per request, UINT8 0..255) and the probabilities in
an answer; the same bytes are sent to Candor and to the peer.

Binary extension (Open Inference Protocol / Triton): ``Inference-Header-Content-Length: n``, n bytes
of JSON header, then the raw little-endian tensors; binary outputs follow the answer's JSON header
in the order of its ``outputs``, each ``parameters.binary_data_size`` bytes long.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.peers.base import GRPC, V1_JSON, V2_BINARY, V2_JSON

INPUT = "images"
OUTPUT = "probabilities"
HEADER_LENGTH = "Inference-Header-Content-Length"


@dataclass(frozen=True)
class Request:
    """An HTTP body and its headers (gRPC: ``body`` is the serialized ModelInferRequest)."""

    body: bytes
    headers: dict[str, str]


def fixed_images(n: int, seed: int = 0) -> np.ndarray:
    """``n`` fixed uint8 images [n, 1, 28, 28] (the answer check and the load use them)."""
    return np.random.default_rng(seed).integers(0, 256, size=(n, 1, 28, 28), dtype=np.uint8)


def v2_header(image: np.ndarray, binary: bool) -> dict[str, Any]:
    tensor: dict[str, Any] = {"name": INPUT, "shape": [1, *image.shape], "datatype": "UINT8"}
    if binary:
        tensor["parameters"] = {"binary_data_size": image.nbytes}
    else:
        tensor["data"] = image.ravel().tolist()
    output: dict[str, Any] = {"name": OUTPUT}
    if binary:
        output["parameters"] = {"binary_data": True}
    return {"inputs": [tensor], "outputs": [output]}


def build(kind: str, image: np.ndarray, model: str = "fashion-mnist-cnn") -> Request:
    """The request of ``kind`` carrying one image [1, 28, 28]."""
    json_headers = {"Content-Type": "application/json"}
    if kind == V1_JSON:
        return Request(json.dumps({"instances": [image[0].tolist()]}).encode(), json_headers)
    if kind == V2_JSON:
        return Request(json.dumps(v2_header(image, binary=False)).encode(), json_headers)
    if kind == V2_BINARY:
        header = json.dumps(v2_header(image, binary=True)).encode()
        headers = {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(len(header))}
        return Request(header + image.astype("<u1").tobytes(), headers)
    if kind == GRPC:
        return Request(grpc_request(image, model).SerializeToString(), {})
    raise ValueError(f"unknown kind {kind!r}")


def grpc_request(image: np.ndarray, model: str) -> Any:
    """A ModelInferRequest (tritonclient's messages: the same wire format as Candor's stubs)."""
    from tritonclient.grpc import service_pb2

    request = service_pb2.ModelInferRequest(model_name=model)
    tensor = request.inputs.add(name=INPUT, datatype="UINT8", shape=[1, *image.shape])
    del tensor
    request.outputs.add(name=OUTPUT)
    request.raw_input_contents.append(image.astype("<u1").tobytes())
    return request


def probabilities(kind: str, body: bytes, headers: dict[str, str]) -> np.ndarray:
    """The probabilities [N, C] in an answer of ``kind`` (KeyError/ValueError when absent)."""
    if kind == V1_JSON:
        predictions = json.loads(body)["predictions"]
        rows = [row_probabilities(p) for p in predictions]
        return np.asarray(rows, dtype=np.float64)
    if kind == GRPC:
        return grpc_probabilities(body)
    length = {k.lower(): v for k, v in headers.items()}.get(HEADER_LENGTH.lower())
    header = json.loads(body if length is None else body[: int(length)])
    offset = 0 if length is None else int(length)
    for output in header["outputs"]:
        size = int((output.get("parameters") or {}).get("binary_data_size", 0))
        if output["name"] == OUTPUT:
            data = np.frombuffer(body[offset : offset + size], "<f4") if size else np.asarray(output["data"])
            return np.asarray(data, dtype=np.float64).reshape(output["shape"])
        offset += size
    raise KeyError(f"no {OUTPUT!r} output in the answer")


def row_probabilities(prediction: Any) -> list[float]:
    """One V1 prediction's probabilities: a bare list (the peers), or Candor's object whose
    ``probabilities`` maps class names to values in the manifest's class order."""
    if not isinstance(prediction, dict):
        return list(prediction)
    values = prediction["probabilities"]
    return list(values.values()) if isinstance(values, dict) else list(values)


def grpc_probabilities(body: bytes) -> np.ndarray:
    """The probabilities in a serialized ModelInferResponse (raw or typed contents)."""
    from tritonclient.grpc import service_pb2

    response = service_pb2.ModelInferResponse.FromString(body)
    for i, output in enumerate(response.outputs):
        if output.name != OUTPUT:
            continue
        if len(response.raw_output_contents) > i:
            data = np.frombuffer(response.raw_output_contents[i], "<f4")
        else:
            data = np.asarray(output.contents.fp32_contents, dtype=np.float32)
        return np.asarray(data, dtype=np.float64).reshape(list(output.shape))
    raise KeyError(f"no {OUTPUT!r} output in the answer")
