"""`candor serve` with its output kept, for tests that read the log or signal the process."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from child_process import stop
from e2e_processes import REPO_ROOT, free_port, wait_ready


@dataclass
class LoggedServer:
    url: str
    proc: subprocess.Popen[str]
    log: IO[str]

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()


@contextmanager
def logged_server(models: Path, env: dict[str, str]) -> Iterator[LoggedServer]:
    """`candor serve` on a free 127.0.0.1 port until ready; stopped at the end if still running."""
    port = free_port()
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "candor.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
            + ["--models-dir", str(models)],
            cwd=REPO_ROOT,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        server = LoggedServer(f"http://127.0.0.1:{port}", proc, log)
        try:
            wait_ready(server.url, proc, log, 60)
            yield server
        finally:
            stop(proc)
