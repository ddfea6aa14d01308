"""Dockerfile, .dockerignore and the image's entrypoint, checked statically (no Docker engine here).

hadolint lints the file; the stages are read to check the contract of issue 8: pinned bases, a
runtime stage with the serving extra only, non-root, HEALTHCHECK on the V2 ready endpoint, models
from /models with the bundled default as fallback, settings from CANDOR_* variables.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from deploy_tools import (
    IMAGE_UID,
    REPO,
    binary,
    healthcheck_command,
    parse_dockerfile,
    run,
    setting_variables,
)

PINNED = re.compile(r"[a-z0-9./-]+:[\w.-]+@sha256:[0-9a-f]{64}")
ENTRYPOINT = REPO / "deploy" / "docker" / "entrypoint.sh"


def env_assignments(args: list[str]) -> dict[str, str]:
    return dict(item.split("=", 1) for env in args for item in env.split())


def test_hadolint_reports_nothing() -> None:
    result = run(binary("hadolint"), "--no-color", "--format", "json", REPO / "Dockerfile", cwd=REPO)
    findings = json.loads(result.stdout or "[]")
    assert result.returncode == 0 and findings == [], findings
    # the bar, stated on its own: nothing at error level
    assert run(binary("hadolint"), "--failure-threshold", "error", REPO / "Dockerfile").returncode == 0


def test_hadolint_ignores_are_the_two_justified_ones() -> None:
    """DL3006 (a stage picked by a variable), DL3008 (Ubuntu's -updates pocket): each explained."""
    lines = (REPO / "Dockerfile").read_text().splitlines()
    ignores = {i: line.split("=", 1)[1] for i, line in enumerate(lines) if line.startswith("# hadolint ignore=")}
    assert sorted(ignores.values()) == ["DL3006", "DL3008"]
    assert all(lines[i - 1].startswith("# ") for i in ignores)
    assert not (REPO / ".hadolint.yaml").exists()


def test_base_images_are_pinned_by_tag_and_digest() -> None:
    dockerfile = parse_dockerfile()
    images = {k: v for k, v in dockerfile.global_args.items() if k.endswith("_IMAGE")}
    assert images.keys() == {"PYTHON_IMAGE", "CUDA_IMAGE"}
    assert all(PINNED.fullmatch(ref) for ref in images.values()), images
    assert images["PYTHON_IMAGE"].startswith("python:3.11.")
    assert "-slim-" in images["PYTHON_IMAGE"]
    assert "-cudnn-runtime-" in images["CUDA_IMAGE"]
    seen: set[str] = set()
    for name, stage in dockerfile.stages.items():
        base = stage.base.replace("${VARIANT}", "cpu")
        assert base in seen or base.strip("${}") in images, f"stage {name} from {stage.base}"
        seen.add(name)


def test_variant_build_arg_selects_the_serving_lock() -> None:
    """VARIANT=cpu|gpu selects the base stage and the lock of the serving extra (serve.txt, gpu.txt)."""
    import tomllib

    dockerfile = parse_dockerfile()
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert dockerfile.global_args["VARIANT"] == "cpu"
    assert {"base-cpu", "base-gpu"} <= dockerfile.stages.keys()
    assert [r.split(">")[0] for r in extras["cpu"]] == ["onnxruntime"]
    assert [r.split(">")[0] for r in extras["gpu"]] == ["onnxruntime-gpu"]
    builder = dockerfile.stages["builder"].text()
    assert "COPY requirements/requirements-serve.txt requirements/requirements-gpu.txt requirements/" in builder
    assert (
        '-r "requirements/requirements-$(if [ "${VARIANT}" = gpu ]; then echo gpu; else echo serve; fi).txt"' in builder
    )
    assert "--no-deps --no-build-isolation ." in builder


def test_runtime_stage_serves_without_torch_as_non_root() -> None:
    dockerfile = parse_dockerfile()
    runtime, builder = dockerfile.final, dockerfile.stages["builder"]
    assert runtime.name == "runtime" and runtime.base == builder.base == "base"
    for stage in (runtime, builder, dockerfile.stages["base"]):
        assert "torch" not in stage.text()
        assert not re.search(r"\b(gcc|g\+\+|build-essential|clang)\b", stage.text())
    assert runtime.all("USER") == [f"{IMAGE_UID}:{IMAGE_UID}"]
    assert f"--uid {IMAGE_UID}" in runtime.text()
    copies = runtime.all("COPY")
    assert "--from=builder /opt/venv /opt/venv" in copies
    assert "--from=builder /opt/candor/models /opt/candor/models" in copies
    env = env_assignments(runtime.all("ENV"))
    assert env["CANDOR_HOST"] == "0.0.0.0"
    assert env["CANDOR_MODELS_DIR"] == "/models" and env["BUNDLED_MODELS_DIR"] == "/opt/candor/models"
    assert {k for k in env if k.startswith("CANDOR_")} <= setting_variables()
    assert runtime.all("EXPOSE") == [env["CANDOR_PORT"]]
    assert runtime.all("ENTRYPOINT") == ['["candor-entrypoint"]']
    assert runtime.all("CMD") == ['["candor", "serve"]']
    assert "/v2/health/ready" in runtime.all("HEALTHCHECK")[0]


def test_train_stage_installs_torch_cpu_from_the_pytorch_index_or_a_mounted_folder() -> None:
    train = parse_dockerfile().stages["train"].text()
    assert "--index-url https://download.pytorch.org/whl/cpu" in train
    # By default (TORCH_FIND_LINKS empty) only PyTorch's CPU index; a mounted wheel folder replaces it.
    assert "ARG TORCH_FIND_LINKS=\n" in train
    torch_source = '${TORCH_FIND_LINKS:+--no-index --find-links "${TORCH_FIND_LINKS}"}'
    assert f'--no-deps {torch_source} --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0+cpu"' in train
    assert "-r requirements/requirements-train.txt" in train
    assert f"USER {IMAGE_UID}:{IMAGE_UID}" in train
    assert 'ENTRYPOINT ["candor"]' in train and 'CMD ["train",' in train


class ReadyStub(BaseHTTPRequestHandler):
    """Answers /v2/health/ready with the body the server was given."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        body = json.dumps(self.server.ready_body).encode()  # type: ignore[attr-defined]
        self.send_response(200 if self.path == "/v2/health/ready" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def ready_stub() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), ReadyStub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.mark.parametrize(("body", "healthy"), [({"ready": True}, True), ({"ready": False}, False)])
def test_healthcheck_needs_ready_true(ready_stub: ThreadingHTTPServer, body: dict[str, bool], healthy: bool) -> None:
    ready_stub.ready_body = body  # type: ignore[attr-defined]
    command = healthcheck_command(parse_dockerfile().final)
    assert command[0] == "python3"
    port = str(ready_stub.server_address[1])
    result = run("python3", *command[1:], env={**os.environ, "CANDOR_PORT": port}, timeout=30)
    assert (result.returncode == 0) is healthy, result.stderr


def test_healthcheck_fails_when_nothing_listens(ready_stub: ThreadingHTTPServer) -> None:
    port = ready_stub.server_address[1]
    ready_stub.shutdown()
    ready_stub.server_close()
    command = healthcheck_command(parse_dockerfile().final)
    result = run("python3", *command[1:], env={**os.environ, "CANDOR_PORT": str(port)}, timeout=30)
    assert result.returncode != 0


# ---- entrypoint ----------------------------------------------------------------------------------


def test_entrypoint_passes_shellcheck() -> None:
    result = run(binary("shellcheck"), "--shell=sh", ENTRYPOINT)
    assert result.returncode == 0, result.stdout


def served_models_dir(models: Path, bundled: Path) -> tuple[str, str]:
    """(CANDOR_MODELS_DIR the command sees, stderr) when the entrypoint runs `printenv`."""
    env = {
        "PATH": os.environ["PATH"],
        "CANDOR_MODELS_DIR": str(models),
        "BUNDLED_MODELS_DIR": str(bundled),
    }
    result = run("sh", ENTRYPOINT, "printenv", "CANDOR_MODELS_DIR", env=env, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip(), result.stderr


def test_entrypoint_serves_the_mounted_models(tmp_path: Path) -> None:
    artifact = tmp_path / "models" / "my-model" / "3"
    artifact.mkdir(parents=True)
    (artifact / "manifest.json").write_text("{}")
    served, stderr = served_models_dir(tmp_path / "models", REPO / "models")
    assert served == str(tmp_path / "models") and stderr == ""


@pytest.mark.parametrize("mounted", ["empty", "missing", "lost+found only"])
def test_entrypoint_falls_back_to_the_bundled_models(tmp_path: Path, mounted: str) -> None:
    models = tmp_path / "models"
    if mounted != "missing":
        models.mkdir()
    if mounted == "lost+found only":
        (models / "lost+found").mkdir()
    served, stderr = served_models_dir(models, REPO / "models")
    assert served == str(REPO / "models")
    assert "no artifact under" in stderr


# ---- .dockerignore -------------------------------------------------------------------------------


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        body = pattern.lstrip("!").strip("/")
        regex = re.escape(body).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*")
        regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        if any(re.fullmatch(regex, c) for c in candidates):
            excluded = not negated
    return excluded


def test_dockerignore_keeps_what_the_dockerfile_copies_and_nothing_heavy() -> None:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    dockerfile = parse_dockerfile()
    sources = {
        src
        for stage in dockerfile.stages.values()
        for args in stage.all("COPY")
        if not args.startswith("--from")
        for src in args.split()[:-1]
        if not src.startswith("--")
    }
    assert sources >= {
        "pyproject.toml",
        "models/",
        "service/",
        "deploy/docker/entrypoint.sh",
        "requirements/requirements-train.txt",
    }
    for source in sources:
        assert (REPO / source).exists(), source
        assert not dockerignore_excludes(source.rstrip("/"), patterns), source
    for kept in ["service/app.py", "models/fashion-mnist-cnn/1/model.onnx", "candor/cli.py"]:
        assert not dockerignore_excludes(kept, patterns), kept
    for left_out in [
        ".git/HEAD",
        ".venv/bin/python",
        "runs/x/best.pt",
        "tests/conftest.py",
        ".pytest_cache/v",
        ".mypy_cache/x",
        ".hypothesis/x",
        "service/__pycache__/app.pyc",
        "candor.egg-info/PKG-INFO",
        "bench/x.py",
        "docker-compose.yml",
    ]:
        assert dockerignore_excludes(left_out, patterns), left_out
