"""The bilevel step of gamma-net (METHODS 4 (b), 7 item 20, issue 5): the look-ahead, an exactly
zero meta-gradient at lr 0, no leak of the meta-validation batch into the backbone, gamma-net moved
only by the meta step, the 80/10/10 carve, and a digits run that trains, resumes and exports."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import training.trainer as trainer_module
from calibration.manifest import verify_artifact
from training.calibrate_run import calibrate_run
from training.checkpoint import LAST_CHECKPOINT, read_checkpoint
from training.data import load_digits
from training.export import export_run
from training.losses import GammaNetLoss, build_loss, meta
from training.losses.focal import focal_per_sample
from training.networks import ResNet18, SmallCNN
from training.trainer import LOG_FILE, TrainConfig, prepare_data, train

pytestmark = pytest.mark.usefixtures("one_thread")

K, D = 10, 12
SHAPE = (1, 8, 8)


def feature_batch(seed: int, n: int) -> meta.FeatureBatch:
    generator = torch.Generator().manual_seed(seed)
    return meta.FeatureBatch(torch.randn(n, D, generator=generator), torch.randint(0, K, (n,), generator=generator))


def gamma_net_and_head(seed: int = 0) -> tuple[nn.Module, nn.Linear]:
    torch.manual_seed(seed)
    loss_fn = build_loss("gamma-net", num_classes=K, gamma_width=8)
    assert isinstance(loss_fn, GammaNetLoss)
    loss_fn.gamma_net.materialize(D, torch.device("cpu"))
    with torch.no_grad():  # a gamma-net whose output depends on the features
        loss_fn.gamma_net.output.weight.normal_()
    return loss_fn.gamma_net, nn.Linear(D, K)


@pytest.mark.parametrize("lr", [0.0, 0.1])
def test_item_20_meta_gradient_is_exactly_zero_at_zero_look_ahead_lr(lr: float) -> None:
    gamma_net, head = gamma_net_and_head()
    grads, result = meta.meta_gradients(gamma_net, head, feature_batch(1, 32), feature_batch(2, 32), lr, 15, None)
    assert torch.isfinite(result.meta_loss)
    if lr == 0.0:
        assert all(torch.equal(g, torch.zeros_like(g)) for g in grads)
    else:
        assert all(g.abs().sum() > 0 for g in grads)


def test_look_ahead_is_one_plain_gradient_step_of_the_summed_inner_loss() -> None:
    gamma_net, head = gamma_net_and_head()
    train = feature_batch(3, 16)
    gamma = gamma_net(train.features)
    weight, bias = meta.look_ahead_head(train, head.weight, head.bias, gamma, lr=0.3)
    reference = copy.deepcopy(head)
    focal_per_sample(reference(train.features), train.labels, gamma.detach()).sum().backward()
    assert reference.weight.grad is not None and reference.bias.grad is not None
    torch.testing.assert_close(weight, head.weight - 0.3 * reference.weight.grad)
    assert bias is not None
    torch.testing.assert_close(bias, head.bias - 0.3 * reference.bias.grad)
    assert weight.requires_grad  # W' is still a function of gamma


def attached_run(
    seed: int = 0, network: nn.Module | None = None
) -> tuple[GammaNetLoss, nn.Module, torch.optim.Optimizer, tuple[torch.Tensor, torch.Tensor]]:
    torch.manual_seed(seed)
    model = network if network is not None else SmallCNN(SHAPE, K, width=4)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss_fn = build_loss("gamma-net", num_classes=K, gamma_width=8)
    assert isinstance(loss_fn, GammaNetLoss)
    x, y = torch.randn(180, *SHAPE), torch.randint(0, K, (180,))
    return loss_fn, model, optimizer, loss_fn.attach(model, optimizer, (x, y), seed)


def gamma_net_state(loss_fn: GammaNetLoss) -> list[torch.Tensor]:
    return [p.detach().clone() for p in loss_fn.gamma_net.parameters()]


def test_backbone_step_receives_no_gradient_from_the_meta_validation_batch() -> None:
    loss_fn, model, _, (x, y) = attached_run()
    reference = copy.deepcopy(model)
    loss = loss_fn(model(x[:32]), y[:32])  # the meta step runs here
    assert all(p.grad is None for p in model.parameters())  # nothing leaked into the backbone
    loss.backward()
    gamma = loss_fn.gammas(reference.features(x[:32]))  # the updated gammas, detached
    focal_per_sample(reference(x[:32]), y[:32], gamma).mean().backward()
    for got, expected in zip(model.parameters(), reference.parameters(), strict=True):
        assert got.grad is not None and expected.grad is not None
        torch.testing.assert_close(got.grad, expected.grad, rtol=0, atol=1e-7)


def test_gamma_net_parameters_change_only_in_the_meta_step() -> None:
    loss_fn, model, optimizer, (x, y) = attached_run()
    before = gamma_net_state(loss_fn)
    loss = loss_fn(model(x[:32]), y[:32])
    after_meta = gamma_net_state(loss_fn)
    assert any(not torch.equal(a, b) for a, b in zip(before, after_meta, strict=True))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    assert all(p.grad is None for p in loss_fn.gamma_net.parameters())
    assert all(torch.equal(a, b) for a, b in zip(after_meta, gamma_net_state(loss_fn), strict=True))
    loss_fn.eval()(model(x[:32]), y[:32])  # evaluation: no meta step
    with torch.no_grad():
        loss_fn.train()(model(x[:32]), y[:32])  # no graph: no meta step
    assert all(torch.equal(a, b) for a, b in zip(after_meta, gamma_net_state(loss_fn), strict=True))


def test_meta_validation_pass_leaves_batchnorm_statistics_untouched() -> None:
    network = ResNet18(SHAPE, K, width=2)
    loss_fn, model, _, (x, y) = attached_run(network=network)
    reference = copy.deepcopy(model)
    loss_fn(model(x[:16]), y[:16])  # training forward + meta-validation forward
    reference(x[:16])  # training forward only
    for got, expected in zip(model.buffers(), reference.buffers(), strict=True):
        assert torch.equal(got, expected)


def test_meta_split_is_seeded_and_disjoint() -> None:
    train, held = meta.split_meta_validation(1000, 1 / 9, seed=3)
    assert len(held) == 111 and len(train) == 889
    assert np.array_equal(np.union1d(train, held), np.arange(1000))
    again = meta.split_meta_validation(1000, 1 / 9, seed=3)
    assert np.array_equal(again[1], held)
    assert not np.array_equal(meta.split_meta_validation(1000, 1 / 9, seed=4)[1], held)


def test_splits_are_80_10_10_of_the_training_files_and_test_is_untouched() -> None:
    dataset = load_digits()
    config = TrainConfig(data="digits", loss="gamma-net", validation_fraction=0.1)
    prepared = prepare_data(config, dataset)
    loss_fn = build_loss("gamma-net", num_classes=K)
    model = SmallCNN(SHAPE, K, width=4)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = loss_fn.attach(model, optimizer, prepared.train, config.seed)
    n = len(dataset.train_y)
    sizes = [len(y), len(prepared.validation[1]), n - len(y) - len(prepared.validation[1])]
    assert sum(sizes) == n
    assert [round(s / n, 2) for s in sizes] == [0.8, 0.1, 0.1]
    assert len(prepared.test[1]) == len(dataset.test_y)
    rows = {tuple(r.flatten().tolist()) for r in prepared.train[0].numpy()}
    assert {tuple(r.flatten().tolist()) for r in x.numpy()} <= rows


def test_meta_validation_stream_visits_every_row_once_per_pass_and_resumes() -> None:
    y = torch.arange(10)
    stream = meta.MetaValidationStream(y[:, None].float(), y, seed=1)
    first_pass = torch.cat([stream.next_batch(4)[1] for _ in range(2)] + [stream.next_batch(2)[1]])
    assert sorted(first_pass.tolist()) == list(range(10))
    resumed = meta.MetaValidationStream(y[:, None].float(), y, seed=1, rows_drawn=10)
    assert torch.equal(resumed.next_batch(7)[1], stream.next_batch(7)[1])
    shards = [meta.MetaValidationStream(y[:, None], y, 1).next_batch(6, r, 2)[1] for r in (0, 1)]
    assert torch.equal(torch.stack(shards, 1).flatten(), resumed.permutation(0)[:6])


GAMMA_NET_RUN = TrainConfig(
    data="digits",
    width=8,
    loss="gamma-net",
    loss_params={"gamma_width": 16},
    epochs=2,
    batch_size=64,
    optimizer="sgd",
    lr=0.05,
    schedule="cosine",
    seed=3,
)


class Interrupted(Exception):
    """Stands for a crash in the middle of an epoch."""


def test_digits_run_trains_logs_gamma_resumes_exactly_and_exports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = train(GAMMA_NET_RUN, tmp_path / "full", progress=False)
    log = [json.loads(line) for line in (tmp_path / "full" / LOG_FILE).read_text().splitlines()]
    assert {"gamma_mean", "gamma_std", "meta_loss", "meta_sece"} <= set(log[-1])
    assert np.isfinite(full["loss"]) and 0.0 < log[-1]["gamma_mean"] <= 10.0

    real, calls = trainer_module.train_one_epoch, []

    def dying(*args: object, **kwargs: object) -> tuple[float, float]:
        calls.append(1)
        if len(calls) == 2:
            raise Interrupted
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "train_one_epoch", dying)
    with pytest.raises(Interrupted):
        train(GAMMA_NET_RUN, tmp_path / "part", progress=False)
    monkeypatch.undo()
    resumed = train(GAMMA_NET_RUN, tmp_path / "part", resume=True, progress=False)
    a, b = (read_checkpoint(tmp_path / run / LAST_CHECKPOINT) for run in ("full", "part"))
    assert {"gamma_net.hidden.weight", "meta.rows_drawn", "meta.optimizer.0.exp_avg"} <= set(a["loss_state"])
    assert set(a["loss_state"]) == set(b["loss_state"])
    for key, value in a["loss_state"].items():
        torch.testing.assert_close(b["loss_state"][key], value, rtol=0, atol=1e-9)
    for key, value in a["model_state"].items():
        torch.testing.assert_close(b["model_state"][key], value, rtol=0, atol=1e-6)
    assert {k: v for k, v in resumed.items() if k != "seconds"} == pytest.approx(
        {k: v for k, v in full.items() if k != "seconds"}, rel=1e-6
    )

    calibrate_run(tmp_path / "full", "ts")
    manifest = verify_artifact(export_run(tmp_path / "full", "digits-gamma-net", "1", tmp_path))
    assert manifest.training.loss == "gamma-net"
    assert manifest.training.loss_params == {"gamma_width": 16}


def test_two_gloo_processes_train_gamma_net(tmp_path: Path) -> None:
    """torchrun, 2 CPU processes: the meta step's collectives (global meta batch size, averaged
    gamma-net gradients) run in lockstep, including the uneven last batch."""
    repo = Path(__file__).resolve().parents[2]
    command = [
        *(sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"),
        *("-m", "candor.cli", "train", "--data", "digits", "--loss", "gamma-net"),
        *("--epochs", "1", "--batch-size", "64", "--width", "8", "--out", str(tmp_path)),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(repo)}
    done = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((tmp_path / LOG_FILE).read_text().splitlines()[-1])
    assert np.isfinite(record["meta_loss"]) and 0.0 < record["gamma_mean"] <= 10.0
