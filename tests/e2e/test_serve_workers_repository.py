"""`candor serve --workers 2`: one model repository across the workers. Load and unload through the
API, and a promotion by recalibration, are served by every worker once answered (fresh connections
reach either worker); a worker killed with -9 comes back serving the promoted version (over a pin);
a recalibration held anywhere on the state directory is 409 on every worker (two concurrent
calls: one 409); and
candor_recalibrations_total is one fleet counter, the same whichever worker a scrape reaches."""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import signal
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from e2e_processes import REPO_ROOT
from test_serve_workers import predict, serve_workers, wait_for_workers

from service.recalibration.guard import lock_path
from training.data import load_digits

pytestmark = pytest.mark.e2e

MODEL = "digits-cnn"
TOKEN = "fleet-repository-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TRIES = 16  # fresh connections per check: each reaches a worker the kernel picks
ENV = {
    "CANDOR_AUTH_TOKEN": TOKEN,
    "CANDOR_RECALIBRATION_RESAMPLES": "200",
    "CANDOR_DEFAULT_VERSIONS": json.dumps({MODEL: "1"}),  # a pin: the promotion overrides it at run time
}
assert REPO_ROOT.is_dir()


@pytest.fixture
def models(digits_artifact, tmp_path: Path) -> Path:
    root = tmp_path / "models"
    shutil.copytree(digits_artifact.models_dir / MODEL / "1", root / MODEL / "1")
    return root


def infer_versions(url: str) -> list[int | str]:
    """Over TRIES fresh connections: the served default's version, or the status when not 200."""
    body = {"inputs": [{"name": "images", "shape": [1, 1, 8, 8], "datatype": "FP32", "data": [0.0] * 64}]}
    seen: list[int | str] = []
    for _ in range(TRIES):
        response = httpx.post(f"{url}/v2/models/{MODEL}/infer", json=body, timeout=10)
        seen.append(response.json()["model_version"] if response.status_code == 200 else response.status_code)
    return seen


def control(url: str, action: str, body: dict | None = None) -> httpx.Response:
    return httpx.post(f"{url}/v2/repository/models/{MODEL}/{action}", json=body or {}, headers=AUTH, timeout=120)


def test_unload_and_load_through_one_worker_are_served_by_every_worker(models: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    with serve_workers(models, state, env_extra=ENV) as fleet:
        assert set(infer_versions(fleet.url)) == {"1"}
        assert control(fleet.url, "unload").json() == {"name": MODEL, "versions": ["1"]}
        assert infer_versions(fleet.url) == [404] * TRIES  # answered: every worker follows
        assert {httpx.get(f"{fleet.url}/v2/models/{MODEL}/ready").status_code for _ in range(TRIES)} == {404}
        assert control(fleet.url, "load").json() == {"name": MODEL, "versions": ["1"]}
        assert infer_versions(fleet.url) == ["1"] * TRIES

        lock = lock_path(state / "candidates", MODEL)  # a recalibration held elsewhere (e.g. the offline CLI)
        lock.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            body = {"method": "ts", "window_seconds": 3600, "promote": "auto"}
            answers = [control(fleet.url, "recalibrate", body) for _ in range(TRIES)]
        finally:
            os.close(fd)
        assert {a.status_code for a in answers} == {409}
        assert {a.json()["field"] for a in answers} == {"model_name"}


def overconfident_window(url: str) -> None:
    """800 training images served (the model is sure of them) with 40% of their labels replaced by
    random ones: a temperature above 1 clearly improves the held-out NLL."""
    digits = load_digits()
    rng = np.random.default_rng(0)
    images, truth = digits.train_x[:800, 0], digits.train_y[:800].copy()
    noisy = rng.random(len(truth)) < 0.4
    truth[noisy] = rng.integers(0, 10, int(noisy.sum()))
    _, ids = predict(url, images, per_request=40)
    labels = [{"prediction_id": p, "label": int(y)} for p, y in zip(ids, truth, strict=True)]
    accepted = 0
    for start in range(0, len(labels), 100):
        body = {"labels": labels[start : start + 100]}
        accepted += httpx.post(f"{url}/v1/feedback", json=body, headers=AUTH, timeout=30).json()["accepted"]
    assert accepted == 800


def recalibration_counts(url: str) -> list[str]:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return sorted(re.findall(r"^candor_recalibrations_total\{.*$", text, re.M))


def flocked(path: Path) -> bool:
    """True while some process holds a flock on ``path`` (read from /proc/locks: probing with a
    flock of our own could make the holder's own attempt fail)."""
    inode = path.stat().st_ino
    return any(line.split()[5].endswith(f":{inode}") for line in Path("/proc/locks").read_text().splitlines())


def concurrently(url: str, lock: Path, body: dict) -> tuple[httpx.Response, httpx.Response]:
    """A recalibration, and a second one sent while the first holds the model's lock."""
    first: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: first.append(control(url, "recalibrate", body)))
    thread.start()
    deadline = time.monotonic() + 60
    while not flocked(lock) and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.005)
    assert flocked(lock), "the first recalibration ended before it was seen running"
    second = control(url, "recalibrate", body)
    thread.join()
    return first[0], second


def test_a_promotion_is_served_by_every_worker_and_by_a_worker_killed_after_it(models: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    lock = lock_path(state / "candidates", MODEL)
    lock.parent.mkdir(parents=True)
    lock.touch()  # its inode, to look for in /proc/locks
    slow = {**ENV, "CANDOR_RECALIBRATION_RESAMPLES": "4000"}  # the run lasts long enough to be seen
    with serve_workers(models, state, env_extra=slow) as fleet:
        overconfident_window(fleet.url)
        body = {"method": "ts", "window_seconds": 3600, "promote": "auto"}
        answer, second = concurrently(fleet.url, lock, body)
        assert second.status_code == 409 and second.json()["field"] == "model_name", second.text
        assert answer.status_code == 200, answer.text
        assert (answer.json()["outcome"], answer.json()["new_version"]) == ("promoted", "2"), answer.json()
        assert infer_versions(fleet.url) == ["2"] * TRIES  # over the pin, on every worker

        scrapes = [recalibration_counts(fleet.url) for _ in range(TRIES)]
        expected = f'candor_recalibrations_total{{method="ts",model="{MODEL}",outcome="promoted"}} 1.0'
        assert scrapes == [[expected]] * TRIES  # one series, the fleet's count, whichever worker answers

        old = fleet.workers()
        os.kill(old[0], signal.SIGKILL)
        wait_for_workers(fleet, 2, frozenset({old[0]}))
        assert infer_versions(fleet.url) == ["2"] * TRIES  # the restarted worker did not go back to the pin
        assert recalibration_counts(fleet.url) == [expected]  # nor did the counter
