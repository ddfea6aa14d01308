"""The run's log: one printed line per epoch and ``log.jsonl``, one JSON record per epoch.

A record holds epoch, lr, training loss and accuracy, validation accuracy, ECE and NLL, the loss's
own summary (CALS: lambda and rho statistics) and the epoch's wall time in seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

from tqdm import tqdm

LOG_FILE = "log.jsonl"
CORE_LOG_FIELDS = (
    "epoch",
    "lr",
    "loss",
    "accuracy",
    "val_accuracy",
    "val_ece",
    "val_nll",
    "seconds",
)


def truncate_log(out_dir: Path, epochs_done: int) -> None:
    """Keep only the log lines of epochs a checkpoint covers (a resumed run rewrites the rest)."""
    path = out_dir / LOG_FILE
    if not path.is_file():
        return
    kept = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["epoch"] <= epochs_done]
    path.write_text("".join(f"{line}\n" for line in kept))


def log_epoch(out_dir: Path, record: dict[str, float], epochs: int, show: bool = True) -> None:
    """Print the per-epoch line (when ``show``) and append it to log.jsonl."""
    if show:
        extras = "".join(f"  {k} {v:.3g}" for k, v in record.items() if k not in CORE_LOG_FIELDS)
        tqdm.write(
            f"epoch {int(record['epoch'])}/{epochs}  lr {record['lr']:.3g}  "
            f"loss {record['loss']:.4f}  acc {record['accuracy']:.4f}  "
            f"val_acc {record['val_accuracy']:.4f}  val_ece {record['val_ece']:.4f}  "
            f"val_nll {record['val_nll']:.4f}{extras}  ({record['seconds']:.1f}s)"
        )
    with (out_dir / LOG_FILE).open("a") as fh:
        fh.write(json.dumps(record) + "\n")
