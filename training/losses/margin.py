"""MbLS: margin-based label smoothing (Liu, Ben Ayed, Galdran, Dolz; CVPR 2022); METHODS 2."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from training.losses.base import CalibrationLoss, check_number


def logit_distances(logits: Tensor) -> Tensor:
    """d_ik = max_j z_ij - z_ik >= 0, (B, K); zero at the argmax, invariant to a shift of all z."""
    return logits.max(dim=1, keepdim=True).values - logits


def margin_penalty(logits: Tensor, margin: float) -> Tensor:
    """(1/K) sum_k ReLU(d_k - m) per sample; its batch mean is the code form's mean over B*K."""
    return F.relu(logit_distances(logits) - margin).mean(dim=1)


class MarginLabelSmoothing(CalibrationLoss):
    """L = CE + lambda * mean_{i,k} ReLU(d_ik - m): a hinge on logit distances beyond the margin.

    Code form of by-liu/MbLS (penalty averaged over B*K); defaults m = 10, lambda = 0.1.
    """

    name = "mbls"

    def __init__(self, margin: float = 10.0, lam: float = 0.1, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.margin = check_number("margin", margin, 0.0)
        self.lam = check_number("lam", lam, 0.0)

    def per_sample(self, logits: Tensor, targets: Tensor) -> Tensor:
        nll = F.cross_entropy(logits, targets, reduction="none")
        return nll + self.lam * margin_penalty(logits, self.margin)

    def hyperparameters(self) -> dict[str, float]:
        return {"margin": self.margin, "lam": self.lam}
