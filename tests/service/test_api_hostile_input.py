"""Hostile input found by an adversarial run against the service (issue 16, item 6): every case
is a 4xx with ``{"error", "field"}``, never a 500."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from service.api.v2.tensors import split_body
from service.errors import BadRequest

PREDICT = "/v1/models/digits-cnn:predict"
INFER = "/v2/models/digits-cnn/infer"
LOAD = "/v2/repository/models/digits-cnn/load"
ROW = ", ".join(["0"] * 8)


def _deep(levels: int) -> str:
    return "[" * levels + "0" + "]" * levels


def _image(first: str) -> str:
    """An 8x8 image as JSON text whose first pixel is ``first`` (any JSON text) and the rest 0."""
    return "[[" + first + ", 0, 0, 0, 0, 0, 0, 0]" + f", [{ROW}]" * 7 + "]"


def _predict(first: str) -> str:
    return '{"instances": [' + _image(first) + "]}"


def _infer(first: str, shape: str = "[1, 8, 8]", outputs: str = "") -> str:
    data = "[" + first + ", " + ", ".join(["0"] * 63) + "]"
    tensor = f'{{"name": "images", "datatype": "FP32", "shape": {shape}, "data": {data}}}'
    return '{"inputs": [' + tensor + "]" + outputs + "}"


def _error(response, status: int = 400) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "field"} and body["error"], body
    return body


@pytest.mark.parametrize(
    ("url", "content"),
    [
        (PREDICT, '{"instances": ' + _deep(2000) + "}"),
        (INFER, '{"inputs": ' + _deep(2000) + "}"),
        (LOAD, '{"parameters": ' + _deep(2000) + "}"),
        (PREDICT, '{"instances": [' + _deep(100) + "]}"),  # within orjson's depth, beyond numpy's
        (INFER, _infer(_deep(100))),
    ],
    ids=["predict-2000", "infer-2000", "load-2000", "predict-100", "infer-100"],
)
def test_deeply_nested_json_is_a_400(client: TestClient, url: str, content: str) -> None:
    body = _error(client.post(url, content=content, headers={"content-type": "application/json"}))
    assert body["field"] in {"body", "instances", "inputs[0].data"}


@pytest.mark.parametrize(
    ("first", "phrase"),
    [
        ("1" + "0" * 400, "64-bit"),  # 10**400: no float64 holds it
        ("1" + "0" * 5000, "not valid JSON"),  # past Python's int_max_str_digits
        ("true", "boolean"),
        ("false", "boolean"),
        ('"3"', "string"),
        ("null", "null"),
        ("{}", "object"),
    ],
    ids=["10**400", "5000-digits", "true", "false", "string", "null", "object"],
)
@pytest.mark.parametrize("route", ["predict", "infer"])
def test_a_pixel_that_is_not_a_json_number_is_a_400(client: TestClient, route: str, first: str, phrase: str) -> None:
    url, content = (PREDICT, _predict(first)) if route == "predict" else (INFER, _infer(first))
    body = _error(client.post(url, content=content, headers={"content-type": "application/json"}))
    assert phrase in body["error"]
    if phrase not in {"64-bit", "not valid JSON"}:
        assert body["field"] == ("instances[0][0][0]" if route == "predict" else "inputs[0].data[0]")


def test_an_image_of_booleans_only_is_a_400(client: TestClient) -> None:
    content = json.dumps({"instances": [[[True] * 8] * 8]})
    body = _error(client.post(PREDICT, content=content, headers={"content-type": "application/json"}))
    assert body["field"] == "instances[0][0][0]" and "boolean" in body["error"]


def test_true_inside_a_string_elsewhere_does_not_refuse_numbers(client: TestClient) -> None:
    content = '{"instances": [' + _image("0") + '], "note": "true"}'
    assert client.post(PREDICT, content=content).status_code == 200


@pytest.mark.parametrize("value", ["\xb2", "\u0661", "\uff15", "-1", "1e3", " 5", ""])
def test_a_header_length_that_is_not_ascii_digits_is_a_400(value: str) -> None:
    """'²' (byte 0xB2, which Starlette decodes as latin-1) passes str.isdigit() but not int().
    Called directly: the test client re-encodes header values as UTF-8, so 0xB2 never arrives."""
    with pytest.raises(BadRequest) as info:
        split_body(_infer("0").encode(), value)
    assert info.value.field == "Inference-Header-Content-Length"


def test_a_non_ascii_header_length_over_http_is_a_400(client: TestClient) -> None:
    body = _error(client.post(INFER, content=_infer("0"), headers={"Inference-Header-Content-Length": "\xb2".encode()}))
    assert body["field"] == "Inference-Header-Content-Length"


@pytest.mark.parametrize("dims", [33, 65, 200])
def test_a_shape_with_too_many_dimensions_is_a_400(client: TestClient, dims: int) -> None:
    shape = json.dumps([1, *([1] * (dims - 3)), 8, 8])
    body = _error(client.post(INFER, content=_infer("0", shape)))
    assert body["field"] == "inputs[0].shape" and "32" in body["error"]


@pytest.mark.parametrize(
    ("outputs", "field"),
    [
        (', "outputs": [{"name": "label", "parameters": {"binary_data": "no"}}]', "outputs[0].parameters.binary_data"),
        (', "outputs": [{"name": "label", "parameters": {"binary_data": 1}}]', "outputs[0].parameters.binary_data"),
        (', "parameters": {"binary_data_output": "false"}', "parameters.parameters.binary_data_output"),
    ],
)
def test_binary_data_flags_must_be_booleans(client: TestClient, outputs: str, field: str) -> None:
    body = _error(client.post(INFER, content=_infer("0", outputs=outputs)))
    assert body["field"] == field and "true or false" in body["error"]


def test_binary_data_false_is_json(client: TestClient) -> None:
    outputs = ', "outputs": [{"name": "label", "parameters": {"binary_data": false}}]'
    response = client.post(INFER, content=_infer("0", outputs=outputs))
    assert response.status_code == 200 and response.json()["outputs"][0]["name"] == "label"


@pytest.mark.parametrize(
    ("method", "path", "status", "field"),
    [
        ("GET", "/no/such/path", 404, "path"),
        ("POST", "/v1/models", 404, "path"),
        ("GET", PREDICT, 405, "method"),
        ("GET", INFER, 405, "method"),
        ("DELETE", "/v2/health/ready", 405, "method"),
        ("GET", LOAD, 405, "method"),
    ],
)
def test_no_route_and_wrong_method_answer_the_error_body(
    client: TestClient, method: str, path: str, status: int, field: str
) -> None:
    response = client.request(method, path)
    body = _error(response, status)
    assert body["field"] == field and path in body["error"]
    if status == 405:
        assert response.headers["allow"]


@pytest.mark.parametrize("name", ["digits-cnn%0A", "digits-cnn%0D%0A", "Digits-cnn", "-x", "a.b%0A"])
def test_a_model_name_with_a_trailing_newline_or_bad_characters_is_not_valid(client: TestClient, name: str) -> None:
    body = _error(client.post(f"/v2/repository/models/{name}/load"), 404)
    assert body["field"] == "model_name" and "not a valid model name" in body["error"]
