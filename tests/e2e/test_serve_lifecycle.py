"""A real `candor serve` under stress: SIGTERM drains and exits 0, overload answers 200 or 503
and recovers at once, deadlines answer 503, the access log carries no payload and no token."""

from __future__ import annotations

import re
import signal
import threading
import time
from pathlib import Path
from urllib.parse import unquote

import httpx
import numpy as np
import pytest
from logged_server import logged_server as serve

pytestmark = pytest.mark.e2e
SLOW_MODEL = "slow"  # tests/e2e/conftest.py slow_models
BATCH = np.full((64, 8, 8), 128.0).tolist()
INFER = f"/v1/models/{SLOW_MODEL}:predict"


def fire(url: str, n: int, results: list[object], timeout: float = 30) -> list[threading.Thread]:
    """n concurrent predict requests in threads; each appends its response (or exception)."""

    def one() -> None:
        try:
            results.append(httpx.post(url + INFER, json={"instances": BATCH}, timeout=timeout))
        except httpx.HTTPError as exc:
            results.append(exc)

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    return threads


def wait_received(url: str, n: int, timeout: float = 30) -> int:
    """Until the server has received n predict requests (answered + in flight, the scrape excluded);
    returns how many were still in flight then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = httpx.get(url + "/metrics", timeout=5).text.splitlines()
        in_flight = next(float(x.split()[1]) for x in lines if x.startswith("candor_http_requests_in_flight ")) - 1
        answered = sum(
            float(x.split()[1]) for x in lines if x.startswith("candor_http_requests_total{") and ':predict"' in x
        )
        if in_flight + answered >= n:
            return int(in_flight)
        time.sleep(0.02)
    raise TimeoutError(f"the server never received {n} requests")


def test_sigterm_stops_accepting_drains_queued_requests_and_exits_0(slow_models: Path) -> None:
    results: list[object] = []
    with serve(slow_models, {"CANDOR_MAX_BATCH_SIZE": "64"}) as server:
        threads = fire(server.url, 6, results)
        wait_received(server.url, 6)  # all six reached the server: SIGTERM must drain what is left
        server.proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        with pytest.raises(httpx.ConnectError):
            httpx.get(server.url + "/v2/health/live", timeout=2)
        for t in threads:
            t.join()
        assert server.proc.wait(timeout=30) == 0, server.output()
        output = server.output()
    assert [getattr(r, "status_code", r) for r in results] == [200] * 6
    assert "Application shutdown complete" in output


def test_short_overload_answers_200_or_503_and_recovers_at_once(slow_models: Path) -> None:
    env = {"CANDOR_MAX_QUEUE_SIZE": "128", "CANDOR_MAX_INSTANCES": "64"}
    results: list[object] = []
    with serve(slow_models, env) as server:
        stop = time.monotonic() + 3.0

        def loop() -> None:
            with httpx.Client(timeout=30) as client:
                while time.monotonic() < stop:
                    results.append(client.post(server.url + INFER, json={"instances": BATCH}))

        threads = [threading.Thread(target=loop) for _ in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        started = time.monotonic()
        after = httpx.post(server.url + INFER, json={"instances": BATCH}, timeout=30)
        recovery = time.monotonic() - started
    statuses = [r.status_code for r in results]
    assert set(statuses) <= {200, 503} and 200 in statuses and 503 in statuses
    refused = next(r for r in results if r.status_code == 503)
    assert refused.headers["retry-after"] == "1" and "queue is full" in refused.json()["error"]
    assert after.status_code == 200 and recovery < 1.0


def test_deadline_answers_503_with_retry_after(slow_models: Path) -> None:
    """A 5 ms deadline against a model call of tens of milliseconds (one 64-row request per call):
    at least the requests queued behind the first one pass it, however fast the parsing."""
    results: list[object] = []
    with serve(slow_models, {"CANDOR_REQUEST_TIMEOUT_S": "0.005", "CANDOR_MAX_BATCH_SIZE": "64"}) as server:
        for t in fire(server.url, 6, results):
            t.join()
    statuses = [r.status_code for r in results]
    assert set(statuses) <= {200, 503} and 503 in statuses
    late = next(r for r in results if r.status_code == 503)
    assert "deadline" in late.json()["error"] and late.headers["retry-after"] == "1"


def test_access_log_shows_requests_without_payloads_or_the_token(slow_models: Path) -> None:
    token = "tok-e2e-very-secret"
    env = {"CANDOR_ACCESS_LOG": "true", "CANDOR_AUTH_TOKEN": token, "CANDOR_AUTH_INFERENCE": "true"}
    payload = {"instances": [[[123.4567] * 8] * 8]}
    with serve(slow_models, env) as server:
        refused = httpx.post(server.url + INFER, json=payload)
        served = httpx.post(server.url + INFER, json=payload, headers={"Authorization": f"Bearer {token}"})
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=30) == 0
        output = server.output()
    assert refused.status_code == 401 and served.status_code == 200 and token not in refused.text
    assert {("POST", INFER, 401), ("POST", INFER, 200)} <= access_log_requests(output)
    assert token not in output and "123.4567" not in output and "123.456" not in unquote(output)


def access_log_requests(output: str) -> set[tuple[str, str, int]]:
    """(method, path, status) of every access-log request line, the path unquoted: servers differ
    in what they percent-encode (uvicorn 0.54 wrote m%3Apredict, 0.55 writes m:predict)."""
    line = re.compile(r'"([A-Z]+) (\S+) HTTP/[0-9.]+" (\d{3})')
    return {(m[1], unquote(m[2]), int(m[3])) for m in line.finditer(output)}


@pytest.mark.parametrize(
    "log",
    [
        'INFO:     127.0.0.1:5 - "POST /v1/models/slow%3Apredict HTTP/1.1" 200 OK',
        'INFO:     127.0.0.1:5 - "POST /v1/models/slow:predict HTTP/1.1" 200 OK',
    ],
)
def test_access_log_reader_accepts_either_quoting(log: str) -> None:
    assert access_log_requests(log) == {("POST", "/v1/models/slow:predict", 200)}
