"""POST /v1/feedback under concurrency: one bad label, or one failing write, fails only its own
request; every other request of the same group commit is answered and recorded (issue 16 item 2)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.monitor import Resolution, StoreError
from service.settings import Settings
from training.data import load_digits

URL = "/v1/feedback"
HUGE = 18446744073709551616  # 2**64: above what SQLite's INTEGER holds
N = 24


@pytest.fixture
def api(digits_artifact, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(models_dir=digits_artifact.models_dir, state_dir=tmp_path / "state")
    with TestClient(create_app(settings)) as client:
        yield client


def prediction_ids(api: TestClient, n: int) -> list[str]:
    response = api.post("/v1/models/digits-cnn:predict", json={"instances": load_digits().test_x[:n, 0].tolist()})
    assert response.status_code == 200, response.text
    return [p["prediction_id"] for p in response.json()["predictions"]]


def post_concurrently(api: TestClient, bodies: Sequence[dict[str, Any]]) -> list[httpx.Response]:
    """Every body posted at once from its own thread (one event loop serves them all)."""
    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        return list(pool.map(lambda body: api.post(URL, json=body), bodies))


def slow_store(api: TestClient, monkeypatch: pytest.MonkeyPatch, poison: str | None = None) -> list[int]:
    """Make each store join take 20 ms, so concurrent requests queue into groups; a join that
    holds ``poison`` fails as a full disk would. Returns the size of every join, as it happens."""
    store = api.app.state.monitoring.monitor.store
    real, sizes = store.resolve, []

    def resolve(labels: Sequence[tuple[str, int]], now: float) -> list[Resolution]:
        time.sleep(0.02)
        sizes.append(len(labels))
        if any(pid == poison for pid, _ in labels):
            raise StoreError("prediction store failed: database or disk is full")
        return list(real(labels, now))

    monkeypatch.setattr(store, "resolve", resolve)
    return sizes


def labelled_since_start(api: TestClient) -> int:
    count: int = api.get("/v1/models/digits-cnn/calibration").json()["since_start"]["labels"]
    return count


def test_a_huge_label_for_an_unloaded_version_is_a_400_and_its_neighbours_are_recorded(
    api: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A prediction of a version not loaded here cannot have its index checked against the
    classes; 2**64 reached SQLite, raised OverflowError (500) and failed the whole group."""
    api.app.state.monitoring.monitor.record_predictions("gone-model", "7", ["ghost"], [0.8], [2])
    ids = prediction_ids(api, N)
    sizes = slow_store(api, monkeypatch)
    bodies = [{"labels": [{"prediction_id": pid, "label": 3}]} for pid in ids]
    bodies.insert(N // 2, {"labels": [{"prediction_id": "ghost", "label": HUGE}]})
    responses = post_concurrently(api, bodies)
    huge = responses.pop(N // 2)
    assert huge.status_code == 400 and huge.json()["field"] == "labels[0].label"
    assert "between 0 and" in huge.json()["error"]
    assert [r.status_code for r in responses] == [200] * N
    assert all(r.json()["accepted"] == 1 for r in responses)
    assert max(sizes) > 1  # the requests did share joins
    assert labelled_since_start(api) == N


def test_a_write_failing_inside_a_group_fails_only_its_own_request(
    api: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = prediction_ids(api, N)
    sizes = slow_store(api, monkeypatch, poison=ids[N // 2])
    responses = post_concurrently(api, [{"labels": [{"prediction_id": pid, "label": 3}]} for pid in ids])
    statuses = [r.status_code for r in responses]
    assert statuses[N // 2] == 503 and "disk is full" in responses[N // 2].json()["error"]
    assert statuses[: N // 2] + statuses[N // 2 + 1 :] == [200] * (N - 1)
    assert max(sizes) > 1
    assert labelled_since_start(api) == N - 1


@pytest.mark.parametrize("offset", [0, 1])
def test_an_integer_valued_number_is_that_class_index(api: TestClient, offset: int) -> None:
    """JSON Schema counts 5.0 as an integer, so the documented schema accepts it: so does the service."""
    (pid,) = prediction_ids(api, 1)
    predicted = api.app.state.monitoring.monitor.lookup([pid])[pid].predicted
    label = float((predicted + offset) % 10)  # e.g. 5.0
    response = api.post(URL, json={"labels": [{"prediction_id": pid, "label": label}]})
    assert response.status_code == 200 and response.json()["accepted"] == 1
    figures = api.get("/v1/models/digits-cnn/calibration").json()["since_start"]
    assert figures["labels"] == 1 and figures["accuracy"] == 1.0 - offset


@pytest.mark.parametrize("label", [1.5, 1e300, -2.0, 2**31, HUGE])
def test_fractional_negative_and_huge_numbers_are_400_naming_the_label(api: TestClient, label: float) -> None:
    response = api.post(URL, json={"labels": [{"prediction_id": "p", "label": label}]})
    assert response.status_code == 400 and response.json()["field"] == "labels[0].label"


def test_the_documented_label_schema_bounds_the_class_index(api: TestClient) -> None:
    operation = api.get("/openapi.json").json()["paths"][URL]["post"]
    item = operation["requestBody"]["content"]["application/json"]["schema"]["properties"]["labels"]["items"]
    assert {"type": "integer", "minimum": 0, "maximum": 2**31 - 1} in item["properties"]["label"]["anyOf"]
