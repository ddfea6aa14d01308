"""``candor train``'s options are generated from TrainConfig: every field has its flag, every flag
of the hand-written parser they replaced is still there with its name, default and type, and the
defaults parse to TrainConfig()."""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

from training.cli import add_train_arguments, config_from_args
from training.config import TrainConfig

# flag -> (dest, default, type) of the hand-written parser (training/cli.py before issue 19, item 5);
# None as type: argparse's default, the text itself (the same as str).
BEFORE = {
    "--data": ("data", "fashion-mnist", str),
    "--model": ("architecture", "small-cnn", str),
    "--width": ("width", None, int),
    "--loss": ("loss", "ce", str),
    "--loss-param": ("loss_params", [], None),
    "--epochs": ("epochs", 5, int),
    "--batch-size": ("batch_size", 128, int),
    "--optimizer": ("optimizer", "adam", str),
    "--lr": ("lr", 1e-3, float),
    "--momentum": ("momentum", 0.9, float),
    "--weight-decay": ("weight_decay", 0.0, float),
    "--schedule": ("schedule", "multistep", str),
    "--milestones": ("milestones", "", None),
    "--lr-decay": ("lr_decay", 0.1, float),
    "--clip-norm": ("clip_norm", 2.0, float),
    "--no-amp": ("amp", True, None),
    "--seed": ("seed", 0, int),
    "--validation-fraction": ("validation_fraction", 0.1, float),
    "--train-subset": ("train_subset", 0, int),
    "--calibration-size": ("calibration_size", 0, int),
    "--label-noise": ("label_noise", 0.0, float),
    "--out": ("out", None, Path),
    "--resume": ("resume", False, None),
}


def train_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    return parser


def actions() -> dict[str, argparse.Action]:
    return {flag: a for a in train_parser()._actions for flag in a.option_strings if flag != "-h"}


def test_every_flag_of_the_hand_written_parser_keeps_its_name_default_and_type() -> None:
    found = actions()
    assert set(found) - {"--help"} == set(BEFORE)
    for flag, (dest, default, kind) in BEFORE.items():
        action = found[flag]
        assert (action.dest, action.default) == (dest, default), flag
        assert (action.type or str) == (kind or str), flag
        assert action.help, flag


def test_every_field_has_one_flag_and_the_defaults_parse_to_the_default_config() -> None:
    dests = [a.dest for a in train_parser()._actions]
    assert all(dests.count(f.name) == 1 for f in fields(TrainConfig))
    assert config_from_args(train_parser().parse_args(["--out", "run"])) == TrainConfig()


def test_parsed_values_reach_the_config_typed() -> None:
    argv = ["--out", "r", "--model", "resnet18", "--width", "16", "--loss-param", "gamma=3", "--loss-param", "x=0.5"]
    argv += ["--milestones", "4,8", "--no-amp", "--lr", "0.01", "--data", "npz:x.npz"]
    config = config_from_args(train_parser().parse_args(argv))
    assert (config.architecture, config.width, config.loss_params) == ("resnet18", 16, {"gamma": 3, "x": 0.5})
    assert (config.milestones, config.amp, config.lr) == ((4, 8), False, 0.01)
    assert config.data == f"npz:{Path('x.npz').resolve()}"
