"""``candor train`` options end to end; calibrate and export on runs of any loss and network."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from calibration.manifest import verify_artifact
from candor.cli import main
from training.calibrate_run import calibrate_run
from training.checkpoint import load_checkpoint
from training.config import parse_loss_params, parse_milestones
from training.errors import TrainingError
from training.export import export_run
from training.trainer import TrainConfig, train

pytestmark = pytest.mark.usefixtures("one_thread")


def test_every_option_reaches_the_saved_config(tmp_path: Path) -> None:
    argv = [
        "train",
        "--data",
        "digits",
        "--model",
        "small-cnn",
        "--width",
        "8",
        "--loss",
        "focal",
        "--loss-param",
        "gamma=2",
        "--epochs",
        "2",
        "--batch-size",
        "200",
        "--optimizer",
        "sgd",
        "--lr",
        "0.05",
        "--momentum",
        "0.8",
        "--weight-decay",
        "5e-4",
        "--schedule",
        "multistep",
        "--milestones",
        "1",
        "--lr-decay",
        "0.2",
        "--clip-norm",
        "1.5",
        "--no-amp",
        "--seed",
        "4",
        "--validation-fraction",
        "0.2",
        "--train-subset",
        "500",
        "--out",
        str(tmp_path / "r"),
    ]
    assert main(argv) == 0
    _, ckpt = load_checkpoint(tmp_path / "r")
    assert TrainConfig(**ckpt["config"]) == TrainConfig(
        data="digits",
        architecture="small-cnn",
        width=8,
        loss="focal",
        loss_params={"gamma": 2},
        epochs=2,
        batch_size=200,
        optimizer="sgd",
        lr=0.05,
        momentum=0.8,
        weight_decay=5e-4,
        schedule="multistep",
        milestones=(1,),
        lr_decay=0.2,
        clip_norm=1.5,
        amp=False,
        seed=4,
        validation_fraction=0.2,
        train_subset=500,
    )
    assert main([*argv[:-2], "--out", str(tmp_path / "r"), "--resume"]) == 0  # nothing left to do


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--optimizer", "lbfgs"], "--optimizer"),
        (["--milestones", "a,b"], "--milestones"),
        (["--loss-param", "gamma"], "--loss-param"),
        (["--loss", "focal", "--loss-param", "gamma=-2"], "--loss-param.*gamma"),
        (["--data", "folder:/does/not/exist"], "/does/not/exist not found"),
    ],
)
def test_bad_options_exit_2_with_one_line_naming_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    assert main(["train", "--data", "digits", "--epochs", "1", *extra, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("candor: error: ") and "\n" not in err
    assert re.search(message, err)


def test_option_parsers() -> None:
    assert parse_milestones("40, 60") == (40, 60) and parse_milestones("") == ()
    params = parse_loss_params(["mix_size=3", "alpha=0.5", "margin=1e1", "rho_step=-1"])
    assert params == {"mix_size": 3, "alpha": 0.5, "margin": 10.0, "rho_step": -1}
    assert isinstance(params["mix_size"], int) and isinstance(params["margin"], float)
    with pytest.raises(TrainingError, match="NAME=NUMBER"):
        parse_loss_params(["gamma=abc"])


def test_relative_npz_paths_are_saved_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "d.npz", x=rng.integers(0, 256, (60, 8, 8), dtype=np.uint8), y=np.arange(60) % 3)
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--data", "npz:d.npz", "--epochs", "1", "--out", "run"]) == 0
    _, ckpt = load_checkpoint(tmp_path / "run")
    assert ckpt["config"]["data"] == f"npz:{tmp_path / 'd.npz'}"


@pytest.mark.parametrize(("loss", "architecture"), [("cals", "resnet18"), ("mixup", "small-cnn")])
def test_calibrate_and_export_work_whatever_trained_the_run(tmp_path: Path, loss: str, architecture: str) -> None:
    config = TrainConfig(data="digits", architecture=architecture, width=8, loss=loss, epochs=1, batch_size=128)
    train(config, tmp_path / "run", progress=False)
    cmap = calibrate_run(tmp_path / "run")
    assert 0.05 <= cmap.temperature <= 20
    target = export_run(tmp_path / "run", "digits", "1", tmp_path / "models")
    manifest = verify_artifact(target)
    assert manifest.training.loss == loss and manifest.training.architecture == architecture
