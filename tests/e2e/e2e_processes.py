"""Real processes: `candor serve` started on a free loopback port and stopped at the end."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
from child_process import stop

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A port the OS reports free on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_command(port: int, models_dir: Path) -> list[str]:
    """`candor serve` on 127.0.0.1:``port`` over ``models_dir``, run by this interpreter."""
    return [sys.executable, "-m", "candor.cli", "serve", "--host", "127.0.0.1", "--port", str(port)] + [
        "--models-dir",
        str(models_dir),
    ]


@contextmanager
def serve_process(models_dir: Path, extra_env: dict[str, str] | None = None, timeout: float = 60.0) -> Iterator[str]:
    """Run `candor serve` until ready; yield its base URL; SIGTERM it and wait at the end."""
    port = free_port()
    env = {**os.environ, **(extra_env or {})}
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(
            serve_command(port, models_dir),
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(url, proc, log, timeout)
            yield url
        finally:
            stop(proc)


@dataclass
class Replica:
    """A running `candor serve`: its base URL and process (e.g. to SIGKILL it)."""

    url: str
    proc: subprocess.Popen[str]


@contextmanager
def serve_replicas(models_dir: Path, envs: list[dict[str, str]], timeout: float = 60.0) -> Iterator[list[Replica]]:
    """Start one `candor serve` per env (in parallel), wait until all are ready, yield them; stop
    every one at the end (a replica already killed is left alone)."""
    with ExitStack() as stack:
        started = []
        for extra_env in envs:
            port = free_port()
            log = stack.enter_context(tempfile.TemporaryFile("w+"))
            proc = subprocess.Popen(
                serve_command(port, models_dir),
                cwd=REPO_ROOT,
                env={**os.environ, **extra_env},
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
            )
            stack.callback(stop, proc)
            started.append((Replica(f"http://127.0.0.1:{port}", proc), log))
        for replica, log in started:
            wait_ready(replica.url, replica.proc, log, timeout)
        yield [replica for replica, _ in started]


def wait_ready(url: str, proc: subprocess.Popen[str], log: IO[str], timeout: float) -> None:
    """Poll /v2/health/ready; fail with the process output if it dies or never becomes ready."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"candor serve exited with {proc.returncode}:\n{log.read()}")
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1.0).json().get("ready"):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"candor serve at {url} not ready after {timeout}s")
