"""A prediction answered is a prediction stored: SIGKILL right after the response loses nothing."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest
from e2e_processes import serve_replicas

from training.data import load_digits

pytestmark = pytest.mark.e2e


def test_labels_are_accepted_after_a_sigkill_right_after_the_predictions(digits_artifact, tmp_path: Path) -> None:
    """Predict, SIGKILL at once, restart on the same SQLite file (named by URL this time): every
    prediction answered is still there to take its label."""
    state = tmp_path / "state"
    images, truth = load_digits().test_x[:30, 0], load_digits().test_y[:30]
    with serve_replicas(digits_artifact.models_dir, [{"CANDOR_STATE_DIR": str(state)}]) as (first,):
        predictions = []
        for chunk in (slice(0, 10), slice(10, 20), slice(20, 30)):
            response = httpx.post(
                f"{first.url}/v1/models/digits-cnn:predict", json={"instances": images[chunk].tolist()}, timeout=30
            )
            assert response.status_code == 200
            predictions += response.json()["predictions"]
        first.proc.send_signal(signal.SIGKILL)
        assert first.proc.wait(timeout=10) == -signal.SIGKILL
    labels = [{"prediction_id": p["prediction_id"], "label": int(y)} for p, y in zip(predictions, truth, strict=True)]
    url_env = {"CANDOR_STORE_URL": f"sqlite://{state / 'predictions.db'}"}
    with serve_replicas(digits_artifact.models_dir, [url_env]) as (second,):
        counts = httpx.post(f"{second.url}/v1/feedback", json={"labels": labels}, timeout=30).json()
        again = httpx.post(f"{second.url}/v1/feedback", json={"labels": labels}, timeout=30).json()
    assert counts == {"accepted": 30, "unknown": 0, "duplicate": 0, "expired": 0}
    assert again == {"accepted": 0, "unknown": 0, "duplicate": 30, "expired": 0}
