"""Real processes the monitor tests start: redis-server, promtool, Prometheus, on loopback ports.

Missing system binaries fail (never skip): `make test` installs them via scripts/system-deps.sh.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis


def require_binary(name: str) -> str:
    """Absolute path of a system binary, or a test failure that says how to install it."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"'{name}' not found on PATH: run `make test` or `bash scripts/system-deps.sh`")
    return path


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RedisServer:
    """A redis-server started by a test on 127.0.0.1:port, its data in ``directory``."""

    directory: Path
    port: int
    appendonly: bool = False
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        aof = ["--appendonly", "yes", "--appendfsync", "always"] if self.appendonly else ["--appendonly", "no"]
        cmd = [
            require_binary("redis-server"),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--dir",
            str(self.directory),
            *aof,
        ]
        self.process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if redis.Redis(port=self.port, socket_timeout=0.5).ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.02)
        self.stop()
        pytest.fail(f"redis-server did not answer on port {self.port} within {timeout} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run promtool with text in and out (never raises on a non-zero exit)."""
    return subprocess.run(
        [require_binary("promtool"), *args], input=stdin, capture_output=True, timeout=120, check=False, text=True
    )


@dataclass
class PrometheusServer:
    """The Debian package's Prometheus on a free loopback port, storage in ``directory``."""

    directory: Path
    rule_files: list[Path]
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    config_text: str | None = None  # a whole prometheus.yml; default: the rule files, no scrapes

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> PrometheusServer:
        self.port = self.port or free_port()
        config = self.directory / "prometheus.yml"
        rules = "".join(f"\n  - {path}" for path in self.rule_files)
        config.write_text(
            self.config_text or f"global:\n  evaluation_interval: 1s\nrule_files:{rules}\nscrape_configs: []\n"
        )
        cmd = [
            require_binary("prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={self.directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]
        self.process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        self.stop()
        pytest.fail(f"prometheus did not become ready on port {self.port} within {timeout} s")

    def api(self, path: str, **params: str) -> dict[str, Any]:
        """GET /api/v1/<path>; answers with the decoded JSON even on 4xx (bad queries)."""
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            body = exc.read()
            exc.close()
        result: dict[str, Any] = json.loads(body)
        return result

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)
        self.process = None


REPO = Path(__file__).resolve().parents[3]


def run_then_sigkill(code: str, *args: str) -> None:
    """Run ``python -c code args...`` from the repo root until it prints "stored", then SIGKILL it
    (no close, no flush, no checkpoint: what its store calls returned must already be durable)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, env=env, cwd=REPO) as child:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == b"stored"
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=10) == -signal.SIGKILL
