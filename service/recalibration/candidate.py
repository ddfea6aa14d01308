"""One recalibration, up to the candidate on disk and its verdict (blocking; run off the event loop).

1. the window's served rows (``ServedRows``, read through ``Monitor.served_rows`` or the store) are
   split by a seeded hash of the prediction id into a fit half and a held-out half
   (calibration.recalibration.heldout_mask);
2. the map is fitted on the fit half's labelled rows (ts, fts, best), or, for prior-shift, the class
   priors are re-estimated by EM on every row except the held-out labelled ones (calibration.prior_shift);
3. the map is appended to the base version's graph (candor.recalibrated), parity-checked, and the
   artifact written, sealed, to ``<state_dir>/candidates/<model>/<version>/``: outside models_dir,
   so it is never served by accident (the highest version wins at the next start or watch tick);
4. new and old are compared on the held-out labelled half (paired bootstrap of NLL and ECE) and
   the rule decides (``_decide``): promote only when the 95% interval of new - old NLL lies below 0,
   that of new - old ECE reaches 0 or below (not significantly worse; Comparison.better says why),
   and the held-out half holds at least ``min_labels`` labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
from numpy.typing import NDArray

from calibration.manifest import CalibrationMap, Lineage, Manifest, ReferenceFigures, load_verified
from calibration.prior_shift import estimate_priors
from calibration.recalibration import Comparison, apply_recalibration, compare, fit_on_log_probs, heldout_mask
from candor.artifact import publish_artifact, reference_figures
from candor.recalibrated import append_recalibration, check_recalibrated
from service.inference.repository import artifact_directories
from service.monitor.stores.store import ServedRows

Method = Literal["ts", "fts", "best", "prior-shift"]
Outcome = Literal["promoted", "rejected", "insufficient_labels", "written"]
CANDIDATES = "candidates"


@dataclass(frozen=True)
class Job:
    """What to recalibrate: the base artifact, the method, the window read, the rule's settings."""

    model: str
    base_dir: Path
    method: Method
    window_start: datetime
    window_end: datetime
    models_dir: Path
    candidates_dir: Path
    min_labels: int
    seed: int = 0
    resamples: int = 1000
    created_by: str = "candor recalibrate"


@dataclass
class Verdict:
    """The result before any promotion: the candidate written (or None), the comparison and what
    the rule says (``promote``: the rule allows it; the caller still honours --promote never)."""

    model: str
    base_version: str
    method: Method
    outcome: Outcome
    reason: str
    n_fit: int
    n_heldout: int
    n_unlabelled: int
    new_version: str | None = None
    artifact_path: Path | None = None
    parameters: dict[str, float | int | bool | list[float]] = field(default_factory=dict)
    comparison: Comparison | None = None
    promote: bool = False


@dataclass(frozen=True)
class Halves:
    """Row masks of the window: labelled fit rows, labelled held-out rows, unlabelled rows."""

    fit: NDArray[np.bool_]
    heldout: NDArray[np.bool_]
    unlabelled: NDArray[np.bool_]

    @classmethod
    def of(cls, rows: ServedRows, seed: int) -> Halves:
        labelled = rows.labels >= 0
        held = heldout_mask(rows.ids, seed)
        return cls(labelled & ~held, labelled & held, ~labelled)


def candidate_dir(candidates_dir: Path, model: str) -> Path:
    """<state_dir>/candidates/<model>/."""
    return candidates_dir / model


def next_version(models_dir: Path, candidates_dir: Path, model: str) -> str:
    """Highest integer version among the served artifacts and the candidates, plus one."""
    versions = [int(d.name) for d in artifact_directories(models_dir, model)]
    versions += [int(d.name) for d in artifact_directories(candidates_dir, model)]
    return str(max(versions, default=0) + 1)


def run_job(job: Job, rows: ServedRows) -> Verdict:
    """Steps 1-4 of the module docstring."""
    manifest, model_bytes = load_verified(job.base_dir)
    halves = Halves.of(rows, job.seed)
    verdict = Verdict(
        job.model,
        manifest.version,
        job.method,
        "insufficient_labels",
        "",
        int(halves.fit.sum()),
        int(halves.heldout.sum()),
        int(halves.unlabelled.sum()),
    )
    fitted = _fit(job, manifest, rows, halves, verdict)
    if fitted is None:
        return verdict
    base = onnx.load_from_string(model_bytes)
    composed = append_recalibration(base, fitted, len(manifest.classes), manifest.version)
    verdict.parameters |= check_recalibrated(base, composed, fitted, manifest.input.shape, rows.log_probs)
    held_z, held_y = rows.log_probs[halves.heldout], rows.labels[halves.heldout]
    old, new = apply_recalibration(held_z, _identity()), apply_recalibration(held_z, fitted)
    if verdict.n_heldout >= 2:
        verdict.comparison = compare(old, new, held_y, job.resamples, job.seed)
    version = next_version(job.models_dir, job.candidates_dir, job.model)
    reference, reference_from = _reference(manifest, new, held_y, job.min_labels)
    lineage = _lineage(job, manifest, verdict, fitted, reference_from)
    fields = manifest.model_dump(exclude={"onnx_sha256", "manifest_sha256", "lineage"})
    fields |= {"version": version, "created_at": datetime.now(UTC), "reference": reference, "lineage": lineage}
    verdict.artifact_path = publish_artifact(composed, fields, candidate_dir(job.candidates_dir, job.model) / version)
    verdict.new_version = version
    _decide(verdict, job.min_labels)
    return verdict


def _identity() -> CalibrationMap:
    return CalibrationMap(kind="temperature", temperature=1.0)


def _fit(job: Job, manifest: Manifest, rows: ServedRows, halves: Halves, verdict: Verdict) -> CalibrationMap | None:
    """The map, its parameters recorded in ``verdict``; None (and the reason) when it cannot be fitted."""
    if job.method == "prior-shift":
        used = ~halves.heldout
        if not used.any():
            verdict.reason = "no served predictions with stored scores in the window: nothing to estimate priors from"
            return None
        train = manifest.reference.class_priors or [1.0 / len(manifest.classes)] * len(manifest.classes)
        shift = estimate_priors(rows.log_probs[used], np.asarray(train))
        verdict.parameters |= {
            "train_priors": shift.train_priors.tolist(),
            "priors": shift.priors.tolist(),
            "iterations": shift.iterations,
            "converged": shift.converged,
            "log_likelihood_gain": shift.log_likelihood_gain,
            "train_priors_from_manifest": manifest.reference.class_priors is not None,
        }
        return shift.as_map()
    if verdict.n_fit < job.min_labels:
        verdict.reason = (
            f"{verdict.n_fit} labelled predictions in the fit half of the window, {job.min_labels} needed "
            "(CANDOR_RECALIBRATION_MIN_LABELS): send more feedback or widen the window; nothing written"
        )
        return None
    cmap = fit_on_log_probs(rows.log_probs[halves.fit], rows.labels[halves.fit], job.method)
    verdict.parameters |= {"temperature": cmap.temperature, "gamma": cmap.gamma}
    return cmap


def _reference(
    manifest: Manifest, probs: NDArray[np.float64], labels: NDArray[np.int64], min_labels: int
) -> tuple[ReferenceFigures, Literal["heldout", "base"]]:
    """Reference figures on the held-out labelled half, or the base's when it has too few labels."""
    if len(labels) >= min_labels:
        return reference_figures(probs, labels, split="production"), "heldout"
    return manifest.reference, "base"


def _lineage(
    job: Job, manifest: Manifest, verdict: Verdict, cmap: CalibrationMap, reference_from: Literal["heldout", "base"]
) -> Lineage:
    return Lineage(
        base_version=manifest.version,
        method=job.method,
        map=cmap,
        window_start=job.window_start,
        window_end=job.window_end,
        n_labels_fit=verdict.n_fit,
        n_labels_heldout=verdict.n_heldout,
        n_unlabelled=verdict.n_unlabelled,
        parameters=verdict.parameters,
        seed=job.seed,
        created_by=job.created_by,
        reference_from=reference_from,
    )


def _decide(verdict: Verdict, min_labels: int) -> None:
    """The promotion rule (module docstring, step 4); sets outcome, reason and ``promote``."""
    comparison = verdict.comparison
    if comparison is None or verdict.n_heldout < min_labels:
        never = " (prior-shift is never promoted without them)" if verdict.method == "prior-shift" else ""
        verdict.outcome, verdict.reason = (
            "insufficient_labels",
            f"{verdict.n_heldout} labelled predictions in the held-out half, {min_labels} needed to compare "
            f"old and new{never}",
        )
        return
    if not comparison.better():
        verdict.outcome, verdict.reason = "rejected", "not better on the held-out half: " + _intervals(comparison)
        return
    verdict.outcome, verdict.reason, verdict.promote = (
        "written",
        "better on the held-out half: " + _intervals(comparison),
        True,
    )


def _intervals(c: Comparison) -> str:
    return (
        f"NLL new - old {c.nll.mean:+.4f} [{c.nll.low:+.4f}, {c.nll.high:+.4f}], "
        f"ECE new - old {c.ece.mean:+.4f} [{c.ece.low:+.4f}, {c.ece.high:+.4f}] (95% paired bootstrap, "
        f"n = {c.n}); promoted only when the NLL interval lies below 0 and the ECE interval reaches 0 or below"
    )
