"""The unmodified Triton gRPC client against a real `candor serve` with CANDOR_GRPC_PORT set.

Health, metadata and infer with the bundled model through ``tritonclient.grpc``; bad input through
the client's own protocol stubs (tritonclient.grpc.service_pb2), which let a request carry what the
high-level client refuses to build (raw contents of the wrong size, two inputs...)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton
from e2e_processes import REPO_ROOT, free_port, serve_process
from hypothesis import given, settings
from hypothesis import strategies as st
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

pytestmark = pytest.mark.e2e
MODEL = "fashion-mnist-cnn"
TOKEN = "grpc-test-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}
OUTPUTS = ["probabilities", "label", "confidence", "prediction_id"]
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """The bundled model, token required for inference: (HTTP base URL, gRPC host:port)."""
    port = free_port()
    env = {
        "CANDOR_GRPC_PORT": str(port),
        "CANDOR_MAX_INSTANCES": "32",
        "CANDOR_AUTH_TOKEN": TOKEN,
        "CANDOR_AUTH_INFERENCE": "true",
        "CANDOR_STATE_DIR": str(tmp_path_factory.mktemp("grpc-state")),
    }
    with serve_process(REPO_ROOT / "models", env) as url:
        yield url, f"127.0.0.1:{port}"


@pytest.fixture(scope="module")
def client(servers: tuple[str, str]) -> Iterator[triton.InferenceServerClient]:
    c = triton.InferenceServerClient(servers[1])
    yield c
    c.close()


@pytest.fixture(scope="module")
def stub(servers: tuple[str, str]) -> Iterator[service_pb2_grpc.GRPCInferenceServiceStub]:
    with grpc.insecure_channel(servers[1]) as channel:
        yield service_pb2_grpc.GRPCInferenceServiceStub(channel)


def images(n: int, dtype: str = "float32", seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 1, 28, 28)).astype(dtype)


def infer(
    client: triton.InferenceServerClient, x: np.ndarray, outputs: list[str] = OUTPUTS, **kw
) -> triton.InferResult:
    tensor = triton.InferInput("images", list(x.shape), "UINT8" if x.dtype == np.uint8 else "FP32")
    tensor.set_data_from_numpy(x)
    requested = [triton.InferRequestedOutput(name) for name in outputs]
    return client.infer(MODEL, [tensor], outputs=requested, headers=kw.pop("headers", AUTH), **kw)


def http_probabilities(url: str, x: np.ndarray) -> np.ndarray:
    body = httpx.post(f"{url}/v1/models/{MODEL}:predict", json={"instances": x[:, 0].tolist()}, headers=AUTH)
    assert body.status_code == 200, body.text
    return np.array([list(p["probabilities"].values()) for p in body.json()["predictions"]])


def raw_request(x: np.ndarray, datatype: str = "FP32", shape: list[int] | None = None) -> service_pb2.ModelInferRequest:
    request = service_pb2.ModelInferRequest(model_name=MODEL)
    request.inputs.add(name="images", datatype=datatype, shape=list(x.shape) if shape is None else shape)
    request.raw_input_contents.append(x.tobytes())
    return request


def call_code(stub: service_pb2_grpc.GRPCInferenceServiceStub, request: service_pb2.ModelInferRequest) -> tuple:
    """(status code, details) of one raw ModelInfer call."""
    try:
        stub.ModelInfer(request, metadata=tuple(AUTH.items()), timeout=30)
    except grpc.RpcError as exc:
        return exc.code(), exc.details()
    return grpc.StatusCode.OK, ""


def test_health_and_server_metadata(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready()
    meta = client.get_server_metadata(as_json=True)
    assert meta["name"] == "candor" and meta["version"] == "0.1.0"


def test_model_metadata_and_readiness(client: triton.InferenceServerClient) -> None:
    meta = client.get_model_metadata(MODEL, as_json=True)
    assert meta["name"] == MODEL and meta["versions"] == ["1"] and meta["platform"] == "onnxruntime_onnx"
    assert meta["inputs"] == [{"name": "images", "datatype": "FP32", "shape": ["-1", "1", "28", "28"]}]
    assert [o["name"] for o in meta["outputs"]] == OUTPUTS
    assert client.get_model_metadata(MODEL, "1", as_json=True)["name"] == MODEL
    assert client.is_model_ready(MODEL) and client.is_model_ready(MODEL, "1")
    assert not client.is_model_ready("nope") and not client.is_model_ready(MODEL, "9")
    with pytest.raises(InferenceServerException) as info:
        client.get_model_metadata("nope")
    assert info.value.status() == "StatusCode.NOT_FOUND" and "unknown model 'nope'" in info.value.message()


def test_model_metadata_properties_carry_the_calibration(stub) -> None:
    """Triton's .proto has no ``properties`` (the protocol's field 6): decode the same bytes with the
    service's own generated messages, which load beside tritonclient's (a descriptor pool of their own)."""
    from service.grpc.stubs import load

    response = stub.ModelMetadata(service_pb2.ModelMetadataRequest(name=MODEL), timeout=10)
    meta = load().pb2.ModelMetadataResponse.FromString(response.SerializeToString())
    assert meta.name == MODEL and meta.properties["calibration_map"] == "temperature"
    assert meta.properties["execution_provider"] == "CPUExecutionProvider"
    assert json.loads(meta.properties["classes"]) == CLASSES and 0 <= float(meta.properties["reference_ece"]) <= 1


@pytest.mark.parametrize("dtype", ["float32", "uint8"])
def test_infer_equals_http_and_ids_are_accepted_as_feedback(client, servers, dtype: str) -> None:
    url, _ = servers
    x = images(5, dtype, seed=1)
    result = infer(client, x, request_id="req-7")
    probs = result.as_numpy("probabilities")
    assert probs.shape == (5, 10) and probs.dtype == np.float32
    np.testing.assert_allclose(probs, http_probabilities(url, x), atol=1e-6)
    assert [v.decode() for v in result.as_numpy("label")] == [CLASSES[k] for k in probs.argmax(axis=1)]
    np.testing.assert_array_equal(result.as_numpy("confidence"), probs.max(axis=1))
    ids = [v.decode() for v in result.as_numpy("prediction_id")]
    response = result.get_response()
    assert response.id == "req-7" and response.model_name == MODEL and response.model_version == "1"
    assert response.parameters["prediction_ids"].string_param.split(",") == ids and len(set(ids)) == 5
    labels = [{"prediction_id": i, "label": CLASSES[0]} for i in ids]
    feedback = httpx.post(f"{url}/v1/feedback", json={"labels": labels}, headers=AUTH).json()
    assert feedback["accepted"] == 5 and feedback["unknown"] == 0


def test_outputs_selection_in_the_order_asked(client) -> None:
    result = infer(client, images(2), ["confidence", "label"])
    assert [o.name for o in result.get_response().outputs] == ["confidence", "label"]
    assert result.as_numpy("probabilities") is None and result.as_numpy("confidence").shape == (2,)


def test_typed_contents_equal_raw_contents(stub) -> None:
    x = images(2, "uint8", seed=3)
    typed = service_pb2.ModelInferRequest(model_name=MODEL)
    tensor = typed.inputs.add(name="images", datatype="UINT8", shape=list(x.shape))
    tensor.contents.uint_contents.extend(x.reshape(-1).tolist())
    raw = stub.ModelInfer(raw_request(x, "UINT8"), metadata=tuple(AUTH.items()), timeout=30)
    by_contents = stub.ModelInfer(typed, metadata=tuple(AUTH.items()), timeout=30)
    assert by_contents.raw_output_contents[0] == raw.raw_output_contents[0]


@pytest.mark.parametrize(
    ("x", "datatype", "field"),
    [
        (images(1, "int32"), "INT32", "inputs[0].datatype"),
        (images(2)[:, :, :27], "FP32", "each instance must have shape [1, 28, 28]"),
        (images(33), "FP32", "33 instances exceed the limit of 32"),
        (np.full((1, 1, 28, 28), 300, np.float32), "FP32", "outside the input range"),
    ],
)
def test_bad_input_is_invalid_argument(client, x: np.ndarray, datatype: str, field: str) -> None:
    tensor = triton.InferInput("images", list(x.shape), datatype)
    tensor.set_data_from_numpy(x)
    with pytest.raises(InferenceServerException) as info:
        client.infer(MODEL, [tensor], headers=AUTH)
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT" and field in info.value.message()


def test_wrong_input_name_and_unknown_output(client) -> None:
    tensor = triton.InferInput("pixels", [1, 1, 28, 28], "FP32")
    tensor.set_data_from_numpy(images(1))
    with pytest.raises(InferenceServerException, match="input must be named 'images'") as info:
        client.infer(MODEL, [tensor], headers=AUTH)
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    with pytest.raises(InferenceServerException, match="unknown output 'logits'") as info:
        infer(client, images(1), ["logits"])
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"


def test_raw_content_of_the_wrong_size_and_other_malformed_requests(stub) -> None:
    x = images(2)
    assert call_code(stub, raw_request(x)) == (grpc.StatusCode.OK, "")
    short = raw_request(x)
    short.raw_input_contents[0] = x.tobytes()[:-4]
    code, details = call_code(stub, short)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("raw_input_contents[0]:")
    two = raw_request(x)
    two.inputs.add(name="images", datatype="FP32", shape=[2, 1, 28, 28])
    assert call_code(stub, two)[0] == grpc.StatusCode.INVALID_ARGUMENT
    empty = raw_request(x)
    del empty.raw_input_contents[:]
    code, details = call_code(stub, empty)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "fp32_contents" in details
    negative = raw_request(x, shape=[-1, 1, 28, 28])
    code, details = call_code(stub, negative)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("inputs[0].shape:")


@settings(max_examples=40, deadline=None)
@given(
    datatype=st.sampled_from(["FP32", "UINT8", "FP16", "INT64", "BYTES", "", "fp32"]),
    shape=st.lists(st.integers(-2, 40), max_size=5),
    size=st.integers(0, 8000),
    name=st.sampled_from(["images", "", "x"]),
)
def test_fuzzed_requests_answer_ok_or_invalid_argument(stub, datatype, shape, size, name) -> None:
    """Whatever the datatype, shape and raw size, never INTERNAL or UNKNOWN."""
    request = service_pb2.ModelInferRequest(model_name=MODEL)
    request.inputs.add(name=name, datatype=datatype, shape=shape)
    request.raw_input_contents.append(bytes(size))
    code, details = call_code(stub, request)
    assert code in (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT), (code, details)


def test_unknown_model_is_not_found(client) -> None:
    tensor = triton.InferInput("images", [1, 1, 28, 28], "FP32")
    tensor.set_data_from_numpy(images(1))
    with pytest.raises(InferenceServerException) as info:
        client.infer("nope", [tensor], headers=AUTH)
    assert info.value.status() == "StatusCode.NOT_FOUND" and "unknown model 'nope'" in info.value.message()
    with pytest.raises(InferenceServerException) as info:
        client.infer(MODEL, [tensor], model_version="9", headers=AUTH)
    assert info.value.status() == "StatusCode.NOT_FOUND"


@pytest.mark.parametrize("headers", [None, {"authorization": "Bearer wrong"}, {"authorization": TOKEN}])
def test_inference_without_the_token_is_unauthenticated(client, headers) -> None:
    with pytest.raises(InferenceServerException) as info:
        infer(client, images(1), headers=headers)
    assert info.value.status() == "StatusCode.UNAUTHENTICATED" and "Authorization" in info.value.message()
    assert TOKEN not in info.value.message()
    assert client.is_server_ready()  # health and metadata stay open, as over HTTP
