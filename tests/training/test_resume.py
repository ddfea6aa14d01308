"""Resuming from last.pt equals the uninterrupted run: weights, loss state, log and best record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import training.trainer as trainer_module
from training.checkpoint import LAST_CHECKPOINT, read_checkpoint
from training.errors import RunDirectoryError, TrainingError
from training.trainer import LOG_FILE, TrainConfig, train

pytestmark = pytest.mark.usefixtures("one_thread")


class Interrupted(Exception):
    """Stands for a crash or Ctrl-C in the middle of an epoch."""


def interrupt_in_epoch(monkeypatch: pytest.MonkeyPatch, epoch_number: int) -> None:
    """Make the ``epoch_number``-th call of train_one_epoch (1-based) die half-way."""
    real, calls = trainer_module.train_one_epoch, []

    def dying(*args: object, **kwargs: object) -> tuple[float, float]:
        calls.append(1)
        if len(calls) == epoch_number:
            raise Interrupted
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "train_one_epoch", dying)


def without_time(record: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in record.items() if k != "seconds"}


@pytest.mark.parametrize("loss", ["mixup", "cals"])  # the generator state; the multipliers
def test_resume_equals_the_uninterrupted_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, loss: str) -> None:
    config = TrainConfig(
        data="digits",
        loss=loss,
        epochs=3,
        batch_size=64,
        optimizer="sgd",
        lr=0.05,
        schedule="cosine",
        seed=5,
    )
    full = train(config, tmp_path / "full", progress=False)
    interrupt_in_epoch(monkeypatch, 2)
    with pytest.raises(Interrupted):
        train(config, tmp_path / "part", progress=False)
    monkeypatch.undo()
    assert read_checkpoint(tmp_path / "part" / LAST_CHECKPOINT)["epoch"] == 1
    resumed = train(config, tmp_path / "part", resume=True, progress=False)

    a, b = (read_checkpoint(tmp_path / run / LAST_CHECKPOINT) for run in ("full", "part"))
    for key, value in a["model_state"].items():
        torch.testing.assert_close(b["model_state"][key], value, rtol=0, atol=1e-6)
    for key, value in a["loss_state"].items():
        torch.testing.assert_close(b["loss_state"][key], value, rtol=0, atol=1e-9)
    assert without_time(resumed) == pytest.approx(without_time(full), rel=1e-6)
    logs = [
        [without_time(json.loads(line)) for line in (tmp_path / run / LOG_FILE).read_text().splitlines()]
        for run in ("full", "part")
    ]
    assert [r["epoch"] for r in logs[1]] == [1, 2, 3]
    for got, expected in zip(logs[1], logs[0], strict=True):
        assert got == pytest.approx(expected, rel=1e-6)


def test_resume_after_the_last_epoch_changes_nothing(tmp_path: Path) -> None:
    config = TrainConfig(data="digits", epochs=1, batch_size=256)
    best = train(config, tmp_path, progress=False)
    assert train(config, tmp_path, resume=True, progress=False) == best


def test_resume_with_different_options_names_them(tmp_path: Path) -> None:
    config = TrainConfig(data="digits", epochs=1, batch_size=256)
    train(config, tmp_path, progress=False)
    changed = TrainConfig(data="digits", epochs=1, batch_size=128, lr=0.01)
    with pytest.raises(TrainingError, match="batch_size 128 .checkpoint 256.*lr"):
        train(changed, tmp_path, resume=True, progress=False)


def test_resume_without_a_run_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(RunDirectoryError, match="--resume.*without --resume"):
        train(TrainConfig(data="digits", epochs=1), tmp_path, resume=True, progress=False)
