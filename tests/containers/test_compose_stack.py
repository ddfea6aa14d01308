"""The compose stack, brought up by podman-compose (Debian's 1.0.3) from docker-compose.yml as it is.

candor-a and candor-b run the image `make image` built; redis, prometheus and alertmanager are
stand-ins built from Debian's packages (redis 7.0, prometheus 2.42, alertmanager 0.25) and tagged
with the compose file's name and tag. A locally built image cannot carry the digest the compose file
pins (a digest is the hash of the registry's manifest), so an override file passed beside the
compose file (`-f`) names those three images by tag alone. Grafana has no Debian package and is
left out of `up`. Predictions go to candor-a, labels to candor-b; Prometheus, in its container,
scrapes both, and its recorded fleet ECE equals ``calibration.metrics.ece`` of the same stream.
"""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import pytest
import yaml

from calibration.metrics import ece
from tests.containers.podman_tools import REPO, Report, build_standin, engine_env, podman, timed
from tests.containers.serving import MODEL, predict
from training.data import load_fashion_mnist

pytestmark = pytest.mark.containers

COMPOSE_FILE = REPO / "docker-compose.yml"
PROJECT = "candor-ctest"
SERVICES = ["candor-a", "candor-b", "redis", "prometheus", "alertmanager"]  # grafana: no stand-in
STANDINS = {"redis": "redis", "prometheus": "prometheus", "alertmanager": "alertmanager"}
PORTS = {"candor-a": 8001, "candor-b": 8002, "prometheus": 9090, "alertmanager": 9093}
SELECTOR = f'model="{MODEL}",version="1"'
N_PREDICTIONS = 300
# The compose file refuses to start the replicas without a token (feedback and repository calls need it).
TOKEN = secrets.token_hex(32)
T = TypeVar("T")


def compose(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    cmd = ["podman-compose", "-p", PROJECT, *args]
    env = {**engine_env(), "CANDOR_AUTH_TOKEN": TOKEN}
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env, check=False)


def compose_services() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    return services


def standin_override(report: Report) -> dict[str, Any]:
    """Build each stand-in as the compose file's image name and tag; the override names them so."""
    services = {}
    with timed(report, "compose_standins_build_s"):
        for service, containerfile in STANDINS.items():
            tag = compose_services()[service]["image"].split("@", 1)[0]
            services[service] = {"image": build_standin(containerfile, tag)}
            report[f"{service}_standin_bytes"] = int(podman("image", "inspect", "--format", "{{.Size}}", tag).stdout)
    return {"services": services}


def require_free_ports() -> None:
    for port in PORTS.values():
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                pytest.fail(f"127.0.0.1:{port} is taken: the compose stack publishes {PORTS} there")


def wait_for(probe: Callable[[], T | None], what: str, timeout: float = 90.0) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = probe()
        except httpx.HTTPError:
            value = None
        if value is not None:
            return value
        time.sleep(0.5)
    raise TimeoutError(f"waited {timeout} s for {what}")


@pytest.fixture(scope="module")
def stack(serving_image: str, report: Report, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """`podman-compose up -d` of every service but grafana; `down -v` at the end (and before)."""
    override = tmp_path_factory.mktemp("compose") / "standins.yml"
    override.write_text(yaml.safe_dump(standin_override(report)))
    compose("down", "-v")
    require_free_ports()
    files = ["-f", str(COMPOSE_FILE), "-f", str(override)]
    try:
        with timed(report, "compose_up_s"):
            up = compose(*files, "up", "-d", "--no-build", *SERVICES)
            assert up.returncode == 0, up.stdout[-4000:] + up.stderr[-4000:]
            for name in ("candor-a", "candor-b"):
                wait_for(lambda n=name: ready(PORTS[n]), f"{name} ready")  # type: ignore[misc]
        yield
    finally:
        compose(*files, "down", "-v", "-t", "10")


def ready(port: int) -> bool | None:
    return httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2).json().get("ready") or None


def query(expr: str) -> float | None:
    """The single value of an instant query to the Prometheus container, or None without a result."""
    answer = httpx.get(f"http://127.0.0.1:{PORTS['prometheus']}/api/v1/query", params={"query": expr}, timeout=10)
    result = answer.json()["data"]["result"]
    return None if not result else float(result[0]["value"][1])


def test_fleet_ece_recorded_by_prometheus_equals_the_offline_ece(stack: None, report: Report) -> None:
    both_scraped = f"count(candor_calibration_bin_labeled_total{{{SELECTOR}}} == 0) == 30"
    wait_for(lambda: query(both_scraped), "both replicas scraped by the Prometheus container")
    data = load_fashion_mnist()
    images, truth = data.test_x[:N_PREDICTIONS, 0], data.test_y[:N_PREDICTIONS]
    classes = json.loads((REPO / "models" / MODEL / "1" / "manifest.json").read_text())["classes"]
    probs, ids = predict(f"http://127.0.0.1:{PORTS['candor-a']}", images, classes)
    labels = [{"prediction_id": pid, "label": int(y)} for pid, y in zip(ids, truth, strict=True)]
    feedback = f"http://127.0.0.1:{PORTS['candor-b']}/v1/feedback"
    refused = httpx.post(feedback, json={"labels": labels}, timeout=30)
    assert refused.status_code == 401, "the compose replicas must require the token for feedback"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    counts = httpx.post(feedback, json={"labels": labels}, headers=auth, timeout=30)
    assert counts.json() == {"accepted": N_PREDICTIONS, "unknown": 0, "duplicate": 0, "expired": 0}
    offline = ece(probs, np.asarray(truth))
    labels_rule = f"model_version:candor_calibration_labels:since_start{{{SELECTOR}}} == {N_PREDICTIONS}"
    with timed(report, "compose_rule_wait_s"):
        wait_for(lambda: query(labels_rule), "every label in the recording rules (15 s evaluation)")
    fleet = query(f"model_version:candor_calibration_ece_ratio:since_start{{{SELECTOR}}}")
    print(f"\nfleet ECE from the Prometheus container {fleet!r}, offline {offline!r}")
    assert fleet is not None and abs(fleet - offline) < 1e-9


def test_every_target_is_up_and_the_healthchecks_pass(stack: None) -> None:
    up = 'count(up{job=~"candor|alertmanager|prometheus"} == 1) == 4'
    wait_for(lambda: query(up), "candor-a, candor-b, alertmanager and prometheus up")
    for service in ("redis", "prometheus", "alertmanager"):
        result = podman("healthcheck", "run", f"{PROJECT}_{service}_1", check=False)
        assert result.returncode == 0, f"{service}: {result.stdout}{result.stderr}"
    # podman-compose 1.0.3 mangles the quoting of a CMD healthcheck with spaces in its arguments, so
    # the replicas' own command (the compose file's, the image's) is run as written instead.
    command = compose_services()["candor-a"]["healthcheck"]["test"][1:]
    for service in ("candor-a", "candor-b"):
        assert podman("exec", f"{PROJECT}_{service}_1", *command, check=False).returncode == 0, service


def test_prometheus_sends_to_the_alertmanager_container(stack: None) -> None:
    answer = httpx.get(f"http://127.0.0.1:{PORTS['prometheus']}/api/v1/alertmanagers", timeout=10).json()
    active = [a["url"] for a in answer["data"]["activeAlertmanagers"]]
    assert any("alertmanager:9093" in url for url in active), answer
    status = httpx.get(f"http://127.0.0.1:{PORTS['alertmanager']}/api/v2/status", timeout=10).json()
    assert {"oncall", "calibration"} <= set(receivers(status["config"]["original"]))


def receivers(config_text: str) -> list[str]:
    return [r["name"] for r in yaml.safe_load(config_text)["receivers"]]


def test_override_names_only_the_digest_pinned_images(tmp_path: Path) -> None:
    """The override drops digests and nothing else: the tags are the compose file's own."""
    for service in STANDINS:
        pinned = compose_services()[service]["image"]
        assert "@sha256:" in pinned and pinned.split("@", 1)[0].count(":") == 1
