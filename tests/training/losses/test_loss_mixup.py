"""METHODS 7 item 23: the s-point Mixup loss of Chidambaram & Ge (ICLR 2024)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from scipy import stats

from training.losses import LossInputError, MixedTargets, MixupLoss
from training.losses.mixup import (
    mix_inputs,
    mixup_per_sample,
    sample_mixing_weights,
    sample_permutations,
)

K = 6


def batch(seed: int, size: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(size, K, generator=generator, dtype=torch.float64)
    return logits, torch.randint(0, K, (2, size), generator=generator)


def test_weight_on_the_identity_only_equals_cross_entropy() -> None:
    """Item 23: w = (1, 0, ...) gives the ERM cross-entropy."""
    logits, labels = batch(0)
    weights = torch.tensor([1.0, 0.0], dtype=torch.float64)
    expected = F.cross_entropy(logits, labels[0], reduction="none")
    torch.testing.assert_close(mixup_per_sample(logits, labels, weights), expected)


@pytest.mark.parametrize("seed", range(3))
def test_weighted_cross_entropies_equal_cross_entropy_of_the_soft_target(seed: int) -> None:
    """Item 23: sum_j w_j CE(f, y_j) = CE(f, sum_j w_j e_{y_j})."""
    logits, _ = batch(seed)
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, K, (3, logits.shape[0]), generator=generator)
    weights = sample_mixing_weights(3, 1.0, generator)
    soft = sum(w * F.one_hot(row, K).double() for w, row in zip(weights, labels, strict=True))
    expected = F.cross_entropy(logits, soft, reduction="none")
    torch.testing.assert_close(mixup_per_sample(logits, labels, weights), expected)


@pytest.mark.parametrize("alpha", [1.0, 0.4, 3.0])
def test_two_point_weight_marginal_is_beta(alpha: float) -> None:
    """Item 23: Dirichlet(alpha, alpha) first weight ~ Beta(alpha, alpha); U(0, 1) for alpha = 1."""
    generator = torch.Generator().manual_seed(1234)
    draws = torch.stack([sample_mixing_weights(2, alpha, generator) for _ in range(2000)])
    torch.testing.assert_close(draws.sum(dim=1), torch.ones(2000, dtype=torch.float64))
    assert (draws >= 0).all()
    assert stats.kstest(draws[:, 0].numpy(), stats.beta(alpha, alpha).cdf).pvalue > 0.01


def test_mixing_a_batch_with_itself_returns_it() -> None:
    """Item 23: all permutations the identity -> x_mix = x."""
    x = torch.randn(5, 1, 4, 4, generator=torch.Generator().manual_seed(2))
    identity = torch.arange(5).repeat(3, 1)
    torch.testing.assert_close(mix_inputs(x, [0.2, 0.5, 0.3], identity), x)
    mixed, targets = MixupLoss(mix_size=3).mix_batch(x[:1], torch.tensor([4]))
    torch.testing.assert_close(mixed, x[:1])
    assert isinstance(targets, MixedTargets) and targets.labels.tolist() == [[4], [4], [4]]


def test_mix_batch_mixes_inputs_and_labels_with_the_same_permutations() -> None:
    size = 16
    x, y = torch.arange(size, dtype=torch.float64)[:, None], torch.arange(size)
    loss_fn = MixupLoss(mix_size=3, generator=torch.Generator().manual_seed(3))
    mixed, targets = loss_fn.mix_batch(x, y)
    assert isinstance(targets, MixedTargets)
    assert targets.labels.shape == (3, size) and torch.equal(targets.labels[0], y)
    for row in targets.labels[1:]:
        assert sorted(row.tolist()) == list(range(size))
    expected = targets.labels.t().double() @ targets.weights.double()
    torch.testing.assert_close(mixed[:, 0], expected, rtol=1e-6, atol=1e-6)


def test_seeded_generator_makes_mixing_reproducible() -> None:
    x, y = torch.randn(10, 3), torch.arange(10) % K

    def mix(seed: int) -> tuple[torch.Tensor, MixedTargets]:
        mixed, targets = MixupLoss(generator=torch.Generator().manual_seed(seed)).mix_batch(x, y)
        assert isinstance(targets, MixedTargets)
        return mixed, targets

    (a, ta), (b, tb), (c, _) = mix(7), mix(7), mix(8)
    assert torch.equal(a, b) and torch.equal(ta.labels, tb.labels)
    assert torch.equal(ta.weights, tb.weights)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_forward_on_mixed_targets_follows_the_reduction(reduction: str) -> None:
    logits, labels = batch(4)
    targets = MixedTargets(labels=labels, weights=torch.tensor([0.3, 0.7]))
    per_sample = mixup_per_sample(logits, labels, targets.weights)
    loss = MixupLoss(reduction=reduction)(logits, targets)
    expected = {"mean": per_sample.mean(), "sum": per_sample.sum(), "none": per_sample}
    torch.testing.assert_close(loss, expected[reduction])


def test_one_point_mixup_is_erm() -> None:
    x, y = torch.randn(8, 3), torch.arange(8) % K
    loss_fn = MixupLoss(mix_size=1)
    mixed, targets = loss_fn.mix_batch(x, y)
    logits = torch.randn(8, K)
    torch.testing.assert_close(mixed, x)
    torch.testing.assert_close(loss_fn(logits, targets), F.cross_entropy(logits, y))


def test_mixed_targets_of_the_wrong_shape_raise_input_error() -> None:
    logits, labels = batch(5)
    with pytest.raises(LossInputError, match="weights"):
        MixupLoss()(logits, MixedTargets(labels=labels, weights=torch.tensor([1.0])))
    with pytest.raises(LossInputError, match="targets"):
        MixupLoss()(logits, MixedTargets(labels=labels[:, :3], weights=torch.tensor([0.5, 0.5])))


def test_permutations_start_with_the_identity() -> None:
    rows = sample_permutations(9, 4, torch.Generator().manual_seed(0))
    assert rows.shape == (4, 9) and torch.equal(rows[0], torch.arange(9))
