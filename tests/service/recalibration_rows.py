"""Served rows for recalibration tests: ServedRows with a known miscalibration, and a stand-in source."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from calibration.maps import log_softmax
from calibration.recalibration import LOG_FLOOR
from service.monitor.stores.store import ServedRows


def served_rows(
    n: int,
    k: int = 10,
    sharpen: float = 3.0,
    labelled: float = 1.0,
    seed: int = 0,
    priors: np.ndarray | None = None,
    label_shift: np.ndarray | None = None,
) -> ServedRows:
    """n served predictions ``sharpen`` times sharper than the calibrated posteriors the labels
    follow (sharpen 1: calibrated); a fraction ``labelled`` carries its label, the rest -1.
    ``priors``: the served posteriors already include these class priors; ``label_shift``: see
    ``_label_shifted``."""
    rng = np.random.default_rng(seed)
    if label_shift is not None:
        return _label_shifted(n, k, labelled, rng, label_shift)
    logits = rng.normal(0, 1.5, (n, k))
    if priors is not None:
        logits += np.log(priors)
    calibrated = log_softmax(logits)
    labels = np.array([rng.choice(k, p=np.exp(row)) for row in calibrated])
    labels[rng.random(n) >= labelled] = -1
    ids = [f"{seed:04x}-{i:08x}" for i in range(n)]
    log_probs = np.maximum(log_softmax(sharpen * calibrated), LOG_FLOOR)  # as the store floors them
    return ServedRows(ids, np.linspace(0, 1, n), log_probs, labels.astype(np.int64))


def _label_shifted(n: int, k: int, labelled: float, rng: np.random.Generator, priors: np.ndarray) -> ServedRows:
    """A label shift: y ~ priors, x | y ~ N(2 e_y, I), served the exact posteriors under uniform
    priors, softmax(2 x) (calibrated for the training mix, not for this one)."""
    labels = rng.choice(k, size=n, p=priors)
    x = rng.standard_normal((n, k)) + 2.0 * np.eye(k)[labels]
    labels[rng.random(n) >= labelled] = -1
    log_probs = np.maximum(log_softmax(2.0 * x), LOG_FLOOR)
    return ServedRows([f"shift-{i:08x}" for i in range(n)], np.linspace(0, 1, n), log_probs, labels.astype(np.int64))


@dataclass
class FakeSource:
    """``served_rows`` answering ``rows``; ``gate``: block every read until it is set."""

    rows: ServedRows
    gate: threading.Event | None = None
    calls: list[tuple[str, str, float, float]] = field(default_factory=list)

    def served_rows(self, model: str, version: str, since: float, until: float) -> ServedRows:
        self.calls.append((model, version, since, until))
        if self.gate is not None:
            self.gate.wait(30)
        return self.rows
