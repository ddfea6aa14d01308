"""Fleet monitoring end to end: two `candor serve` replicas share a real redis-server, a real
Prometheus scrapes both every second and evaluates deploy/prometheus/rules.yml.

Predictions go to replica A, their labels to replica B (which finds them in Redis). The fleet ECE
recorded by the rules must equal ``calibration.metrics.ece`` on the same probabilities and labels
to 1e-9. The since-start rule sums the raw counters, so it is exact by construction. The 1-hour
rule uses increase(), whose extrapolation scales every series of one target by the same factor
when their first samples are 0 and they share scrape times: the labels are sent only after both
replicas were scraped with all-zero counters, and only B's counters move, so the factor cancels
between numerator and denominator and that rule is exact here too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import pytest
import yaml
from e2e_processes import REPO_ROOT, Replica, serve_replicas

from calibration.metrics import ece
from tests.service.monitor.monitor_procs import PrometheusServer, RedisServer, free_port
from training.data import load_digits

pytestmark = pytest.mark.e2e

MODEL = 'model="digits-cnn",version="1"'
PROMETHEUS_DIR = REPO_ROOT / "deploy" / "prometheus"
N_PREDICTIONS = 300
T = TypeVar("T")


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", free_port())
    server.directory.mkdir()
    yield server.start()
    server.stop()


def prometheus_config(targets: list[str]) -> str:
    """The repo's prometheus.yml with 1 s intervals, absolute rule paths and these targets."""
    config: dict[str, Any] = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["rule_files"] = [str(PROMETHEUS_DIR / name) for name in config["rule_files"]]
    (job,) = config["scrape_configs"]
    job["static_configs"] = [{"targets": targets}]
    return str(yaml.safe_dump(config))


@pytest.fixture
def fleet(
    digits_artifact, redis_server: RedisServer, tmp_path: Path
) -> Iterator[tuple[Replica, Replica, PrometheusServer]]:
    """Replicas A and B on the shared Redis, and Prometheus scraping both."""
    env = {"CANDOR_STORE_URL": redis_server.url}
    with serve_replicas(digits_artifact.models_dir, [env, env]) as (a, b):
        targets = [r.url.removeprefix("http://") for r in (a, b)]
        (tmp_path / "prometheus").mkdir()
        prometheus = PrometheusServer(tmp_path / "prometheus", [], config_text=prometheus_config(targets)).start()
        try:
            yield a, b, prometheus
        finally:
            prometheus.stop()


def query(prometheus: PrometheusServer, expr: str) -> float | None:
    """The single value of an instant query, or None while it has no result."""
    answer = prometheus.api("query", query=expr)
    assert answer["status"] == "success", answer
    result = answer["data"]["result"]
    return None if not result else float(result[0]["value"][1])


def wait_for(probe: Callable[[], T | None], what: str, timeout: float = 30.0) -> T:
    """Poll until ``probe`` returns something other than None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value is not None:
            return value
        time.sleep(0.25)
    raise TimeoutError(f"waited {timeout} s for {what}")


def predict(replica: Replica, images: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Probabilities (N, 10) and prediction ids from replica, 100 instances per request."""
    probs, ids = [], []
    for start in range(0, len(images), 100):
        response = httpx.post(
            f"{replica.url}/v1/models/digits-cnn:predict",
            timeout=30,
            json={"instances": images[start : start + 100].tolist()},
        )
        assert response.status_code == 200, response.text
        for p in response.json()["predictions"]:
            probs.append([p["probabilities"][str(k)] for k in range(10)])
            ids.append(p["prediction_id"])
    return np.array(probs), ids


def test_fleet_ece_from_the_recording_rules_equals_the_offline_ece(fleet) -> None:
    a, b, prometheus = fleet
    both_scraped = f"count(candor_calibration_bin_labeled_total{{{MODEL}}} == 0) == 30"
    wait_for(lambda: query(prometheus, both_scraped), "both replicas scraped with zero counters")

    digits = load_digits()
    images, truth = digits.test_x[:N_PREDICTIONS, 0], digits.test_y[:N_PREDICTIONS]
    probs, ids = predict(a, images)
    labels = [
        {"prediction_id": pid, "label": str(y) if i % 2 else int(y)}
        for i, (pid, y) in enumerate(zip(ids, truth, strict=True))
    ]
    counts = httpx.post(f"{b.url}/v1/feedback", json={"labels": labels}, timeout=30).json()
    assert counts == {"accepted": N_PREDICTIONS, "unknown": 0, "duplicate": 0, "expired": 0}
    offline = ece(probs, truth)

    labels_rule = f"model_version:candor_calibration_labels:since_start{{{MODEL}}}"
    wait_for(lambda: query(prometheus, f"{labels_rule} == {N_PREDICTIONS}"), "every label")
    time.sleep(2.5)  # two more evaluations: every rule of the group read the final samples
    ece_rule = "model_version:candor_calibration_ece_ratio:{}{{" + MODEL + "}}"
    since_start = query(prometheus, ece_rule.format("since_start"))
    last_hour = query(prometheus, ece_rule.format("1h"))
    print(f"\nfleet ECE since start {since_start!r}, last hour {last_hour!r}, offline {offline!r}")
    assert since_start is not None and abs(since_start - offline) < 1e-9
    assert last_hour is not None and abs(last_hour - offline) < 1e-9

    status_b = httpx.get(f"{b.url}/v1/models/digits-cnn/calibration").json()
    status_a = httpx.get(f"{a.url}/v1/models/digits-cnn/calibration").json()
    assert abs(status_b["since_start"]["ece"] - offline) < 1e-12  # B joined the labels
    assert status_a["since_start"]["labels"] == 0 and status_a["predictions_since_start"] == 300
