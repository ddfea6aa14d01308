"""A real `candor serve` against clients that trickle their bodies or leave in the middle of one
(issue 16 items 1 and 7): 408 within the body timeout, no queue place held meanwhile, 499 counted."""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from e2e_processes import REPO_ROOT
from logged_server import LoggedServer, logged_server
from raw_http import closed_by_server, connect, read_response, request_head

pytestmark = pytest.mark.e2e
PREDICT = "/v1/models/fashion-mnist-cnn:predict"
ROUTE = "/v1/models/{model_name}:predict"
INSTANCE = {"instances": [[[0] * 28] * 28]}
BODY_TIMEOUT_S = 2.0
TRICKLERS = 6  # more than the queue's 4 places


@pytest.fixture(scope="module")
def server() -> Iterator[LoggedServer]:
    env = {
        "CANDOR_MAX_QUEUE_SIZE": "4",
        "CANDOR_MAX_INSTANCES": "4",
        "CANDOR_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S),
    }
    with logged_server(REPO_ROOT / "models", env) as served:
        yield served


def trickle(socks: list[socket.socket], stop: threading.Event, gap_s: float = 0.25) -> None:
    """Send one body byte to each socket every ``gap_s`` until it is answered (or ``stop``)."""
    live = list(socks)
    while live and not stop.is_set():
        answered, _, _ = select.select(live, [], [], 0)
        live = [s for s in live if s not in answered]
        for sock in live:
            try:
                sock.sendall(b" ")
            except OSError:
                live.remove(sock)
        time.sleep(gap_s)


def metric(url: str, name: str, **labels: str) -> float:
    """The first sample of ``name`` on the server's /metrics carrying ``labels`` (0 when absent)."""
    for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
        sample = line.split("{")[0].split(" ")[0]
        if sample == name and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.split()[-1])
    return 0.0


def test_trickled_bodies_get_408_and_keep_no_predict_out_meanwhile(server: LoggedServer) -> None:
    socks = [connect(server.url) for _ in range(TRICKLERS)]
    for sock in socks:
        sock.sendall(request_head(PREDICT, 10_000, server.url) + b'{"instances": ')
    stop = threading.Event()
    trickler = threading.Thread(target=trickle, args=(socks, stop))
    trickler.start()
    statuses = []
    try:
        with httpx.Client(timeout=30) as client:
            until = time.monotonic() + BODY_TIMEOUT_S / 2  # all six bodies still arriving
            while time.monotonic() < until:
                statuses.append(client.post(server.url + PREDICT, json=INSTANCE).status_code)
        assert statuses and set(statuses) == {200}, statuses  # no 503 "queue is full" behind the tricklers
        answers = [read_response(sock) for sock in socks]
    finally:
        stop.set()
        trickler.join()
    for answer in answers:
        assert answer.status == 408 and answer.closes
        assert answer.json()["field"] == "body" and "did not arrive" in answer.json()["error"]
    assert all(closed_by_server(sock) for sock in socks)
    for sock in socks:
        sock.close()
    assert metric(server.url, "candor_http_requests_total", route=ROUTE, method="POST", status="408") == TRICKLERS
    assert metric(server.url, "candor_http_requests_in_flight") == 1  # only the scrape: every slot freed
    assert httpx.post(server.url + PREDICT, json=INSTANCE, timeout=30).status_code == 200


def test_a_client_gone_mid_body_is_counted_499_not_500_and_logs_no_traceback(server: LoggedServer) -> None:
    before = metric(server.url, "candor_http_requests_total", route=ROUTE, method="POST", status="499")
    with connect(server.url) as sock:
        sock.sendall(request_head(PREDICT, 10_000, server.url) + b'{"instances": [[[0, 0')
        time.sleep(0.2)  # the handler is reading the body
    deadline = time.monotonic() + 10
    while metric(server.url, "candor_http_requests_total", route=ROUTE, method="POST", status="499") == before:
        assert time.monotonic() < deadline, "the disconnect was never counted"
        time.sleep(0.05)
    assert metric(server.url, "candor_http_requests_total", route=ROUTE, method="POST", status="500") == 0
    output = server.output()
    assert "Traceback" not in output and "Exception in ASGI application" not in output
