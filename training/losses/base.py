"""The loss interface every Candor training loss implements, its typed errors and shared checks.

A loss is an ``nn.Module`` whose ``forward(logits, targets)`` follows torch's ``reduction``
convention ('mean' default, 'sum', 'none' -> one value per sample). Subclasses implement
``per_sample``; the optional hooks (``mix_batch``, ``validation_statistics``, ``end_epoch``,
``summary``, ``attach``) default to no-ops so the trainer calls them on every loss without type
checks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from training.errors import TrainingError

REDUCTIONS = ("mean", "sum", "none")


class LossError(TrainingError, ValueError):
    """Base class of the training-loss errors (user-fixable: the CLI reports them in one line)."""


class LossConfigError(LossError):
    """A hyper-parameter outside its allowed range; the message names it and the range."""


class LossInputError(LossError):
    """Logits, targets or epoch statistics of the wrong shape for this loss."""


@dataclass(frozen=True)
class MixedTargets:
    """Targets of an s-point mixed batch: ``labels`` (s, B) int, ``weights`` (s,) summing to 1.

    Row j holds the labels of the j-th permutation of the batch (row 0: the identity).
    """

    labels: Tensor
    weights: Tensor


Targets = Tensor | MixedTargets


def check_number(
    name: str,
    value: float,
    low: float,
    high: float = math.inf,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a float if it is a finite real in the interval, else raise LossConfigError."""
    closing = ")" if high_open or high == math.inf else "]"
    interval = f"{'(' if low_open else '['}{low:g}, {high:g}{closing}"
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise LossConfigError(f"{name} must be a finite number in {interval}, got {value!r}")
    below = value <= low if low_open else value < low
    above = value >= high if high_open or high == math.inf else value > high
    if below or above:
        raise LossConfigError(f"{name} must be a finite number in {interval}, got {value!r}")
    return float(value)


def check_integer(name: str, value: int, low: int) -> int:
    """Return ``value`` if it is an int >= low (bools rejected), else raise LossConfigError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise LossConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    return value


def check_reduction(reduction: str) -> str:
    """Return ``reduction`` if torch's convention allows it, else raise LossConfigError."""
    if reduction not in REDUCTIONS:
        raise LossConfigError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return reduction


def reduce(per_sample: Tensor, reduction: str) -> Tensor:
    """Apply torch's reduction convention to a (B,) vector of per-sample losses."""
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "sum":
        return per_sample.sum()
    return per_sample


def as_float_logits(logits: Tensor) -> Tensor:
    """Logits as (B, K) in at least float32 (half precision under AMP is upcast)."""
    if logits.dim() != 2:
        raise LossInputError(f"logits must have shape (B, K), got {tuple(logits.shape)}")
    if logits.dtype in (torch.float16, torch.bfloat16):
        return logits.float()
    return logits


def check_labels(logits: Tensor, labels: Tensor) -> None:
    """Raise LossInputError unless labels has shape (B,) for logits (B, K)."""
    if labels.shape != logits.shape[:1]:
        raise LossInputError(
            f"targets must have shape ({logits.shape[0]},) for logits {tuple(logits.shape)}, got {tuple(labels.shape)}"
        )


def add_statistics(total: dict[str, Tensor], batch: dict[str, Tensor]) -> dict[str, Tensor]:
    """Sum two dicts of validation statistics key by key (the accumulation the trainer does)."""
    summed = dict(total)
    for key, value in batch.items():
        summed[key] = summed[key] + value if key in summed else value
    return summed


class CalibrationLoss(nn.Module):
    """Base class: ``forward(logits (B, K), targets (B,) int) -> loss`` with torch's reduction."""

    name: ClassVar[str]
    needs_num_classes: ClassVar[bool] = False
    needs_features: ClassVar[bool] = False  # gamma-net: needs attach(), not bare logits

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = check_reduction(reduction)

    def forward(self, logits: Tensor, targets: Targets) -> Tensor:
        logits = as_float_logits(logits)
        if not isinstance(targets, Tensor):
            raise LossInputError(f"{self.name} takes integer targets (B,), got {type(targets).__name__}")
        check_labels(logits, targets)
        return reduce(self.per_sample(logits, targets), self.reduction)

    def per_sample(self, logits: Tensor, targets: Tensor) -> Tensor:
        """The (B,) per-sample losses, whose mean is the 'mean' reduction."""
        raise NotImplementedError

    def hyperparameters(self) -> dict[str, float]:
        """Constructor keyword arguments for the manifest (not reduction, not num_classes)."""
        return {}

    def attach(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        train: tuple[Tensor, Tensor],
        seed: int,
    ) -> tuple[Tensor, Tensor]:
        """Bind the loss to a run before its first epoch; returns the (x, y) to train on.

        The identity for every loss but gamma-net, which carves its meta-validation split off
        ``train`` and reads the network's head and the optimizer's current learning rate.
        """
        return train

    def mix_batch(self, x: Tensor, y: Tensor) -> tuple[Tensor, Targets]:
        """Inputs and targets to train on; the identity except for input-mixing losses."""
        return x, y

    def validation_statistics(self, logits: Tensor) -> dict[str, Tensor]:
        """Summable per-batch statistics of validation logits for ``end_epoch``; none by default."""
        return {}

    def end_epoch(self, statistics: dict[str, Tensor], epoch: int) -> None:
        """Apply the per-epoch update from summed validation statistics; no-op by default."""

    def summary(self) -> dict[str, float]:
        """Scalars for the per-epoch log line; none by default."""
        return {}

    def extra_repr(self) -> str:
        params = ", ".join(f"{k}={v:g}" for k, v in self.hyperparameters().items())
        return f"{params}, reduction={self.reduction!r}" if params else f"reduction={self.reduction!r}"
