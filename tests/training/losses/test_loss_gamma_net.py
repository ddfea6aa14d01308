"""gamma-net loss (METHODS 4, 7 items 19 and 22): the focal loss with per-sample gammas, the torch
SECE against calibration.metrics, typed config errors, and the checkpoint state."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from calibration import metrics
from training.losses import GammaNetLoss, LossConfigError, LossInputError, build_loss
from training.losses.focal import FocalLoss
from training.losses.meta import sece
from training.networks import SmallCNN

K = 10
SHAPE = (1, 8, 8)


def attached(
    seed: int = 0, n: int = 180, **params: float
) -> tuple[GammaNetLoss, SmallCNN, torch.optim.Optimizer, tuple[torch.Tensor, torch.Tensor]]:
    """A gamma-net loss attached to a small seeded SmallCNN on random 8x8 images."""
    torch.manual_seed(seed)
    model = SmallCNN(SHAPE, K, width=4)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss_fn = build_loss("gamma-net", num_classes=K, **params)
    assert isinstance(loss_fn, GammaNetLoss)
    return loss_fn, model, optimizer, loss_fn.attach(model, optimizer, images(seed, n), seed)


def images(seed: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n random 8x8 images and labels, from a generator of their own."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, *SHAPE, generator=generator), torch.randint(0, K, (n,), generator=generator)


def confident_logits(seed: int, n: int, scale: float = 4.0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    logits = scale * torch.randn(n, K, generator=generator, dtype=torch.float64)
    flip = torch.rand(n, generator=generator) < 0.3
    labels = torch.where(flip, torch.randint(0, K, (n,), generator=generator), logits.argmax(1))
    return logits, labels


@pytest.mark.parametrize("gamma", [0.5, 1.0, 3.0])
def test_item_19_constant_gamma_reproduces_the_focal_loss(gamma: float) -> None:
    loss_fn, model, _, (x, y) = attached(initial_gamma=gamma)
    loss_fn.reduction = "none"
    logits = model(x[:32])
    got = loss_fn.eval()(logits, y[:32])
    torch.testing.assert_close(got, FocalLoss(gamma, reduction="none")(logits, y[:32]))


def test_item_19_zero_gamma_gives_cross_entropy() -> None:
    loss_fn, model, _, (x, y) = attached()
    with torch.no_grad():
        loss_fn.gamma_net.output.bias.fill_(-200.0)  # sigmoid(-200) is 0 in float32
    logits = model(x[:32])
    assert torch.equal(loss_fn.gammas(model.features(x[:32])), torch.zeros(32))
    torch.testing.assert_close(loss_fn.eval()(logits, y[:32]), F.cross_entropy(logits, y[:32]))


@pytest.mark.parametrize("gamma_max", [2.0, 5.0])
def test_gammas_are_a_sigmoid_bounded_by_gamma_max(gamma_max: float) -> None:
    loss_fn, model, _, (x, _) = attached(gamma_max=gamma_max)
    with torch.no_grad():
        loss_fn.gamma_net.output.bias.fill_(50.0)
    assert torch.equal(loss_fn.gammas(model.features(x[:8])), torch.full((8,), gamma_max))


@pytest.mark.parametrize("scale", [10.0, 1e3])
def test_gammas_do_not_depend_on_the_feature_scale(scale: float) -> None:  # up to LayerNorm's eps
    loss_fn, model, _, (x, _) = attached()
    with torch.no_grad():
        loss_fn.gamma_net.output.weight.normal_()
    features = 10 * model.features(x[:8]).detach()
    torch.testing.assert_close(loss_fn.gammas(scale * features), loss_fn.gammas(features), rtol=1e-4, atol=1e-5)


def test_reduction_convention_on_attached_network() -> None:
    loss_fn, model, _, (x, y) = attached()
    loss_fn.eval()
    values = {}
    for reduction in ("none", "mean", "sum"):
        loss_fn.reduction = reduction
        values[reduction] = loss_fn(model(x[:16]), y[:16])
    torch.testing.assert_close(values["mean"], values["none"].mean())
    torch.testing.assert_close(values["sum"], values["none"].sum())


@pytest.mark.parametrize("scale", [1e2, 1e4])
def test_gradients_finite_on_extreme_logits(scale: float) -> None:
    loss_fn, model, optimizer, (x, y) = attached()
    loss = loss_fn(scale * model(x[:16]), y[:16])
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert all(torch.isfinite(p).all() for p in loss_fn.gamma_net.parameters())


@pytest.mark.parametrize(("n_bins", "bandwidth"), [(15, None), (10, None), (15, 0.01), (5, 0.3)])
def test_torch_sece_equals_calibration_metrics_sece(n_bins: int, bandwidth: float | None) -> None:
    logits, labels = confident_logits(seed=n_bins, n=500)
    probs = torch.softmax(logits, dim=1).numpy()
    expected = metrics.sece(probs, labels.numpy(), n_bins, bandwidth)
    assert sece(logits, labels, n_bins, bandwidth).item() == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("n_bins", [10, 15])
def test_item_22_torch_sece_tends_to_ece_as_the_bandwidth_shrinks(n_bins: int) -> None:
    logits, labels = confident_logits(seed=3, n=2000, scale=2.0)
    ece = metrics.ece(torch.softmax(logits, dim=1).numpy(), labels.numpy(), n_bins)
    gaps = [abs(sece(logits, labels, n_bins, s).item() - ece) for s in (0.05, 0.01, 1e-4)]
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 1e-6


def test_item_22_sece_is_zero_where_confidence_matches_accuracy_and_never_negative() -> None:
    confidence = 0.7  # every sample at c = 0.7, 70 % of them right: every soft bin balances
    margin = float(np.log(confidence / (1 - confidence)))
    logits = torch.tensor([[margin, 0.0]] * 10, dtype=torch.float64)
    labels = torch.tensor([0] * 7 + [1] * 3)
    assert sece(logits, labels, 15).item() == pytest.approx(0.0, abs=1e-12)
    for seed in range(5):
        assert sece(*confident_logits(seed, 64), 15).item() >= 0.0


def test_sece_has_a_finite_gradient_through_the_confidence() -> None:
    logits, labels = confident_logits(seed=4, n=64)
    logits.requires_grad_(True)
    sece(logits, labels, 15).backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    assert logits.grad.abs().sum() > 0


BAD = [
    ("gamma_width", 0),
    ("gamma_width", 2.5),
    ("meta_lr", 0.0),
    ("meta_lr", -1e-3),
    ("sece_bins", 0),
    ("sece_bandwidth", 0.0),
    ("sece_bandwidth", float("nan")),
    ("meta_fraction", 0.0),
    ("meta_fraction", 1.0),
    ("initial_gamma", 0.0),
    ("initial_gamma", 10.0),
]


@pytest.mark.parametrize(("parameter", "value"), BAD)
def test_bad_hyperparameter_raises_config_error_naming_it(parameter: str, value: float) -> None:
    with pytest.raises(LossConfigError, match=parameter):
        build_loss("gamma-net", num_classes=K, **{parameter: value})


def test_default_bandwidth_is_half_a_bin_and_hyperparameters_rebuild_the_loss() -> None:
    params = build_loss("gamma-net", num_classes=K, sece_bins=10).hyperparameters()
    assert params["sece_bandwidth"] == pytest.approx(1 / 20)
    assert build_loss("gamma-net", num_classes=K, **params).hyperparameters() == params


def test_bare_logits_raise_input_error_naming_attach() -> None:
    logits, labels = confident_logits(seed=5, n=8)
    with pytest.raises(LossInputError, match="attach"):
        build_loss("gamma-net", num_classes=K)(logits, labels)


def test_a_network_without_features_and_head_is_refused() -> None:
    loss_fn = build_loss("gamma-net", num_classes=K)
    model = torch.nn.Linear(4, K)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(LossInputError, match="features"):
        loss_fn.attach(model, optimizer, (torch.randn(20, 4), torch.zeros(20).long()), 0)


def test_meta_fraction_leaving_an_empty_split_is_named() -> None:
    loss_fn = build_loss("gamma-net", num_classes=K, meta_fraction=0.01)
    model = SmallCNN(SHAPE, K, width=4)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(LossConfigError, match="meta_fraction"):
        loss_fn.attach(model, optimizer, (torch.randn(20, *SHAPE), torch.zeros(20).long()), 0)


def training_step(
    loss_fn: GammaNetLoss,
    model: SmallCNN,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
) -> float:
    loss = loss_fn(model(x), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item()


def test_state_dict_round_trip_continues_identically() -> None:
    first, model, optimizer, (x, y) = attached(seed=1)
    for start in (0, 32, 64):
        training_step(first, model, optimizer, x[start : start + 32], y[start : start + 32])
    state = first.state_dict()
    assert state["meta.rows_drawn"].item() == 96
    assert {"meta.optimizer.0.exp_avg", "meta.optimizer.3.exp_avg_sq"} <= set(state)

    second = build_loss("gamma-net", num_classes=K)
    assert isinstance(second, GammaNetLoss)
    second.load_state_dict({k: v.clone() for k, v in state.items()})  # before attach, as on resume
    twin = SmallCNN(SHAPE, K, width=4)
    twin.load_state_dict(model.state_dict())
    twin_optimizer = torch.optim.SGD(twin.parameters(), lr=0.1)
    second.attach(twin, twin_optimizer, images(1, 180), 1)
    assert second.rows_drawn() == 96
    a = training_step(first, model, optimizer, x[96:128], y[96:128])
    b = training_step(second, twin, twin_optimizer, x[96:128], y[96:128])
    assert a == b
    for key, value in first.state_dict().items():
        torch.testing.assert_close(second.state_dict()[key], value, rtol=0, atol=0)


def test_summary_reports_gamma_spread_and_meta_loss_per_epoch() -> None:
    loss_fn, model, optimizer, (x, y) = attached()
    assert loss_fn.summary() == {}
    for start in (0, 32):
        training_step(loss_fn, model, optimizer, x[start : start + 32], y[start : start + 32])
    loss_fn.end_epoch({}, 0)
    summary = loss_fn.summary()
    assert set(summary) == {"gamma_mean", "gamma_std", "meta_loss", "meta_sece"}
    assert 0.0 < summary["gamma_mean"] <= 10.0 and summary["gamma_std"] >= 0.0
    assert summary["meta_loss"] > summary["meta_sece"] >= 0.0
    loss_fn.end_epoch({}, 1)  # an epoch without steps reports nothing
    assert loss_fn.summary() == {}


def test_a_second_attach_keeps_the_meta_optimizer_and_the_stream_position() -> None:
    loss_fn, model, optimizer, (x, y) = attached()
    training_step(loss_fn, model, optimizer, x[:32], y[:32])
    adam = loss_fn.meta_optimizer
    assert adam is not None and adam.state
    loss_fn.attach(model, optimizer, images(0, 180), 0)
    assert loss_fn.meta_optimizer is adam and loss_fn.rows_drawn() == 32
