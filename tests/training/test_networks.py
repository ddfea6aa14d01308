"""Architectures: ResNet-18 adapted to 28x28 single-channel input, and the registry."""

from __future__ import annotations

import pytest
import torch

from training.config import ARCHITECTURE_NAMES
from training.errors import TrainingError
from training.networks import ARCHITECTURES, ResNet18, build_network

pytestmark = pytest.mark.usefixtures("one_thread")


def test_config_names_every_registered_architecture() -> None:
    assert tuple(ARCHITECTURES) == ARCHITECTURE_NAMES


def test_resnet18_on_28x28_grayscale_has_the_cifar_stem_and_18_weight_layers() -> None:
    model = ResNet18((1, 28, 28), num_classes=10)
    stem = model.stem[0]
    assert stem.in_channels == 1 and stem.kernel_size == (3, 3) and stem.stride == (1, 1)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in model.modules())
    main_path = [m for name, m in model.named_modules() if isinstance(m, torch.nn.Conv2d) and "shortcut" not in name]
    assert len(main_path) + 1 == 18  # 17 convolutions and the Linear head
    x = torch.randn(3, 1, 28, 28)
    assert model.features(x).shape == (3, 512) and model(x).shape == (3, 10)
    assert 11.0e6 < sum(p.numel() for p in model.parameters()) < 11.3e6


def test_resnet18_takes_one_training_step() -> None:
    torch.manual_seed(0)
    model = build_network("resnet18", (1, 28, 28), 10, width=16)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
    before = [p.detach().clone() for p in model.parameters()]
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))


@pytest.mark.parametrize(("name", "shape"), [("small-cnn", (3, 32, 32)), ("resnet18", (3, 8, 8))])
def test_networks_size_themselves_from_the_input(name: str, shape: tuple[int, int, int]) -> None:
    model = build_network(name, shape, 4, width=8)
    assert model(torch.zeros(2, *shape)).shape == (2, 4)


def test_unknown_architecture_is_named() -> None:
    with pytest.raises(TrainingError, match="vgg"):
        build_network("vgg", (1, 28, 28), 10)
