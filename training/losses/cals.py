"""CALS: class adaptive label smoothing (Liu, Rony, Galdran, Dolz, Ben Ayed; CVPR 2023); METHODS 3.

Training step: L = mean_i CE_i + mean_{i,k} P(h_ik; lambda_k, rho_k) with the PHR penalty and the
normalised margin constraints h = (d - m)/m <= 0. Once per epoch, after the training epoch, the
class-wise multipliers lambda and penalty parameters rho are updated from the validation split.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from training.losses.base import CalibrationLoss, LossInputError, check_integer, check_number
from training.losses.margin import logit_distances

STATISTICS = ("multiplier_sum", "constraint_sum", "count")


def normalized_constraints(logits: Tensor, margin: float) -> Tensor:
    """h_ik = (d_ik - m)/m, (B, K); required <= 0, and -1 at the argmax class."""
    return (logit_distances(logits) - margin) / margin


def phr_penalty(h: Tensor, lam: Tensor, rho: Tensor) -> Tensor:
    """PHR (Powell-Hestenes-Rockafellar): P(h) = (max(0, lambda + rho h)^2 - lambda^2) / (2 rho)."""
    return (F.relu(lam + rho * h).square() - lam.square()) / (2.0 * rho)


def phr_derivative(h: Tensor, lam: Tensor, rho: Tensor) -> Tensor:
    """dP/dh = max(0, lambda + rho h): the classical ALM multiplier update."""
    return F.relu(lam + rho * h)


def clipped_multiplier_steps(h: Tensor, lam: Tensor, rho: Tensor, lambda_min: float, lambda_max: float) -> Tensor:
    """Per-sample ALM steps clip(max(0, lambda_k + rho_k h_ik), lambda_min, lambda_max), (B, K)."""
    return phr_derivative(h, lam, rho).clamp(lambda_min, lambda_max)


def update_multipliers(h: Tensor, lam: Tensor, rho: Tensor, lambda_min: float, lambda_max: float) -> Tensor:
    """lambda_k <- clip(mean_i clipped step_ik, lambda_min, lambda_max): end_epoch on one batch."""
    steps = clipped_multiplier_steps(h, lam, rho, lambda_min, lambda_max)
    return steps.mean(dim=0).clamp(lambda_min, lambda_max)


def grow_penalty_parameters(
    rho: Tensor,
    hbar: Tensor,
    previous_hbar: Tensor,
    growth: float,
    tau: float,
    rho_min: float,
    rho_max: float,
) -> Tensor:
    """rho_k <- clip(growth rho_k, rho_min, rho_max) where hbar_k > tau max(0, previous hbar_k)."""
    violated = hbar > tau * previous_hbar.clamp_min(0.0)
    return torch.where(violated, growth * rho, rho).clamp(rho_min, rho_max)


class ClassAdaptiveLabelSmoothing(CalibrationLoss):
    """CALS, class-wise multipliers lambda_k and penalty parameters rho_k (checkpointed buffers).

    Defaults: margin 10 (Candor decision 6), lambda in [1e-6, 1e6] starting at 1e-6, rho in [1, 10]
    starting at 1, rho grows by 1.2 every 10 epochs for classes with hbar_k > 0.9 max(0, previous).
    """

    name = "cals"
    needs_num_classes = True
    lambdas: Tensor
    rhos: Tensor
    previous_hbar: Tensor

    def __init__(
        self,
        num_classes: int,
        margin: float = 10.0,
        lambda_min: float = 1e-6,
        lambda_max: float = 1e6,
        rho_min: float = 1.0,
        rho_max: float = 10.0,
        rho_step: int = 10,
        rho_growth: float = 1.2,
        tau: float = 0.9,
        reduction: str = "mean",
    ) -> None:
        super().__init__(reduction)
        self.num_classes = check_integer("num_classes", num_classes, 2)
        self.margin = check_number("margin", margin, 0.0, low_open=True)
        self.lambda_min = check_number("lambda_min", lambda_min, 0.0, low_open=True)
        self.lambda_max = check_number("lambda_max", lambda_max, self.lambda_min)
        self.rho_min = check_number("rho_min", rho_min, 0.0, low_open=True)
        self.rho_max = check_number("rho_max", rho_max, self.rho_min)
        self.rho_step = check_integer("rho_step", rho_step, 0)
        self.rho_growth = check_number("rho_growth", rho_growth, 1.0)
        self.tau = check_number("tau", tau, 0.0, 1.0)
        self.register_buffer("lambdas", torch.full((num_classes,), self.lambda_min))
        self.register_buffer("rhos", torch.full((num_classes,), self.rho_min))
        self.register_buffer("previous_hbar", torch.full((num_classes,), float("nan")))

    def per_sample(self, logits: Tensor, targets: Tensor) -> Tensor:
        self._check_classes(logits)
        h = normalized_constraints(logits, self.margin)
        penalty = phr_penalty(h, self.lambdas, self.rhos).mean(dim=1)
        return F.cross_entropy(logits, targets, reduction="none") + penalty

    def validation_statistics(self, logits: Tensor) -> dict[str, Tensor]:
        """Per-class float64 sums over one validation batch (summable; all-reduce them under DDP).

        ``multiplier_sum``: sum_i clip(max(0, lambda_k + rho_k h_ik), lambda_min, lambda_max);
        ``constraint_sum``: sum_i h_ik; ``count``: the number of rows.
        """
        self._check_classes(logits)
        with torch.no_grad():
            h = normalized_constraints(logits.detach().double(), self.margin)
            lam, rho = self.lambdas.double(), self.rhos.double()
            steps = clipped_multiplier_steps(h, lam, rho, self.lambda_min, self.lambda_max)
            return {
                "multiplier_sum": steps.sum(dim=0),
                "constraint_sum": h.sum(dim=0),
                "count": torch.tensor(float(h.shape[0]), dtype=torch.float64, device=h.device),
            }

    def end_epoch(self, statistics: dict[str, Tensor], epoch: int) -> None:
        """lambda <- clip(mean clipped step); rho may grow when (epoch + 1) % rho_step == 0.

        ``epoch`` counts from 0. The class-mean constraint hbar is kept for the next rho test.
        """
        count, multiplier_sum, constraint_sum = self._checked_statistics(statistics)
        mean_step = (multiplier_sum / count).to(self.lambdas)
        self.lambdas.copy_(mean_step.clamp(self.lambda_min, self.lambda_max))
        hbar = (constraint_sum / count).to(self.previous_hbar)
        if self._is_rho_epoch(epoch) and not torch.isnan(self.previous_hbar).any():
            self.rhos.copy_(
                grow_penalty_parameters(
                    self.rhos,
                    hbar,
                    self.previous_hbar,
                    self.rho_growth,
                    self.tau,
                    self.rho_min,
                    self.rho_max,
                )
            )
        self.previous_hbar.copy_(hbar)

    def summary(self) -> dict[str, float]:
        """Mean, smallest and largest lambda_k over classes; mean and largest rho_k."""
        return {
            "lambda_mean": self.lambdas.mean().item(),
            "lambda_min": self.lambdas.min().item(),
            "lambda_max": self.lambdas.max().item(),
            "rho_mean": self.rhos.mean().item(),
            "rho_max": self.rhos.max().item(),
        }

    def hyperparameters(self) -> dict[str, float]:
        return {
            "margin": self.margin,
            "lambda_min": self.lambda_min,
            "lambda_max": self.lambda_max,
            "rho_min": self.rho_min,
            "rho_max": self.rho_max,
            "rho_step": self.rho_step,
            "rho_growth": self.rho_growth,
            "tau": self.tau,
        }

    def _is_rho_epoch(self, epoch: int) -> bool:
        return self.rho_step > 0 and (epoch + 1) % self.rho_step == 0

    def _check_classes(self, logits: Tensor) -> None:
        if logits.dim() != 2 or logits.shape[1] != self.num_classes:
            raise LossInputError(f"cals was built for {self.num_classes} classes, got logits {tuple(logits.shape)}")

    def _checked_statistics(self, statistics: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        missing = [key for key in STATISTICS if key not in statistics]
        if missing:
            raise LossInputError(f"cals epoch statistics lack {missing}; sum validation_statistics()")
        count = statistics["count"]
        if float(count) <= 0:
            raise LossInputError("cals epoch statistics have count 0: no validation rows were seen")
        sums = [statistics[key] for key in STATISTICS[:2]]
        for key, value in zip(STATISTICS[:2], sums, strict=True):
            if value.shape != (self.num_classes,):
                raise LossInputError(
                    f"cals statistic {key} must have shape ({self.num_classes},), got {tuple(value.shape)}"
                )
        return count, sums[0], sums[1]
