"""Contract tests over every registered loss: reductions, gradients, typed config errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from calibration.errors import CandorError
from training.losses import (
    LOSSES,
    CalibrationLoss,
    LossConfigError,
    LossInputError,
    add_statistics,
    build_loss,
)

K = 5
NAMES = sorted(LOSSES)
# gamma-net reads the penultimate features of an attached network: its own tests cover it
ON_LOGITS = [name for name in NAMES if not getattr(LOSSES[name], "needs_features", False)]


def batch(seed: int = 0, size: int = 7, scale: float = 3.0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    logits = scale * torch.randn(size, K, generator=generator, dtype=torch.float64)
    return logits, torch.randint(0, K, (size,), generator=generator)


def test_registry_has_exactly_the_planned_losses() -> None:
    assert set(LOSSES) == {
        "ce",
        "ls",
        "focal",
        "flsd53",
        "ecp",
        "mbls",
        "cals",
        "mixup",
        "gamma-net",
    }
    for name in NAMES:
        loss = build_loss(name, num_classes=K)
        assert isinstance(loss, CalibrationLoss)
        assert loss.name == name


@pytest.mark.parametrize("name", ON_LOGITS)
def test_reduction_convention(name: str) -> None:
    logits, labels = batch()
    none = build_loss(name, num_classes=K, reduction="none")(logits, labels)
    mean = build_loss(name, num_classes=K, reduction="mean")(logits, labels)
    total = build_loss(name, num_classes=K, reduction="sum")(logits, labels)
    assert none.shape == (logits.shape[0],)
    assert mean.shape == () and total.shape == ()
    torch.testing.assert_close(mean, none.mean())
    torch.testing.assert_close(total, none.sum())
    torch.testing.assert_close(build_loss(name, num_classes=K)(logits, labels), mean)


@pytest.mark.parametrize("name", ON_LOGITS)
@pytest.mark.parametrize("scale", [1e2, 1e4])
def test_gradients_finite_on_extreme_logits(name: str, scale: float) -> None:
    logits, labels = batch(seed=1, size=16, scale=scale)
    logits = logits.float().requires_grad_(True)
    loss_fn = build_loss(name, num_classes=K)
    inputs, targets = loss_fn.mix_batch(torch.zeros(16, 3), labels)
    loss = loss_fn(logits, targets)
    loss.backward()
    assert torch.isfinite(loss)
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("ls", {"alpha": 0.0}),
        ("focal", {"gamma": 0.0}),
        ("ecp", {"alpha": 0.0}),
        ("mbls", {"lam": 0.0}),
        ("flsd53", {"gamma_low_confidence": 0.0, "gamma_high_confidence": 0.0}),
    ],
)
def test_zero_regularisation_equals_cross_entropy(name: str, kwargs: dict[str, float]) -> None:
    logits, labels = batch(seed=2)
    loss = build_loss(name, num_classes=K, reduction="none", **kwargs)(logits, labels)
    torch.testing.assert_close(loss, F.cross_entropy(logits, labels, reduction="none"))


BAD_HYPERPARAMETERS = [
    ("ce", "reduction", "average"),
    ("ls", "alpha", -0.1),
    ("ls", "alpha", 1.5),
    ("ls", "alpha", float("nan")),
    ("focal", "gamma", -1.0),
    ("focal", "gamma", float("inf")),
    ("focal", "gamma", True),
    ("flsd53", "threshold", 0.0),
    ("flsd53", "threshold", 1.0),
    ("flsd53", "gamma_low_confidence", -5.0),
    ("flsd53", "gamma_high_confidence", -3.0),
    ("ecp", "alpha", -0.1),
    ("ecp", "alpha", "0.1"),
    ("mbls", "margin", -1.0),
    ("mbls", "lam", -0.1),
    ("cals", "margin", 0.0),
    ("cals", "lambda_min", 0.0),
    ("cals", "lambda_max", 1e-7),
    ("cals", "rho_min", 0.0),
    ("cals", "rho_max", 0.5),
    ("cals", "rho_step", -1),
    ("cals", "rho_step", 2.5),
    ("cals", "rho_growth", 0.9),
    ("cals", "tau", 1.5),
    ("cals", "num_classes", 1),
    ("mixup", "mix_size", 0),
    ("mixup", "alpha", 0.0),
    ("mixup", "alpha", -1.0),
]


@pytest.mark.parametrize(("name", "parameter", "value"), BAD_HYPERPARAMETERS)
def test_bad_hyperparameter_raises_typed_error_naming_it(name: str, parameter: str, value: object) -> None:
    kwargs = {parameter: value}
    num_classes = kwargs.pop("num_classes", K)
    with pytest.raises(LossConfigError, match=parameter) as raised:
        build_loss(name, num_classes=num_classes, **kwargs)  # type: ignore[arg-type]
    assert isinstance(raised.value, ValueError) and isinstance(raised.value, CandorError)
    if parameter != "reduction":
        assert "[" in str(raised.value) or "(" in str(raised.value) or ">=" in str(raised.value)


def test_unknown_loss_and_unknown_parameter_raise_config_error() -> None:
    with pytest.raises(LossConfigError, match="loss must be one of"):
        build_loss("brier", num_classes=K)
    with pytest.raises(LossConfigError, match="margn"):
        build_loss("mbls", num_classes=K, margn=3.0)


@pytest.mark.parametrize("name", NAMES)
def test_hyperparameters_rebuild_the_same_loss(name: str) -> None:
    loss = build_loss(name, num_classes=K)
    params = loss.hyperparameters()
    assert all(isinstance(v, int | float) for v in params.values())
    assert build_loss(name, num_classes=K, **params).hyperparameters() == params


@pytest.mark.parametrize("name", NAMES)
def test_wrong_shapes_raise_input_error(name: str) -> None:
    logits, labels = batch()
    loss_fn = build_loss(name, num_classes=K)
    with pytest.raises(LossInputError, match="targets"):
        loss_fn(logits, labels[:-1])
    with pytest.raises(LossInputError, match="logits"):
        loss_fn(logits[0], labels[:1])


@pytest.mark.parametrize("name", ON_LOGITS)
def test_half_precision_logits_are_upcast(name: str) -> None:
    logits, labels = batch(seed=3)
    loss_fn = build_loss(name, num_classes=K)
    half = loss_fn(logits.to(torch.bfloat16), labels)
    assert half.dtype == torch.float32
    torch.testing.assert_close(half.double(), loss_fn(logits.to(torch.bfloat16).double(), labels))


@pytest.mark.parametrize("name", [n for n in ON_LOGITS if n not in ("cals", "mixup")])
def test_stateless_losses_have_no_op_hooks(name: str) -> None:
    logits, labels = batch()
    loss_fn = build_loss(name, num_classes=K)
    x = torch.randn(logits.shape[0], 3)
    mixed, targets = loss_fn.mix_batch(x, labels)
    assert mixed is x and targets is labels
    net = torch.nn.Linear(3, K)
    assert loss_fn.attach(net, torch.optim.SGD(net.parameters()), (x, labels), 0) == (x, labels)
    assert loss_fn.validation_statistics(logits) == {}
    loss_fn.end_epoch({}, 0)
    assert loss_fn.summary() == {} and loss_fn.state_dict() == {}


def test_add_statistics_sums_key_by_key() -> None:
    a = {"s": torch.tensor([1.0, 2.0]), "n": torch.tensor(2.0)}
    b = {"s": torch.tensor([3.0, 4.0]), "n": torch.tensor(1.0)}
    total = add_statistics(add_statistics({}, a), b)
    torch.testing.assert_close(total["s"], torch.tensor([4.0, 6.0]))
    torch.testing.assert_close(total["n"], torch.tensor(3.0))
