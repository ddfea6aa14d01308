"""The serving image's environment, built the way the Dockerfile's builder stage builds it.

No Docker engine runs here, so the test does the stage's steps on this machine: a fresh venv, the
lock requirements/requirements-serve.txt (core + cpu), then the project from a copy of the build context with
--no-deps --no-build-isolation. torch must be absent. `candor serve` then starts through the
image's entrypoint with an empty models mount, so it falls back to the bundled default artifact,
and answers the HEALTHCHECK command, /v2/health/ready and one predict call.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from child_process import stop
from deploy_tools import REPO, healthcheck_command, parse_dockerfile, run

pytestmark = pytest.mark.e2e  # a pip install (pip's cache and find-links) and a real server

BUILD_CONTEXT = ["requirements", "pyproject.toml", "README.md", "calibration", "candor", "service", "training"]
MODEL = "fashion-mnist-cnn"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def build_runtime_venv(root: Path) -> Path:
    """The builder stage's steps: venv, the serving lock (core + cpu), then the project, no deps."""
    builder = parse_dockerfile().stages["builder"].text()
    assert "echo serve; fi).txt" in builder and "--no-deps --no-build-isolation ." in builder
    assert "-m service.grpc.stubs" in builder and "uninstall --yes grpcio-tools" in builder
    context = root / "src"
    for name in BUILD_CONTEXT:  # the COPY instructions of the builder stage
        source = REPO / name
        if source.is_dir():  # without what .dockerignore leaves out
            ignored = shutil.ignore_patterns("__pycache__", "*.egg-info", "generated")
            shutil.copytree(source, context / name, ignore=ignored)
        else:
            context.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, context / name)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True, timeout=120)
    pip = [
        str(venv / "bin" / "python"),
        "-m",
        "pip",
        "install",
        "-q",
        "--disable-pip-version-check",
    ]
    python = str(venv / "bin" / "python")
    steps = [
        [*pip, "-r", "requirements/requirements-serve.txt"],
        [*pip, "--constraint", "requirements/requirements-dev.txt", "grpcio-tools"],  # the gRPC stubs, then not kept
        [python, "-m", "service.grpc.stubs"],
        [python, "-m", "pip", "uninstall", "-q", "--yes", "grpcio-tools"],
        [*pip, "--no-deps", "--no-build-isolation", "."],
    ]
    for step in steps:
        result = run(*step, cwd=context, timeout=900)
        assert result.returncode == 0, result.stdout + result.stderr
    return venv


def get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5) as response:
        result: dict[str, object] = json.load(response)
        return result


def wait_ready(url: str, proc: subprocess.Popen[str], log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"candor serve exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if get_json(f"{url}/v2/health/ready").get("ready") is True:
                return
        except OSError:
            pass
        time.sleep(0.3)
    pytest.fail(f"not ready after {timeout}s:\n{log.read_text()}")


def test_runtime_environment_has_no_torch_and_serves_the_bundled_model(tmp_path: Path) -> None:
    try:
        venv = build_runtime_venv(tmp_path)
        python = venv / "bin" / "python"
        probe = run(
            python,
            "-c",
            "import importlib.util as u; print(u.find_spec('torch') is None, u.find_spec('onnxruntime') is not None,"
            " u.find_spec('grpc_tools') is None,"
            " u.find_spec('service.grpc.generated.open_inference_grpc_pb2') is not None)",
            cwd=tmp_path,
        )
        assert probe.stdout.split() == ["True"] * 4, probe.stdout + probe.stderr

        runtime_env = dict(item.split("=", 1) for env in parse_dockerfile().final.all("ENV") for item in env.split())
        port, grpc_port = free_port(), free_port()
        (tmp_path / "models").mkdir()  # the mount point, with nothing mounted
        env = {
            "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
            "HOME": str(tmp_path),
            "CANDOR_HOST": "127.0.0.1",
            "CANDOR_PORT": str(port),
            "CANDOR_MODELS_DIR": str(tmp_path / "models"),
            "BUNDLED_MODELS_DIR": str(REPO / "models"),
            "CANDOR_STATE_DIR": str(tmp_path / "state"),
            "MPLCONFIGDIR": str(tmp_path / "mpl"),
        }
        assert {k for k in env if k.startswith("CANDOR_")} <= set(runtime_env)
        env["CANDOR_GRPC_PORT"] = str(grpc_port)  # off in the image unless set
        log = tmp_path / "serve.log"
        with log.open("w") as out:
            proc = subprocess.Popen(
                ["sh", str(REPO / "deploy" / "docker" / "entrypoint.sh"), "candor", "serve"],
                cwd=tmp_path,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
            )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(url, proc, log)
            healthcheck = healthcheck_command(parse_dockerfile().final)
            assert run(python, *healthcheck[1:], env=env, timeout=30).returncode == 0
            request = urllib.request.Request(
                f"{url}/v1/models/{MODEL}:predict",
                method="POST",
                data=json.dumps({"instances": [[[0] * 28] * 28]}).encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                assert response.status == 200
                (prediction,) = json.load(response)["predictions"]
            assert abs(sum(prediction["probabilities"].values()) - 1) < 1e-4
            assert prediction["label"] in prediction["probabilities"]
            assert_grpc_infers(f"127.0.0.1:{grpc_port}", prediction["probabilities"])
        finally:
            stop(proc, timeout=30)
        assert "no artifact under" in log.read_text()  # the entrypoint's fallback was taken
    finally:
        shutil.rmtree(tmp_path / "venv", ignore_errors=True)
        shutil.rmtree(tmp_path / "src", ignore_errors=True)


def assert_grpc_infers(address: str, http_probabilities: dict[str, float]) -> None:
    """The image's gRPC server, on stubs generated in the build: ready, and the HTTP answer's probabilities."""
    import numpy as np
    import tritonclient.grpc as triton

    client = triton.InferenceServerClient(address)
    try:
        assert client.is_server_ready()
        tensor = triton.InferInput("images", [1, 1, 28, 28], "UINT8")
        tensor.set_data_from_numpy(np.zeros((1, 1, 28, 28), np.uint8))
        probs = client.infer(MODEL, [tensor]).as_numpy("probabilities")
    finally:
        client.close()
    np.testing.assert_allclose(probs[0], list(http_probabilities.values()), atol=1e-6)
