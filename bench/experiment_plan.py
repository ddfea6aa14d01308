"""The pre-registered experiment behind the results table (issue 17): which runs, which grid,
which selection rule, written down before any number is seen.

- A calibration split (``TrainConfig.calibration_size``, carved seeded from the training images
  the run does not train on) serves hyper-parameter selection and the TS / FTS fits; the official
  test set is scored only once, for the final tables.
- Selection rule: on seed 0, train every grid value; choose the value of lowest calibration-split
  NLL before post-hoc calibration; values within ``NLL_TIE`` of the lowest tie, and the lowest
  calibration-split ECE among them wins. Then every method runs on every seed at its chosen value.
- Noise arm (Chidambaram & Ge 2024): CE and Mixup with class-flip noise eta on training labels.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from training.config import TrainConfig

NLL_TIE = 0.002
NOISE_ETA = 0.2
GRIDS: dict[str, tuple[Mapping[str, float], ...]] = {
    "ls": tuple({"alpha": a} for a in (0.01, 0.02, 0.05, 0.1)),
    "focal": tuple({"gamma": g} for g in (1.0, 2.0, 3.0)),
    "mbls": tuple({"margin": m} for m in (2.0, 4.0, 6.0, 10.0)),
    "cals": tuple({"margin": m} for m in (2.0, 4.0, 6.0, 10.0)),
    "mixup": tuple({"alpha": a} for a in (0.2, 1.0)),
}
FIXED: dict[str, Mapping[str, float]] = {"ce": {}, "gamma-net": {}}
MAIN_METHODS = ("ce", "ls", "focal", "mbls", "cals", "mixup", "gamma-net")
NOISE_METHODS: dict[str, Mapping[str, float]] = {"ce": {}, "mixup": {"alpha": 1.0}}  # the paper's code


@dataclass(frozen=True)
class Job:
    """One training run: its arm ("grid", "main" or "noise"), method, hyper-parameters and seed."""

    arm: str
    method: str
    params: Mapping[str, float]
    seed: int

    @property
    def key(self) -> str:
        """The run directory's name: method, hyper-parameters, noise and seed."""
        tag = "-".join(f"{name}{value:g}" for name, value in sorted(self.params.items()))
        noise = f"-noise{NOISE_ETA:g}" if self.arm == "noise" else ""
        return f"{self.method}{'-' + tag if tag else ''}{noise}-seed{self.seed}"

    def config(self, base: TrainConfig) -> TrainConfig:
        """The preset's config with this job's loss, hyper-parameters, seed and noise."""
        noise = NOISE_ETA if self.arm == "noise" else 0.0
        return dataclasses.replace(
            base, loss=self.method, loss_params=dict(self.params), seed=self.seed, label_noise=noise
        )


def grid_jobs(methods: Sequence[str], seed: int) -> list[Job]:
    """Every grid value of every tuned method on the selection seed."""
    return [Job("grid", m, params, seed) for m in methods if m in GRIDS for params in GRIDS[m]]


def untuned_jobs(methods: Sequence[str], seeds: Sequence[int], noise_seeds: Sequence[int]) -> list[Job]:
    """Runs that need no selection: the fixed methods on every seed, and the noise arm."""
    main = [Job("main", m, FIXED[m], s) for s in seeds for m in methods if m in FIXED]
    noise = [Job("noise", m, p, s) for s in noise_seeds for m, p in NOISE_METHODS.items()]
    return main + noise


def selected_jobs(chosen: Mapping[str, Mapping[str, float]], seeds: Sequence[int], selection_seed: int) -> list[Job]:
    """Every tuned method at its chosen value on the remaining seeds (the grid run is seed 0's)."""
    return [Job("main", m, p, s) for s in seeds if s != selection_seed for m, p in chosen.items()]


@dataclass(frozen=True)
class Candidate:
    """One grid value and its calibration-split NLL and ECE before post-hoc calibration."""

    params: Mapping[str, float]
    nll: float
    ece: float


def select(candidates: Sequence[Candidate], tie: float = NLL_TIE) -> Candidate:
    """The pre-registered rule: lowest NLL; within ``tie`` of it, lowest ECE; then grid order."""
    if not candidates:
        raise ValueError("select needs at least one candidate")
    best = min(c.nll for c in candidates)
    tied = [c for c in candidates if c.nll <= best + tie]
    return min(tied, key=lambda c: c.ece)
