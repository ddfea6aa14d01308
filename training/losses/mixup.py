"""s-point Mixup loss (Chidambaram & Ge, ICLR 2024, "On the limitations of temperature scaling for
distributions with overlaps"); METHODS 5 and Candor decision 7.

Per batch: weights w ~ Dirichlet(alpha 1_s) drawn once, permutations pi_0 = identity, pi_1..pi_{s-1}
independent; x_mix_i = sum_j w_j x_{pi_j(i)} and loss = sum_j w_j CE(f(x_mix), y_{pi_j}). For s = 2,
alpha = 1 this is standard Mixup (Zhang et al. 2018) with lambda ~ Beta(1, 1) = U(0, 1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from training.losses.base import (
    CalibrationLoss,
    LossInputError,
    MixedTargets,
    Targets,
    as_float_logits,
    check_integer,
    check_labels,
    check_number,
    reduce,
)


def sample_mixing_weights(mix_size: int, alpha: float, generator: torch.Generator | None = None) -> Tensor:
    """One draw w ~ Dirichlet(alpha 1_s), float64 on the generator's device (CPU by default)."""
    device = generator.device if generator is not None else torch.device("cpu")
    concentration = torch.full((mix_size,), alpha, dtype=torch.float64, device=device)
    # Dirichlet.sample() takes no generator; this is the kernel it calls, which does.
    return torch._sample_dirichlet(concentration, generator=generator)


def sample_permutations(batch_size: int, mix_size: int, generator: torch.Generator | None = None) -> Tensor:
    """(s, B) row indices: row 0 the identity, rows 1..s-1 independent uniform permutations."""
    device = generator.device if generator is not None else torch.device("cpu")
    rows = [torch.arange(batch_size, device=device)]
    rows += [torch.randperm(batch_size, generator=generator, device=device) for _ in range(mix_size - 1)]
    return torch.stack(rows)


def mix_inputs(x: Tensor, weights: list[float], permutations: Tensor) -> Tensor:
    """x_mix = sum_j w_j x[pi_j]; x itself (up to rounding) when every pi_j is the identity."""
    mixed = weights[0] * x.index_select(0, permutations[0])
    for weight, permutation in zip(weights[1:], permutations[1:], strict=True):
        mixed.add_(x.index_select(0, permutation), alpha=weight)
    return mixed


def mixup_per_sample(logits: Tensor, labels: Tensor, weights: Tensor) -> Tensor:
    """sum_j w_j CE(z_i, labels[j, i]) per sample = CE against the soft target sum_j w_j e_y_j."""
    log_probs = F.log_softmax(logits, dim=1)
    nll = -log_probs.gather(1, labels.t())
    return nll @ weights.to(nll.dtype)


class MixupLoss(CalibrationLoss):
    """s-point Mixup: train on ``mix_batch(x, y)`` and pass the returned MixedTargets to forward.

    Plain integer targets give CE (the validation/evaluation case). ``generator`` (a seeded
    torch.Generator, CPU or on the data's device) makes the weights and permutations reproducible.
    """

    name = "mixup"

    def __init__(
        self,
        mix_size: int = 2,
        alpha: float = 1.0,
        generator: torch.Generator | None = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(reduction)
        self.mix_size = check_integer("mix_size", mix_size, 1)
        self.alpha = check_number("alpha", alpha, 0.0, low_open=True)
        self.generator = generator

    def mix_batch(self, x: Tensor, y: Tensor) -> tuple[Tensor, Targets]:
        weights = sample_mixing_weights(self.mix_size, self.alpha, self.generator)
        permutations = sample_permutations(x.shape[0], self.mix_size, self.generator).to(x.device)
        mixed = mix_inputs(x, weights.tolist(), permutations)
        labels = y.index_select(0, permutations.reshape(-1).to(y.device)).view(self.mix_size, -1)
        return mixed, MixedTargets(labels=labels, weights=weights.to(y.device, torch.float32))

    def forward(self, logits: Tensor, targets: Targets) -> Tensor:
        if isinstance(targets, Tensor):
            return super().forward(logits, targets)
        logits = as_float_logits(logits)
        self._check_mixed(logits, targets)
        return reduce(mixup_per_sample(logits, targets.labels, targets.weights), self.reduction)

    def per_sample(self, logits: Tensor, targets: Tensor) -> Tensor:
        return F.cross_entropy(logits, targets, reduction="none")

    def hyperparameters(self) -> dict[str, float]:
        return {"mix_size": self.mix_size, "alpha": self.alpha}

    @staticmethod
    def _check_mixed(logits: Tensor, targets: MixedTargets) -> None:
        labels, weights = targets.labels, targets.weights
        if labels.dim() != 2 or weights.shape != labels.shape[:1]:
            raise LossInputError(
                f"mixed targets need labels (s, B) and weights (s,), got "
                f"{tuple(labels.shape)} and {tuple(weights.shape)}"
            )
        check_labels(logits, labels[0])
