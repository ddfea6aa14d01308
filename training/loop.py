"""One training epoch and one validation pass: the inner loop, with DDP sharding and CUDA AMP.

Training: seeded global batches (the same on every rank), each rank's shard, mix_batch, forward
under autocast (CUDA only), loss, backward through the GradScaler (CUDA only), gradient-norm clip,
step. Validation runs in float32 without autocast: calibration metrics need full-precision logits.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch
from torch import nn
from tqdm import tqdm

from calibration.metrics import accuracy, ece, nll
from training.config import TrainConfig
from training.distributed import (
    DistContext,
    all_reduce_sum,
    gather_chunks,
    loss_weight,
    shard_batch,
    unwrap,
    validation_chunk,
)
from training.losses import CalibrationLoss, add_statistics

SINGLE_PROCESS = DistContext()


def epoch_order(n: int, seed: int, epoch: int, device: torch.device) -> torch.Tensor:
    """The epoch's permutation of 0..n-1, a pure function of (seed, epoch): resumable, rank-free."""
    generator = torch.Generator().manual_seed(seed * 1000 + epoch)
    return torch.randperm(n, generator=generator).to(device)


def global_batches(order: torch.Tensor, batch_size: int, world_size: int) -> list[torch.Tensor]:
    """Consecutive global batches; a last batch smaller than the world size is dropped."""
    batches = list(torch.split(order, batch_size))
    return [b for b in batches if len(b) >= world_size]


def autocast_for(device: torch.device, amp: bool) -> AbstractContextManager[object]:
    """float16 autocast on CUDA when AMP is on; a no-op context on CPU."""
    if amp and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    return nullcontext()


def make_scaler(device: torch.device, amp: bool) -> torch.amp.GradScaler | None:
    """A GradScaler for CUDA AMP, else None (no loss scaling on CPU)."""
    return torch.amp.GradScaler("cuda") if amp and device.type == "cuda" else None


def optimizer_step(
    loss: torch.Tensor,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    clip_norm: float,
) -> None:
    """backward, unscale, clip the global gradient norm at ``clip_norm`` (0: no clip), step."""
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        torch.autograd.backward(loss)  # loss.backward(), which torch leaves untyped
    else:
        torch.autograd.backward(scaler.scale(loss))
        scaler.unscale_(optimizer)
    if clip_norm > 0:
        nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
    if scaler is None:
        optimizer.step()
    else:
        scaler.step(optimizer)
        scaler.update()


def train_one_epoch(
    model: nn.Module,
    loss_fn: CalibrationLoss,
    optimizer: torch.optim.Optimizer,
    data: tuple[torch.Tensor, torch.Tensor],
    config: TrainConfig,
    epoch: int,
    ctx: DistContext = SINGLE_PROCESS,
    scaler: torch.amp.GradScaler | None = None,
    progress: bool = True,
) -> tuple[float, float]:
    """One pass over the seeded batches; returns (mean loss, training accuracy) over all ranks."""
    model.train()
    x, y = data
    batches = global_batches(epoch_order(len(y), config.seed, epoch, x.device), config.batch_size, ctx.world_size)
    totals = torch.zeros(3, dtype=torch.float64, device=ctx.device)  # loss sum, correct, rows
    bar = tqdm(
        batches,
        desc=f"epoch {epoch + 1}/{config.epochs}",
        leave=False,
        unit="batch",
        disable=not (progress and ctx.is_main),
    )
    for batch in bar:
        idx = shard_batch(batch, ctx)
        xb, yb = x[idx].to(ctx.device), y[idx].to(ctx.device)
        x_in, targets = loss_fn.mix_batch(xb, yb)
        with autocast_for(ctx.device, config.amp):
            logits = model(x_in)
        loss = loss_fn(logits.float(), targets)
        optimizer_step(
            loss * loss_weight(len(idx), len(batch), ctx),
            model,
            optimizer,
            scaler,
            config.clip_norm,
        )
        correct = (logits.detach().argmax(1) == yb).sum()
        totals += torch.stack(
            [
                loss.detach().double() * len(idx),
                correct.double(),
                torch.tensor(float(len(idx)), device=ctx.device, dtype=torch.float64),
            ]
        )
    loss_sum, correct_sum, rows = all_reduce_sum({"t": totals}, ctx)["t"].tolist()
    return loss_sum / max(rows, 1.0), correct_sum / max(rows, 1.0)


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Logits for a whole tensor, in eval mode, batched, on the model's device, returned on CPU."""
    model.eval()
    device = next(model.parameters()).device
    chunks = [model(x[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(chunks)


def validation_epoch(
    model: nn.Module,
    loss_fn: CalibrationLoss,
    data: tuple[torch.Tensor, torch.Tensor],
    epoch: int,
    ctx: DistContext = SINGLE_PROCESS,
) -> dict[str, float]:
    """Accuracy, ECE and NLL on the validation split; the loss's per-epoch update (CALS) from it.

    Each rank scores its chunk; loss statistics are summed over ranks before ``end_epoch`` and the
    logits gathered, so every rank logs and decides on the same numbers.
    """
    x, y = data
    chunk = validation_chunk(len(y), ctx)
    local = predict_logits(unwrap(model), x[chunk])
    with torch.no_grad():
        stats = add_statistics({}, loss_fn.validation_statistics(local.to(ctx.device)))
    loss_fn.end_epoch(all_reduce_sum(stats, ctx), epoch)
    logits = gather_chunks(local, len(y), ctx)
    probs = torch.softmax(logits.double(), dim=1).numpy()
    labels = y.cpu().numpy()
    return {
        "val_accuracy": accuracy(probs, labels),
        "val_ece": ece(probs, labels),
        "val_nll": nll(probs, labels),
        **loss_fn.summary(),
    }
