"""Recalibration from production: a map fitted on the served (already calibrated) log-probabilities.

The served graph outputs p = map_0(network(x)); a recalibration appends a second map whose input is
log p, so the new version is exactly map_1(log map_0(network(x))) and the fit below is the fit of
what the new graph computes. log p is floored at ``LOG_FLOOR`` (a probability that underflowed in
float32) here, in the store and in the ONNX nodes (candor/recalibrated.py), so both sides see the same input.

- ``heldout_mask``: the fit / held-out split by a seeded hash of the prediction id: row i is held out
  when the lowest bit of blake2b(seed as 8 bytes || id) is 1. It depends only on (seed, id), so a
  prediction stays on its side whatever window it is read in and whichever process reads it.
- ``fit_on_log_probs``: ts (temperature on log p), fts (focal temperature scaling, METHODS 6 (a)),
  best (ts or fts by the NLL of a K-fold cross-validation on the fit half only; never on held-out).
- ``compare``: paired bootstrap of new - old NLL and ECE on the held-out labelled half, and the
  promotion rule (``Comparison.better``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from calibration.binning import DEFAULT_BINS
from calibration.errors import CalibrationError
from calibration.manifest import CalibrationMap
from calibration.maps import focal_temperature_scale, log_focal_temperature_scale, temperature_scale
from calibration.posthoc import fit_focal_temperature, fit_temperature
from calibration.significance import PairedDifference, TopLabel, paired_bootstrap, top_label_ece, top_label_nll

FloatArray = NDArray[np.float64]
LabelMethod = Literal["ts", "fts", "best"]
# log of the smallest normal float32 (-87.34): the store floors served probabilities there before the
# log (service.monitor.stores.scores.PROB_FLOOR), the recalibration graph floors log p there too
LOG_FLOOR = float(np.log(np.finfo(np.float32).tiny))
BEST_FOLDS = 5


def floored_log_probs(log_probs: NDArray[np.floating]) -> FloatArray:
    """max(log p, LOG_FLOOR), float64: the recalibration map's input."""
    result: FloatArray = np.maximum(np.asarray(log_probs, dtype=np.float64), LOG_FLOOR)
    return result


def heldout_mask(ids: Sequence[str], seed: int) -> NDArray[np.bool_]:
    """True where the prediction id falls in the held-out half (see the module docstring)."""
    key = int(seed).to_bytes(8, "little", signed=True)
    return np.fromiter(
        (hashlib.blake2b(key + i.encode(), digest_size=8).digest()[0] & 1 == 1 for i in ids),
        dtype=np.bool_,
        count=len(ids),
    )


def apply_recalibration(log_probs: NDArray[np.floating], cmap: CalibrationMap) -> FloatArray:
    """The new version's probabilities from the served log-probabilities (float64, numpy)."""
    z = floored_log_probs(log_probs)
    if cmap.kind == "temperature":
        return temperature_scale(z, cmap.temperature)
    if cmap.kind == "focal_temperature":
        return focal_temperature_scale(z, cmap.temperature, cmap.gamma)
    if cmap.kind == "vector" and cmap.weights is not None and cmap.biases is not None:
        shifted = z * np.asarray(cmap.weights) + np.asarray(cmap.biases)
        return temperature_scale(shifted, 1.0)
    raise CalibrationError(f"a recalibration map is temperature, focal_temperature or vector, not {cmap.kind!r}")


def fit_on_log_probs(log_probs: NDArray[np.floating], labels: NDArray[np.integer], method: str) -> CalibrationMap:
    """The map of ``method`` fitted by NLL on (log p, y) of the fit half."""
    z = floored_log_probs(log_probs)
    if method == "ts":
        return _ts(z, labels)
    if method == "fts":
        return _fts(z, labels)
    if method == "best":
        return _ts(z, labels) if choose_best(z, labels) == "ts" else _fts(z, labels)
    raise CalibrationError(f"method {method!r}: choose ts, fts or best")


def _ts(z: FloatArray, y: NDArray[np.integer]) -> CalibrationMap:
    return CalibrationMap(kind="temperature", temperature=fit_temperature(z, y).temperature, objective="nll")


def _fts(z: FloatArray, y: NDArray[np.integer]) -> CalibrationMap:
    fit = fit_focal_temperature(z, y)
    return CalibrationMap(kind="focal_temperature", temperature=fit.temperature, gamma=fit.gamma, objective="nll")


def choose_best(z: FloatArray, y: NDArray[np.integer], folds: int = BEST_FOLDS, seed: int = 0) -> str:
    """'ts' or 'fts': the lower mean out-of-fold NLL over ``folds`` seeded folds of the fit half
    (TS on ties: one parameter instead of two). With fewer rows than 2 per fold: 'ts'."""
    if len(y) < 2 * folds:
        return "ts"
    fold = np.random.default_rng(seed).permutation(len(y)) % folds
    losses = {"ts": 0.0, "fts": 0.0}
    for k in range(folds):
        train, test = fold != k, fold == k
        rows = np.arange(int(test.sum()))
        ts = _ts(z[train], y[train])
        fts = _fts(z[train], y[train])
        losses["ts"] -= float(
            np.log(np.maximum(temperature_scale(z[test], ts.temperature)[rows, y[test]], 1e-12)).sum()
        )
        log_fts = log_focal_temperature_scale(z[test], fts.temperature, fts.gamma)
        losses["fts"] -= float(log_fts[rows, y[test]].sum())
    return "fts" if losses["fts"] < losses["ts"] else "ts"


@dataclass(frozen=True)
class Comparison:
    """new - old on the held-out labelled half: each metric's old, new, difference and 95% interval."""

    n: int
    nll: PairedDifference
    ece: PairedDifference
    nll_old: float
    nll_new: float
    ece_old: float
    ece_new: float

    def better(self) -> bool:
        """The promotion rule: new - old NLL significantly below 0 (its whole 95% interval) and ECE
        not significantly worse (its interval reaches 0 or below).

        NLL is strictly proper (lowest only for the true posteriors), so a significant drop means the
        probabilities moved towards the truth, calibration included; binned top-label ECE is noisy
        and blind to what a prior correction does to the other classes (a label shift in
        tests/service/test_recalibration.py: NLL -0.18 [-0.21, -0.16], ECE +0.004 [-0.012, +0.016]),
        so it may only veto a change that makes it measurably worse.
        """
        return self.nll.high < 0 and self.ece.low <= 0


def compare(
    old: NDArray[np.floating],
    new: NDArray[np.floating],
    labels: NDArray[np.integer],
    resamples: int = 1000,
    seed: int = 0,
) -> Comparison:
    """Paired bootstrap (the same resampled rows for both versions) of NLL and 15-bin ECE."""
    if len(labels) < 2:
        raise CalibrationError(f"a comparison needs two or more labelled held-out rows, got {len(labels)}")
    a, b = TopLabel.from_probs(new, labels), TopLabel.from_probs(old, labels)
    return Comparison(
        n=int(len(labels)),
        nll=paired_bootstrap(top_label_nll, [a], [b], resamples, seed=seed),
        ece=paired_bootstrap(lambda r: top_label_ece(r, DEFAULT_BINS), [a], [b], resamples, seed=seed),
        nll_old=top_label_nll(b),
        nll_new=top_label_nll(a),
        ece_old=top_label_ece(b),
        ece_new=top_label_ece(a),
    )
