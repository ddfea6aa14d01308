"""Shared fixtures: a tiny digits run, calibrated and exported once per session."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
DIGITS_MODEL = "digits-cnn"


@dataclass(frozen=True)
class DigitsArtifact:
    """A trained run directory and the models directory holding its exported artifact."""

    run_dir: Path
    models_dir: Path

    @property
    def artifact_dir(self) -> Path:
        return self.models_dir / DIGITS_MODEL / "1"


@pytest.fixture(scope="session", autouse=True)
def isolated_state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """CANDOR_STATE_DIR in a temp dir for the session (apps and `candor serve` children), so no
    test writes the default prediction store under the working directory. Module-scoped apps
    name a state_dir of their own: one app or process per store file (service.monitor.stores.pending_log)."""
    state_dir = tmp_path_factory.mktemp("candor-state")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CANDOR_STATE_DIR", str(state_dir))
        yield state_dir


@pytest.fixture(autouse=True)
def own_state_dir(tmp_path_factory: pytest.TempPathFactory, isolated_state_dir: Path) -> Iterator[Path]:
    """Each test's apps and children get a CANDOR_STATE_DIR of the test's own."""
    state_dir = tmp_path_factory.mktemp("test-state")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CANDOR_STATE_DIR", str(state_dir))
        yield state_dir


@pytest.fixture(scope="session")
def digits_artifact(tmp_path_factory: pytest.TempPathFactory) -> DigitsArtifact:
    """Train 4 epochs on digits (seconds), fit TS on validation, export models/digits-cnn/1."""
    from training.calibrate_run import calibrate_run
    from training.export import export_run
    from training.trainer import TrainConfig, train

    root = tmp_path_factory.mktemp("digits")
    run_dir, models_dir = root / "run", root / "models"
    train(TrainConfig(data="digits", epochs=4, batch_size=64, seed=0), run_dir)
    calibrate_run(run_dir, "ts")
    export_run(run_dir, DIGITS_MODEL, "1", models_dir)
    return DigitsArtifact(run_dir, models_dir)
