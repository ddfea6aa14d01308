"""METHODS 7 items 9-10: label smoothing, focal, FLSD-53 and ECP against their formulas."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from training.losses import FLSD53, EntropyConfidencePenalty, FocalLoss, LabelSmoothing
from training.losses.cross_entropy import uniform_cross_entropy
from training.losses.focal import flsd53_gamma, focal_per_sample
from training.losses.margin import logit_distances


def batch(seed: int, size: int = 9, classes: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    logits = 4 * torch.randn(size, classes, generator=generator, dtype=torch.float64)
    return logits, torch.randint(0, classes, (size,), generator=generator)


def test_label_smoothing_bound_golden() -> None:
    """Item 10: (1/K) sum d <= -(1/K) sum log p <= (1/K) sum d + log K, for z = (5, 1, -7)."""
    z = torch.tensor([[5.0, 1.0, -7.0]], dtype=torch.float64)
    mean_distance = logit_distances(z).mean().item()
    term = uniform_cross_entropy(F.log_softmax(z, dim=1)).item()
    assert mean_distance == pytest.approx(5.3333, abs=1e-4)
    assert term == pytest.approx(5.35149, abs=1e-5)
    assert mean_distance + math.log(3) == pytest.approx(6.43195, abs=1e-5)
    assert mean_distance <= term <= mean_distance + math.log(3)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(-50, 50), min_size=2, max_size=8))
def test_label_smoothing_bound_holds(values: list[float]) -> None:
    z = torch.tensor([values], dtype=torch.float64)
    mean_distance = logit_distances(z).mean().item()
    term = uniform_cross_entropy(F.log_softmax(z, dim=1)).item()
    assert mean_distance - 1e-9 <= term <= mean_distance + math.log(len(values)) + 1e-9


@pytest.mark.parametrize("alpha", [0.05, 0.3, 1.0])
def test_label_smoothing_matches_torch_uniform_target(alpha: float) -> None:
    logits, labels = batch(seed=0)
    expected = F.cross_entropy(logits, labels, label_smoothing=alpha, reduction="none")
    torch.testing.assert_close(LabelSmoothing(alpha, reduction="none")(logits, labels), expected)


@pytest.mark.parametrize("gamma", [0.5, 1.0, 3.0])
def test_focal_matches_formula(gamma: float) -> None:
    logits, labels = batch(seed=1)
    p_true = F.softmax(logits, dim=1).gather(1, labels[:, None]).squeeze(1)
    expected = -((1 - p_true) ** gamma) * torch.log(p_true)
    torch.testing.assert_close(FocalLoss(gamma, reduction="none")(logits, labels), expected)


def test_focal_default_gamma_is_three() -> None:
    assert FocalLoss().hyperparameters() == {"gamma": 3.0}


def test_focal_fractional_gamma_gradient_finite_when_certain() -> None:
    logits = torch.tensor([[60.0, 0.0, -60.0]], requires_grad=True)
    focal_per_sample(logits, torch.tensor([0]), 0.5).sum().backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


def test_flsd53_gamma_rule() -> None:
    """Item 9: gamma = 5 for p_y < 0.2, 3 for p_y >= 0.2 (0.2 maps to 3)."""
    p_true = torch.tensor([0.0, 0.1, 0.1999, 0.2, 0.2001, 0.5, 0.9, 1.0])
    expected = torch.tensor([5.0, 5.0, 5.0, 3.0, 3.0, 3.0, 3.0, 3.0])
    torch.testing.assert_close(flsd53_gamma(p_true), expected)


def test_flsd53_equals_focal_with_the_per_sample_gamma() -> None:
    logits, labels = batch(seed=2, size=64)
    p_true = F.softmax(logits, dim=1).gather(1, labels[:, None]).squeeze(1)
    expected = torch.stack(
        [
            focal_per_sample(logits[i : i + 1], labels[i : i + 1], 5.0 if p < 0.2 else 3.0)[0]
            for i, p in enumerate(p_true.tolist())
        ]
    )
    assert (p_true < 0.2).any() and (p_true >= 0.2).any()
    torch.testing.assert_close(FLSD53(reduction="none")(logits, labels), expected)


def test_flsd53_gamma_carries_no_gradient() -> None:
    logits, labels = batch(seed=3)
    logits.requires_grad_(True)
    FLSD53()(logits, labels).backward()
    fixed = logits.detach().clone().requires_grad_(True)
    p_true = F.softmax(fixed, dim=1).gather(1, labels[:, None]).squeeze(1).detach()
    gamma = torch.where(p_true < 0.2, 5.0, 3.0).to(fixed.dtype)
    focal_per_sample(fixed, labels, gamma).mean().backward()
    torch.testing.assert_close(logits.grad, fixed.grad)


def test_ecp_matches_code_form() -> None:
    """ECP = CE - alpha * mean over B*K of -p log p, p clamped to [1e-10, 1 - 1e-10]."""
    logits, labels = batch(seed=4)
    p = F.softmax(logits, dim=1).clamp(1e-10, 1 - 1e-10)
    expected = F.cross_entropy(logits, labels) - 0.1 * (-(p * p.log())).mean()
    torch.testing.assert_close(EntropyConfidencePenalty()(logits, labels), expected)


def test_ecp_per_sample_entropy_weight_is_alpha_over_k() -> None:
    logits, labels = batch(seed=5, classes=4)
    p = F.softmax(logits, dim=1)
    entropy = -(p * p.log()).sum(dim=1)
    expected = F.cross_entropy(logits, labels, reduction="none") - (0.4 / 4) * entropy
    loss = EntropyConfidencePenalty(alpha=0.4, reduction="none")(logits, labels)
    torch.testing.assert_close(loss, expected, atol=1e-8, rtol=1e-6)
