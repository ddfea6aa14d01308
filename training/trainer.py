"""A flat training loop: seeded batches, one log line per epoch, best-by-validation-accuracy
checkpoint.

The checkpoint carries its config, class names, input shape and normalisation, so ``calibrate`` and
``export`` need nothing but the run directory. ``last.pt`` also carries the optimizer, GradScaler,
loss (CALS multipliers) and RNG states, so ``train(..., resume=True)`` continues a run exactly.
Under torchrun the same function runs in every process (training/distributed.py); rank 0 writes.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from training import distributed
from training.checkpoint import (
    BEST_CHECKPOINT,
    LAST_CHECKPOINT,
    load_checkpoint,
    model_record,
    refuse_existing_run,
    restore_rng_states,
    resume_record,
    rng_states,
    save_atomically,
)
from training.config import TrainConfig
from training.data import (
    ImageDataset,
    carve_calibration,
    channel_statistics,
    load_dataset,
    normalize,
    split_train_validation,
)
from training.errors import TrainingError
from training.label_noise import flip_labels
from training.loop import make_scaler, predict_logits, train_one_epoch, validation_epoch
from training.losses import LOSSES, CalibrationLoss, LossConfigError, build_loss
from training.networks import build_network
from training.runlog import LOG_FILE, log_epoch, truncate_log
from training.schedule import build_optimizer, learning_rate, set_learning_rate

__all__ = [
    "BEST_CHECKPOINT",
    "LAST_CHECKPOINT",
    "LOG_FILE",
    "PreparedData",
    "TrainConfig",
    "choose_device",
    "load_checkpoint",
    "make_loss",
    "predict_logits",
    "prepare_data",
    "seed_everything",
    "train",
]


@dataclass
class PreparedData:
    """Normalised float tensors for train / validation / test and the recorded preprocessing."""

    dataset: ImageDataset
    mean: list[float]
    std: list[float]
    train: tuple[torch.Tensor, torch.Tensor]
    validation: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]
    calibration: tuple[torch.Tensor, torch.Tensor] | None = None


def prepare_data(config: TrainConfig, dataset: ImageDataset | None = None) -> PreparedData:
    """Split (train, validation, optional calibration carve), compute normalisation on the training
    part only, flip training labels if ``label_noise`` > 0, and convert to tensors."""
    ds = dataset if dataset is not None else load_dataset(config.data)
    split = split_train_validation(len(ds.train_y), config.validation_fraction, config.seed)
    if config.train_subset > len(split.train):
        raise TrainingError(
            f"--train-subset {config.train_subset}: only {len(split.train)} training images after the validation carve"
        )
    train_idx, calibration_idx = carve_calibration(
        split.train, config.train_subset, config.calibration_size, config.seed
    )
    mean, std = channel_statistics(ds.train_x[train_idx])
    train_y = flip_labels(ds.train_y[train_idx], len(ds.classes), config.label_noise, config.seed)

    def tensors(x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(normalize(x, mean, std)), torch.from_numpy(y)

    return PreparedData(
        ds,
        mean,
        std,
        tensors(ds.train_x[train_idx], train_y),
        tensors(ds.train_x[split.validation], ds.train_y[split.validation]),
        tensors(ds.test_x, ds.test_y),
        tensors(ds.train_x[calibration_idx], ds.train_y[calibration_idx]) if config.calibration_size else None,
    )


def choose_device() -> torch.device:
    """CUDA when present, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> None:
    """Seed torch, CUDA and numpy; deterministic kernels where torch offers them."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=True)


def make_loss(config: TrainConfig, num_classes: int, device: torch.device) -> CalibrationLoss:
    """The registered loss with the run's hyper-parameters; mixup draws from a seeded generator."""
    params: dict[str, object] = dict(config.loss_params)
    if config.loss == "mixup":
        params["generator"] = torch.Generator(device=device).manual_seed(config.seed)
    option = "--loss-param" if config.loss in LOSSES else "--loss"
    try:
        return build_loss(config.loss, num_classes=num_classes, **params).to(device)
    except LossConfigError as error:
        raise LossConfigError(f"{option} ({config.loss}): {error}") from error


@dataclass
class RunState:
    """What the epoch loop carries: model (maybe DDP-wrapped), loss, optimizer, scaler, progress."""

    model: nn.Module
    loss_fn: CalibrationLoss
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler | None
    start_epoch: int
    best: dict[str, float]


def build_run(
    config: TrainConfig,
    prepared: PreparedData,
    ctx: distributed.DistContext,
    out_dir: Path,
    resume: bool,
) -> RunState:
    """Seeded model, loss, optimizer and scaler; on resume, their states from ``last.pt``."""
    ds = prepared.dataset
    model = build_network(config.architecture, ds.input_shape, len(ds.classes), config.width)
    model = model.to(ctx.device)
    loss_fn = make_loss(config, len(ds.classes), ctx.device)
    optimizer = build_optimizer(config, model.parameters())
    scaler = make_scaler(ctx.device, config.amp)
    state = RunState(model, loss_fn, optimizer, scaler, 0, {"val_accuracy": -1.0})
    if resume:
        restore_run(state, resume_record(out_dir, config))
    else:  # every rank checks, so that all of them stop alike
        refuse_existing_run(out_dir)
    state.model = distributed.wrap_model(state.model, ctx)
    return state


def restore_run(state: RunState, record: dict[str, Any]) -> None:
    """Load model, optimizer, scaler, loss and RNG states; continue after the saved epoch."""
    state.model.load_state_dict(record["model_state"])
    state.optimizer.load_state_dict(record["optimizer_state"])
    state.loss_fn.load_state_dict(record["loss_state"])
    if state.scaler is not None and record.get("scaler_state"):
        state.scaler.load_state_dict(record["scaler_state"])
    restore_rng_states(record["rng"], getattr(state.loss_fn, "generator", None))
    state.start_epoch, state.best = int(record["epoch"]), dict(record["best"])


def checkpoint(
    state: RunState,
    config: TrainConfig,
    prepared: PreparedData,
    out_dir: Path,
    record: dict[str, float],
) -> None:
    """Write last.pt (full state) and, on a new best validation accuracy, best.pt (model only)."""
    model = distributed.unwrap(state.model)
    base = model_record(
        model,
        state.loss_fn,
        config,
        prepared.dataset.classes,
        prepared.dataset.input_shape,
        prepared.mean,
        prepared.std,
        int(record["epoch"]),
        record,
    )
    if record["val_accuracy"] > state.best["val_accuracy"]:
        state.best = dict(record)
        save_atomically(base, out_dir / BEST_CHECKPOINT)
    full = {
        **base,
        "best": state.best,
        "optimizer_state": state.optimizer.state_dict(),
        "scaler_state": state.scaler.state_dict() if state.scaler is not None else None,
        "rng": rng_states(getattr(state.loss_fn, "generator", None)),
    }
    save_atomically(full, out_dir / LAST_CHECKPOINT)


def on_device(pair: tuple[torch.Tensor, torch.Tensor], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep a small data set resident on the accelerator (no per-batch host copies)."""
    return pair[0].to(device), pair[1].to(device)


def train(
    config: TrainConfig,
    out_dir: Path,
    dataset: ImageDataset | None = None,
    resume: bool = False,
    progress: bool = True,
) -> dict[str, float]:
    """Train, log one line per epoch (and JSON lines), keep the best-validation-accuracy checkpoint.

    Returns the best epoch's record. ``resume`` continues from ``out_dir/last.pt``; ``progress``
    shows the per-batch bar and the per-epoch line. Under torchrun only rank 0 writes.
    """
    config.validate()
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
    ctx = distributed.setup()
    try:
        best = run_epochs(config, out_dir, dataset, resume, progress, ctx)
    except BaseException:
        distributed.teardown(ctx, wait=False)  # the other ranks may never reach a barrier
        raise
    distributed.teardown(ctx, wait=True)
    return best


def run_epochs(
    config: TrainConfig,
    out_dir: Path,
    dataset: ImageDataset | None,
    resume: bool,
    progress: bool,
    ctx: distributed.DistContext,
) -> dict[str, float]:
    """The epoch loop of ``train`` (for one process of the job)."""
    if config.batch_size % ctx.world_size:
        raise TrainingError(
            f"--batch-size {config.batch_size}: the global batch must divide into {ctx.world_size} processes"
        )
    seed_everything(config.seed)
    prepared = prepare_data(config, dataset)
    if len(prepared.validation[1]) < ctx.world_size:
        raise TrainingError("--validation-fraction: fewer validation images than processes")
    out_dir.mkdir(parents=True, exist_ok=True)
    state = build_run(config, prepared, ctx, out_dir, resume)
    if ctx.is_main:
        truncate_log(out_dir, state.start_epoch)
    train_data = on_device(prepared.train, ctx.device)
    train_data = state.loss_fn.attach(state.model, state.optimizer, train_data, config.seed)
    for epoch in range(state.start_epoch, config.epochs):
        started = time.perf_counter()
        set_learning_rate(state.optimizer, learning_rate(config, epoch))
        loss, train_acc = train_one_epoch(
            state.model,
            state.loss_fn,
            state.optimizer,
            train_data,
            config,
            epoch,
            ctx,
            state.scaler,
            progress,
        )
        val = validation_epoch(state.model, state.loss_fn, prepared.validation, epoch, ctx)
        record = {
            "epoch": epoch + 1,
            "lr": learning_rate(config, epoch),
            "loss": loss,
            "accuracy": train_acc,
            **val,
            "seconds": time.perf_counter() - started,
        }
        if ctx.is_main:
            checkpoint(state, config, prepared, out_dir, record)
            log_epoch(out_dir, record, config.epochs, progress)
        elif record["val_accuracy"] > state.best["val_accuracy"]:
            state.best = dict(record)
    return state.best
