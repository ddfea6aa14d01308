"""Served rows for recalibration tests: a stand-in for the store's ``served_rows`` answer."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from calibration.maps import log_softmax


@dataclass
class Rows:
    """The attributes of service.monitor.stores.store.ServedRows that a recalibration reads."""

    ids: list[str]
    created_at: np.ndarray
    log_probs: np.ndarray
    labels: np.ndarray


def served_rows(
    n: int, k: int = 10, sharpen: float = 3.0, labelled: float = 1.0, seed: int = 0, priors: np.ndarray | None = None
) -> Rows:
    """n served predictions ``sharpen`` times sharper than the calibrated posteriors the labels
    follow (sharpen 1: calibrated); a fraction ``labelled`` carries its label, the rest -1."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1.5, (n, k))
    if priors is not None:
        logits += np.log(priors)
    calibrated = log_softmax(logits)
    labels = np.array([rng.choice(k, p=np.exp(row)) for row in calibrated])
    labels[rng.random(n) >= labelled] = -1
    ids = [f"{seed:04x}-{i:08x}" for i in range(n)]
    return Rows(ids, np.linspace(0, 1, n), log_softmax(sharpen * calibrated), labels.astype(np.int64))


@dataclass
class FakeSource:
    """``served_rows`` answering ``rows``; ``gate``: block every read until it is set."""

    rows: Rows
    gate: threading.Event | None = None
    calls: list[tuple[str, str, float, float]] = field(default_factory=list)

    def served_rows(self, model: str, version: str, since: float, until: float) -> Rows:
        self.calls.append((model, version, since, until))
        if self.gate is not None:
            self.gate.wait(30)
        return self.rows
