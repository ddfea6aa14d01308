"""The training image (`make image-train`), built with Podman from the stand-in Python base, runs
`candor train --data digits --epochs 1` and writes a checkpoint this machine's torch loads.

PyTorch's CPU index is not reachable here; the CPU wheel this machine's pip finds (pip's
find-links, e.g. /opt/wheels) is mounted into the build and named by TORCH_FIND_LINKS. Where no such
wheel exists the build uses the index, as a user's build does, and fails here if it cannot reach it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.containers.podman_tools import TRAIN_IMAGE, Report, image_size, make_image, podman, timed
from training.checkpoint import load_checkpoint

pytestmark = pytest.mark.containers

TORCH_WHEEL = "torch-2.13.0+cpu-cp311-cp311-*.whl"
IMAGE_UID = 10001


def torch_wheel_folder() -> Path | None:
    """The find-links folder of this machine's pip configuration that holds torch's CPU wheel."""
    config = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=60, check=False
    ).stdout
    folders = [os.environ.get("PIP_FIND_LINKS", "")]
    folders += [line.split("=", 1)[1].strip("'") for line in config.splitlines() if "find-links=" in line]
    for folder in (Path(f) for entry in folders for f in entry.split() if f):
        if folder.is_dir() and any(folder.glob(TORCH_WHEEL)):
            return folder
    return None


@pytest.fixture(scope="module")
def train_image(python_base: str, report: Report) -> str:
    folder = torch_wheel_folder()
    flags = [f"-v {folder}:/wheels:ro", "--build-arg TORCH_FIND_LINKS=/wheels"] if folder else []
    report["train_torch_source"] = str(folder or "https://download.pytorch.org/whl/cpu")
    with timed(report, "train_image_build_s"):
        make_image("image-train", *flags, timeout=1500)
    report["train_image_bytes"] = image_size(TRAIN_IMAGE)
    return TRAIN_IMAGE


def test_train_image_trains_one_epoch_on_digits(train_image: str, tmp_path: Path, report: Report) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    os.chown(runs, IMAGE_UID, IMAGE_UID)
    args = ["train", "--data", "digits", "--epochs", "1", "--out", "runs/r1"]
    with timed(report, "train_run_s"):
        podman("run", "--rm", "--network", "none", "-v", f"{runs}:/opt/candor/runs", train_image, *args, timeout=600)
    model, checkpoint = load_checkpoint(runs / "r1")
    assert checkpoint["config"]["data"] == "digits" and checkpoint["config"]["epochs"] == 1
    assert len(checkpoint["classes"]) == 10
    assert sum(p.numel() for p in model.parameters()) > 0
