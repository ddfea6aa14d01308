"""One recalibration of a model at a time on a state directory, across processes.

``<state_dir>/candidates/<model>.lock`` is flocked (exclusive, non-blocking) for the whole run by
the endpoint (whichever worker of ``candor serve --workers N`` answers it) and by the offline
``candor recalibrate``: a second run of the same model anywhere on the state directory is refused
(409) instead of racing on the next version number and the candidate directory. The kernel drops
the lock when its holder exits (kill -9 included): no stale lock to clean up.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from service.errors import ServiceError


class RecalibrationBusy(ServiceError):
    """A recalibration of this model is already running."""

    status = 409


def lock_path(candidates_dir: Path, model: str) -> Path:
    """The lock file of ``model``'s recalibrations."""
    return candidates_dir / f"{model}.lock"


@contextmanager
def recalibrating(candidates_dir: Path, model: str) -> Iterator[None]:
    """Hold ``model``'s recalibration lock for the block; RecalibrationBusy (409) if it is held
    (by this process or another)."""
    path = lock_path(candidates_dir, model)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RecalibrationBusy(
            f"a recalibration of '{model}' is already running; retry when it ends", "model_name"
        ) from None
    try:
        yield
    finally:
        os.close(fd)  # releases the flock
