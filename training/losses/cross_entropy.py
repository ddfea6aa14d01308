"""Cross-entropy and label smoothing (the baselines of METHODS 1.1)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from training.losses.base import CalibrationLoss, check_number


def true_class_log_probability(log_probs: Tensor, labels: Tensor) -> Tensor:
    """log p_{i, y_i} as a (B,) vector, from log-probabilities (B, K)."""
    return log_probs.gather(1, labels.unsqueeze(1)).squeeze(1)


def uniform_cross_entropy(log_probs: Tensor) -> Tensor:
    """The smoothing term -(1/K) sum_k log p_k per sample; equals logsumexp(z) - mean(z).

    It lies between the mean logit distance (1/K) sum_k d_k and that plus log K (METHODS 2 (a)).
    """
    return -log_probs.mean(dim=1)


def label_smoothing_per_sample(logits: Tensor, labels: Tensor, alpha: float) -> Tensor:
    """(1 - alpha)(-log p_y) + alpha (1/K) sum_k -log p_k = CE against (1 - alpha) e_y + alpha/K."""
    log_probs = F.log_softmax(logits, dim=1)
    nll = -true_class_log_probability(log_probs, labels)
    return (1.0 - alpha) * nll + alpha * uniform_cross_entropy(log_probs)


class CrossEntropy(CalibrationLoss):
    """CE = -log p_y (the ERM baseline every other loss is compared with)."""

    name = "ce"

    def per_sample(self, logits: Tensor, targets: Tensor) -> Tensor:
        return F.cross_entropy(logits, targets, reduction="none")


class LabelSmoothing(CalibrationLoss):
    """LS (Szegedy et al. 2016): CE against the target (1 - alpha) e_y + alpha/K 1.

    The uniform part also covers the true class, as in torch's ``label_smoothing`` (METHODS 1.1).
    """

    name = "ls"

    def __init__(self, alpha: float = 0.05, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.alpha = check_number("alpha", alpha, 0.0, 1.0)

    def per_sample(self, logits: Tensor, targets: Tensor) -> Tensor:
        return label_smoothing_per_sample(logits, targets, self.alpha)

    def hyperparameters(self) -> dict[str, float]:
        return {"alpha": self.alpha}
