"""Training-stage subcommands: train, calibrate, export. Handlers import torch; options do not."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class MapMethods:
    """The ``--method`` choices, read from the map registry (training.map_fit.METHODS) only when a
    calibrate command is parsed: the registry imports onnx, which ``candor serve`` must not need."""

    def __contains__(self, method: object) -> bool:
        from training.map_fit import METHODS

        return method in METHODS

    def __iter__(self) -> Iterator[str]:
        from training.map_fit import METHODS

        return iter(METHODS)


def add_training_commands(commands: Any) -> None:
    """Register ``train``, ``calibrate`` and ``export`` on the top-level subparsers."""
    train = commands.add_parser("train", help="train a classifier and keep the best checkpoint")
    add_train_arguments(train)
    train.set_defaults(handler=run_train)

    calibrate = commands.add_parser(
        "calibrate", help="fit the post-hoc map on the run's calibration split (else its validation split)"
    )
    calibrate.add_argument("run", type=Path, help="run directory written by `candor train`")
    calibrate.add_argument(
        "--method",
        default="best",
        choices=MapMethods(),
        metavar="METHOD",
        help="a fitted map of training/maps (ts, fts: focal temperature, vs: vector scaling, ...) "
        "or best: none, TS or FTS by the lowest held-out NLL",
    )
    calibrate.set_defaults(handler=run_calibrate)

    foreign = commands.add_parser(
        "calibrate-onnx", help="calibrate any ONNX classifier that outputs logits (no torch needed)"
    )
    foreign.add_argument("model", type=Path, help="ONNX file with one float32 input and one (N, K) logits output")
    foreign.add_argument(
        "--val",
        type=Path,
        required=True,
        help=".npz with x (model-ready inputs), y, optional classes",
    )
    foreign.add_argument("--test", type=Path, help=".npz for the reference figures (default: half of --val)")
    foreign.add_argument("--method", default="best", choices=MapMethods(), metavar="METHOD", help="as for calibrate")
    foreign.add_argument("--name", required=True)
    foreign.add_argument("--version", required=True)
    foreign.add_argument("--models-dir", type=Path, default=Path("models"))
    foreign.add_argument("--force", action="store_true", help="replace an existing version")
    foreign.set_defaults(handler=run_calibrate_onnx)

    evaluate = commands.add_parser("evaluate", help="every metric before/after the map, through ONNX Runtime")
    evaluate.add_argument("target", type=Path, help="artifact directory (models/<name>/<version>) or run directory")
    evaluate.add_argument("--split", default="test", choices=["test", "validation"])
    evaluate.add_argument("--out", type=Path, required=True, help="report directory")
    evaluate.add_argument("--ci", action="store_true", help="95%% bootstrap intervals for every metric")
    evaluate.add_argument("--resamples", type=int, default=200, help="bootstrap resamples with --ci")
    evaluate.set_defaults(handler=run_evaluate)

    export = commands.add_parser("export", help="write models/<name>/<version>/ (fused ONNX + manifest)")
    export.add_argument("run", type=Path, help="calibrated run directory")
    export.add_argument("--name", required=True, help="model name, e.g. fashion-mnist-cnn")
    export.add_argument("--version", required=True, help="positive integer version")
    export.add_argument("--models-dir", type=Path, default=Path("models"))
    export.add_argument("--force", action="store_true", help="replace an existing version")
    export.set_defaults(handler=run_export)


def add_train_arguments(train: argparse.ArgumentParser) -> None:
    """The options of ``candor train`` (values are checked by TrainConfig.validate)."""
    train.add_argument(
        "--data",
        default="fashion-mnist",
        help="fashion-mnist | digits | npz:PATH | folder:PATH | cifar10:DIR",
    )
    train.add_argument("--model", dest="architecture", default="small-cnn", help="small-cnn | resnet18")
    train.add_argument(
        "--width",
        type=int,
        default=None,
        help="channels of the first layer (default: 32 small-cnn, 64 resnet18)",
    )
    train.add_argument(
        "--loss",
        default="ce",
        help="training loss: ce, ls, focal, flsd53, ecp, mbls, cals, mixup, gamma-net",
    )
    train.add_argument(
        "--loss-param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="loss hyper-parameter, repeatable (e.g. --loss-param gamma=3)",
    )
    train.add_argument("--epochs", type=int, default=5)
    train.add_argument("--batch-size", type=int, default=128, help="global batch (all processes)")
    train.add_argument("--optimizer", default="adam", help="adam | sgd")
    train.add_argument("--lr", type=float, default=1e-3, help="initial learning rate")
    train.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    train.add_argument("--weight-decay", type=float, default=0.0)
    train.add_argument("--schedule", default="multistep", help="multistep | cosine (per epoch)")
    train.add_argument(
        "--milestones",
        default="",
        metavar="E1,E2,...",
        help="multistep: epochs at which lr is multiplied by --lr-decay (none: constant)",
    )
    train.add_argument("--lr-decay", type=float, default=0.1, help="multistep factor")
    train.add_argument("--clip-norm", type=float, default=2.0, help="gradient-norm clip (0: off)")
    train.add_argument(
        "--no-amp",
        dest="amp",
        action="store_false",
        help="no mixed precision on CUDA (CPU never uses it)",
    )
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--validation-fraction", type=float, default=0.1)
    train.add_argument("--train-subset", type=int, default=0, help="use only n training images (0: all)")
    train.add_argument(
        "--calibration-size",
        type=int,
        default=0,
        help="carve n images from the unused training pool for post-hoc fits (0: fit on validation)",
    )
    train.add_argument(
        "--label-noise",
        type=float,
        default=0.0,
        help="class-flip noise eta on training labels only (benchmark option; default 0)",
    )
    train.add_argument("--out", type=Path, required=True, help="run directory, e.g. runs/<id>")
    train.add_argument("--resume", action="store_true", help="continue the run in --out from last.pt")


def run_train(args: argparse.Namespace) -> int:
    """``candor train`` (also one process of ``torchrun ... -m candor.cli train``)."""
    from training.trainer import TrainConfig, train

    config = TrainConfig(
        data=absolute_data_path(args.data),
        architecture=args.architecture,
        width=args.width,
        loss=args.loss,
        loss_params=parse_loss_params(args.loss_param),
        epochs=args.epochs,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        lr=args.lr,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        schedule=args.schedule,
        milestones=parse_milestones(args.milestones),
        lr_decay=args.lr_decay,
        clip_norm=args.clip_norm,
        amp=args.amp,
        seed=args.seed,
        validation_fraction=args.validation_fraction,
        train_subset=args.train_subset,
        calibration_size=args.calibration_size,
        label_noise=args.label_noise,
    )
    best = train(config, args.out, resume=args.resume)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"best epoch {int(best['epoch'])}: val_acc {best['val_accuracy']:.4f} -> {args.out}/best.pt")
    return 0


def absolute_data_path(data: str) -> str:
    """``npz:rel/x.npz`` -> ``npz:/abs/rel/x.npz``: calibrate/export then find it from anywhere."""
    kind, sep, location = data.partition(":")
    if sep and kind in ("npz", "folder", "cifar10") and location:
        return f"{kind}:{Path(location).expanduser().resolve()}"
    return data


def parse_milestones(text: str) -> tuple[int, ...]:
    """``"40,60"`` -> ``(40, 60)``; anything else names --milestones."""
    from training.errors import TrainingError

    try:
        return tuple(int(part) for part in text.replace(" ", "").split(",") if part)
    except ValueError as error:
        raise TrainingError(f"--milestones {text!r}: expected comma-separated epochs, e.g. 40,60") from error


def run_calibrate(args: argparse.Namespace) -> int:
    """``candor calibrate``."""
    from training.calibrate_run import calibrate_run

    cmap = calibrate_run(args.run, args.method)
    print(f"{args.run}: {cmap.kind} T = {cmap.temperature:.4f}, gamma = {cmap.gamma:g} (fitted on validation NLL)")
    return 0


def run_calibrate_onnx(args: argparse.Namespace) -> int:
    """``candor calibrate-onnx`` (imports onnx and onnxruntime, never torch)."""
    from training.calibrate_onnx import calibrate_onnx

    target = calibrate_onnx(
        args.model,
        args.val,
        args.method,
        args.name,
        args.version,
        args.models_dir,
        args.test,
        force=args.force,
    )
    print(f"wrote {target}")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    """``candor evaluate``."""
    from training.evaluate import evaluate

    result = evaluate(args.target, args.split, args.out, ci=args.ci, resamples=args.resamples)
    before, after = result["before"], result["after"]
    print(
        f"{result['model']} v{result['version']} on {result['split']} (n = {result['n']}): "
        f"ECE {before['ece']['value']:.4f} -> {after['ece']['value']:.4f}, "
        f"NLL {before['nll']['value']:.4f} -> {after['nll']['value']:.4f}; report in {args.out}"
    )
    return 0


def run_export(args: argparse.Namespace) -> int:
    """``candor export``."""
    from training.export import export_run

    target = export_run(args.run, args.name, args.version, args.models_dir, force=args.force)
    print(f"wrote {target}")
    return 0


def parse_loss_params(pairs: list[str]) -> dict[str, float]:
    """``["mix_size=3", "alpha=0.1"]`` -> ``{"mix_size": 3, "alpha": 0.1}`` (integers stay int).

    A bad pair names itself.
    """
    from training.errors import TrainingError

    params: dict[str, float] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        try:
            params[name.strip()] = int(value) if value.strip().lstrip("+-").isdigit() else float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise TrainingError(f"--loss-param {pair!r}: expected NAME=NUMBER, e.g. gamma=3")
    return params
