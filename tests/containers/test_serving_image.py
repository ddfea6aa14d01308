"""The CPU serving image, built by `make image` with Podman from the stand-in Python base, and run.

One hardened container (read-only root, every capability dropped, tmpfs for /tmp and the state dir
as in docker-compose.yml, nothing mounted at /models) serves the bundled artifact: ready, the
same probabilities as the artifact's own ONNX graph, uid 10001, HEALTHCHECK passes. A second one
with a state volume is stopped with SIGTERM under load: it exits 0, and every prediction it
answered is in its store after a restart (feedback for each is accepted).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest

from tests.containers.podman_tools import REPO, podman
from tests.containers.serving import HARDENED, MODEL, Container, predict, serving_container
from training.data import load_fashion_mnist

pytestmark = pytest.mark.containers

ARTIFACT = REPO / "models" / MODEL / "1"
IMAGE_UID = 10001
# Podman (runc 1.1.5) mounts a tmpfs over an image directory as root:0755 (the directory's mode, not its
# owner), where Docker makes it 1777: `U` hands the state dir's tmpfs to the container's user.
TMPFS = ["--tmpfs", "/tmp", "--tmpfs", "/var/lib/candor:U"]


@pytest.fixture(scope="module")
def served(serving_image: str) -> Iterator[Container]:
    with serving_container(serving_image, *HARDENED, *TMPFS) as container:
        yield container


@pytest.fixture(scope="module")
def test_images() -> tuple[np.ndarray, np.ndarray]:
    data = load_fashion_mnist()
    return data.test_x[:64, 0], data.test_y[:64]


def onnx_probabilities(images: np.ndarray) -> np.ndarray:
    """The artifact's own graph on this machine: (x * scale - mean) / std as the manifest says."""
    manifest = json.loads((ARTIFACT / "manifest.json").read_text())
    pre = manifest["preprocessing"]
    x = ((images[:, None] * pre["scale"] - pre["mean"][0]) / pre["std"][0]).astype(np.float32)
    session = ort.InferenceSession(str(ARTIFACT / "model.onnx"), providers=["CPUExecutionProvider"])
    return np.asarray(session.run([manifest["output"]["name"]], {manifest["input"]["name"]: x})[0])


def classes() -> list[str]:
    return list(json.loads((ARTIFACT / "manifest.json").read_text())["classes"])


def test_ready_and_predict_equals_the_artifacts_onnx_output(served: Container, test_images) -> None:
    images, _ = test_images
    probs, ids = predict(served.url, images, classes())
    np.testing.assert_allclose(probs, onnx_probabilities(images), rtol=0, atol=1e-6)
    assert len(set(ids)) == len(images)
    assert "no artifact under /models" in served.logs()  # nothing mounted: the bundled artifact


def test_runs_as_uid_10001_on_a_read_only_root(served: Container) -> None:
    ids = podman("exec", served.name, "sh", "-c", "id -u; id -g").stdout.split()
    assert ids == [str(IMAGE_UID), str(IMAGE_UID)]
    write_root = podman("exec", served.name, "sh", "-c", "touch /opt/candor/probe", check=False)
    assert write_root.returncode != 0 and "Read-only file system" in write_root.stderr
    state = podman("exec", served.name, "sh", "-c", "ls /var/lib/candor").stdout
    assert "predictions.db" in state  # the store wrote to its tmpfs, as in docker-compose.yml


def test_the_images_healthcheck_command_passes(served: Container, serving_image: str) -> None:
    inspect = podman("image", "inspect", "--format", "{{json .Config.Healthcheck}}", serving_image).stdout
    assert "/v2/health/ready" in json.loads(inspect)["Test"][-1]
    result = podman("healthcheck", "run", served.name, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_torch_in_the_image(serving_image: str) -> None:
    probe = "import importlib.util as u; print(u.find_spec('torch') is None, u.find_spec('onnxruntime') is not None)"
    result = podman("run", "--rm", "--network", "none", "--entrypoint", "python3", serving_image, "-c", probe)
    assert result.stdout.split() == ["True", "True"], result.stderr
    site_packages = "ls /opt/venv/lib/*/site-packages"
    listing = podman("run", "--rm", "--network", "none", "--entrypoint", "sh", serving_image, "-c", site_packages)
    assert "torch" not in listing.stdout


def test_image_size_is_reported(serving_image: str, report: dict[str, float | int | str]) -> None:
    size = int(report["serving_image_bytes"])
    print(f"\n{serving_image}: {size / 1e6:.0f} MB")
    assert 100e6 < size < 1.5e9  # a venv without torch (torch's CPU wheel alone is ~0.7 GB installed)


def fire(url: str, answered: list[str], stop: threading.Event) -> None:
    """Predict one image at a time until the server refuses; keep the ids of answered predictions."""
    body = {"instances": [[[0] * 28] * 28]}
    while not stop.is_set():
        try:
            response = httpx.post(f"{url}/v1/models/{MODEL}:predict", json=body, timeout=30)
        except httpx.HTTPError:
            return
        if response.status_code == 200:
            answered.extend(p["prediction_id"] for p in response.json()["predictions"])


def test_sigterm_exits_0_and_loses_no_answered_prediction(serving_image: str, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    os.chown(state, IMAGE_UID, IMAGE_UID)
    flags = [*HARDENED, "--tmpfs", "/tmp", "-v", f"{state}:/var/lib/candor"]
    answered: list[str] = []
    with serving_container(serving_image, *flags) as first:
        stop = threading.Event()
        clients = [threading.Thread(target=fire, args=(first.url, answered, stop)) for _ in range(4)]
        for client in clients:
            client.start()
        while len(answered) < 200:
            threading.Event().wait(0.05)
        podman("stop", "-t", "30", first.name, timeout=60)  # SIGTERM, then SIGKILL after 30 s
        stop.set()
        for client in clients:
            client.join()
        assert first.exit_code() == 0, first.logs()
    print(f"\nSIGTERM under load: {len(answered)} predictions answered")
    with serving_container(serving_image, *flags) as second:
        labels = [{"prediction_id": pid, "label": 0} for pid in answered]
        counts = httpx.post(f"{second.url}/v1/feedback", json={"labels": labels}, timeout=60).json()
    assert counts == {"accepted": len(answered), "unknown": 0, "duplicate": 0, "expired": 0}
