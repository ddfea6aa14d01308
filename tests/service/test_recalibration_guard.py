"""One recalibration per model on a state directory: the flock is seen across processes, by the
server's Recalibrator and by the offline run alike, and released when its holder ends."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from model_copies import copy_version
from prometheus_client import CollectorRegistry
from recalibration_rows import FakeSource, served_rows

from service.inference.model_manager import ModelManager
from service.inference.repository import load_from_settings
from service.recalibration.candidate import CANDIDATES
from service.recalibration.guard import RecalibrationBusy, lock_path, recalibrating
from service.recalibration.runner import Recalibrator, run_offline
from service.settings import Settings

MODEL = "digits-cnn"
HOLD = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def settings(digits_artifact, tmp_path: Path) -> Settings:
    models = tmp_path / "models"
    copy_version(digits_artifact.models_dir, models, MODEL, "1", "1")
    return Settings(
        models_dir=models, state_dir=tmp_path / "state", recalibration_min_labels=300, recalibration_resamples=200
    )


def test_the_lock_refuses_a_second_holder_in_this_process_and_is_released(tmp_path: Path) -> None:
    with recalibrating(tmp_path, MODEL):
        with pytest.raises(RecalibrationBusy) as busy, recalibrating(tmp_path, MODEL):
            pass
        assert busy.value.status == 409 and busy.value.field == "model_name"
        with recalibrating(tmp_path, "another-model"):  # per model
            pass
    with recalibrating(tmp_path, MODEL):  # released
        pass


def test_a_recalibration_held_by_another_process_is_409_for_the_server_and_offline(settings: Settings) -> None:
    path = lock_path(settings.state_dir / CANDIDATES, MODEL)
    path.parent.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        manager = ModelManager(load_from_settings(settings), settings)
        recalibrator = Recalibrator(settings, CollectorRegistry())
        source = FakeSource(served_rows(2000))
        with pytest.raises(RecalibrationBusy):
            asyncio.run(recalibrator.run(manager, source, MODEL, None, "ts", 3600.0, "auto"))
        with pytest.raises(RecalibrationBusy):
            run_offline(settings, source, MODEL, None, "ts", 3600.0, "auto")
        assert source.calls == [] and not (settings.state_dir / CANDIDATES / MODEL).exists()
    finally:
        holder.communicate(b"")  # the holder exits: the kernel drops its lock
    verdict = run_offline(settings, FakeSource(served_rows(2000)), MODEL, None, "ts", 3600.0, "auto")
    assert verdict.outcome == "promoted" and verdict.new_version == "2"
