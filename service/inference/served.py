"""What one model call serves and who records it: shared by the engine and the monitor's recorder.

The engine (service.inference.engine) hands the probabilities of every batched call to its
``Recorder``; the app's recorder (service.monitor.predictions.PredictionRecorder) stores them for
the label join under ids from ``new_prediction_ids``. This module imports neither side.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Protocol, Self

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True, slots=True)
class Served:
    """Rows served by one model call: calibrated probabilities (N, K) and their prediction ids (N)."""

    probs: NDArray[np.float32]
    ids: list[str]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, rows: slice, /) -> Self:
        return type(self)(self.probs[rows], self.ids[rows])


class Recorder(Protocol):
    """Stores served rows for the label join; blocking, called in the inference worker thread."""

    def record(self, model: str, version: str, probs: NDArray[np.float32]) -> list[str]:
        """Store the rows of ``probs`` under fresh prediction ids; returns them once stored."""
        ...


class Unrecorded:
    """The recorder of an engine outside an app (tests, benchmarks, ``candor evaluate``): fresh
    ids, stored nowhere. The app builds its engines with the monitor's recorder instead."""

    def record(self, model: str, version: str, probs: NDArray[np.float32]) -> list[str]:
        """Fresh ids for the rows of ``probs``; nothing is stored."""
        return new_prediction_ids(len(probs))


def new_prediction_ids(n: int) -> list[str]:
    """n ids of 32 hex digits: the time in milliseconds (48 bits, as in UUIDv7), then 80 random
    bits. Ids made later sort later, so the store's index grows at its end instead of at random
    pages (4x cheaper inserts of 32 rows into a store of 10^5)."""
    stamp = f"{time.time_ns() // 1_000_000 & 0xFFFF_FFFF_FFFF:012x}"
    digits = os.urandom(10 * n).hex()
    return [stamp + digits[20 * i : 20 * (i + 1)] for i in range(n)]
