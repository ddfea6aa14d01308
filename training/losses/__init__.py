"""Calibration-aware training losses and the one registry the trainer picks them from.

Every loss is an ``nn.Module`` (subclass of ``CalibrationLoss``) built as
``build_loss(name, num_classes=K, **hyperparameters)`` or ``LOSSES[name](**kwargs)``, and moved to
the model's device with ``.to(device)``. The trainer calls the same methods on every loss; the
hooks a loss does not need are no-ops, so no ``isinstance`` checks are needed:

Training step::

    x_in, t = loss_fn.mix_batch(x, y)      # identity, except mixup: (x_mixed, MixedTargets)
    loss = loss_fn(model(x_in), t)         # forward(logits (B, K), targets); reduction 'mean'
    # accuracy and other metrics use the original y, never t

Validation pass (after each training epoch, no grad, on the validation split, never test)::

    stats = {}
    for x, y in val:
        logits = model(x)
        val_loss = loss_fn(logits, y)                  # plain int targets work for every loss
        stats = add_statistics(stats, loss_fn.validation_statistics(logits))
    # DDP: all_reduce(SUM) every tensor in stats, on every rank, before end_epoch
    loss_fn.end_epoch(stats, epoch)          # epoch counts from 0; cals updates lambda and rho
    log.update(loss_fn.summary())            # {}, or lambda_mean, rho_mean, ... for cals

Mixup draws its weights and permutations from ``LOSSES["mixup"](generator=...)``, a seeded
``torch.Generator``, for reproducible runs (the global RNG otherwise).

Before the first epoch the trainer calls ``train = loss_fn.attach(model, optimizer, train, seed)``:
the identity, except gamma-net, which carves its meta-validation split off the training pair, hooks
the network's Linear ``head`` to see the penultimate features, and then takes its meta step inside
``forward`` (``needs_features``: it cannot be called on bare logits).

Checkpoints: save ``loss_fn.state_dict()`` beside the model's and ``load_state_dict`` it on resume
(cals keeps lambda, rho and the previous class-mean constraint there; gamma-net its network, the
meta-optimizer's Adam state and the meta-validation stream position; the others are stateless).
Manifest: ``loss_fn.name`` and ``loss_fn.hyperparameters()``;
``build_loss(name, num_classes=K, **those)`` rebuilds the same loss. Bad hyper-parameters raise
``LossConfigError`` naming the parameter and its range; inputs of the wrong shape raise
``LossInputError``.
"""

from __future__ import annotations

from collections.abc import Callable

from training.losses.base import (
    CalibrationLoss,
    LossConfigError,
    LossError,
    LossInputError,
    MixedTargets,
    Targets,
    add_statistics,
)
from training.losses.cals import ClassAdaptiveLabelSmoothing
from training.losses.cross_entropy import CrossEntropy, LabelSmoothing
from training.losses.entropy import EntropyConfidencePenalty
from training.losses.focal import FLSD53, FocalLoss
from training.losses.gamma_net import GammaNetLoss
from training.losses.margin import MarginLabelSmoothing
from training.losses.mixup import MixupLoss

LOSSES: dict[str, Callable[..., CalibrationLoss]] = {
    "ce": CrossEntropy,
    "ls": LabelSmoothing,
    "focal": FocalLoss,
    "flsd53": FLSD53,
    "ecp": EntropyConfidencePenalty,
    "mbls": MarginLabelSmoothing,
    "cals": ClassAdaptiveLabelSmoothing,
    "mixup": MixupLoss,
    "gamma-net": GammaNetLoss,
}


def build_loss(name: str, *, num_classes: int, **hyperparameters: object) -> CalibrationLoss:
    """Build the registered loss ``name``; ``num_classes`` is passed only to losses that need it."""
    if name not in LOSSES:
        raise LossConfigError(f"loss must be one of {sorted(LOSSES)}, got {name!r}")
    factory = LOSSES[name]
    if getattr(factory, "needs_num_classes", False):
        hyperparameters = {**hyperparameters, "num_classes": num_classes}
    try:
        return factory(**hyperparameters)
    except TypeError as error:
        raise LossConfigError(f"{name}: {error}") from error


__all__ = [
    "FLSD53",
    "LOSSES",
    "CalibrationLoss",
    "ClassAdaptiveLabelSmoothing",
    "CrossEntropy",
    "EntropyConfidencePenalty",
    "FocalLoss",
    "GammaNetLoss",
    "LabelSmoothing",
    "LossConfigError",
    "LossError",
    "LossInputError",
    "MarginLabelSmoothing",
    "MixedTargets",
    "MixupLoss",
    "Targets",
    "add_statistics",
    "build_loss",
]
