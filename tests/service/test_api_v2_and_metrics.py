"""V2 health and metadata, /metrics exposition, and the service staying torch-free."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_health(client: TestClient) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}


def test_model_metadata_reports_map_reference_and_provider(client: TestClient) -> None:
    body = client.get("/v2/models/digits-cnn").json()
    assert body["name"] == "digits-cnn" and body["versions"] == ["1"]
    assert body["inputs"][0] == {"name": "images", "datatype": "FP32", "shape": [-1, 1, 8, 8]}
    params = body["parameters"]
    assert params["calibration_map"] == "temperature" and params["temperature"] > 0
    assert 0 <= params["reference_ece"] <= 1
    assert params["execution_provider"] == "CPUExecutionProvider"
    assert client.get("/v2/models/nope").status_code == 404


def test_metrics_count_requests_by_route_template(client: TestClient) -> None:
    client.post("/v1/models/digits-cnn:predict", json={"instances": []})
    text = client.get("/metrics").text
    assert 'candor_http_requests_total{method="POST",route="/v1/models/{model_name}:predict",status="400"}' in text
    assert "candor_http_request_duration_seconds_bucket" in text
    assert client.get("/metrics").status_code == 200  # no 307 redirect to /metrics/


def test_importing_the_service_does_not_import_torch() -> None:
    code = (
        "import sys, service.app, service.cli, candor.cli; "
        "candor.cli.build_parser(); assert 'torch' not in sys.modules, 'torch imported'"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_ready_is_503_when_no_model_is_loaded(tmp_path: Path) -> None:
    from service.app import create_app
    from service.settings import Settings

    with TestClient(create_app(Settings(models_dir=tmp_path, state_dir=tmp_path / "state"))) as empty:
        response = empty.get("/v2/health/ready")
    assert response.status_code == 503 and response.json() == {"ready": False}
    assert response.headers["content-type"] == "application/json"
