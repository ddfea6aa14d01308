"""gamma-net: focal loss with a learned per-sample gamma, meta-learned against SECE + CE (METHODS 4,
Decisions 4-5; Wang & Golebiowski, "Meta-regularization with gamma-Net and SECE", TMLR 2024,
arXiv 2303.15057, extending Bohdal et al.'s Meta-Calibration, TMLR 2023).

OUR RECONSTRUCTION: no code of the paper is public, and its gamma-net architecture, SECE formula
and bandwidth are unknown. Here the backbone minimises mean_i -(1 - p_{i,y})^{gamma_i} log p_{i,y}
with gamma_i = g_phi(u_i) detached, u_i the detached penultimate features; g_phi (a one-hidden-layer
MLP on layer-normalised features, output gamma_max sigmoid(.), gamma_max = 5) is updated only by
the bilevel meta step of ``training.losses.meta`` (look-ahead of the classifier layer, meta-loss
SECE + CE on a meta-validation batch, Adam), which runs inside ``forward`` before the trainer's backbone step.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from training.distributed import unwrap
from training.losses import meta
from training.losses.base import (
    CalibrationLoss,
    LossInputError,
    check_integer,
    check_number,
)
from training.losses.cross_entropy import true_class_log_probability
from training.losses.focal import focal_from_log_probability

GAMMA_MAX = 5.0  # the largest focal gamma of the papers' grids (FL, FLSD-53, FTS)
SECE_BINS = 15
ROWS_KEY = "meta.rows_drawn"
OPTIMIZER_PREFIX = "meta.optimizer."


def logit(value: float) -> float:
    """x with sigmoid(x) = value in (0, 1)."""
    return math.log(value / (1.0 - value))


class GammaNet(nn.Module):
    """gamma_i = gamma_max sigmoid(w . relu(A LN(u_i) + a) + b): (B, D) features -> (B,) gammas.

    LN standardises each feature row (no affine), so the pre-activation does not grow with the
    backbone's feature scale. The bounded sigmoid replaces the earlier softplus clamped to [0, 10]:
    with softplus, d gamma / d b = sigmoid(b) ~ gamma, so once the early, under-confident phase of
    training had pushed gamma towards 0 the meta-gradient could no longer lift it (issue 17). The
    sigmoid starts mid-range (gamma_max / 5 = 1 by default, d gamma / d b = gamma (1 - gamma /
    gamma_max)) and is bounded above too. The hidden layer is lazy (D is read from the first
    features or from a checkpoint). The output layer starts with w = 0 and b = logit(initial_gamma
    / gamma_max): every sample starts at initial_gamma.
    """

    def __init__(self, width: int, initial_gamma: float, gamma_max: float = GAMMA_MAX) -> None:
        super().__init__()
        self.gamma_max = gamma_max
        self.hidden = nn.LazyLinear(width)
        self.output = nn.Linear(width, 1)
        nn.init.zeros_(self.output.weight)
        nn.init.constant_(self.output.bias, logit(initial_gamma / gamma_max))

    def forward(self, features: Tensor) -> Tensor:
        standardised = F.layer_norm(features, features.shape[-1:])
        hidden = torch.relu(self.hidden(standardised))
        return self.gamma_max * torch.sigmoid(self.output(hidden)).squeeze(1)

    def materialize(self, in_features: int, device: torch.device) -> None:
        """Create the hidden layer's weights for D = in_features, on ``device``; if they exist
        (a checkpoint was loaded), check that they fit D."""
        hidden = self.hidden
        if isinstance(hidden, nn.LazyLinear) and hidden.has_uninitialized_params():
            hidden.initialize_parameters(torch.zeros(1, in_features))
        elif hidden.weight.shape[1] != in_features:
            raise LossInputError(
                f"gamma-net was trained on {hidden.weight.shape[1]} features, the network's head takes {in_features}"
            )
        self.to(device)


class EpochStatistics:
    """Running sums over one epoch's training steps: gamma (sum, sum of squares, count) and the
    meta-loss and its SECE part (sums, steps), kept on the device (no host sync per step)."""

    def __init__(self) -> None:
        self.sums: Tensor | None = None

    def add(self, gamma: Tensor, result: meta.MetaStepResult | None) -> None:
        g = gamma.detach().double()
        zero = torch.zeros((), dtype=torch.float64, device=g.device)
        losses = (result.meta_loss.double(), result.sece.double()) if result else (zero, zero)
        row = torch.stack([g.sum(), g.square().sum(), zero + len(g), *losses, zero + bool(result)])
        self.sums = row if self.sums is None else self.sums + row

    def close(self) -> dict[str, float]:
        """gamma_mean, gamma_std, meta_loss, meta_sece of the epoch ({} if no step); resets."""
        if self.sums is None:
            return {}
        g_sum, g_sq, count, loss_sum, sece_sum, steps = self.sums.tolist()
        self.sums = None
        mean = g_sum / count
        summary = {"gamma_mean": mean, "gamma_std": math.sqrt(max(g_sq / count - mean**2, 0.0))}
        if steps:
            summary |= {"meta_loss": loss_sum / steps, "meta_sece": sece_sum / steps}
        return summary


class GammaNetLoss(CalibrationLoss):
    """Focal loss with per-sample gamma from a meta-learned gamma-net (OUR RECONSTRUCTION of Wang &
    Golebiowski, TMLR 2024; see the module docstring).

    ``attach`` binds it to the run: it carves ``meta_fraction`` of the training rows off as the
    meta-validation split (1/9 by default: 80/10/10 of the training files with the trainer's
    default validation fraction 0.1) and captures the input of the network's Linear ``head``. In
    training mode with a graph, each ``forward`` first takes one meta step (``training.losses.meta``)
    at the optimizer's current learning rate, then returns the focal loss with the updated,
    detached gammas. In eval mode, or without a graph, it only computes the loss. The checkpoint
    (``state_dict``) holds the gamma-net, the meta-optimizer's Adam state and the stream position.
    """

    name = "gamma-net"
    needs_features: ClassVar[bool] = True

    def __init__(
        self,
        gamma_width: int = 64,
        meta_lr: float = 1e-3,
        sece_bins: int = SECE_BINS,
        sece_bandwidth: float | None = None,
        meta_fraction: float = 1 / 9,
        initial_gamma: float = 1.0,
        gamma_max: float = GAMMA_MAX,
        reduction: str = "mean",
    ) -> None:
        super().__init__(reduction)
        self.gamma_width = check_integer("gamma_width", gamma_width, 1)
        self.meta_lr = check_number("meta_lr", meta_lr, 0.0, low_open=True)
        self.sece_bins = check_integer("sece_bins", sece_bins, 1)
        self.sece_bandwidth = (
            meta.default_bandwidth(self.sece_bins)
            if sece_bandwidth is None
            else check_number("sece_bandwidth", sece_bandwidth, 0.0, low_open=True)
        )
        self.meta_fraction = check_number("meta_fraction", meta_fraction, 0.0, 1.0, low_open=True, high_open=True)
        self.gamma_max = check_number("gamma_max", gamma_max, 0.0, low_open=True)
        self.initial_gamma = check_number(
            "initial_gamma", initial_gamma, 0.0, self.gamma_max, low_open=True, high_open=True
        )
        self.gamma_net = GammaNet(self.gamma_width, self.initial_gamma, self.gamma_max)
        self.meta_optimizer: torch.optim.Adam | None = None
        self.statistics = EpochStatistics()
        self.epoch_summary: dict[str, float] = {}
        self._bound: tuple[nn.Module, nn.Linear, torch.optim.Optimizer] | None = None
        self._stream: meta.MetaValidationStream | None = None
        self._hook: RemovableHandle | None = None
        self._features: Tensor | None = None
        self._pending: dict[str, Any] = {"rows_drawn": 0, "optimizer": None}
        self.register_state_dict_post_hook(_save_meta_state)  # type: ignore[no-untyped-call]
        self.register_load_state_dict_pre_hook(_load_meta_state)  # type: ignore[no-untyped-call]

    # -- binding to a run ------------------------------------------------------------------------

    def attach(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        train: tuple[Tensor, Tensor],
        seed: int,
    ) -> tuple[Tensor, Tensor]:
        """Carve the meta-validation split off ``train``, bind to the head; returns the rest."""
        network = unwrap(model)
        head = classifier_head(network)
        x, y = train
        train_rows, meta_rows = meta.split_meta_validation(len(y), self.meta_fraction, seed)
        keep, held = (torch.from_numpy(rows).to(y.device) for rows in (train_rows, meta_rows))
        self._stream = meta.MetaValidationStream(x[held], y[held], seed, self.rows_drawn())
        self._bind(network, head, optimizer)
        return x[keep], y[keep]

    def _bind(self, network: nn.Module, head: nn.Linear, optimizer: torch.optim.Optimizer) -> None:
        if self._hook is not None:
            self._hook.remove()
        self._hook = head.register_forward_pre_hook(self._capture_features)
        self._bound = (network, head, optimizer)
        self.gamma_net.materialize(head.in_features, head.weight.device)
        if self.meta_optimizer is None:  # a second attach keeps the Adam state
            self.meta_optimizer = torch.optim.Adam(self.gamma_net.parameters(), lr=self.meta_lr)
        if self._pending["optimizer"] is not None:
            load_optimizer_state(self.meta_optimizer, self._pending["optimizer"])
            self._pending["optimizer"] = None

    def _capture_features(self, module: nn.Module, args: tuple[Tensor, ...]) -> None:
        self._features = args[0]

    # -- the loss ------------------------------------------------------------------------------

    def per_sample(self, logits: Tensor, targets: Tensor) -> Tensor:
        captured = self._take_features(logits)
        train = meta.FeatureBatch(captured.float(), targets)
        stepping = self.training and torch.is_grad_enabled() and logits.requires_grad
        result = self._meta_step(train, captured) if stepping else None
        gamma = self.gammas(train.features)
        if result is not None:
            self.statistics.add(gamma, result)
        log_p_true = true_class_log_probability(F.log_softmax(logits, dim=1), targets)
        return focal_from_log_probability(log_p_true, gamma)

    def gammas(self, features: Tensor) -> Tensor:
        """The (B,) gammas the backbone loss uses for these features (detached)."""
        with torch.no_grad():
            gamma: Tensor = self.gamma_net(features.detach().float())
        return gamma

    def _take_features(self, logits: Tensor) -> Tensor:
        features, self._features = self._features, None
        if self._bound is None or features is None:
            raise LossInputError(
                "gamma-net needs the penultimate features of the batch: attach(model, optimizer, "
                "train, seed) it to a network with features(x) and a Linear head, then call it "
                "on that network's logits"
            )
        if features.shape[0] != logits.shape[0]:
            raise LossInputError(
                f"gamma-net: the last head input has {features.shape[0]} rows, the logits "
                f"{logits.shape[0]}; call the loss right after the network's forward pass"
            )
        return features.detach()

    def _meta_step(self, train: meta.FeatureBatch, captured: Tensor) -> meta.MetaStepResult:
        """The bilevel step on this batch; ``captured`` (half under AMP) sets the meta precision."""
        assert self._bound is not None and self._stream is not None
        assert self.meta_optimizer is not None
        network, head, optimizer = self._bound
        rows = meta.global_batch_size(len(train.labels))
        x_meta, y_meta = self._stream.next_batch(rows, *meta.rank_and_world())
        batch = meta.FeatureBatch(meta.penultimate_features(network, x_meta, captured), y_meta)
        lr = float(optimizer.param_groups[0]["lr"])
        return meta.meta_step(
            self.gamma_net, self.meta_optimizer, head, train, batch, lr,
            self.sece_bins, self.sece_bandwidth,
        )  # fmt: skip

    # -- hooks of the trainer ------------------------------------------------------------------

    def end_epoch(self, statistics: dict[str, Tensor], epoch: int) -> None:
        """Close the epoch's gamma and meta-loss statistics for ``summary``."""
        self.epoch_summary = self.statistics.close()

    def summary(self) -> dict[str, float]:
        """gamma_mean, gamma_std (over the epoch's training samples), meta_loss, meta_sece (mean
        over its meta steps); this process's numbers under torchrun."""
        return dict(self.epoch_summary)

    def hyperparameters(self) -> dict[str, float]:
        return {
            "gamma_width": self.gamma_width,
            "meta_lr": self.meta_lr,
            "sece_bins": self.sece_bins,
            "sece_bandwidth": self.sece_bandwidth,
            "meta_fraction": self.meta_fraction,
            "initial_gamma": self.initial_gamma,
            "gamma_max": self.gamma_max,
        }

    def rows_drawn(self) -> int:
        """Meta-validation rows drawn so far (the stream's position)."""
        return self._stream.rows_drawn if self._stream is not None else self._pending["rows_drawn"]


def classifier_head(network: nn.Module) -> nn.Linear:
    """The network's Linear ``head``, checking that it also has ``features(x)``."""
    head = getattr(network, "head", None)
    if not isinstance(head, nn.Linear) or not callable(getattr(network, "features", None)):
        raise LossInputError(
            f"gamma-net needs a network with features(x) and a Linear head, got {type(network).__name__}"
        )
    return head


def flat_optimizer_state(optimizer: torch.optim.Optimizer) -> Iterator[tuple[str, Tensor]]:
    """("<param index>.<name>", tensor) for every tensor of the optimizer's per-parameter state."""
    for index, state in optimizer.state_dict()["state"].items():
        for name, value in state.items():
            yield f"{index}.{name}", value.detach()


def load_optimizer_state(optimizer: torch.optim.Optimizer, flat: dict[str, Tensor]) -> None:
    """Inverse of ``flat_optimizer_state`` (param groups, i.e. the meta lr, stay as built)."""
    state: dict[int, dict[str, Tensor]] = {}
    for key, value in flat.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": optimizer.state_dict()["param_groups"]})


def _save_meta_state(module: nn.Module, state_dict: dict[str, Any], prefix: str, local_metadata: object) -> None:
    """state_dict post-hook: the stream position and the Adam state as flat tensors."""
    assert isinstance(module, GammaNetLoss)
    state_dict[prefix + ROWS_KEY] = torch.tensor(module.rows_drawn(), dtype=torch.int64)
    if module.meta_optimizer is not None:
        flat = dict(flat_optimizer_state(module.meta_optimizer))
    else:
        flat = module._pending["optimizer"] or {}
    for key, value in flat.items():
        state_dict[prefix + OPTIMIZER_PREFIX + key] = value


def _load_meta_state(
    module: nn.Module,
    state_dict: dict[str, Any],
    prefix: str,
    local_metadata: object,
    strict: bool,
    missing_keys: list[str],
    unexpected_keys: list[str],
    error_msgs: list[str],
) -> None:
    """load_state_dict pre-hook: take the meta keys out; apply them now or at ``attach``."""
    assert isinstance(module, GammaNetLoss)
    if prefix + ROWS_KEY not in state_dict:
        missing_keys.append(prefix + ROWS_KEY)
        return
    rows = int(state_dict.pop(prefix + ROWS_KEY))
    start = prefix + OPTIMIZER_PREFIX
    flat = {key[len(start) :]: state_dict.pop(key) for key in list(state_dict) if key.startswith(start)}
    if module._stream is not None:
        module._stream.rows_drawn = rows
    module._pending["rows_drawn"] = rows
    if module.meta_optimizer is not None:
        load_optimizer_state(module.meta_optimizer, flat)
    else:
        module._pending["optimizer"] = flat or None
