"""A running serving container: started with Podman on the host network, polled until ready."""

from __future__ import annotations

import itertools
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import numpy as np
import pytest

from tests.containers.podman_tools import podman

MODEL = "fashion-mnist-cnn"
# As docker-compose.yml runs the replicas: read-only root, no capability, no privilege gain.
HARDENED = ["--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"]
_names = itertools.count()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Container:
    name: str
    url: str

    def logs(self) -> str:
        result = podman("logs", self.name, check=False)
        return result.stdout + result.stderr

    def exit_code(self) -> int:
        return int(podman("inspect", "--format", "{{.State.ExitCode}}", self.name).stdout.strip())


@contextmanager
def serving_container(image: str, *flags: str, timeout: float = 90) -> Iterator[Container]:
    """`podman run -d` the image on a free loopback port; removed (whatever its state) at the end."""
    port = free_port()
    name = f"candor-test-{os.getpid()}-{next(_names)}"
    env = ["-e", "CANDOR_HOST=127.0.0.1", "-e", f"CANDOR_PORT={port}"]
    podman("run", "-d", "--name", name, "--network", "host", *env, *flags, image)
    container = Container(name, f"http://127.0.0.1:{port}")
    try:
        wait_ready(container, timeout)
        yield container
    finally:
        podman("rm", "-f", "-t", "0", name, check=False)


def wait_ready(container: Container, timeout: float) -> None:
    """Poll /v2/health/ready for {"ready": true}; fail with the container's log if it never is."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{container.url}/v2/health/ready", timeout=1).json().get("ready") is True:
                return
        except httpx.HTTPError:
            pass
        state = podman("inspect", "--format", "{{.State.Status}}", container.name, check=False).stdout.strip()
        if state == "exited":
            pytest.fail(f"{container.name} exited before ready:\n{container.logs()}")
        time.sleep(0.3)
    pytest.fail(f"{container.name} not ready after {timeout}s:\n{container.logs()}")


def predict(url: str, images: np.ndarray, classes: list[str]) -> tuple[np.ndarray, list[str]]:
    """Calibrated probabilities (N, K) in class order and prediction ids, from V1 predict."""
    response = httpx.post(f"{url}/v1/models/{MODEL}:predict", json={"instances": images.tolist()}, timeout=30)
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    probs = np.array([[p["probabilities"][c] for c in classes] for p in predictions])
    return probs, [p["prediction_id"] for p in predictions]
