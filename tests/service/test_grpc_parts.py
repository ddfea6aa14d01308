"""The gRPC package's parts in-process: stub generation, error mapping, tensor encoding, binding.
The protocol end to end (tritonclient.grpc against `candor serve`): tests/e2e/test_triton_grpc_client.py."""

from __future__ import annotations

import asyncio
import socket

import grpc
import numpy as np
import pytest
from pydantic import ValidationError
from tritonclient.utils import deserialize_bytes_tensor

from service.errors import ArtifactError, BadRequest, ModelNotFound, QueueFull, ServiceError, Unauthorized
from service.grpc import stubs
from service.grpc.server import build_server
from service.grpc.servicer import status_code
from service.grpc.tensors import input_array, raw_contents
from service.inference.repository import Repository
from service.monitor import StoreError
from service.settings import Settings


def test_stale_stubs_are_regenerated_from_the_committed_proto() -> None:
    stubs.load()
    stubs.STAMP.write_text("0" * 64 + "\n")
    assert not stubs.up_to_date()
    loaded = stubs.load()
    assert stubs.up_to_date() and stubs.STAMP.read_text().strip() == stubs.proto_digest()
    assert loaded.pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name == "inference.GRPCInferenceService"
    methods = {m.name for m in loaded.pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"].methods}
    assert methods == {"ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer"}


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (BadRequest("bad", field="inputs[0].shape"), grpc.StatusCode.INVALID_ARGUMENT),
        (ModelNotFound("no", field="model_name"), grpc.StatusCode.NOT_FOUND),
        (Unauthorized("token", field="Authorization"), grpc.StatusCode.UNAUTHENTICATED),
        (QueueFull("full", field="instances"), grpc.StatusCode.UNAVAILABLE),
        (StoreError("disk"), grpc.StatusCode.UNAVAILABLE),
        (ArtifactError("broken"), grpc.StatusCode.INTERNAL),
    ],
)
def test_errors_map_to_the_status_of_their_http_meaning(error: Exception, code: grpc.StatusCode) -> None:
    assert status_code(error) == code  # type: ignore[arg-type]


def test_bytes_outputs_use_the_layout_tritonclient_decodes() -> None:
    values = ["T-shirt/top", "", "Ankle boot", "é"]
    decoded = deserialize_bytes_tensor(raw_contents("BYTES", values))
    assert [v.decode() for v in decoded] == values
    probs = np.array([[0.25, 0.75]], dtype=np.float32)
    assert np.frombuffer(raw_contents("FP32", probs), "<f4").tolist() == [0.25, 0.75]


def test_input_array_names_the_field_of_each_problem() -> None:
    pb2 = stubs.load().pb2
    request = pb2.ModelInferRequest(model_name="m")
    request.inputs.add(name="images", datatype="FP32", shape=[1, 2])
    request.raw_input_contents.append(np.array([[1.0, 2.0]], "<f4").tobytes())
    assert input_array(request, "images", 4).tolist() == [[1.0, 2.0]]
    request.inputs[0].contents.fp32_contents.extend([1.0, 2.0])
    with pytest.raises(BadRequest, match="not both") as info:
        input_array(request, "images", 4)
    assert info.value.field == "inputs[0].contents"
    request.inputs[0].ClearField("contents")
    request.inputs[0].datatype = "UINT8"
    with pytest.raises(BadRequest) as info:
        input_array(request, "images", 4)
    assert info.value.field == "raw_input_contents[0]" and "needs 2 x 1 = 2" in info.value.message


def test_settings_refuse_a_grpc_port_outside_1_to_65535() -> None:
    assert Settings().grpc_port is None
    for port in (0, 65536):
        with pytest.raises(ValidationError, match="grpc_port"):
            Settings(grpc_port=port)


def test_a_port_in_use_is_a_service_error_naming_the_setting() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings = Settings(grpc_port=taken.getsockname()[1])

        async def bind() -> None:
            build_server(settings, Repository(), "0.1.0")

        with pytest.raises(ServiceError, match="cannot listen on 127.0.0.1:") as info:
            asyncio.run(bind())
    assert info.value.field == "CANDOR_GRPC_PORT"
