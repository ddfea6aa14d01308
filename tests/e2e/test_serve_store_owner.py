"""One `candor serve` per store file, whatever CANDOR_STORE_LOG says (issue 16 item 9): a second
process on the same state_dir exits 2 naming the file and the fix, and the first keeps serving."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from e2e_processes import REPO_ROOT, serve_process

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(("first_log", "second_log"), [("true", "false"), ("false", "true"), ("false", "false")])
def test_a_second_serve_on_the_same_state_dir_exits_2_whatever_its_store_log(
    digits_artifact, tmp_path: Path, first_log: str, second_log: str
) -> None:
    """Before, a plain-SQLite process took no lock: it started beside the first and answered its
    predictions' labels 200 `unknown` (they sat in the first one's log), dropping them."""
    state = str(tmp_path / "state")
    with serve_process(digits_artifact.models_dir, {"CANDOR_STATE_DIR": state, "CANDOR_STORE_LOG": first_log}) as url:
        second = subprocess.run(
            [sys.executable, "-m", "candor.cli", "serve", "--models-dir", str(digits_artifact.models_dir)]
            + ["--port", "0"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, "CANDOR_STATE_DIR": state, "CANDOR_STORE_LOG": second_log},
        )
        assert httpx.get(f"{url}/v2/health/ready", timeout=5).json() == {"ready": True}
    assert second.returncode == 2 and "Traceback" not in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1, second.stderr
    store = f"{state}/predictions.db (lock predictions.db.lock)"
    assert second.stderr.startswith(f"candor: error: prediction store {store}")
    assert "is in use by another store handle or process" in second.stderr and "own state_dir" in second.stderr
