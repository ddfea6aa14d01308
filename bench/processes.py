"""Benchmark servers as child processes on loopback: `candor serve` and the bare Starlette baseline."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_live(port: int, proc: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    """Poll /v2/health/live until it answers 200 (or fail with the process's exit code)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/live", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"server on port {port} not live after {timeout}s")


@contextmanager
def child(cmd: list[str], port: int, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``cmd`` until live; terminate it at the end."""
    proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, **(env or {})})
    try:
        wait_live(port, proc)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def candor_serve(models_dir: Path, port: int, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """`candor serve` with its prediction store in a temp dir and warning-level logs."""
    with tempfile.TemporaryDirectory() as state:
        settings = {"CANDOR_STATE_DIR": state, "CANDOR_LOG_LEVEL": "warning", **(env or {})}
        with child(
            [sys.executable, "-m", "candor.cli", "serve", "--port", str(port), "--models-dir", str(models_dir)],
            port,
            settings,
        ) as proc:
            yield proc


@contextmanager
def bare_starlette(port: int, response: bytes, loop: str = "asyncio") -> Iterator[subprocess.Popen[bytes]]:
    """The baseline answering ``response`` (bytes) to every predict, on uvicorn with ``loop``."""
    with tempfile.NamedTemporaryFile(suffix=".json") as fh:
        fh.write(response)
        fh.flush()
        with child([sys.executable, str(REPO / "bench" / "bare_starlette.py"), str(port), fh.name, loop], port) as proc:
            yield proc
