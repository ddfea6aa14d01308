"""`candor serve` logs the service's own INFO lines (reloads, replays) beside uvicorn's (issue 16
item 11: they reached no handler in a real process and were lost)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent("""
    import logging, logging.config, sys
    from service.cli import serve_log_config
    logging.config.dictConfig(serve_log_config(sys.argv[1]))
    logging.getLogger("service.monitor.stores.pending_log").info("replayed 3 predictions")
    logging.getLogger("candor.models").info("candor: loaded m versions 1")
    logging.getLogger("candor.models").debug("a debug line")
""")


def run_child(level: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, level], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    )
    return result.stderr


def test_service_info_lines_reach_stderr_at_the_configured_level() -> None:
    lines = run_child("info").splitlines()
    assert [line.split(None, 1)[1] for line in lines] == ["replayed 3 predictions", "candor: loaded m versions 1"]
    assert all(line.startswith("INFO:") for line in lines)


def test_a_higher_log_level_keeps_them_quiet() -> None:
    assert run_child("warning") == ""
