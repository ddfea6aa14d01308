"""METHODS 7 items 15-18: CALS constraints, PHR penalty, per-epoch lambda / rho updates, state."""

from __future__ import annotations

import io

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from training.losses import ClassAdaptiveLabelSmoothing, LossInputError, add_statistics
from training.losses.cals import (
    normalized_constraints,
    phr_derivative,
    phr_penalty,
    update_multipliers,
)

K = 4


def logits_batch(seed: int, size: int = 32, scale: float = 1.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return scale * torch.randn(size, K, generator=generator)


def run_epoch(cals: ClassAdaptiveLabelSmoothing, logits: torch.Tensor, epoch: int) -> None:
    stats: dict[str, torch.Tensor] = {}
    for chunk in logits.split(10):
        stats = add_statistics(stats, cals.validation_statistics(chunk))
    cals.end_epoch(stats, epoch)


def test_phr_golden_values() -> None:
    """Item 15: lambda = 0.5, rho = 1, h = (-1, 0.3, 1.5)."""
    h = torch.tensor([-1.0, 0.3, 1.5], dtype=torch.float64, requires_grad=True)
    lam, rho = torch.tensor(0.5, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64)
    penalty = phr_penalty(h, lam, rho)
    torch.testing.assert_close(penalty, torch.tensor([-0.125, 0.195, 1.875], dtype=torch.float64))
    expected_derivative = torch.tensor([0.0, 0.8, 2.0], dtype=torch.float64)
    torch.testing.assert_close(phr_derivative(h, lam, rho), expected_derivative)
    penalty.sum().backward()
    torch.testing.assert_close(h.grad, expected_derivative)


@settings(max_examples=25, deadline=None)
@given(st.floats(-10, 10), st.floats(0.1, 10))
def test_phr_with_zero_multiplier_is_quadratic_hinge(h: float, rho: float) -> None:
    """Item 15: P(h; 0, rho) = (rho/2) ReLU(h)^2."""
    h_t, lam_t, rho_t = (torch.tensor(v, dtype=torch.float64) for v in (h, 0.0, rho))
    value = phr_penalty(h_t, lam_t, rho_t)
    assert value.item() == pytest.approx(rho / 2 * max(h, 0.0) ** 2, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize(("lam", "rho"), [(0.5, 1.0), (2.0, 3.0), (1e-6, 10.0)])
def test_phr_is_continuously_differentiable_at_the_kink(lam: float, rho: float) -> None:
    """Item 15: P is C^1 at h = -lambda/rho (value and derivative continuous)."""
    kink, eps = -lam / rho, 1e-7
    h = torch.tensor([kink - eps, kink, kink + eps], dtype=torch.float64)
    lam_t, rho_t = torch.tensor(lam, dtype=torch.float64), torch.tensor(rho, dtype=torch.float64)
    values, slopes = phr_penalty(h, lam_t, rho_t), phr_derivative(h, lam_t, rho_t)
    assert values.max() - values.min() < 1e-6
    assert slopes.max().item() < 1e-6 * rho + 1e-12


def test_normalized_constraints_golden() -> None:
    """Item 16: z = (25, 12, 0), m = 10 gives h = (-1, 0.3, 1.5); -1 at the argmax."""
    h = normalized_constraints(torch.tensor([[25.0, 12.0, 0.0]], dtype=torch.float64), 10.0)
    torch.testing.assert_close(h, torch.tensor([[-1.0, 0.3, 1.5]], dtype=torch.float64))


def test_first_epoch_loss_is_ce_plus_quadratic_hinge() -> None:
    logits, labels = logits_batch(0, scale=8.0).double(), torch.arange(32) % K
    cals = ClassAdaptiveLabelSmoothing(num_classes=K)
    h = normalized_constraints(logits, 10.0)
    penalty = (0.5 * F.relu(1e-6 + h).square() - 0.5e-12).mean()
    expected = F.cross_entropy(logits, labels) + penalty
    torch.testing.assert_close(cals(logits, labels), expected)


def test_lambda_falls_to_minimum_when_every_constraint_is_inactive() -> None:
    """Item 17: lambda + rho h < 0 everywhere -> lambda_k = lambda_min after one update."""
    cals = ClassAdaptiveLabelSmoothing(num_classes=K)
    cals.lambdas.fill_(0.3)
    logits = logits_batch(1)
    assert (cals.lambdas + cals.rhos * normalized_constraints(logits, 10.0) < 0).all()
    run_epoch(cals, logits, epoch=0)
    torch.testing.assert_close(cals.lambdas, torch.full((K,), 1e-6))


@pytest.mark.parametrize("lam", [1e-6, 0.2, 7.0])
def test_lambda_unchanged_when_every_constraint_is_zero(lam: float) -> None:
    """Item 17: every h_ik = 0 leaves lambda (>= lambda_min) unchanged."""
    lambdas, rhos = torch.full((K,), lam, dtype=torch.float64), torch.full((K,), 3.0)
    updated = update_multipliers(torch.zeros(16, K, dtype=torch.float64), lambdas, rhos, 1e-6, 1e6)
    torch.testing.assert_close(updated, lambdas)


def test_epoch_statistics_over_batches_match_the_batch_formula() -> None:
    cals = ClassAdaptiveLabelSmoothing(num_classes=K, margin=2.0)
    cals.lambdas.copy_(torch.tensor([0.5, 1e-6, 2.0, 0.1]))
    cals.rhos.copy_(torch.tensor([1.0, 2.0, 5.0, 10.0]))
    logits = logits_batch(2, size=45, scale=3.0)
    h = normalized_constraints(logits.double(), 2.0)
    expected = update_multipliers(h, cals.lambdas.double(), cals.rhos.double(), 1e-6, 1e6)
    run_epoch(cals, logits, epoch=0)
    torch.testing.assert_close(cals.lambdas, expected.float())
    torch.testing.assert_close(cals.previous_hbar, h.mean(dim=0).float())


def test_rho_bounded_and_grows_only_every_rho_step_epochs() -> None:
    """Item 18: rho in [1, 10], changed only at epochs with (epoch + 1) % rho_step == 0."""
    cals = ClassAdaptiveLabelSmoothing(num_classes=K, margin=1.0)
    logits = torch.tensor([[9.0, 0.0, -1.0, -9.0]]).repeat(8, 1)  # hbar = (-1, 8, 9, 17)
    history = [cals.rhos.clone()]
    for epoch in range(150):
        run_epoch(cals, logits, epoch)
        history.append(cals.rhos.clone())
    for epoch in range(150):
        before, after = history[epoch], history[epoch + 1]
        assert ((after >= 1.0) & (after <= 10.0)).all()
        if (epoch + 1) % 10 != 0:
            assert torch.equal(before, after)
    torch.testing.assert_close(history[10], torch.tensor([1.0, 1.2, 1.2, 1.2]))
    torch.testing.assert_close(history[20], torch.tensor([1.0, 1.44, 1.44, 1.44]))
    torch.testing.assert_close(history[-1], torch.tensor([1.0, 10.0, 10.0, 10.0]))


def test_rho_waits_for_a_previous_epoch_and_rho_step_zero_disables_it() -> None:
    logits = torch.tensor([[9.0, 0.0, -1.0, -9.0]])
    every_epoch = ClassAdaptiveLabelSmoothing(num_classes=K, margin=1.0, rho_step=1)
    run_epoch(every_epoch, logits, epoch=0)
    assert torch.equal(every_epoch.rhos, torch.ones(K))
    run_epoch(every_epoch, logits, epoch=1)
    torch.testing.assert_close(every_epoch.rhos, torch.tensor([1.0, 1.2, 1.2, 1.2]))
    never = ClassAdaptiveLabelSmoothing(num_classes=K, margin=1.0, rho_step=0)
    for epoch in range(12):
        run_epoch(never, logits, epoch)
    assert torch.equal(never.rhos, torch.ones(K))


def test_state_dict_round_trip_resumes_the_same_updates() -> None:
    cals = ClassAdaptiveLabelSmoothing(num_classes=K, margin=2.0, rho_step=2)
    for epoch in range(3):
        run_epoch(cals, logits_batch(epoch, scale=4.0), epoch)
    buffer = io.BytesIO()
    torch.save(cals.state_dict(), buffer)
    buffer.seek(0)
    resumed = ClassAdaptiveLabelSmoothing(num_classes=K, margin=2.0, rho_step=2)
    resumed.load_state_dict(torch.load(buffer))
    assert set(resumed.state_dict()) == {"lambdas", "rhos", "previous_hbar"}
    for name, value in cals.state_dict().items():
        assert torch.equal(resumed.state_dict()[name], value)
    for loss in (cals, resumed):
        run_epoch(loss, logits_batch(9, scale=4.0), epoch=3)
    assert torch.equal(cals.rhos, resumed.rhos) and torch.equal(cals.lambdas, resumed.lambdas)
    assert not torch.equal(cals.rhos, torch.ones(K))


def test_summary_reports_multiplier_and_penalty_statistics() -> None:
    cals = ClassAdaptiveLabelSmoothing(num_classes=K)
    cals.lambdas.copy_(torch.tensor([1.0, 2.0, 3.0, 6.0]))
    summary = cals.summary()
    assert summary["lambda_mean"] == 3.0 and summary["lambda_min"] == 1.0
    assert summary["lambda_max"] == 6.0 and summary["rho_mean"] == 1.0
    assert all(isinstance(value, float) for value in summary.values())


def test_bad_statistics_and_wrong_class_count_raise_input_error() -> None:
    cals = ClassAdaptiveLabelSmoothing(num_classes=K)
    stats = cals.validation_statistics(logits_batch(3))
    with pytest.raises(LossInputError, match="constraint_sum"):
        cals.end_epoch({k: v for k, v in stats.items() if k != "constraint_sum"}, 0)
    with pytest.raises(LossInputError, match="count 0"):
        cals.end_epoch({**stats, "count": torch.tensor(0.0)}, 0)
    with pytest.raises(LossInputError, match="multiplier_sum"):
        cals.end_epoch({**stats, "multiplier_sum": torch.zeros(K + 1)}, 0)
    with pytest.raises(LossInputError, match="4 classes"):
        cals.validation_statistics(torch.zeros(2, K + 1))
