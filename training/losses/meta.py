"""The bilevel step of gamma-net (METHODS 4 (b), Decisions 4-5): a differentiable SECE, the one-step
look-ahead of the classifier layer, the meta-gradient, and the meta-validation split and stream.

OUR RECONSTRUCTION. Wang & Golebiowski (TMLR 2024, arXiv 2303.15057) publish no code; the step
follows Bohdal et al.'s Meta-Calibration (TMLR 2023, ondrejbohdal/meta-calibration), which the paper
says it extends. One meta step, before every backbone step::

    gamma = g_phi(u)                                   u: detached penultimate features (B, D)
    W', b' = (W, b) - lr_t grad_{W,b} sum_i FL(W u_i + b, y_i; gamma_i)      create_graph=True
    L_meta = SECE(W' u_v + b', y_v) + CE(W' u_v + b', y_v)                   meta-validation batch
    phi <- Adam(phi, dL_meta/dphi)

Only the classifier layer takes the virtual step, with the optimizer's current learning rate (a
plain gradient step, as in MC). The meta-validation features u_v are computed without a graph and
with the BatchNorm statistics left as they were, so the backbone sees nothing of that batch; the
meta-gradient is taken with ``torch.autograd.grad`` on the gamma-net parameters only, so no
gradient of the meta-loss can reach the backbone's ``.grad`` (MC's code leaks it there, METHODS
4 (e); we do not). MC backpropagates the meta-loss through the whole backbone; here phi depends on
the backbone only through the last layer, so that traversal would add nothing but cost.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import Tensor, nn

from training.losses.base import LossConfigError, LossInputError
from training.losses.focal import focal_per_sample


@dataclass(frozen=True)
class FeatureBatch:
    """Detached penultimate features (B, D) in float32 and their integer labels (B,)."""

    features: Tensor
    labels: Tensor


@dataclass(frozen=True)
class MetaStepResult:
    """The meta-loss (SECE + CE) of one meta step and its SECE part, detached scalars."""

    meta_loss: Tensor
    sece: Tensor


def default_bandwidth(n_bins: int) -> float:
    """sigma = 1 / (2M): half a bin width (Decisions 4)."""
    return 1.0 / (2 * n_bins)


def soft_bin_membership(confidence: Tensor, n_bins: int, bandwidth: float) -> Tensor:
    """o_im = exp(-(c_i - mu_m)^2 / 2 sigma^2) normalised over m, centres mu_m = (m + 1/2) / M."""
    centres = (torch.arange(n_bins, dtype=confidence.dtype, device=confidence.device) + 0.5) / n_bins
    return torch.softmax(-0.5 * ((confidence[:, None] - centres) / bandwidth) ** 2, dim=1)


def sece(logits: Tensor, labels: Tensor, n_bins: int, bandwidth: float | None = None) -> Tensor:
    """SECE = (1/N) sum_m |sum_i o_im (c_i - a_i)| = sum_m (sum_i o_im / N) |conf_m - acc_m|.

    Reading 1 of METHODS 4 (OUR RECONSTRUCTION of Wang & Golebiowski's SECE), the torch twin of
    ``calibration.metrics.sece``; differentiable in the logits through the confidence c_i (the
    correctness a_i is the hard 0/1 indicator). Tends to ECE with M equal-width bins as sigma -> 0.
    """
    sigma = default_bandwidth(n_bins) if bandwidth is None else bandwidth
    confidence, prediction = torch.softmax(logits, dim=1).max(dim=1)
    correct = (prediction == labels).to(confidence.dtype)
    gaps = (confidence - correct) @ soft_bin_membership(confidence, n_bins, sigma)
    return gaps.abs().sum() / logits.shape[0]


def look_ahead_head(
    train: FeatureBatch, weight: Tensor, bias: Tensor | None, gamma: Tensor, lr: float
) -> tuple[Tensor, Tensor | None]:
    """Fast weights (W', b') = (W, b) - lr grad sum_i FL_i(gamma_i), a function of gamma.

    The inner loss is summed over the batch, as Meta-Calibration's look-ahead takes it (a batch
    mean made the virtual step B times smaller at the same lr; issue 17). The gradient is taken at
    the current head on the detached features, with create_graph=True, so that W' carries the
    dependence on gamma (and on the gamma-net behind it).
    """
    params = [weight.detach().requires_grad_()]
    if bias is not None:
        params.append(bias.detach().requires_grad_())
    logits = F.linear(train.features, params[0], params[1] if bias is not None else None)
    loss = focal_per_sample(logits, train.labels, gamma).sum()
    grads = torch.autograd.grad(loss, params, create_graph=True)
    fast = [p - lr * g for p, g in zip(params, grads, strict=True)]
    return fast[0], fast[1] if bias is not None else None


def meta_loss_terms(
    gamma_net: nn.Module,
    head: nn.Linear,
    train: FeatureBatch,
    meta: FeatureBatch,
    lr: float,
    n_bins: int,
    bandwidth: float | None,
) -> tuple[Tensor, Tensor]:
    """(SECE, CE) on the meta batch through the looked-ahead head; a graph back to gamma_net."""
    weight, bias = look_ahead_head(train, head.weight, head.bias, gamma_net(train.features), lr)
    logits = F.linear(meta.features, weight, bias)
    return sece(logits, meta.labels, n_bins, bandwidth), F.cross_entropy(logits, meta.labels)


def meta_gradients(
    gamma_net: nn.Module,
    head: nn.Linear,
    train: FeatureBatch,
    meta: FeatureBatch,
    lr: float,
    n_bins: int,
    bandwidth: float | None,
) -> tuple[list[Tensor], MetaStepResult]:
    """dL_meta/dphi for every gamma-net parameter phi (nothing else receives a gradient)."""
    sece_term, ce_term = meta_loss_terms(gamma_net, head, train, meta, lr, n_bins, bandwidth)
    total = sece_term + ce_term
    grads = torch.autograd.grad(total, list(gamma_net.parameters()))
    return list(grads), MetaStepResult(total.detach(), sece_term.detach())


def average_across_ranks(grads: Sequence[Tensor]) -> None:
    """Under torchrun, replace each gradient by its mean over the ranks (in place), so that every
    process's gamma-net takes the same step; a no-op in a single process."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    for grad in grads:
        dist.all_reduce(grad)
        grad.div_(dist.get_world_size())


def meta_step(
    gamma_net: nn.Module,
    meta_optimizer: torch.optim.Optimizer,
    head: nn.Linear,
    train: FeatureBatch,
    meta: FeatureBatch,
    lr: float,
    n_bins: int,
    bandwidth: float | None,
) -> MetaStepResult:
    """One meta-optimizer step on the gamma-net: gradients set, averaged over ranks, stepped."""
    grads, result = meta_gradients(gamma_net, head, train, meta, lr, n_bins, bandwidth)
    average_across_ranks(grads)
    for param, grad in zip(gamma_net.parameters(), grads, strict=True):
        param.grad = grad
    meta_optimizer.step()
    meta_optimizer.zero_grad(set_to_none=True)
    return result


@contextmanager
def buffers_restored(model: nn.Module) -> Iterator[None]:
    """Forward passes inside leave every buffer (BatchNorm running statistics) as it was."""
    saved = [(buffer, buffer.detach().clone()) for buffer in model.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in saved:
                buffer.copy_(value)


def autocast_like(features: Tensor) -> AbstractContextManager[object]:
    """CUDA autocast in the dtype of half-precision training features (AMP), else nothing."""
    if features.device.type == "cuda" and features.dtype in (torch.float16, torch.bfloat16):
        return torch.autocast(device_type="cuda", dtype=features.dtype)
    return nullcontext()


def penultimate_features(network: nn.Module, x: Tensor, like: Tensor) -> Tensor:
    """network.features(x) as float32, without a graph and without touching BatchNorm statistics;
    under AMP at the precision of the training features ``like``."""
    extract = cast(Callable[[Tensor], Tensor], network.features)
    with torch.no_grad(), buffers_restored(network), autocast_like(like):
        features = extract(x)
    return features.float()


def split_meta_validation(n: int, fraction: float, seed: int) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Seeded carve of n training rows: (train indices, meta-validation indices), disjoint, sorted.

    round(fraction n) rows become meta-validation, drawn from a stream of its own ((seed, 1)), so it
    does not repeat the validation carve of ``training.data``.
    """
    n_meta = int(round(fraction * n))
    if n_meta < 1 or n_meta >= n:
        raise LossConfigError(
            f"meta_fraction {fraction:g} of {n} training rows leaves an empty train or "
            "meta-validation split; must be in (0, 1) with at least one row on each side"
        )
    order = np.random.default_rng([seed, 1]).permutation(n)
    return np.sort(order[n_meta:]), np.sort(order[:n_meta])


class MetaValidationStream:
    """Meta-validation batches cycled over seeded permutations (one per pass over the split).

    The stream is a pure function of (seed, rows drawn so far), so ``rows_drawn`` is all a
    checkpoint needs to resume it exactly. Under torchrun each rank takes rows rank, rank + W, ...
    of a global draw, as the training batches are sharded.
    """

    def __init__(self, x: Tensor, y: Tensor, seed: int, rows_drawn: int = 0) -> None:
        if len(y) == 0:
            raise LossInputError("the meta-validation split is empty")
        self.x, self.y, self.seed, self.rows_drawn = x, y, seed, rows_drawn
        self._cached: tuple[int, Tensor] | None = None

    def permutation(self, cycle: int) -> Tensor:
        """The order of pass ``cycle`` over the split."""
        if self._cached is None or self._cached[0] != cycle:
            order = np.random.default_rng([self.seed, 2, cycle]).permutation(len(self.y))
            self._cached = (cycle, torch.from_numpy(order).to(self.y.device))
        return self._cached[1]

    def next_indices(self, count: int) -> Tensor:
        """The next ``count`` rows of the endless stream, crossing into new passes as needed."""
        parts = []
        while count > 0:
            cycle, offset = divmod(self.rows_drawn, len(self.y))
            take = min(count, len(self.y) - offset)
            parts.append(self.permutation(cycle)[offset : offset + take])
            self.rows_drawn += take
            count -= take
        return torch.cat(parts)

    def next_batch(self, global_size: int, rank: int = 0, world_size: int = 1) -> tuple[Tensor, Tensor]:
        """This rank's share (rows rank, rank + W, ...) of the next ``global_size`` rows."""
        rows = self.next_indices(global_size)[rank::world_size]
        return self.x[rows], self.y[rows]


def global_batch_size(local_size: int) -> int:
    """The sum of the ranks' batch sizes under torchrun (shards may differ by one row), else
    ``local_size``: every rank then advances the meta-validation stream alike."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return local_size
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    total = torch.tensor(local_size, device=device)
    dist.all_reduce(total)
    return int(total.item())


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) under torchrun, else (0, 1)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1
