"""The run configuration: every option that determines a training run, checked up front.

A ``TrainConfig`` is saved in every checkpoint (``dataclasses.asdict``) and rebuilt from it with
``TrainConfig(**ckpt["config"])``; fields added later have defaults so older checkpoints still load.
Each bad value raises ``TrainingError`` naming the command-line option that set it.

Each field is one option of ``candor train`` (training.cli generates them): ``--`` and the field's
name with dashes, its type and default, and the ``metadata`` of the field: ``help`` (required),
``flag`` (another name), ``metavar``, and for options typed as text, ``parse`` (text -> the field's
value, applied when the config is built) with ``text_default``; ``repeat`` makes it repeatable.
A boolean that defaults to true is switched off by its flag.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from training.errors import TrainingError

OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("multistep", "cosine")
ARCHITECTURE_NAMES = ("small-cnn", "resnet18")


def absolute_data_path(data: str) -> str:
    """``npz:rel/x.npz`` -> ``npz:/abs/rel/x.npz``: calibrate/export then find it from anywhere."""
    kind, sep, location = data.partition(":")
    if sep and kind in ("npz", "folder", "cifar10") and location:
        return f"{kind}:{Path(location).expanduser().resolve()}"
    return data


def parse_milestones(text: str) -> tuple[int, ...]:
    """``"40,60"`` -> ``(40, 60)``; anything else names --milestones."""
    try:
        return tuple(int(part) for part in text.replace(" ", "").split(",") if part)
    except ValueError as error:
        raise TrainingError(f"--milestones {text!r}: expected comma-separated epochs, e.g. 40,60") from error


def parse_loss_params(pairs: list[str]) -> dict[str, float]:
    """``["mix_size=3", "alpha=0.1"]`` -> ``{"mix_size": 3, "alpha": 0.1}`` (integers stay int).

    A bad pair names itself.
    """
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


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a run (saved in every checkpoint).

    ``batch_size`` is the global batch: under torchrun each of W processes takes batch_size / W.
    ``schedule``: multistep multiplies lr by ``lr_decay`` at each epoch in ``milestones`` (none:
    constant lr); cosine anneals lr_e = lr (1 + cos(pi e / epochs)) / 2 per epoch.
    ``clip_norm``: global gradient-norm clip (0: off). ``amp``: autocast + GradScaler, CUDA only.
    ``width``: channels of the first layer (None: the architecture's default).
    ``calibration_size``: a calibration split for hyper-parameter selection and post-hoc fits,
    disjoint from train and validation (``training.data.carve_calibration``).
    ``label_noise``: eta of the class-flip noise on training labels (``training.label_noise``).
    """

    data: str = field(
        default="fashion-mnist",
        metadata={
            "help": "fashion-mnist | digits | npz:PATH | folder:PATH | cifar10:DIR",
            "parse": absolute_data_path,
        },
    )
    architecture: str = field(default="small-cnn", metadata={"flag": "--model", "help": "small-cnn | resnet18"})
    width: int | None = field(
        default=None, metadata={"help": "channels of the first layer (default: 32 small-cnn, 64 resnet18)"}
    )
    loss: str = field(
        default="ce", metadata={"help": "training loss: ce, ls, focal, flsd53, ecp, mbls, cals, mixup, gamma-net"}
    )
    loss_params: dict[str, float] = field(
        default_factory=dict,
        metadata={
            "flag": "--loss-param",
            "help": "loss hyper-parameter, repeatable (e.g. --loss-param gamma=3)",
            "metavar": "NAME=VALUE",
            "repeat": True,
            "parse": parse_loss_params,
            "text_default": [],
        },
    )
    epochs: int = field(default=5, metadata={"help": "training epochs"})
    batch_size: int = field(default=128, metadata={"help": "global batch (all processes)"})
    optimizer: str = field(default="adam", metadata={"help": "adam | sgd"})
    lr: float = field(default=1e-3, metadata={"help": "initial learning rate"})
    momentum: float = field(default=0.9, metadata={"help": "SGD momentum"})
    weight_decay: float = field(default=0.0, metadata={"help": "the optimizer's weight decay"})
    schedule: str = field(default="multistep", metadata={"help": "multistep | cosine (per epoch)"})
    milestones: tuple[int, ...] = field(
        default=(),
        metadata={
            "help": "multistep: epochs at which lr is multiplied by --lr-decay (none: constant)",
            "metavar": "E1,E2,...",
            "parse": parse_milestones,
            "text_default": "",
        },
    )
    lr_decay: float = field(default=0.1, metadata={"help": "multistep factor"})
    clip_norm: float = field(default=2.0, metadata={"help": "gradient-norm clip (0: off)"})
    amp: bool = field(
        default=True, metadata={"flag": "--no-amp", "help": "no mixed precision on CUDA (CPU never uses it)"}
    )
    seed: int = field(default=0, metadata={"help": "seed of the splits, the initialisation and the batches"})
    validation_fraction: float = field(
        default=0.1, metadata={"help": "fraction of the training files held out for validation"}
    )
    train_subset: int = field(default=0, metadata={"help": "use only n training images (0: all)"})
    calibration_size: int = field(
        default=0,
        metadata={"help": "carve n images from the unused training pool for post-hoc fits (0: fit on validation)"},
    )
    label_noise: float = field(
        default=0.0, metadata={"help": "class-flip noise eta on training labels only (benchmark option; default 0)"}
    )

    def __post_init__(self) -> None:
        # Checkpoints hold lists; keep the frozen config hashable-ish and comparable either way.
        object.__setattr__(self, "milestones", tuple(int(m) for m in self.milestones))
        object.__setattr__(self, "loss_params", dict(self.loss_params))

    def validate(self) -> None:
        """Reject impossible values with a message naming the option."""
        for option, ok in self._range_checks().items():
            if not ok:
                value = getattr(self, option.replace("-", "_"))
                raise TrainingError(f"--{option}: invalid value {value!r}")
        self._check_choice("optimizer", self.optimizer, OPTIMIZERS)
        self._check_choice("schedule", self.schedule, SCHEDULES)
        self._check_choice("model", self.architecture, ARCHITECTURE_NAMES, "architecture")
        self._check_milestones()

    def _range_checks(self) -> dict[str, bool]:
        return {
            "epochs": self.epochs >= 1,
            "batch-size": self.batch_size >= 1,
            "lr": self.lr > 0,
            "momentum": 0.0 <= self.momentum < 1.0,
            "weight-decay": self.weight_decay >= 0,
            "lr-decay": 0.0 < self.lr_decay <= 1.0,
            "clip-norm": self.clip_norm >= 0,
            "seed": self.seed >= 0,
            "validation-fraction": 0.0 < self.validation_fraction < 1.0,
            "train-subset": self.train_subset >= 0,
            "calibration-size": self.calibration_size >= 0,
            "label-noise": 0.0 <= self.label_noise < 1.0,
            "width": self.width is None or self.width >= 1,
        }

    @staticmethod
    def _check_choice(option: str, value: str, choices: tuple[str, ...], what: str = "") -> None:
        if value not in choices:
            noun = f"unknown {what} " if what else ""
            raise TrainingError(f"--{option}: {noun}{value!r}; choose one of {', '.join(choices)}")

    def _check_milestones(self) -> None:
        if self.milestones and self.schedule != "multistep":
            raise TrainingError("--milestones: only used with --schedule multistep")
        steps = list(self.milestones)
        if any(m < 1 for m in steps) or any(b <= a for a, b in zip(steps, steps[1:], strict=False)):
            raise TrainingError(f"--milestones: need strictly increasing epochs >= 1, got {steps}")

    def differences(self, other: TrainConfig) -> list[str]:
        """Names of the fields whose values differ from ``other`` (for the resume check)."""
        return [name for name in self.__dataclass_fields__ if getattr(self, name) != getattr(other, name)]
