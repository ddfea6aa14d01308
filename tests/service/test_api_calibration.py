"""GET /v1/models/{m}/calibration and its reliability PNG: the offline metrics' numbers, live."""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import matplotlib.image
import numpy as np
import pytest
from fastapi.testclient import TestClient
from matplotlib.figure import Figure

from calibration.metrics import accuracy, bin_statistics, ece
from service.app import create_app
from service.settings import Settings
from training.data import load_digits

STATUS = "/v1/models/digits-cnn/calibration"
PNG = "/v1/models/digits-cnn/calibration/reliability.png"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
N_PREDICTED, N_LABELLED = 240, 180


@pytest.fixture(scope="module")
def served(
    digits_artifact, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TestClient, np.ndarray, np.ndarray]]:
    """An app that served 240 digits test images and got true labels for the first 180; yields
    the client, the probabilities it returned and the true labels."""
    settings = Settings(
        models_dir=digits_artifact.models_dir,
        drift_min_labels=100,
        state_dir=tmp_path_factory.mktemp("calibration-state"),
    )
    digits = load_digits()
    images, truth = digits.test_x[:N_PREDICTED, 0], digits.test_y[:N_PREDICTED]
    with TestClient(create_app(settings)) as client:
        predictions = client.post("/v1/models/digits-cnn:predict", json={"instances": images.tolist()}).json()[
            "predictions"
        ]
        probs = np.array([[p["probabilities"][str(k)] for k in range(10)] for p in predictions])
        labels = [
            {"prediction_id": p["prediction_id"], "label": int(y)}
            for p, y in zip(predictions[:N_LABELLED], truth, strict=False)
        ]
        assert client.post("/v1/feedback", json={"labels": labels}).json()["accepted"] == N_LABELLED
        yield client, probs, truth


def test_status_equals_the_offline_metrics_on_the_same_predictions(served) -> None:
    client, probs, truth = served
    status = client.get(STATUS).json()
    p, y = probs[:N_LABELLED], truth[:N_LABELLED]
    for span in ("window", "since_start"):
        assert status[span]["labels"] == N_LABELLED
        assert status[span]["ece"] == pytest.approx(ece(p, y), abs=1e-12)
        assert status[span]["accuracy"] == pytest.approx(accuracy(p, y), abs=1e-12)
    offline = bin_statistics(p, y)
    assert [b["count"] for b in status["reliability"]] == offline.counts.tolist()
    acc = [b["accuracy"] for b in status["reliability"]]
    assert acc == pytest.approx([None if np.isnan(a) else a for a in offline.bin_accuracy()])
    assert all(b["reference_accuracy"] is not None or b["reference_confidence"] is None for b in status["reliability"])
    assert status["label_coverage"] == pytest.approx(N_LABELLED / N_PREDICTED)
    assert status["predictions_since_start"] == N_PREDICTED


def test_status_carries_drift_verdict_and_label_free_signals(served) -> None:
    client, probs, _ = served
    status = client.get(STATUS).json()
    drift = status["drift"]
    assert drift["verdict"] in ("ok", "drift") and drift["n"] == N_LABELLED
    assert drift["min_labels"] == 100 and drift["threshold"] > 0 and 0 <= drift["p_value"] <= 1
    assert drift["statistic"] == pytest.approx(status["window"]["ece"])
    free = status["label_free"]
    assert free["predictions"] == N_PREDICTED
    assert free["mean_confidence"] == pytest.approx(probs.max(axis=1).mean(), abs=1e-9)
    assert free["confidence_psi"] >= 0 and status["reference"]["n"] > 0
    mix = free["class_mix"]  # the served vectors' mean against the manifest's class priors
    assert mix["predictions"] == N_PREDICTED and sum(mix["predicted_counts"]) == N_PREDICTED
    assert mix["predicted_counts"] == np.bincount(probs.argmax(axis=1), minlength=probs.shape[1]).tolist()
    assert mix["estimated"] == pytest.approx(probs.mean(axis=0).tolist(), abs=1e-6)
    assert len(mix["reference"]) == probs.shape[1] and mix["psi"] >= 0 and mix["threshold"] > 0
    assert free["class_mix_shift"] == mix["shift"] == (mix["psi"] > mix["threshold"])


def test_version_query_selects_and_unknown_models_are_404_json(served) -> None:
    client, _, _ = served
    versioned, default = (client.get(STATUS, params=q).json() for q in ({"version": "1"}, {}))
    assert versioned.pop("as_of") <= default.pop("as_of") and versioned == default
    for url, params, field in (
        (STATUS, {"version": "7"}, "model_version"),
        ("/v1/models/nope/calibration", {}, "model_name"),
        ("/v1/models/nope/calibration/reliability.png", {}, "model_name"),
    ):
        response = client.get(url, params=params)
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/json"
        assert response.json()["field"] == field


def test_reliability_png_is_a_valid_png(served, tmp_path: Path) -> None:
    client, _, _ = served
    response = client.get(PNG)
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert response.content.startswith(PNG_MAGIC)
    image = matplotlib.image.imread(io.BytesIO(response.content), format="png")
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 200


def test_openapi_documents_both_endpoints(served) -> None:
    client, _, _ = served
    paths: dict[str, Any] = client.get("/openapi.json").json()["paths"]
    status_ok = paths["/v1/models/{model_name}/calibration"]["get"]["responses"]["200"]
    assert status_ok["content"]["application/json"]["schema"]["$ref"].endswith("/CalibrationStatus")
    png = paths["/v1/models/{model_name}/calibration/reliability.png"]["get"]
    assert "image/png" in png["responses"]["200"]["content"]
    assert "404" in png["responses"]
    assert any(p["name"] == "version" for p in png["parameters"])


def test_feedback_completes_while_many_png_requests_wait_for_their_render(
    digits_artifact, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 16 item 8: 48 PNG requests whose render is held back leave the thread pool that
    feedback uses free: a label sent after them is accepted before any PNG is answered."""
    rendering, release = threading.Event(), threading.Event()
    savefig = Figure.savefig

    def held_savefig(figure: Figure, *args: Any, **kwargs: Any) -> None:
        rendering.set()
        release.wait(30)
        savefig(figure, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", held_savefig)
    app = create_app(Settings(models_dir=digits_artifact.models_dir, state_dir=tmp_path))
    image = load_digits().test_x[:1, 0].tolist()

    async def main() -> tuple[bool, int, dict[str, int], list[int]]:
        transport = httpx.ASGITransport(app=app)
        async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            pid = (await c.post("/v1/models/digits-cnn:predict", json={"instances": image})).json()["predictions"][0][
                "prediction_id"
            ]
            pngs = [asyncio.create_task(c.get(PNG)) for _ in range(48)]
            try:
                assert await asyncio.to_thread(rendering.wait, 30)
                label = {"labels": [{"prediction_id": pid, "label": 0}]}
                feedback = asyncio.create_task(c.post("/v1/feedback", json=label))
                done, _ = await asyncio.wait({feedback}, timeout=15)
                pngs_answered_first = sum(t.done() for t in pngs)
            finally:
                release.set()
            statuses = [r.status_code for r in await asyncio.gather(*pngs)]
            return feedback in done, pngs_answered_first, (await feedback).json(), statuses

    try:
        feedback_done, pngs_answered_first, result, statuses = asyncio.run(main())
    finally:
        release.set()
    assert feedback_done and pngs_answered_first == 0
    assert result["accepted"] == 1
    assert set(statuses) <= {200, 503} and 200 in statuses
