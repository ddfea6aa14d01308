"""Stopping a child server the way an orchestrator does (shared by the e2e and deploy tests)."""

from __future__ import annotations

import signal
import subprocess


def stop(proc: subprocess.Popen[str], timeout: float = 20.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout`` s (nothing if it already exited)."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
