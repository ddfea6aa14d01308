"""A flat training loop: seeded batches, one log line per epoch, best-by-validation-accuracy checkpoint.

The checkpoint carries its config, class names, input shape and normalisation, so ``calibrate`` and
``export`` need nothing but the run directory.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from calibration.metrics import accuracy, ece
from training.data import ImageDataset, channel_statistics, load_dataset, normalize, split_train_validation
from training.errors import RunDirectoryError, TrainingError
from training.losses import CalibrationLoss, add_statistics, build_loss
from training.networks import build_network

BEST_CHECKPOINT = "best.pt"
LAST_CHECKPOINT = "last.pt"
LOG_FILE = "log.jsonl"
CORE_LOG_FIELDS = ("epoch", "loss", "accuracy", "val_accuracy", "val_ece", "seconds")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a run (saved in every checkpoint)."""

    data: str = "fashion-mnist"
    architecture: str = "small-cnn"
    loss: str = "ce"
    loss_params: dict[str, float] = field(default_factory=dict)
    epochs: int = 5
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0
    validation_fraction: float = 0.1
    train_subset: int = 0  # 0: all training images; else the first n of the seeded train split

    def validate(self) -> None:
        """Reject impossible values with a message naming the option."""
        checks = {"epochs": self.epochs >= 1, "batch-size": self.batch_size >= 1,
                  "lr": self.lr > 0, "weight-decay": self.weight_decay >= 0,
                  "train-subset": self.train_subset >= 0}
        for option, ok in checks.items():
            if not ok:
                raise TrainingError(f"--{option}: invalid value {getattr(self, option.replace('-', '_'))}")


@dataclass
class PreparedData:
    """Normalised float tensors for train / validation / test and the recorded preprocessing."""

    dataset: ImageDataset
    mean: list[float]
    std: list[float]
    train: tuple[torch.Tensor, torch.Tensor]
    validation: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]


def prepare_data(config: TrainConfig, dataset: ImageDataset | None = None) -> PreparedData:
    """Split, compute normalisation on the training part only, and convert to tensors."""
    ds = dataset if dataset is not None else load_dataset(config.data)
    split = split_train_validation(len(ds.train_y), config.validation_fraction, config.seed)
    train_idx = split.train[: config.train_subset] if config.train_subset else split.train
    mean, std = channel_statistics(ds.train_x[train_idx])

    def tensors(x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(normalize(x, mean, std)), torch.from_numpy(y)

    return PreparedData(ds, mean, std,
                        tensors(ds.train_x[train_idx], ds.train_y[train_idx]),
                        tensors(ds.train_x[split.validation], ds.train_y[split.validation]),
                        tensors(ds.test_x, ds.test_y))


def choose_device() -> torch.device:
    """CUDA when present, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> None:
    """Seed torch and numpy; deterministic kernels where torch offers them."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Logits for a whole tensor, in eval mode, batched, on the model's device, returned on CPU."""
    model.eval()
    device = next(model.parameters()).device
    chunks = [model(x[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(chunks)


def train_one_epoch(model: nn.Module, loss_fn: CalibrationLoss, optimizer: torch.optim.Optimizer,
                    data: tuple[torch.Tensor, torch.Tensor], config: TrainConfig, epoch: int,
                    clip_norm: float = 2.0) -> tuple[float, float]:
    """One pass over shuffled batches; returns (mean loss, training accuracy)."""
    model.train()
    device = next(model.parameters()).device
    x, y = data
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(config.seed * 1000 + epoch))
    total_loss, correct = 0.0, 0
    batches = range(0, len(y), config.batch_size)
    for start in tqdm(batches, desc=f"epoch {epoch + 1}/{config.epochs}", leave=False, unit="batch"):
        idx = order[start : start + config.batch_size]
        xb, yb = x[idx].to(device), y[idx].to(device)
        x_in, targets = loss_fn.mix_batch(xb, yb)
        logits = model(x_in)
        loss = loss_fn(logits, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
        optimizer.step()
        total_loss += float(loss.detach()) * len(idx)
        correct += int((logits.argmax(1) == yb).sum())
    return total_loss / len(y), correct / len(y)


def validation_epoch(model: nn.Module, loss_fn: CalibrationLoss, data: tuple[torch.Tensor, torch.Tensor],
                     epoch: int) -> dict[str, float]:
    """Accuracy and ECE on the validation split; per-epoch loss updates (CALS multipliers) from it."""
    logits = predict_logits(model, data[0])
    probs = torch.softmax(logits, dim=1).double().numpy()
    labels = data[1].numpy()
    device = next(loss_fn.buffers(), logits).device
    with torch.no_grad():
        stats = add_statistics({}, loss_fn.validation_statistics(logits.to(device)))
    loss_fn.end_epoch(stats, epoch)
    return {"val_accuracy": accuracy(probs, labels), "val_ece": ece(probs, labels), **loss_fn.summary()}


def save_checkpoint(path: Path, model: nn.Module, loss_fn: CalibrationLoss, config: TrainConfig,
                    prepared: PreparedData, epoch: int, metrics: dict[str, float]) -> None:
    """A self-describing checkpoint: weights plus config, classes, input shape and normalisation."""
    torch.save({
        "config": asdict(config),
        "model_state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "loss_state": {k: v.detach().cpu() for k, v in loss_fn.state_dict().items()},
        "classes": prepared.dataset.classes,
        "input_shape": list(prepared.dataset.input_shape),
        "mean": prepared.mean, "std": prepared.std,
        "epoch": epoch, "metrics": metrics,
    }, path)


def load_checkpoint(run_dir: Path, name: str = BEST_CHECKPOINT) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the network from a run directory's checkpoint (weights_only: no arbitrary pickles)."""
    path = run_dir / name
    if not path.is_file():
        raise RunDirectoryError(f"{path} not found: train first with `candor train --out {run_dir}`")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    model = build_network(ckpt["config"]["architecture"], tuple(ckpt["input_shape"]), len(ckpt["classes"]))
    model.load_state_dict(ckpt["model_state"])
    model.eval()
    return model, ckpt


def train(config: TrainConfig, out_dir: Path, dataset: ImageDataset | None = None) -> dict[str, float]:
    """Train, log one line per epoch (and JSON lines), keep the best-by-validation-accuracy checkpoint."""
    config.validate()
    seed_everything(config.seed)
    prepared = prepare_data(config, dataset)
    device = choose_device()
    model = build_network(config.architecture, prepared.dataset.input_shape,
                          len(prepared.dataset.classes)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    loss_fn = make_loss(config, len(prepared.dataset.classes), device)
    out_dir.mkdir(parents=True, exist_ok=True)
    best: dict[str, float] = {"val_accuracy": -1.0}
    for epoch in range(config.epochs):
        started = time.perf_counter()
        loss, train_acc = train_one_epoch(model, loss_fn, optimizer, prepared.train, config, epoch)
        val = validation_epoch(model, loss_fn, prepared.validation, epoch)
        record = {"epoch": epoch + 1, "loss": loss, "accuracy": train_acc, **val,
                  "seconds": time.perf_counter() - started}
        log_epoch(out_dir, record, config.epochs)
        save_checkpoint(out_dir / LAST_CHECKPOINT, model, loss_fn, config, prepared, epoch + 1, record)
        if record["val_accuracy"] > best["val_accuracy"]:
            best = record
            save_checkpoint(out_dir / BEST_CHECKPOINT, model, loss_fn, config, prepared, epoch + 1, record)
    return best


def make_loss(config: TrainConfig, num_classes: int, device: torch.device) -> CalibrationLoss:
    """The registered loss with the run's hyper-parameters; mixup draws from a seeded generator."""
    params: dict[str, object] = dict(config.loss_params)
    if config.loss == "mixup":
        params["generator"] = torch.Generator(device=device).manual_seed(config.seed)
    return build_loss(config.loss, num_classes=num_classes, **params).to(device)


def log_epoch(out_dir: Path, record: dict[str, float], epochs: int) -> None:
    """Print the per-epoch line and append it to log.jsonl."""
    extras = "".join(f"  {k} {v:.3g}" for k, v in record.items() if k not in CORE_LOG_FIELDS)
    tqdm.write(f"epoch {int(record['epoch'])}/{epochs}  loss {record['loss']:.4f}  "
               f"acc {record['accuracy']:.4f}  val_acc {record['val_accuracy']:.4f}  "
               f"val_ece {record['val_ece']:.4f}{extras}  ({record['seconds']:.1f}s)")
    with (out_dir / LOG_FILE).open("a") as fh:
        fh.write(json.dumps(record) + "\n")
