"""Checkpoints that carry their config: ``best.pt`` (the model to calibrate and export) and
``last.pt`` (everything to resume: optimizer, GradScaler, loss state, RNG states, best so far).

Both are plain dicts of tensors and Python values, loaded with ``weights_only=True`` (no arbitrary
pickles). Writes go to a temporary file first and are renamed into place, so an interrupted write
never leaves a truncated checkpoint behind.
"""

from __future__ import annotations

import os
import random
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from training.config import TrainConfig
from training.errors import RunDirectoryError, TrainingError
from training.networks import build_network

BEST_CHECKPOINT = "best.pt"
LAST_CHECKPOINT = "last.pt"


def cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """A module's state_dict detached and on CPU."""
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}


def model_record(
    model: nn.Module,
    loss_fn: nn.Module,
    config: TrainConfig,
    classes: list[str],
    input_shape: tuple[int, int, int],
    mean: list[float],
    std: list[float],
    epoch: int,
    metrics: dict[str, float],
) -> dict[str, Any]:
    """The self-describing part: weights, config, classes, input shape, normalisation, metrics."""
    return {
        "config": asdict(config),
        "model_state": cpu_state(model),
        "loss_state": cpu_state(loss_fn),
        "classes": list(classes),
        "input_shape": list(input_shape),
        "mean": list(mean),
        "std": list(std),
        "epoch": epoch,
        "metrics": dict(metrics),
    }


def rng_states(generator: torch.Generator | None) -> dict[str, Any]:
    """torch (CPU and CUDA), numpy, Python and the loss's own generator (mixup) states."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [name, torch.from_numpy(np.asarray(keys, dtype=np.int64)), pos, has_gauss, cached],
        "python": random.getstate(),
        "generator": generator.get_state() if generator is not None else None,
    }


def restore_rng_states(states: dict[str, Any], generator: torch.Generator | None) -> None:
    """Inverse of ``rng_states``."""
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    name, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    random.setstate(_as_tuples(states["python"]))
    if generator is not None and states["generator"] is not None:
        generator.set_state(states["generator"])


def _as_tuples(value: Any) -> Any:
    """random.setstate wants tuples where a round trip may have produced lists."""
    return tuple(_as_tuples(v) for v in value) if isinstance(value, list | tuple) else value


def save_atomically(record: dict[str, Any], path: Path) -> None:
    """torch.save to path.tmp, then rename over path."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(record, tmp)
    os.replace(tmp, path)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """torch.load with weights_only=True; a missing file says how to make one."""
    if not path.is_file():
        raise RunDirectoryError(f"{path} not found: train first with `candor train --out {path.parent}`")
    record: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    return record


def load_checkpoint(run_dir: Path, name: str = BEST_CHECKPOINT) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the network from a run directory's checkpoint: (model in eval mode, checkpoint dict).

    The dict holds config, classes, input_shape, mean, std, model_state (and loss_state, metrics).
    """
    ckpt = read_checkpoint(run_dir / name)
    config = ckpt["config"]
    model = build_network(
        config["architecture"],
        tuple(ckpt["input_shape"]),
        len(ckpt["classes"]),
        width=config.get("width"),
    )
    model.load_state_dict(ckpt["model_state"])
    model.eval()
    return model, ckpt


def resume_record(run_dir: Path, config: TrainConfig) -> dict[str, Any]:
    """``last.pt`` of a run started with the same options; differing options are named."""
    path = run_dir / LAST_CHECKPOINT
    if not path.is_file():
        raise RunDirectoryError(f"--resume: {path} not found; start the run without --resume")
    record = read_checkpoint(path)
    if "optimizer_state" not in record:
        raise RunDirectoryError(
            f"--resume: {path} holds no training state (written by an older candor); start a new run with another --out"
        )
    saved = TrainConfig(**record["config"])
    changed = config.differences(saved)
    if changed:
        detail = ", ".join(
            f"{name} {getattr(config, name)!r} (checkpoint {getattr(saved, name)!r})" for name in changed
        )
        raise TrainingError(
            f"--resume: options differ from the checkpoint's: {detail}; resume with the original options"
        )
    return record


def refuse_existing_run(run_dir: Path) -> None:
    """A fresh run must not overwrite or append to another run's files."""
    if (run_dir / LAST_CHECKPOINT).exists():
        raise RunDirectoryError(
            f"--out {run_dir} already holds a run: pass --resume to continue it, or choose another --out"
        )
