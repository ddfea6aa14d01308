"""Running past one process: torchrun / DistributedDataParallel helpers (gloo on CPU, nccl on CUDA).

Under ``torchrun --nproc-per-node W`` every process builds the same seeded model and walks the same
seeded global batches; rank r takes rows r, r+W, r+2W, ... of each global batch (the striding of
DistributedSampler). Each rank's mean loss is weighted by W n_r / n so that DDP's gradient average
is the gradient of the global-batch mean exactly. Validation rows are split into contiguous chunks;
the CALS statistics are all-reduced (SUM) and the logits all-gathered, so every rank computes the
same validation metrics and takes the same checkpoint decisions; only rank 0 writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job: rank, world size and the device it trains on."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    owns_group: bool = False  # this process created the process group (and destroys it)

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that prints, logs and writes checkpoints."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    """True when the environment describes a multi-process job (WORLD_SIZE > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup() -> DistContext:
    """Join the torchrun job if there is one (env:// rendezvous) and pick this rank's device.

    CUDA present: device cuda:LOCAL_RANK and nccl; else CPU and gloo. Single process: rank 0 of 1.
    """
    cuda = torch.cuda.is_available()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local_rank}") if cuda else torch.device("cpu")
    if not launched_by_torchrun():
        return DistContext(device=device)
    if cuda:
        torch.cuda.set_device(device)
    owns_group = not dist.is_initialized()
    if owns_group:
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return DistContext(dist.get_rank(), dist.get_world_size(), device, owns_group)


def teardown(ctx: DistContext, wait: bool = True) -> None:
    """Wait for every rank (rank 0 may still be writing), then leave the group if setup made it.

    ``wait=False`` after an error: the other ranks may never reach the barrier.
    """
    if ctx.is_distributed and dist.is_initialized():
        if wait:
            dist.barrier()
        if ctx.owns_group:
            dist.destroy_process_group()


def wrap_model(model: nn.Module, ctx: DistContext) -> nn.Module:
    """DDP wrapper in a job (SyncBatchNorm on CUDA; CPU keeps per-rank BatchNorm statistics)."""
    if not ctx.is_distributed:
        return model
    if ctx.device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # type: ignore[no-untyped-call]  # untyped in torch
        return nn.parallel.DistributedDataParallel(model, device_ids=[ctx.device.index])
    return nn.parallel.DistributedDataParallel(model)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside a DDP wrapper (what checkpoints and validation use)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def shard_batch(indices: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """This rank's rows of a global batch: indices[rank::world_size]."""
    return indices[ctx.rank :: ctx.world_size]


def loss_weight(local_rows: int, global_rows: int, ctx: DistContext) -> float:
    """W n_r / n: scales a rank's mean loss so the DDP average is the global-batch mean."""
    return ctx.world_size * local_rows / global_rows


def validation_chunk(n: int, ctx: DistContext) -> torch.Tensor:
    """This rank's contiguous chunk of 0..n-1 (torch.tensor_split sizes: the first n % W get +1)."""
    return torch.tensor_split(torch.arange(n), ctx.world_size)[ctx.rank]


def all_reduce_sum(statistics: dict[str, torch.Tensor], ctx: DistContext) -> dict[str, torch.Tensor]:
    """Every tensor summed over ranks, in place, on every rank (identity in a single process)."""
    if ctx.is_distributed:
        for key in sorted(statistics):  # the same order on every rank
            dist.all_reduce(statistics[key], op=dist.ReduceOp.SUM)
    return statistics


def gather_chunks(local: torch.Tensor, n: int, ctx: DistContext) -> torch.Tensor:
    """Concatenate every rank's ``validation_chunk`` rows back into the (n, ...) tensor, on CPU."""
    if not ctx.is_distributed:
        return local.cpu()
    sizes = [len(chunk) for chunk in torch.tensor_split(torch.arange(n), ctx.world_size)]
    padded = torch.zeros((max(sizes), *local.shape[1:]), dtype=local.dtype, device=ctx.device)
    padded[: len(local)] = local.to(ctx.device)
    gathered = [torch.empty_like(padded) for _ in range(ctx.world_size)]
    dist.all_gather(gathered, padded)
    return torch.cat([g[:size] for g, size in zip(gathered, sizes, strict=True)]).cpu()
