"""Training-stage subcommands: train, calibrate, export. Handlers import torch; options do not
(``candor train``'s are generated from training.config.TrainConfig, which imports no torch)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from dataclasses import Field, fields
from pathlib import Path
from typing import Any, get_args, get_type_hints

from training.config import TrainConfig


class MapMethods:
    """The ``--method`` choices, read from the map registry (candor.map_fit.METHODS) only when a
    calibrate command is parsed: the registry imports onnx, which ``candor serve`` must not need."""

    def __contains__(self, method: object) -> bool:
        from candor.map_fit import METHODS

        return method in METHODS

    def __iter__(self) -> Iterator[str]:
        from candor.map_fit import METHODS

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
        help="a fitted map of candor/maps (ts, fts: focal temperature, vs: vector scaling, ...) "
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
    """The options of ``candor train``: one per TrainConfig field (``config_options``), then --out
    and --resume (values are checked by TrainConfig.validate)."""
    for flag, options in config_options():
        train.add_argument(flag, **options)
    train.add_argument("--out", type=Path, required=True, help="run directory, e.g. runs/<id>")
    train.add_argument("--resume", action="store_true", help="continue the run in --out from last.pt")


def config_options() -> list[tuple[str, dict[str, Any]]]:
    """(flag, add_argument keywords) of every TrainConfig field, in field order (the rules are in
    training.config's docstring); the parsed value lands under the field's name."""
    hints = get_type_hints(TrainConfig)
    return [(option_flag(f), option_keywords(f, hints[f.name])) for f in fields(TrainConfig)]


def option_flag(f: Field[Any]) -> str:
    """The field's ``flag`` metadata, else ``--`` and its name with dashes."""
    return str(f.metadata.get("flag", "--" + f.name.replace("_", "-")))


def option_keywords(f: Field[Any], hint: Any) -> dict[str, Any]:
    """add_argument keywords: a switch for a boolean (off by the flag when it defaults to true),
    text parsed later for a ``parse`` field, else the field's type (X | None: X) and default."""
    meta = f.metadata
    keywords: dict[str, Any] = {"dest": f.name, "help": meta["help"]}
    if "metavar" in meta:
        keywords["metavar"] = meta["metavar"]
    if hint is bool:
        return keywords | {"action": "store_false" if f.default else "store_true"}
    if "parse" in meta:
        repeat = {"action": "append"} if meta.get("repeat") else {}
        return keywords | repeat | {"default": meta.get("text_default", f.default)}
    types = [t for t in get_args(hint) if t is not type(None)] or [hint]
    return keywords | {"type": types[0], "default": f.default}


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig of parsed ``candor train`` options (``parse`` metadata applied)."""
    values = {}
    for f in fields(TrainConfig):
        value = getattr(args, f.name)
        values[f.name] = f.metadata["parse"](value) if "parse" in f.metadata else value
    return TrainConfig(**values)


def run_train(args: argparse.Namespace) -> int:
    """``candor train`` (also one process of ``torchrun ... -m candor.cli train``)."""
    from training.trainer import train

    best = train(config_from_args(args), args.out, resume=args.resume)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"best epoch {int(best['epoch'])}: val_acc {best['val_accuracy']:.4f} -> {args.out}/best.pt")
    return 0


def run_calibrate(args: argparse.Namespace) -> int:
    """``candor calibrate``."""
    from training.calibrate_run import calibrate_run

    cmap = calibrate_run(args.run, args.method)
    print(f"{args.run}: {cmap.kind} T = {cmap.temperature:.4f}, gamma = {cmap.gamma:g} (fitted on validation NLL)")
    return 0


def run_calibrate_onnx(args: argparse.Namespace) -> int:
    """``candor calibrate-onnx`` (imports onnx and onnxruntime, never torch)."""
    from training.artifacts.calibrate_onnx import calibrate_onnx

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
    from training.artifacts.evaluate import evaluate

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
