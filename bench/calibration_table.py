"""Benchmark: the results table, "which method should I use" (issue 4 item 3).

Trains every registered loss under one preset (same data subset, architecture, optimizer, schedule,
epochs and seeds), takes each run's best-by-validation-accuracy checkpoint, fits TS and FTS on the
validation split (never on test) and scores the test split before and after: accuracy, ECE, AdaECE,
classwise ECE, SECE, smECE, NLL, Brier, as mean +- std over the seeds. Writes <out>/<report>.md
and reliability diagrams (one PNG per stage, predictions pooled over seeds).

    .venv/bin/python -m bench.calibration_table --preset small     # 2-core CPU, ~30 min
    .venv/bin/python -m bench.calibration_table --preset full      # a GPU
    .venv/bin/python -m bench.calibration_table --preset tiny --out /tmp/t   # seconds (digits)

Runs live in --runs/<preset>/<loss>-seed<k>; a re-run resumes or reuses them (train --resume).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bench.calibration_report import RunScores, write_report
from calibration import metrics
from calibration.maps import focal_temperature_scale, softmax
from training.checkpoint import LAST_CHECKPOINT, load_checkpoint
from training.data import ImageDataset, load_dataset
from training.loop import predict_logits
from training.losses import LOSSES
from training.posthoc import fit_focal_temperature, fit_temperature
from training.trainer import TrainConfig, prepare_data, train

TABLE_LOSSES = ("ce", "ls", "focal", "flsd53", "ecp", "mbls", "cals", "mixup", "gamma-net")
METRIC_NAMES = (
    "accuracy",
    "ece",
    "adaptive_ece",
    "classwise_ece",
    "sece",
    "smooth_ece",
    "nll",
    "brier",
)


@dataclass(frozen=True)
class Preset:
    """One benchmark regime: the loss-agnostic run config, the seeds and the report's name."""

    name: str
    report: str
    config: TrainConfig
    seeds: tuple[int, ...]
    regime: str


PRESETS = {
    "tiny": Preset(
        "tiny",
        "digits-tiny",
        TrainConfig(data="digits", width=8, epochs=1, batch_size=64, validation_fraction=0.1),
        (0, 1),
        "smoke test only: scikit-learn digits, 1 epoch, SmallCNN width 8",
    ),
    "small": Preset(
        "small",
        "fashion-mnist",
        TrainConfig(
            data="fashion-mnist",
            architecture="small-cnn",
            width=16,
            epochs=40,
            batch_size=128,
            optimizer="adam",
            lr=2e-3,
            schedule="cosine",
            validation_fraction=1 / 60,
            train_subset=2000,
        ),
        (0, 1, 2),
        "2,000 training images (the first 2,000 of each seed's train split), SmallCNN width 16, "
        "40 epochs of Adam (lr 2e-3, cosine to 0, batch 128, clip 2), no augmentation: training "
        "accuracy reaches ~100% (interpolation) while test accuracy stays near 85%, the regime in "
        "which plain cross-entropy is over-confident; validation 1,000 images (model selection, "
        "TS/FTS fits, CALS multipliers)",
    ),
    "full": Preset(
        "full",
        "fashion-mnist-full",
        TrainConfig(
            data="fashion-mnist",
            architecture="resnet18",
            epochs=60,
            batch_size=128,
            optimizer="sgd",
            lr=0.1,
            momentum=0.9,
            weight_decay=5e-4,
            schedule="multistep",
            milestones=(30, 45),
            validation_fraction=1 / 12,
        ),
        (0, 1, 2),
        "all 55,000 training images, ResNet-18 (3x3 stem), SGD 0.1 momentum 0.9 wd 5e-4, "
        "x0.1 at epochs 30 and 45 of 60, batch 128, clip 2, no augmentation; validation 5,000",
    ),
}


def run_config(preset: Preset, loss: str, seed: int) -> TrainConfig:
    """The preset's config for one (loss, seed); loss hyper-parameters are the registry defaults."""
    return dataclasses.replace(preset.config, loss=loss, seed=seed)


def train_or_reuse(config: TrainConfig, run_dir: Path, dataset: ImageDataset) -> None:
    """Train into ``run_dir``; a directory left by an earlier invocation is resumed (or reused)."""
    train(
        config,
        run_dir,
        dataset=dataset,
        resume=(run_dir / LAST_CHECKPOINT).exists(),
        progress=False,
    )


def split_logits(
    config: TrainConfig, run_dir: Path, dataset: ImageDataset, device: torch.device
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(validation logits, validation labels, test logits, test labels) of the best checkpoint."""
    model, _ = load_checkpoint(run_dir)
    model.to(device)
    prepared = prepare_data(config, dataset)
    (xv, yv), (xt, yt) = prepared.validation, prepared.test
    zv, zt = (predict_logits(model, x).double().numpy() for x in (xv, xt))
    return zv, yv.numpy(), zt, yt.numpy()


def stage_probabilities(
    zv: np.ndarray, yv: np.ndarray, zt: np.ndarray
) -> dict[str, tuple[np.ndarray, dict[str, float]]]:
    """Test probabilities per stage: raw softmax, TS and FTS (Decisions 2, 3) fitted on validation
    NLL; the fitted T (and gamma) are returned beside them."""
    ts, fts = fit_temperature(zv, yv), fit_focal_temperature(zv, yv)
    return {
        "raw": (softmax(zt), {}),
        "ts": (softmax(zt / ts.temperature), {"T": ts.temperature}),
        "fts": (
            focal_temperature_scale(zt, fts.temperature, fts.gamma),
            {"T": fts.temperature, "gamma": fts.gamma},
        ),
    }


def score(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Every metric of the table, as fractions; plus mean confidence (for conf - acc)."""
    scores = {name: float(getattr(metrics, name)(probs, labels)) for name in METRIC_NAMES}
    scores["confidence"] = float(probs.max(axis=1).mean())
    return scores


def evaluate_run(config: TrainConfig, run_dir: Path, dataset: ImageDataset, device: torch.device) -> RunScores:
    """Scores and fitted map parameters per stage, and the test probabilities (for the diagrams)."""
    zv, yv, zt, yt = split_logits(config, run_dir, dataset, device)
    stages = stage_probabilities(zv, yv, zt)
    return RunScores(
        loss=config.loss,
        seed=config.seed,
        scores={stage: score(p, yt) for stage, (p, _) in stages.items()},
        params={stage: params for stage, (_, params) in stages.items()},
        probs={stage: p for stage, (p, _) in stages.items()},
        labels=yt,
    )


def run_all(
    preset: Preset,
    losses: Sequence[str],
    seeds: Sequence[int],
    runs_root: Path,
) -> list[RunScores]:
    """Train and evaluate every (loss, seed), printing one line per run."""
    dataset = load_dataset(preset.config.data)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    results = []
    for seed in seeds:
        for loss in losses:
            started = time.perf_counter()
            config = run_config(preset, loss, seed)
            run_dir = runs_root / preset.name / f"{loss}-seed{seed}"
            train_or_reuse(config, run_dir, dataset)
            result = evaluate_run(config, run_dir, dataset, device)
            results.append(result)
            raw, ts = result.scores["raw"], result.scores["ts"]
            print(
                f"{loss:>7} seed {seed}: acc {raw['accuracy']:.4f}  ECE {100 * raw['ece']:.2f}% "
                f"-> TS {100 * ts['ece']:.2f}%  ({time.perf_counter() - started:.0f}s)",
                flush=True,
            )
    return results


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="small")
    parser.add_argument("--losses", default=",".join(TABLE_LOSSES), help="comma-separated")
    parser.add_argument("--seeds", default="", help="comma-separated (default: the preset's)")
    parser.add_argument("--out", type=Path, default=Path("docs/results"), help="report directory")
    parser.add_argument(
        "--runs",
        type=Path,
        default=Path("runs/calibration-table"),
        help="run directories (reused by a re-run)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: best on a shared machine)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the preset and write the report; returns the process exit status."""
    args = parse_args(argv)
    preset = PRESETS[args.preset]
    losses = [name for name in args.losses.split(",") if name]
    unknown = sorted(set(losses) - set(LOSSES))
    if unknown:
        raise SystemExit(f"--losses: unknown {unknown}; choose from {sorted(LOSSES)}")
    seeds = [int(s) for s in args.seeds.split(",") if s] or list(preset.seeds)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    results = run_all(preset, losses, seeds, args.runs)
    command = " ".join(["python -m bench.calibration_table", *(argv if argv is not None else sys.argv[1:])])
    path = write_report(
        args.out,
        preset.report,
        preset.regime,
        run_config(preset, "ce", 0),
        results,
        command,
        time.perf_counter() - started,
        args.threads,
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
