"""torchrun with 2 CPU processes (gloo) reproduces the single-process run on digits.

Both runs walk the same seeded global batches of 64; under DDP each process takes 32 rows, its mean
loss weighted by 2 n_r / n so the averaged gradient is the global-batch gradient. The only
difference is float32 summation order (two half-batch gradients averaged instead of one mean), a
relative error near 1e-7 per step; over the ~40 SGD steps here it stays below 1e-5 in every weight
(measured: about 1e-8 in the logged loss). CALS makes the check strict: its multipliers come from
validation statistics that must be summed over both processes' halves of the validation split.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from training.checkpoint import LAST_CHECKPOINT, read_checkpoint
from training.distributed import DistContext, loss_weight, shard_batch, validation_chunk
from training.errors import TrainingError
from training.trainer import LOG_FILE, TrainConfig, run_epochs, train

pytestmark = pytest.mark.usefixtures("one_thread")
REPO = Path(__file__).resolve().parents[2]
# n_val = 173 and n_train = 1265 are odd: uneven validation chunks, an uneven last batch (25 / 24).
CONFIG = TrainConfig(
    data="digits",
    loss="cals",
    epochs=2,
    batch_size=64,
    optimizer="sgd",
    lr=0.05,
    seed=11,
    validation_fraction=0.12,
)


def torchrun_train(out: Path, nproc: int) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        "candor.cli",
        "train",
        "--data",
        CONFIG.data,
        "--loss",
        CONFIG.loss,
        "--epochs",
        str(CONFIG.epochs),
        "--batch-size",
        str(CONFIG.batch_size),
        "--optimizer",
        CONFIG.optimizer,
        "--lr",
        str(CONFIG.lr),
        "--seed",
        str(CONFIG.seed),
        "--validation-fraction",
        str(CONFIG.validation_fraction),
        "--out",
        str(out),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)


def log_of(run: Path) -> list[dict[str, float]]:
    return [json.loads(line) for line in (run / LOG_FILE).read_text().splitlines()]


def test_two_gloo_processes_match_one_process(tmp_path: Path) -> None:
    single = train(CONFIG, tmp_path / "single", progress=False)
    done = torchrun_train(tmp_path / "ddp", nproc=2)
    assert done.returncode == 0, done.stderr[-3000:]

    one, two = log_of(tmp_path / "single"), log_of(tmp_path / "ddp")
    assert len(two) == CONFIG.epochs
    for a, b in zip(one, two, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)
        assert b["accuracy"] == a["accuracy"] and b["val_accuracy"] == a["val_accuracy"]
        assert b["val_nll"] == pytest.approx(a["val_nll"], rel=1e-5)
        assert b["lambda_mean"] == pytest.approx(a["lambda_mean"], rel=1e-4)
    a_state, b_state = (read_checkpoint(tmp_path / r / LAST_CHECKPOINT) for r in ("single", "ddp"))
    for key, value in a_state["model_state"].items():
        torch.testing.assert_close(b_state["model_state"][key], value, rtol=0, atol=1e-5)
    torch.testing.assert_close(b_state["loss_state"]["lambdas"], a_state["loss_state"]["lambdas"], rtol=1e-4, atol=1e-9)
    assert int(read_checkpoint(tmp_path / "ddp" / "best.pt")["epoch"]) == int(single["epoch"])
    assert not (tmp_path / "ddp" / "last.pt.tmp").exists()


def test_global_batch_must_split_evenly_over_processes(tmp_path: Path) -> None:
    two_processes = DistContext(rank=0, world_size=2)
    odd = TrainConfig(data="digits", epochs=1, batch_size=63)
    with pytest.raises(TrainingError, match="--batch-size 63"):
        run_epochs(odd, tmp_path, None, resume=False, progress=False, ctx=two_processes)


def test_shards_cover_each_global_batch_once_and_weights_restore_the_global_mean() -> None:
    batch = torch.arange(10, 35)  # 25 rows over 2 ranks: 13 + 12
    ranks = [DistContext(rank=r, world_size=2) for r in range(2)]
    shards = [shard_batch(batch, ctx) for ctx in ranks]
    assert sorted(torch.cat(shards).tolist()) == batch.tolist()
    per_sample = torch.rand(35)
    weighted = [
        per_sample[s].mean() * loss_weight(len(s), len(batch), ctx) for s, ctx in zip(shards, ranks, strict=True)
    ]
    assert float(sum(weighted) / 2) == pytest.approx(float(per_sample[batch].mean()))
    chunks = [validation_chunk(7, ctx).tolist() for ctx in ranks]
    assert chunks == [[0, 1, 2, 3], [4, 5, 6]]


def test_an_error_on_every_rank_ends_the_job_without_hanging(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / LAST_CHECKPOINT).write_bytes(b"")  # another run's directory
    done = torchrun_train(tmp_path / "taken", nproc=2)
    assert done.returncode != 0 and "--resume" in done.stderr
