"""The training loop: checkpoints carry their config, log lines, best-by-validation-accuracy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from training.errors import RunDirectoryError, TrainingError
from training.trainer import LOG_FILE, TrainConfig, load_checkpoint, train

pytestmark = pytest.mark.usefixtures("one_thread")


def test_checkpoint_carries_config_and_preprocessing(digits_artifact) -> None:
    model, ckpt = load_checkpoint(digits_artifact.run_dir)
    assert TrainConfig(**ckpt["config"]).data == "digits"
    assert ckpt["input_shape"] == [1, 8, 8] and len(ckpt["classes"]) == 10
    assert len(ckpt["mean"]) == len(ckpt["std"]) == 1
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


def test_log_has_one_line_per_epoch_and_best_is_max_val_accuracy(digits_artifact) -> None:
    lines = [json.loads(s) for s in (digits_artifact.run_dir / LOG_FILE).read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2, 3, 4]
    assert {"loss", "accuracy", "val_accuracy", "val_ece"} <= set(lines[0])
    _, ckpt = load_checkpoint(digits_artifact.run_dir)
    assert ckpt["metrics"]["val_accuracy"] == max(r["val_accuracy"] for r in lines)


def test_training_is_deterministic(tmp_path: Path) -> None:
    config = TrainConfig(data="digits", epochs=1, batch_size=64, seed=7)
    first = train(config, tmp_path / "a")
    second = train(config, tmp_path / "b")
    assert first["loss"] == second["loss"] and first["val_accuracy"] == second["val_accuracy"]


@pytest.mark.parametrize(
    ("override", "option"),
    [
        ({"epochs": 0}, "--epochs"),
        ({"batch_size": 0}, "--batch-size"),
        ({"lr": -1.0}, "--lr"),
        ({"loss": "nope"}, "--loss.*loss must be one of"),
        ({"data": "nope"}, "--data.*data set"),
        ({"architecture": "nope"}, "--model.*architecture"),
        ({"optimizer": "rmsprop"}, "--optimizer"),
        ({"schedule": "step"}, "--schedule"),
        ({"momentum": 1.0}, "--momentum"),
        ({"weight_decay": -1e-4}, "--weight-decay"),
        ({"clip_norm": -1.0}, "--clip-norm"),
        ({"lr_decay": 0.0}, "--lr-decay"),
        ({"seed": -1}, "--seed"),
        ({"width": 0}, "--width"),
        ({"validation_fraction": 1.0}, "--validation-fraction"),
        ({"train_subset": -1}, "--train-subset"),
        ({"train_subset": 10**6}, "--train-subset"),
        ({"milestones": (3, 2)}, "--milestones"),
        ({"milestones": (0,)}, "--milestones"),
        ({"schedule": "cosine", "milestones": (2,)}, "--milestones"),
        ({"data": "npz:/nonexistent/x.npz"}, "x.npz not found"),
    ],
)
def test_bad_options_name_the_option(tmp_path: Path, override: dict, option: str) -> None:
    with pytest.raises(TrainingError, match=option):
        train(TrainConfig(**{"data": "digits", "epochs": 1, **override}), tmp_path)


def test_missing_checkpoint_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(RunDirectoryError, match="candor train"):
        load_checkpoint(tmp_path)


@pytest.mark.parametrize("loss", ["ce", "ls", "focal", "flsd53", "ecp", "mbls", "cals", "mixup"])
def test_every_registered_loss_trains_and_checkpoints_its_state(tmp_path: Path, loss: str) -> None:
    best = train(TrainConfig(data="digits", epochs=1, batch_size=128, loss=loss), tmp_path)
    assert best["loss"] == best["loss"]  # finite, not NaN
    _, ckpt = load_checkpoint(tmp_path)
    assert TrainConfig(**ckpt["config"]).loss == loss
    if loss == "cals":
        assert {"lambdas", "rhos"} <= set(ckpt["loss_state"]) and "lambda_mean" in best


def test_bad_loss_parameter_names_it(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="--loss-param.*gamma"):
        train(
            TrainConfig(data="digits", epochs=1, loss="focal", loss_params={"gamma": -1.0}),
            tmp_path,
        )
    with pytest.raises(TrainingError, match="--loss-param.*nope"):
        train(TrainConfig(data="digits", epochs=1, loss="ls", loss_params={"nope": 1.0}), tmp_path)


def test_a_second_run_into_the_same_directory_is_refused(tmp_path: Path) -> None:
    config = TrainConfig(data="digits", epochs=1, batch_size=256)
    train(config, tmp_path, progress=False)
    with pytest.raises(RunDirectoryError, match="--resume"):
        train(config, tmp_path, progress=False)


def test_log_records_the_learning_rate_of_each_epoch(tmp_path: Path) -> None:
    config = TrainConfig(
        data="digits",
        epochs=3,
        batch_size=256,
        optimizer="sgd",
        lr=0.1,
        milestones=(1, 2),
        lr_decay=0.5,
    )
    train(config, tmp_path, progress=False)
    lines = [json.loads(s) for s in (tmp_path / LOG_FILE).read_text().splitlines()]
    assert [r["lr"] for r in lines] == pytest.approx([0.1, 0.05, 0.025])
