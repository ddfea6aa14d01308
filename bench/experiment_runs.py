"""Running and scoring the experiment's jobs: train (or reuse) a run, cache its calibration-split
and test logits, fit TS and FTS on the calibration split only, score the test split per stage.

Jobs run in worker processes (``--workers``), each with its own torch thread count; a finished run
directory is reused by a re-run, so an interrupted experiment resumes where it stopped.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch

from bench.experiment_plan import Job
from calibration import metrics
from calibration.maps import focal_temperature_scale, softmax
from calibration.posthoc import FTS_GAMMAS, fit_focal_temperature, fit_temperature
from calibration.significance import ece_floor
from training.checkpoint import LAST_CHECKPOINT, load_checkpoint
from training.config import TrainConfig
from training.data import ImageDataset, load_dataset
from training.loop import predict_logits
from training.trainer import prepare_data, train

LOGITS_FILE = "logits.npz"
METRIC_NAMES = ("accuracy", "ece", "adaptive_ece", "classwise_ece", "smooth_ece", "nll", "brier")
_DATASETS: dict[str, ImageDataset] = {}


@dataclass
class RunResult:
    """One job: calibration-split figures (for selection), test scores and probabilities per stage,
    the fitted maps, the ECE floor of each stage, and the training wall time."""

    job: Job
    calibration: dict[str, float]
    scores: dict[str, dict[str, float]]
    params: dict[str, dict[str, float]]
    probs: dict[str, np.ndarray] = field(repr=False)
    labels: np.ndarray = field(repr=False)
    seconds: float = 0.0


def dataset(name: str) -> ImageDataset:
    """The data set, loaded once per process."""
    if name not in _DATASETS:
        _DATASETS[name] = load_dataset(name)
    return _DATASETS[name]


def train_and_cache(config: TrainConfig, run_dir: Path, threads: int) -> float:
    """Train into ``run_dir`` (resuming a partial run) and write the calibration / test logits of
    the best-by-validation-accuracy checkpoint; returns the seconds spent (0 if cached)."""
    if (run_dir / LOGITS_FILE).exists():
        return 0.0
    torch.set_num_threads(threads)
    started = time.perf_counter()
    data = dataset(config.data)
    train(config, run_dir, dataset=data, resume=(run_dir / LAST_CHECKPOINT).exists(), progress=False)
    model, _ = load_checkpoint(run_dir)
    prepared = prepare_data(config, data)
    assert prepared.calibration is not None, "the experiment's presets carve a calibration split"
    (xc, yc), (xt, yt) = prepared.calibration, prepared.test
    zc, zt = (predict_logits(model, x).double().numpy() for x in (xc, xt))
    np.savez(run_dir / LOGITS_FILE, zc=zc, yc=yc.numpy(), zt=zt, yt=yt.numpy())
    return time.perf_counter() - started


def run_jobs(
    jobs: Iterable[tuple[Job, TrainConfig, Path]], workers: int, threads: int
) -> Iterator[tuple[Job, Path, float]]:
    """Train every job, ``workers`` at a time (spawned processes); yields as each finishes."""
    pending = list(jobs)
    if workers <= 1:
        for job, config, run_dir in pending:
            yield job, run_dir, train_and_cache(config, run_dir, threads)
        return
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(train_and_cache, c, d, threads): (j, d) for j, c, d in pending}
        for future in as_completed(futures):
            job, run_dir = futures[future]
            yield job, run_dir, future.result()


def stage_probabilities(
    zc: np.ndarray, yc: np.ndarray, zt: np.ndarray
) -> tuple[dict[str, np.ndarray], dict[str, dict[str, float]]]:
    """Test probabilities raw / TS / FTS, the maps fitted on the calibration split by NLL; FTS
    records whether its gamma sits at an edge of the grid (-1 is the edge of the map's domain)."""
    ts, fts = fit_temperature(zc, yc), fit_focal_temperature(zc, yc)
    edge = fts.gamma in (min(FTS_GAMMAS), max(FTS_GAMMAS))
    probs = {
        "raw": softmax(zt),
        "ts": softmax(zt / ts.temperature),
        "fts": focal_temperature_scale(zt, fts.temperature, fts.gamma),
    }
    params: dict[str, dict[str, float]] = {
        "raw": {},
        "ts": {"T": ts.temperature, "calibration_nll": ts.nll_after},
        "fts": {"T": fts.temperature, "gamma": fts.gamma, "edge": float(edge), "calibration_nll": fts.nll_after},
    }
    return probs, params


def score(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Every metric of the tables (fractions), mean confidence, and the ECE floor's mean and range."""
    scores = {name: float(getattr(metrics, name)(probs, labels)) for name in METRIC_NAMES}
    scores["confidence"] = float(probs.max(axis=1).mean())
    scores["ece_floor"], scores["ece_floor_low"], scores["ece_floor_high"] = ece_floor(probs.max(axis=1), 100)
    return scores


def evaluate(job: Job, run_dir: Path, seconds: float) -> RunResult:
    """Score one finished run from its cached logits (the test split is only scored here)."""
    cached = np.load(run_dir / LOGITS_FILE)
    zc, yc, zt, yt = cached["zc"], cached["yc"], cached["zt"], cached["yt"]
    p_cal = softmax(zc)
    calibration = {"nll": metrics.nll(p_cal, yc), "ece": metrics.ece(p_cal, yc), "n": float(len(yc))}
    probs, params = stage_probabilities(zc, yc, zt)
    scores = {stage: score(p, yt) for stage, p in probs.items()}
    return RunResult(job, calibration, scores, params, probs, yt, seconds)
