"""The run configuration: every option that determines a training run, checked up front.

A ``TrainConfig`` is saved in every checkpoint (``dataclasses.asdict``) and rebuilt from it with
``TrainConfig(**ckpt["config"])``; fields added later have defaults so older checkpoints still load.
Each bad value raises ``TrainingError`` naming the command-line option that set it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from training.errors import TrainingError

OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("multistep", "cosine")
ARCHITECTURE_NAMES = ("small-cnn", "resnet18")


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

    data: str = "fashion-mnist"
    architecture: str = "small-cnn"
    width: int | None = None
    loss: str = "ce"
    loss_params: dict[str, float] = field(default_factory=dict)
    epochs: int = 5
    batch_size: int = 128
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "multistep"
    milestones: tuple[int, ...] = ()
    lr_decay: float = 0.1
    clip_norm: float = 2.0
    amp: bool = True
    seed: int = 0
    validation_fraction: float = 0.1
    train_subset: int = 0  # 0: all training images; else the first n of the seeded train split
    calibration_size: int = 0  # rows carved (seeded) from the unused training pool for post-hoc fits
    label_noise: float = 0.0  # class-flip noise on training labels only (a benchmark option)

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
