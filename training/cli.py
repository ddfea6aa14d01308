"""Training-stage subcommands: train, calibrate, export. Handlers import torch; definitions do not."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_training_commands(commands: Any) -> None:
    """Register ``train``, ``calibrate`` and ``export`` on the top-level subparsers."""
    train = commands.add_parser("train", help="train a classifier and keep the best checkpoint")
    train.add_argument("--data", default="fashion-mnist", help="fashion-mnist | digits")
    train.add_argument("--model", dest="architecture", default="small-cnn", help="architecture name")
    train.add_argument("--loss", default="ce",
                       help="training loss: ce, ls, focal, flsd53, ecp, mbls, cals, mixup")
    train.add_argument("--loss-param", action="append", default=[], metavar="NAME=VALUE",
                       help="loss hyper-parameter, repeatable (e.g. --loss-param gamma=3)")
    train.add_argument("--epochs", type=int, default=5)
    train.add_argument("--batch-size", type=int, default=128)
    train.add_argument("--lr", type=float, default=1e-3)
    train.add_argument("--weight-decay", type=float, default=0.0)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--validation-fraction", type=float, default=0.1)
    train.add_argument("--train-subset", type=int, default=0, help="use only n training images (0: all)")
    train.add_argument("--out", type=Path, required=True, help="run directory, e.g. runs/<id>")
    train.set_defaults(handler=run_train)

    calibrate = commands.add_parser("calibrate", help="fit the post-hoc map on the run's validation split")
    calibrate.add_argument("run", type=Path, help="run directory written by `candor train`")
    calibrate.add_argument("--method", default="best", choices=["ts", "fts", "best"],
                           help="ts, fts (focal temperature scaling) or best of the two by validation NLL")
    calibrate.set_defaults(handler=run_calibrate)

    export = commands.add_parser("export", help="write models/<name>/<version>/ (fused ONNX + manifest)")
    export.add_argument("run", type=Path, help="calibrated run directory")
    export.add_argument("--name", required=True, help="model name, e.g. fashion-mnist-cnn")
    export.add_argument("--version", required=True, help="positive integer version")
    export.add_argument("--models-dir", type=Path, default=Path("models"))
    export.add_argument("--force", action="store_true", help="replace an existing version")
    export.set_defaults(handler=run_export)


def run_train(args: argparse.Namespace) -> int:
    """``candor train``."""
    from training.trainer import TrainConfig, train

    config = TrainConfig(data=args.data, architecture=args.architecture, loss=args.loss,
                         loss_params=parse_loss_params(args.loss_param),
                         epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                         weight_decay=args.weight_decay, seed=args.seed,
                         validation_fraction=args.validation_fraction, train_subset=args.train_subset)
    best = train(config, args.out)
    print(f"best epoch {int(best['epoch'])}: val_acc {best['val_accuracy']:.4f} -> {args.out}/best.pt")
    return 0


def run_calibrate(args: argparse.Namespace) -> int:
    """``candor calibrate``."""
    from training.calibrate_run import calibrate_run

    cmap = calibrate_run(args.run, args.method)
    print(f"{args.run}: {cmap.kind} T = {cmap.temperature:.4f}, gamma = {cmap.gamma:g} "
          "(fitted on validation NLL)")
    return 0


def run_export(args: argparse.Namespace) -> int:
    """``candor export``."""
    from training.export import export_run

    target = export_run(args.run, args.name, args.version, args.models_dir, force=args.force)
    print(f"wrote {target}")
    return 0


def parse_loss_params(pairs: list[str]) -> dict[str, float]:
    """``["gamma=3", "alpha=0.1"]`` -> ``{"gamma": 3.0, "alpha": 0.1}``; a bad pair names itself."""
    from training.errors import TrainingError

    params: dict[str, float] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        try:
            params[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise TrainingError(f"--loss-param {pair!r}: expected NAME=NUMBER, e.g. gamma=3")
    return params
