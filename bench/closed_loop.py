"""The client side of the closed recalibration loop against a running `candor serve` (HTTP only):
serve a shifted stream, label it, watch the drift verdict, recalibrate, and compare old and new
versions on fresh data from the same shift. Shared by tests/e2e/test_recalibration_loop.py and
bench/recalibration.py; numpy, httpx and calibration/ only.

The comparison is paired: both versions score the same fresh images, and one bootstrap (the same
resampled rows for both, ``calibration.significance.paired_bootstrap``) gives the 95% interval of
new - old for NLL, ECE (15 equal-width bins) and accuracy; each version's own figures carry their
percentile bootstrap interval (``calibration.metrics.bootstrap_ci``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray
from prometheus_client.parser import text_string_to_metric_families

from calibration.manifest import load_manifest
from calibration.metrics import accuracy, bootstrap_ci, ece, nll
from calibration.significance import PairedDifference, TopLabel, paired_bootstrap, top_label_ece, top_label_nll

BATCH = 500  # instances per request (the service's max_instances defaults to 1024)
RESAMPLES = 1000


@dataclass(frozen=True)
class Served:
    """What predict answered for a stream: prediction ids and probabilities (N, C) in class order."""

    ids: list[str]
    probs: NDArray[np.float64]


class LoopClient:
    """HTTP calls of the loop on one server for one model (``classes``: its class names in output
    order); ``token`` is sent as a bearer token when given."""

    def __init__(self, url: str, model: str, classes: list[str], token: str | None = None) -> None:
        self.model, self.classes = model, classes
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=url, headers=headers, timeout=120.0)

    def close(self) -> None:
        self.http.close()

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        response = self.http.post(path, json=body)
        if response.status_code != 200:
            raise RuntimeError(f"POST {path}: {response.status_code} {response.text}")
        return response.json()

    def predict(self, images: NDArray[np.uint8]) -> Served:
        """Send ``images`` through ``/v1/models/{m}:predict`` (the default version), in batches."""
        ids: list[str] = []
        rows: list[list[float]] = []
        for start in range(0, len(images), BATCH):
            chunk = images[start : start + BATCH]
            answer = self._post(f"/v1/models/{self.model}:predict", {"instances": chunk.tolist()})
            for p in answer["predictions"]:
                ids.append(p["prediction_id"])
                rows.append([p["probabilities"][c] for c in self.classes])
        return Served(ids, np.asarray(rows, dtype=np.float64))

    def infer(self, version: str, images: NDArray[np.uint8]) -> NDArray[np.float64]:
        """Probabilities (N, C) of one version through ``/v2/models/{m}/versions/{v}/infer``."""
        parts = []
        for start in range(0, len(images), BATCH):
            chunk = images[start : start + BATCH]
            tensor = {"name": "images", "datatype": "FP32", "shape": list(chunk.shape), "data": chunk.ravel().tolist()}
            answer = self._post(f"/v2/models/{self.model}/versions/{version}/infer", {"inputs": [tensor]})
            out = next(o for o in answer["outputs"] if o["name"] == "probabilities")
            parts.append(np.asarray(out["data"], dtype=np.float64).reshape(out["shape"]))
        return np.concatenate(parts)

    def feedback(self, ids: list[str], labels: NDArray[np.int64]) -> dict[str, int]:
        """Send the true class names of ``ids``; returns the summed accepted/unknown/... counts."""
        totals: dict[str, int] = {}
        for start in range(0, len(ids), BATCH):
            body = {
                "labels": [
                    {"prediction_id": i, "label": self.classes[int(y)]}
                    for i, y in zip(ids[start : start + BATCH], labels[start : start + BATCH], strict=True)
                ]
            }
            for key, value in self._post("/v1/feedback", body).items():
                totals[key] = totals.get(key, 0) + int(value)
        return totals

    def calibration(self, version: str | None = None) -> dict[str, Any]:
        """``GET /v1/models/{m}/calibration`` (the default version unless ``version``)."""
        params = {"version": version} if version else {}
        response = self.http.get(f"/v1/models/{self.model}/calibration", params=params)
        response.raise_for_status()
        status: dict[str, Any] = response.json()
        return status

    def wait_for_labels(self, n: int, version: str | None = None, timeout: float = 30.0) -> dict[str, Any]:
        """Poll the calibration status until its window holds ``n`` labels (feedback is committed
        asynchronously); returns that status."""
        return poll(lambda: self.calibration(version), lambda s: s["window"]["labels"] >= n, timeout)

    def samples(self, name: str) -> dict[tuple[tuple[str, str], ...], float]:
        """The samples called ``name`` in /metrics, keyed by their sorted (label, value) pairs."""
        text = self.http.get("/metrics").raise_for_status().text
        return {
            tuple(sorted(s.labels.items())): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == name
        }

    def drift_gauges(self) -> dict[tuple[str, str], float]:
        """``candor_calibration_drift_detected`` per (model, version) from /metrics."""
        return {
            (labels["model"], labels["version"]): value
            for key, value in self.samples("candor_calibration_drift_detected").items()
            for labels in [dict(key)]
        }

    def recalibrate(self, method: str, window_seconds: float, promote: str = "auto") -> dict[str, Any]:
        """``POST /v2/repository/models/{m}/recalibrate``; the answer as JSON."""
        body = {"method": method, "window_seconds": window_seconds, "promote": promote}
        answer: dict[str, Any] = self._post(f"/v2/repository/models/{self.model}/recalibrate", body)
        return answer


def score_artifact(directory: Path, images: NDArray[np.uint8]) -> NDArray[np.float64]:
    """Probabilities (N, C) of an artifact directory (e.g. a candidate left unpromoted) with ONNX
    Runtime, after the manifest's preprocessing: what serving it would answer."""
    manifest = load_manifest(directory)
    session = ort.InferenceSession(str(directory / manifest.onnx_file), providers=["CPUExecutionProvider"])
    x = manifest.preprocessing.normalise(images.astype(np.float64), manifest.instance_shape, "images")
    out = [session.run(None, {manifest.input.name: x[i : i + BATCH]})[0] for i in range(0, len(x), BATCH)]
    return np.concatenate(out).astype(np.float64)


def poll(read: Callable[[], dict[str, Any]], done: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any]:
    """Call ``read`` every 0.2 s until ``done`` holds for its value; TimeoutError with the last one."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met after {timeout}s; last value: {value}")
        time.sleep(0.2)


@dataclass(frozen=True)
class Figure:
    """A metric's point estimate and 95% percentile bootstrap interval."""

    value: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.value:.4f} [{self.low:.4f}, {self.high:.4f}]"


@dataclass(frozen=True)
class VersionFigures:
    """ECE, NLL and accuracy of one version on the fresh set, each with its interval."""

    ece: Figure
    nll: Figure
    accuracy: Figure


def version_figures(probs: NDArray[np.float64], labels: NDArray[np.int64], seed: int = 0) -> VersionFigures:
    """Figures of one version's probabilities on the fresh labels (bootstrap over rows)."""

    def figure(metric: Callable[..., float]) -> Figure:
        low, high = bootstrap_ci(metric, probs, labels, n_resamples=RESAMPLES, seed=seed)
        return Figure(metric(probs, labels), low, high)

    return VersionFigures(figure(ece), figure(nll), figure(accuracy))


def top_label_accuracy(record: TopLabel) -> float:
    """Fraction of rows whose top class is the true one."""
    return float(record.correct.mean())


@dataclass(frozen=True)
class Comparison:
    """Old and new versions on the same fresh rows, and paired new - old differences."""

    n: int
    old: VersionFigures
    new: VersionFigures
    nll_diff: PairedDifference
    ece_diff: PairedDifference
    accuracy_diff: PairedDifference


def compare(old: NDArray[np.float64], new: NDArray[np.float64], labels: NDArray[np.int64], seed: int = 0) -> Comparison:
    """Paired comparison of two versions' probabilities on the same labelled rows (see module)."""
    a, b = [TopLabel.from_probs(new, labels)], [TopLabel.from_probs(old, labels)]

    def diff(metric: Callable[[TopLabel], float]) -> PairedDifference:
        return paired_bootstrap(metric, a, b, n_resamples=RESAMPLES, seed=seed)

    return Comparison(
        n=len(labels),
        old=version_figures(old, labels, seed),
        new=version_figures(new, labels, seed),
        nll_diff=diff(top_label_nll),
        ece_diff=diff(top_label_ece),
        accuracy_diff=diff(top_label_accuracy),
    )


def interval(d: PairedDifference) -> str:
    """'mean [low, high]' of a paired difference."""
    return f"{d.mean:+.4f} [{d.low:+.4f}, {d.high:+.4f}]"
