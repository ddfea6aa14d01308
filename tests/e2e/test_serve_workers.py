"""`candor serve --workers 2` end to end: real processes on one port (SO_REUSEPORT), one monitor
across them (labels for any worker's predictions accepted by either; /metrics the same whichever
worker answers), kill -9 of a worker (restarted, nothing answered lost), SIGTERM drain, and the
store still refused to an independent second serve."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest
import tritonclient.grpc as triton
from child_process import stop
from e2e_processes import REPO_ROOT, free_port, serve_command, wait_ready

from calibration.metrics import ece
from training.data import load_digits

pytestmark = pytest.mark.e2e

BIN_LINE = re.compile(r"^candor_calibration_bin_(labeled|confidence|correct)_total\{(.*)\} (\S+)$", re.M)


@dataclass
class Fleet:
    url: str
    proc: subprocess.Popen[str]
    state: Path

    def workers(self) -> list[int]:
        """The supervisor's child processes (its workers)."""
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        return sorted(int(pid) for pid in children)


@contextmanager
def serve_workers(
    models_dir: Path, state: Path, n: int = 2, env_extra: dict[str, str] | None = None
) -> Iterator[Fleet]:
    port = free_port()
    env = {**os.environ, "CANDOR_STATE_DIR": str(state), "CANDOR_MAX_BATCH_SIZE": "64", **(env_extra or {})}
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(
            [*serve_command(port, models_dir), "--workers", str(n)],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        fleet = Fleet(f"http://127.0.0.1:{port}", proc, state)
        try:
            wait_ready(fleet.url, proc, log, 60.0)
            wait_for_workers(fleet, n)
            yield fleet
        finally:
            stop(proc)
            log.seek(0)
            print(log.read())


def wait_for_workers(fleet: Fleet, n: int, old: frozenset[int] = frozenset(), timeout: float = 60.0) -> list[int]:
    """Wait until the supervisor has n workers, none of them in ``old``, each listening on the
    port (a worker still loading would leave every connection to the others) and answering."""
    port = int(fleet.url.rpartition(":")[2])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = fleet.workers()
        try:
            listening = all(port in listening_ports(pid) for pid in pids)
        except psutil.NoSuchProcess:
            listening = False
        if len(pids) == n and not set(pids) & old and listening and all_ready(fleet.url):
            return pids
        time.sleep(0.2)
    raise TimeoutError(f"{n} workers not running after {timeout} s")


def all_ready(url: str, tries: int = 12) -> bool:
    """Ready on every one of ``tries`` fresh connections (they reach random workers)."""
    try:
        return all(httpx.get(f"{url}/v2/health/ready", timeout=2).json().get("ready") for _ in range(tries))
    except httpx.HTTPError:
        return False


def listening_ports(pid: int) -> set[int]:
    return {c.laddr.port for c in psutil.Process(pid).net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN}


def predict(url: str, images: np.ndarray, per_request: int = 10) -> tuple[list[list[float]], list[str]]:
    """Probabilities and ids; each request on a fresh connection (the kernel picks the worker)."""
    probs, ids = [], []
    for start in range(0, len(images), per_request):
        response = httpx.post(
            f"{url}/v1/models/digits-cnn:predict", json={"instances": images[start : start + per_request].tolist()}
        )
        assert response.status_code == 200, response.text
        for p in response.json()["predictions"]:
            probs.append([p["probabilities"][str(k)] for k in range(10)])
            ids.append(p["prediction_id"])
    return probs, ids


def send_labels(url: str, ids: list[str], truth: np.ndarray, per_request: int = 10) -> dict[str, int]:
    total = {"accepted": 0, "unknown": 0, "duplicate": 0, "expired": 0}
    for start in range(0, len(ids), per_request):
        labels = [{"prediction_id": pid, "label": int(y)} for pid, y in zip(ids, truth, strict=False)][
            start : start + per_request
        ]
        counts = httpx.post(f"{url}/v1/feedback", json={"labels": labels}, timeout=30).json()
        for key in total:
            total[key] += counts[key]
    return total


def scrape_bins(url: str) -> dict[tuple[str, str], float]:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return {(part, labels): float(value) for part, labels, value in BIN_LINE.findall(text)}


def metrics_ece(bins: dict[tuple[str, str], float]) -> float:
    keys = sorted({labels for _, labels in bins})
    gap = sum(abs(bins[("confidence", k)] - bins[("correct", k)]) for k in keys)
    return gap / sum(bins[("labeled", k)] for k in keys)


def counter(url: str, name: str, labels: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    match = re.search(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} (\S+)$", text, re.M)
    return 0.0 if match is None else float(match.group(1))


def test_two_workers_share_one_store_and_one_monitor(digits_artifact, tmp_path: Path) -> None:
    digits = load_digits()
    images, truth = digits.test_x[:200, 0], digits.test_y[:200]
    grpc_port = free_port()
    env = {"CANDOR_GRPC_PORT": str(grpc_port)}
    with serve_workers(digits_artifact.models_dir, tmp_path / "state", env_extra=env) as fleet:
        http_port = int(fleet.url.rpartition(":")[2])
        for pid in fleet.workers():  # both workers serve both ports (SO_REUSEPORT)
            assert {http_port, grpc_port} <= listening_ports(pid)
        probs, ids = predict(fleet.url, images)
        db = fleet.state / "predictions.db"
        served = [{line.split(b'"')[1] for line in Path(f"{db}.pending.{s}").read_bytes().splitlines()} for s in (0, 1)]
        assert served[0] and served[1], "both workers answered predictions"
        assert served[0] | served[1] == {pid.encode() for pid in ids}
        assert send_labels(fleet.url, ids, truth) == {"accepted": 200, "unknown": 0, "duplicate": 0, "expired": 0}
        scrapes = [scrape_bins(fleet.url) for _ in range(8)]  # fresh connections: both workers answer
        assert all(s == scrapes[0] for s in scrapes) and len(scrapes[0]) == 45
        assert metrics_ece(scrapes[0]) == pytest.approx(ece(np.array(probs), truth), abs=1e-9)
        status = httpx.get(f"{fleet.url}/v1/models/digits-cnn/calibration").json()
        assert status["since_start"]["labels"] == 200 and status["predictions_since_start"] == 200
        assert status["since_start"]["ece"] == pytest.approx(metrics_ece(scrapes[0]), abs=1e-12)
        route = 'method="POST",route="/v1/models/{model_name}:predict",status="200"'
        assert {counter(fleet.url, "candor_http_requests_total", route) for _ in range(6)} == {20.0}
        assert {counter(fleet.url, "candor_feedback_labels_total", 'outcome="accepted"') for _ in range(6)} == {200.0}
        grpc_ids = []
        for start in range(0, 40, 5):  # a fresh gRPC connection each time: either worker answers
            client = triton.InferenceServerClient(f"127.0.0.1:{grpc_port}")
            x = images[start : start + 5, None].astype(np.float32)
            tensor = triton.InferInput("images", list(x.shape), "FP32")
            tensor.set_data_from_numpy(x)
            result = client.infer("digits-cnn", [tensor], outputs=[triton.InferRequestedOutput("prediction_id")])
            grpc_ids += [v.decode() for v in result.as_numpy("prediction_id")]
            client.close()
        assert send_labels(fleet.url, grpc_ids, truth[:40])["accepted"] == 40


def test_kill_9_of_a_worker_loses_nothing_answered_and_it_is_restarted(digits_artifact, tmp_path: Path) -> None:
    digits = load_digits()
    images, truth = digits.test_x[:300, 0], digits.test_y[:300]
    with serve_workers(digits_artifact.models_dir, tmp_path / "state") as fleet:
        _, first = predict(fleet.url, images[:100])
        assert send_labels(fleet.url, first, truth[:100])["accepted"] == 100
        before = scrape_bins(fleet.url)
        answered: list[tuple[str, int]] = []
        stop_traffic = threading.Event()

        def traffic() -> None:
            i = 0
            while not stop_traffic.is_set():
                k = 100 + i % 200
                try:
                    r = httpx.post(
                        f"{fleet.url}/v1/models/digits-cnn:predict", json={"instances": [images[k].tolist()]}
                    )
                except httpx.HTTPError:
                    continue  # a connection to the killed worker
                if r.status_code == 200:
                    answered.append((r.json()["predictions"][0]["prediction_id"], int(truth[k])))
                i += 1

        thread = threading.Thread(target=traffic)
        thread.start()
        time.sleep(1.0)
        old = fleet.workers()
        os.kill(old[0], signal.SIGKILL)
        time.sleep(0.5)
        restarted = wait_for_workers(fleet, 2, frozenset({old[0]}))
        time.sleep(0.5)
        stop_traffic.set()
        thread.join()
        assert old[1] in restarted and len(answered) > 0
        ids, labels = [pid for pid, _ in answered], np.array([y for _, y in answered])
        got = send_labels(fleet.url, ids, labels)
        assert got == {"accepted": len(ids), "unknown": 0, "duplicate": 0, "expired": 0}  # every 200 was stored
        after = scrape_bins(fleet.url)
        assert all(after[k] >= before[k] for k in before)  # counters did not go backwards
        total = sum(v for (part, _), v in after.items() if part == "labeled")
        assert total == 100 + len(ids)  # the 100 labels accepted before the kill still count
        accepted = counter(fleet.url, "candor_feedback_labels_total", 'outcome="accepted"')
        assert accepted == 100 + len(ids)


def test_sigterm_drains_and_exits_0_and_the_store_stays_owned(digits_artifact, tmp_path: Path) -> None:
    state = tmp_path / "state"
    with serve_workers(digits_artifact.models_dir, state) as fleet:
        workers = fleet.workers()
        for extra in ([], ["--workers", "2"]):
            second = subprocess.run(
                [sys.executable, "-m", "candor.cli", "serve", "--models-dir", str(digits_artifact.models_dir)]
                + ["--port", "0", *extra],
                cwd=REPO_ROOT,
                capture_output=True,
                text=True,
                timeout=60,
                env={**os.environ, "CANDOR_STATE_DIR": str(state)},
            )
            assert second.returncode == 2 and "Traceback" not in second.stderr, second.stderr
            assert second.stderr.startswith("candor: error: prediction store "), second.stderr
            assert "is in use by another store handle or process" in second.stderr
        fleet.proc.send_signal(signal.SIGTERM)
        assert fleet.proc.wait(timeout=60) == 0
        for pid in workers:
            assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
        assert not list(state.glob("run-*"))  # the run directory is removed
