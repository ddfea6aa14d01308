"""The unmodified Triton HTTP client against a real `candor serve`: every call, JSON and binary."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from e2e_processes import serve_process
from model_copies import copy_version
from tritonclient.utils import InferenceServerException

from training.data import load_digits

pytestmark = pytest.mark.e2e
MODEL = "digits-cnn"
MODES = {"json": (False, False), "binary": (True, True), "binary-in-json-out": (True, False)}


@pytest.fixture(scope="module")
def server(digits_artifact, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Versions 1 and 2 of the digits model; max 32 instances per request."""
    models = tmp_path_factory.mktemp("triton") / "models"
    copy_version(digits_artifact.models_dir, models, MODEL, "1", "1")
    copy_version(digits_artifact.models_dir, models, MODEL, "1", "2")
    with serve_process(
        models, {"CANDOR_MAX_INSTANCES": "32", "CANDOR_STATE_DIR": str(tmp_path_factory.mktemp("triton-state"))}
    ) as url:
        yield url


@pytest.fixture(scope="module")
def client(server: str) -> Iterator[triton.InferenceServerClient]:
    c = triton.InferenceServerClient(server.removeprefix("http://"))
    yield c
    c.close()


def images(n: int, dtype: str = "float32") -> np.ndarray:
    return load_digits().test_x[:n].astype(dtype)  # (n, 1, 8, 8), values 0..255


def infer(
    client: triton.InferenceServerClient, x: np.ndarray, mode: str, outputs: list[str] | None = None, **kwargs: object
) -> triton.InferResult:
    binary_in, binary_out = MODES[mode]
    tensor = triton.InferInput("images", list(x.shape), "FP32" if x.dtype == np.float32 else "UINT8")
    tensor.set_data_from_numpy(x, binary_data=binary_in)
    requested = [
        triton.InferRequestedOutput(name, binary_data=binary_out)
        for name in (outputs or ["probabilities", "label", "confidence", "prediction_id"])
    ]
    return client.infer(MODEL, [tensor], outputs=requested, **kwargs)


def texts(values: np.ndarray) -> list[str]:
    """BYTES outputs: bytes when sent binary, str when sent as JSON (tritonclient's behaviour)."""
    return [v.decode() if isinstance(v, bytes) else v for v in values]


def v1_probabilities(server: str, x: np.ndarray) -> np.ndarray:
    body = httpx.post(f"{server}/v1/models/{MODEL}:predict", json={"instances": x.tolist()}).json()
    return np.array([list(p["probabilities"].values()) for p in body["predictions"]])


def test_server_health_and_metadata(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready()
    meta = client.get_server_metadata()
    assert meta["name"] == "candor" and "binary_tensor_data" in meta["extensions"]
    assert "model_repository" in meta["extensions"]


def test_model_metadata_and_readiness_unversioned_and_versioned(client: triton.InferenceServerClient) -> None:
    meta = client.get_model_metadata(MODEL)
    assert meta["versions"] == ["1", "2"] and meta["parameters"]["version"] == "2"
    assert meta["parameters"]["calibration_map"] == "temperature"
    assert 0 <= meta["parameters"]["reference_ece"] <= 1
    assert meta["parameters"]["execution_provider"] == "CPUExecutionProvider"
    assert [o["name"] for o in meta["outputs"]] == ["probabilities", "label", "confidence", "prediction_id"]
    assert client.get_model_metadata(MODEL, "1")["parameters"]["version"] == "1"
    assert client.is_model_ready(MODEL) and client.is_model_ready(MODEL, "1")
    assert not client.is_model_ready("nope") and not client.is_model_ready(MODEL, "9")


@pytest.mark.parametrize("mode", list(MODES))
def test_infer_returns_the_same_probabilities_as_v1(client, server: str, mode: str) -> None:
    x = images(6)
    result = infer(client, x, mode)
    probs = result.as_numpy("probabilities")
    assert probs.shape == (6, 10) and probs.dtype == np.float32
    np.testing.assert_allclose(probs, v1_probabilities(server, x[:, 0]), atol=1e-6)
    labels = texts(result.as_numpy("label"))
    assert labels == [str(k) for k in probs.argmax(axis=1)]
    np.testing.assert_allclose(result.as_numpy("confidence"), probs.max(axis=1))
    ids = texts(result.as_numpy("prediction_id"))
    assert len(set(ids)) == 6


@pytest.mark.parametrize("mode", ["json", "binary"])
def test_uint8_input_equals_fp32_input(client, mode: str) -> None:
    as_float = infer(client, images(3), mode, ["probabilities"]).as_numpy("probabilities")
    as_bytes = infer(client, images(3, "uint8"), mode, ["probabilities"]).as_numpy("probabilities")
    np.testing.assert_array_equal(as_float, as_bytes)


@pytest.mark.parametrize("mode", ["json", "binary"])
def test_outputs_selection_and_request_id(client, mode: str) -> None:
    result = infer(client, images(2), mode, ["confidence", "label"], request_id="req-42")
    response = result.get_response()
    assert response["id"] == "req-42"
    assert [o["name"] for o in response["outputs"]] == ["confidence", "label"]
    assert result.as_numpy("probabilities") is None


def test_default_outputs_are_all_binary(client) -> None:
    tensor = triton.InferInput("images", [2, 1, 8, 8], "FP32")
    tensor.set_data_from_numpy(images(2))
    result = client.infer(MODEL, [tensor])
    outputs = result.get_response()["outputs"]
    assert [o["name"] for o in outputs] == ["probabilities", "label", "confidence", "prediction_id"]
    assert all("binary_data_size" in o["parameters"] for o in outputs)
    assert result.as_numpy("probabilities").shape == (2, 10)


@pytest.mark.parametrize("mode", ["json", "binary"])
def test_versioned_infer(client, mode: str) -> None:
    binary_in, binary_out = MODES[mode]
    tensor = triton.InferInput("images", [1, 1, 8, 8], "FP32")
    tensor.set_data_from_numpy(images(1), binary_data=binary_in)
    result = client.infer(
        MODEL, [tensor], model_version="1", outputs=[triton.InferRequestedOutput("label", binary_data=binary_out)]
    )
    assert result.get_response()["model_version"] == "1"


@pytest.mark.parametrize("mode", ["json", "binary"])
@pytest.mark.parametrize(
    ("model", "x", "phrase"),
    [
        ("nope", images(1), "unknown model 'nope'"),
        (MODEL, images(2)[:, :, :4], "each instance must have shape [1, 8, 8]"),
        (MODEL, np.full((1, 1, 8, 8), 300, np.float32), "outside the input range"),
        (MODEL, images(33), "33 instances exceed the limit of 32 per request (max_instances)"),
    ],
)
def test_errors_surface_as_inference_server_exception(client, mode, model, x, phrase) -> None:
    binary_in, _ = MODES[mode]
    tensor = triton.InferInput("images", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=binary_in)
    with pytest.raises(InferenceServerException) as info:
        client.infer(model, [tensor])
    assert phrase in info.value.message()
    assert info.value.status() in ("400", "404")


def test_wrong_input_name_and_unknown_output(client) -> None:
    tensor = triton.InferInput("pixels", [1, 1, 8, 8], "FP32")
    tensor.set_data_from_numpy(images(1))
    with pytest.raises(InferenceServerException, match="input must be named 'images'"):
        client.infer(MODEL, [tensor])
    tensor = triton.InferInput("images", [1, 1, 8, 8], "FP32")
    tensor.set_data_from_numpy(images(1))
    with pytest.raises(InferenceServerException, match="unknown output 'logits'"):
        client.infer(MODEL, [tensor], outputs=[triton.InferRequestedOutput("logits")])
