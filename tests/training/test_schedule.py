"""Learning-rate schedules (pure functions of the epoch) and the two optimizers."""

from __future__ import annotations

import math

import pytest
import torch

from training.config import TrainConfig
from training.schedule import build_optimizer, learning_rate, set_learning_rate


def test_multistep_multiplies_by_the_decay_at_each_milestone() -> None:
    config = TrainConfig(epochs=10, lr=0.1, schedule="multistep", milestones=(3, 6), lr_decay=0.1)
    lrs = [learning_rate(config, e) for e in range(10)]
    assert lrs == pytest.approx([0.1] * 3 + [0.01] * 3 + [0.001] * 4)


def test_multistep_without_milestones_is_constant() -> None:
    config = TrainConfig(epochs=4, lr=3e-4)
    assert [learning_rate(config, e) for e in range(4)] == [3e-4] * 4


def test_cosine_starts_at_lr_halves_midway_and_decreases() -> None:
    config = TrainConfig(epochs=8, lr=0.2, schedule="cosine")
    lrs = [learning_rate(config, e) for e in range(8)]
    assert lrs[0] == pytest.approx(0.2) and lrs[4] == pytest.approx(0.1)
    assert all(b < a for a, b in zip(lrs, lrs[1:], strict=False)) and lrs[-1] > 0
    assert lrs[7] == pytest.approx(0.1 * (1 + math.cos(math.pi * 7 / 8)))


def test_sgd_and_adam_carry_the_configured_hyperparameters() -> None:
    params = [torch.nn.Parameter(torch.zeros(3))]
    sgd = build_optimizer(TrainConfig(optimizer="sgd", lr=0.1, momentum=0.8, weight_decay=5e-4), params)
    assert isinstance(sgd, torch.optim.SGD)
    assert sgd.param_groups[0]["momentum"] == 0.8 and sgd.param_groups[0]["weight_decay"] == 5e-4
    adam = build_optimizer(TrainConfig(optimizer="adam", lr=1e-3), params)
    assert isinstance(adam, torch.optim.Adam) and adam.param_groups[0]["lr"] == 1e-3
    set_learning_rate(adam, 5e-4)
    assert adam.param_groups[0]["lr"] == 5e-4


def test_sgd_momentum_step_matches_the_update_rule() -> None:
    """v <- mu v + g (+ wd w); w <- w - lr v, for two steps of a constant gradient."""
    weight = torch.nn.Parameter(torch.tensor([1.0]))
    sgd = build_optimizer(TrainConfig(optimizer="sgd", lr=0.1, momentum=0.5), [weight])
    for _ in range(2):
        sgd.zero_grad()
        (2.0 * weight).sum().backward()
        sgd.step()
    assert float(weight.detach()) == pytest.approx(1.0 - 0.1 * 2.0 - 0.1 * (0.5 * 2.0 + 2.0))
