"""Start a written peer from its venv, wait until it is ready, and stop its whole process tree."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.peers.base import MODEL, Peer, Ports
from bench.peers.tree import stop_tree
from bench.processes import REPO, free_port

READY_TIMEOUT_S = 240.0


def peer_env(venv: Path, extra: dict[str, str]) -> dict[str, str]:
    """This environment with the venv's bin/ first, and none of Candor's tree or venv."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    return {**env, "PEER_MODEL_DIR": str(model_dir()), "PEER_MODEL_NAME": MODEL, **extra}


def model_dir() -> Path:
    """The bundled default artifact's version directory (the one Candor serves)."""
    return max((p for p in (REPO / "models" / MODEL).iterdir() if (p / "manifest.json").exists()), key=lambda p: p.name)


def wait_ready(
    port: int, path: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = READY_TIMEOUT_S
) -> None:
    """Poll GET ``path`` until 200; RuntimeError with the log's tail if the process exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}; log tail:\n{tail(log)}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"not ready on {path} after {timeout:.0f} s; log tail:\n{tail(log)}")


def wait_grpc(port: int, timeout: float = 60.0) -> None:
    """Wait until ``port`` accepts a TCP connection."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"gRPC port {port} not open after {timeout:.0f} s")


def tail(log: Path, lines: int = 25) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else "(no log)"


@contextmanager
def running_peer(peer: Peer, venv: Path, work: Path) -> Iterator[tuple[Ports, int]]:
    """Write the peer's files into ``work``, start it from ``venv``, yield (ports, root pid)."""
    work.mkdir(parents=True, exist_ok=True)
    ports = Ports(http=free_port(), grpc=free_port(), extra=free_port())
    launch = peer.write(work, model_dir(), ports, venv)
    argv = [str(venv / "bin" / launch.argv[0]) if "/" not in launch.argv[0] else launch.argv[0], *launch.argv[1:]]
    log = work / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, cwd=launch.cwd or work, env=peer_env(venv, launch.env), stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_ready(ports.http, peer.ready_path, proc, log)
        yield ports, proc.pid
    finally:
        stop_tree(proc.pid)
        proc.wait()
