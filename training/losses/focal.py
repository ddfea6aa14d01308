"""Focal loss and FLSD-53 (Mukhoti et al., NeurIPS 2020, "Calibrating deep neural networks using
focal loss"); METHODS 1.1."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from training.losses.base import CalibrationLoss, check_number
from training.losses.cross_entropy import true_class_log_probability

# Lower bound on 1 - p_y: keeps (1 - p_y)^gamma and its gradient finite as p_y -> 1 (METHODS 4 (e)).
MIN_ONE_MINUS_P = 1e-6


def focal_from_log_probability(log_p_true: Tensor, gamma: Tensor | float) -> Tensor:
    """FL_i = -(1 - p_y)^gamma log p_y, with 1 - p_y = -expm1(log p_y) clamped to >= 1e-6.

    ``gamma`` is a scalar or a (B,) vector of per-sample exponents; gamma = 0 is CE exactly.
    """
    one_minus_p = (-torch.expm1(log_p_true)).clamp_min(MIN_ONE_MINUS_P)
    return -one_minus_p.pow(gamma) * log_p_true


def focal_per_sample(logits: Tensor, labels: Tensor, gamma: Tensor | float) -> Tensor:
    """Focal loss per sample from logits, with log p_y computed by log_softmax."""
    log_p_true = true_class_log_probability(F.log_softmax(logits, dim=1), labels)
    return focal_from_log_probability(log_p_true, gamma)


def flsd53_gamma(
    p_true: Tensor,
    threshold: float = 0.2,
    gamma_low_confidence: float = 5.0,
    gamma_high_confidence: float = 3.0,
) -> Tensor:
    """Per-sample gamma of FLSD-53: 5 where p_y < 0.2, else 3 (p_y = 0.2 maps to 3); no gradient."""
    low = torch.full_like(p_true, gamma_low_confidence)
    high = torch.full_like(p_true, gamma_high_confidence)
    return torch.where(p_true.detach() < threshold, low, high)


class FocalLoss(CalibrationLoss):
    """FL = -(1 - p_y)^gamma log p_y with a fixed gamma (default 3), averaged over the batch."""

    name = "focal"

    def __init__(self, gamma: float = 3.0, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.gamma = check_number("gamma", gamma, 0.0)

    def per_sample(self, logits: Tensor, targets: Tensor) -> Tensor:
        return focal_per_sample(logits, targets, self.gamma)

    def hyperparameters(self) -> dict[str, float]:
        return {"gamma": self.gamma}


class FLSD53(CalibrationLoss):
    """FLSD-53: focal loss with a sample-dependent gamma, 5 if p_y < 0.2 else 3.

    gamma is chosen from the detached p_y, vectorised (the reference loops over samples in Python).
    """

    name = "flsd53"

    def __init__(
        self,
        threshold: float = 0.2,
        gamma_low_confidence: float = 5.0,
        gamma_high_confidence: float = 3.0,
        reduction: str = "mean",
    ) -> None:
        super().__init__(reduction)
        self.threshold = check_number("threshold", threshold, 0.0, 1.0, low_open=True, high_open=True)
        self.gamma_low_confidence = check_number("gamma_low_confidence", gamma_low_confidence, 0.0)
        self.gamma_high_confidence = check_number("gamma_high_confidence", gamma_high_confidence, 0.0)

    def per_sample(self, logits: Tensor, targets: Tensor) -> Tensor:
        log_p_true = true_class_log_probability(F.log_softmax(logits, dim=1), targets)
        gamma = flsd53_gamma(
            log_p_true.detach().exp(),
            self.threshold,
            self.gamma_low_confidence,
            self.gamma_high_confidence,
        )
        return focal_from_log_probability(log_p_true, gamma)

    def hyperparameters(self) -> dict[str, float]:
        return {
            "threshold": self.threshold,
            "gamma_low_confidence": self.gamma_low_confidence,
            "gamma_high_confidence": self.gamma_high_confidence,
        }
