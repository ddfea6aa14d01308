"""ECP: confidence penalty by negative entropy (Pereyra et al., ICLR-W 2017); METHODS 1.1."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from training.losses.base import CalibrationLoss, check_number
from training.losses.cross_entropy import true_class_log_probability

PROBABILITY_FLOOR = 1e-10


def mean_entropy_terms(log_probs: Tensor) -> Tensor:
    """(1/K) sum_k -p_k log p_k per sample, p clamped to [1e-10, 1 - 1e-10] (the code form)."""
    p = log_probs.exp().clamp(PROBABILITY_FLOOR, 1.0 - PROBABILITY_FLOOR)
    return -(p * p.log()).mean(dim=1)


class EntropyConfidencePenalty(CalibrationLoss):
    """ECP = CE - alpha * mean_{i,k}(-p_ik log p_ik), code form: per-sample entropy weight alpha/K.

    Default alpha = 0.1 (by-liu configs). Reimplementations with the per-sample entropy H(p) need
    a K-times smaller alpha (METHODS 2 (e)).
    """

    name = "ecp"

    def __init__(self, alpha: float = 0.1, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.alpha = check_number("alpha", alpha, 0.0)

    def per_sample(self, logits: Tensor, targets: Tensor) -> Tensor:
        log_probs = F.log_softmax(logits, dim=1)
        nll = -true_class_log_probability(log_probs, targets)
        return nll - self.alpha * mean_entropy_terms(log_probs)

    def hyperparameters(self) -> dict[str, float]:
        return {"alpha": self.alpha}
