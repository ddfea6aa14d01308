"""METHODS 7 items 11-14: the MbLS margin penalty (code form, mean over B*K)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from training.losses import MarginLabelSmoothing
from training.losses.cals import normalized_constraints
from training.losses.margin import logit_distances, margin_penalty

GOLDEN_LOGITS = torch.tensor([[5.0, 1.0, -7.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
LOGIT_MATRICES = arrays("float64", st.tuples(st.integers(1, 5), st.integers(2, 6)), elements=st.floats(-100, 100))


@pytest.mark.parametrize(("margin", "expected"), [(0.0, 2.6667), (4.0, 1.3333), (10.0, 0.3333)])
def test_penalty_golden_values(margin: float, expected: float) -> None:
    """Item 13: z = [[5, 1, -7], [0, 0, 0]], mean over B*K of ReLU(d - m)."""
    assert margin_penalty(GOLDEN_LOGITS, margin).mean().item() == pytest.approx(expected, abs=1e-4)


def test_loss_is_ce_plus_lambda_times_golden_penalty() -> None:
    labels = torch.tensor([0, 2])
    loss = MarginLabelSmoothing(margin=4.0, lam=0.1)(GOLDEN_LOGITS, labels)
    expected = F.cross_entropy(GOLDEN_LOGITS, labels) + 0.1 * (8.0 / 6.0)
    assert loss.item() == pytest.approx(expected.item(), abs=1e-12)


@settings(max_examples=25, deadline=None)
@given(LOGIT_MATRICES, st.floats(0, 50))
def test_penalty_is_zero_iff_every_distance_within_margin(values: object, margin: float) -> None:
    """Item 11: penalty = 0 iff every d_k <= m."""
    z = torch.as_tensor(values)
    within = bool((logit_distances(z) <= margin).all())
    assert (margin_penalty(z, margin).sum().item() == 0.0) == within


@settings(max_examples=20, deadline=None)
@given(LOGIT_MATRICES, st.integers(0, 3))
def test_equals_ce_when_margin_covers_the_logit_range(values: object, seed: int) -> None:
    """Item 11: for m >= max(z) - min(z), MbLS equals CE exactly."""
    z = torch.as_tensor(values)
    labels = torch.randint(0, z.shape[1], (z.shape[0],), generator=torch.Generator().manual_seed(seed))
    mbls = MarginLabelSmoothing(margin=float(z.max() - z.min()), lam=0.1, reduction="none")
    assert torch.equal(mbls(z, labels), F.cross_entropy(z, labels, reduction="none"))


@settings(max_examples=25, deadline=None)
@given(LOGIT_MATRICES, st.floats(-1e3, 1e3), st.floats(0, 20))
def test_penalties_are_invariant_to_a_logit_shift(values: object, shift: float, margin: float) -> None:
    """Item 12: adding a constant to all logits changes neither the MbLS nor the CALS penalty."""
    z = torch.as_tensor(values)
    torch.testing.assert_close(margin_penalty(z + shift, margin), margin_penalty(z, margin), atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(
        normalized_constraints(z + shift, margin + 1.0),
        normalized_constraints(z, margin + 1.0),
        atol=1e-9,
        rtol=1e-9,
    )


def test_penalty_gradient_golden() -> None:
    """Item 14: -lambda/(BK) on a non-max logit with d_k > m, +lambda #{d_k > m}/(BK) on the max."""
    lam, margin = 0.1, 2.0
    z = GOLDEN_LOGITS.clone().requires_grad_(True)
    (lam * margin_penalty(z, margin).mean()).backward()
    b_times_k = 6.0
    expected = torch.tensor(
        [[2 * lam / b_times_k, -lam / b_times_k, -lam / b_times_k], [0.0, 0.0, 0.0]],
        dtype=torch.float64,
    )
    torch.testing.assert_close(z.grad, expected)


def test_full_loss_gradient_is_ce_gradient_plus_penalty_gradient() -> None:
    labels = torch.tensor([1, 0])
    z = GOLDEN_LOGITS.clone().requires_grad_(True)
    MarginLabelSmoothing(margin=5.0, lam=0.3)(z, labels).backward()
    reference = GOLDEN_LOGITS.clone().requires_grad_(True)
    F.cross_entropy(reference, labels).backward()
    penalty_grad = torch.tensor([[0.3 / 6, 0.0, -0.3 / 6], [0.0, 0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(z.grad, reference.grad + penalty_grad)


def test_defaults_are_the_code_config() -> None:
    assert MarginLabelSmoothing().hyperparameters() == {"margin": 10.0, "lam": 0.1}
