"""Optimizers and learning-rate schedules as pure functions of the config (nanoGPT's get_lr).

The learning rate of epoch e is a function of (config, e) only, so resuming at epoch e restores the
schedule exactly with no scheduler state to save.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from training.config import TrainConfig


def learning_rate(config: TrainConfig, epoch: int) -> float:
    """lr of ``epoch`` (from 0): multistep lr decay^#{m <= e}; cosine lr (1 + cos(pi e / E)) / 2."""
    if config.schedule == "cosine":
        return config.lr * 0.5 * (1.0 + math.cos(math.pi * epoch / config.epochs))
    passed = sum(1 for milestone in config.milestones if milestone <= epoch)
    return config.lr * config.lr_decay**passed


def build_optimizer(config: TrainConfig, parameters: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """Adam (L2 weight decay, as torch's Adam) or SGD with momentum (no Nesterov, as the papers)."""
    params = list(parameters)
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Write ``lr`` into every parameter group."""
    for group in optimizer.param_groups:
        group["lr"] = lr
