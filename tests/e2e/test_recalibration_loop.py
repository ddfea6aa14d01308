"""The closed loop on a shift we make, against a real `candor serve` of the bundled default model:
a shifted stream with true labels -> drift alarm -> POST .../recalibrate -> a promoted version
that is better than the old one on fresh data from the same shift, and no alarm after it. On a
class-prior shift, prior-shift EM is promoted and better on fresh data; on no shift, the decision
must follow the held-out intervals the endpoint reports and nothing worse may be served
(bench/shift.py makes the streams, bench/closed_loop.py talks HTTP; bench/recalibration.py is the
full-size run).

Sizes are chosen for margin, not luck (seeded streams, deterministic drift test): on the contrast
shift the old version's fresh ECE is about 0.19 and the interval of the refit's ECE difference sits
far below 0; on the class-prior shift the NLL difference is about -0.08 with an interval width of
about 0.05 at 1,110 fresh rows.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from e2e_processes import REPO_ROOT, serve_process

from bench.closed_loop import LoopClient, compare, score_artifact
from bench.shift import CLASS_PRIOR, CONTRAST, NONE, ShiftedSplit, ShiftSpec, Stream, split
from calibration.manifest import load_manifest
from training.data import load_fashion_mnist

pytestmark = pytest.mark.e2e

MODEL = "fashion-mnist-cnn"
TOKEN = "recalibration-loop-token"
WINDOW_SECONDS = 3600
MIN_LABELS = 100


@pytest.fixture(scope="module")
def fashion() -> tuple[np.ndarray, np.ndarray]:
    """The official Fashion-MNIST test split (never used to fit the bundled model)."""
    data = load_fashion_mnist()
    return data.test_x[:, 0], data.test_y


def shifted(fashion: tuple[np.ndarray, np.ndarray], spec: ShiftSpec, per_class: int) -> ShiftedSplit:
    return split(*fashion, spec, per_class=per_class, seed=0)


@contextmanager
def serving(tmp_path: Path) -> Iterator[tuple[LoopClient, Path]]:
    """`candor serve` over a copy of the bundled version 1 (the recalibration writes beside it),
    with a token, its own store, and a drift verdict from MIN_LABELS labels."""
    models = tmp_path / "models"
    shutil.copytree(REPO_ROOT / "models" / MODEL / "1", models / MODEL / "1")
    env = {
        "CANDOR_AUTH_TOKEN": TOKEN,
        "CANDOR_STATE_DIR": str(tmp_path / "state"),
        "CANDOR_DRIFT_MIN_LABELS": str(MIN_LABELS),
        "CANDOR_LOG_LEVEL": "warning",
    }
    classes = load_manifest(models / MODEL / "1").classes
    with serve_process(models, env) as url:
        client = LoopClient(url, MODEL, classes, token=TOKEN)
        try:
            yield client, models
        finally:
            client.close()


def serve_and_label(client: LoopClient, stream: Stream) -> dict:
    """A stream through predict (the default version), its true labels through feedback; the
    default version's status once the monitor holds them all."""
    served = client.predict(stream.images)
    assert client.feedback(served.ids, stream.labels)["accepted"] == len(stream)
    return client.wait_for_labels(len(stream))


def recalibrate_and_promote(client: LoopClient, models: Path, method: str) -> str:
    """Recalibrate version 1 from the window with promote=auto; the version now served by default,
    which must be a new artifact on disk whose lineage names version 1."""
    answer = client.recalibrate(method, WINDOW_SECONDS, promote="auto")
    assert (answer["outcome"], answer["base_version"]) == ("promoted", "1"), answer
    served = client.calibration()["version"]
    assert served == answer["new_version"] != "1"
    assert Path(answer["artifact_path"]) == models / MODEL / served
    lineage = load_manifest(models / MODEL / served).lineage
    assert lineage is not None and lineage.base_version == "1" and lineage.method == method, lineage
    return served


def test_contrast_shift_alarms_then_the_promoted_refit_is_better_on_fresh_data(fashion, tmp_path: Path) -> None:
    data = shifted(fashion, CONTRAST, per_class=100)  # 1,000 window, 1,000 fresh
    with serving(tmp_path) as (client, models):
        before = serve_and_label(client, data.window)
        assert (before["version"], before["drift"]["verdict"]) == ("1", "drift")
        assert client.drift_gauges()[(MODEL, "1")] == 1.0

        new = recalibrate_and_promote(client, models, "best")
        counted = client.samples("candor_recalibrations_total")
        assert counted == {(("method", "best"), ("model", MODEL), ("outcome", "promoted")): 1.0}
        old_probs, new_probs = client.infer("1", data.fresh.images), client.infer(new, data.fresh.images)
        result = compare(old_probs, new_probs, data.fresh.labels)
        assert result.nll_diff.high < 0, result
        assert result.ece_diff.high < 0, result
        assert result.new.ece.high < result.old.ece.low, result

        # the shifted stream goes on, now answered by the promoted version: no alarm there
        after = serve_and_label(client, data.fresh)
        assert (after["version"], after["drift"]["verdict"]) == (new, "ok")
        assert client.drift_gauges()[(MODEL, new)] == 0.0


def test_class_prior_shift_reestimated_without_labels_is_promoted_and_better_on_fresh_data(
    fashion, tmp_path: Path
) -> None:
    """Label shift leaves top-label calibration nearly intact (the ECE verdict stays ok here) while
    the served posteriors carry the training priors: prior-shift EM improves NLL and accuracy on
    fresh data, and ECE is no worse."""
    data = shifted(fashion, CLASS_PRIOR, per_class=300)  # 1,110 window, 1,110 fresh
    with serving(tmp_path) as (client, models):
        serve_and_label(client, data.window)
        new = recalibrate_and_promote(client, models, "prior-shift")
        result = compare(client.infer("1", data.fresh.images), client.infer(new, data.fresh.images), data.fresh.labels)
    assert result.nll_diff.high < 0, result
    assert result.accuracy_diff.low > 0, result
    assert result.ece_diff.low <= 0, result


def test_without_a_shift_the_decision_follows_the_intervals_and_serves_nothing_worse(fashion, tmp_path: Path) -> None:
    """Nothing to fix: the refit differs from version 1 by noise. Whatever the held-out intervals
    say decides (they hash random prediction ids); a rejected candidate stays aside, never in
    models_dir, and version 1 keeps serving; either way, on fresh data the candidate is no worse."""
    data = shifted(fashion, NONE, per_class=100)
    with serving(tmp_path) as (client, models):
        before = serve_and_label(client, data.window)
        assert before["drift"]["verdict"] == "ok"
        answer = client.recalibrate("best", WINDOW_SECONDS, promote="auto")
        held_out = answer["comparison"]
        better = held_out["nll"]["high"] < 0 and held_out["ece"]["low"] <= 0  # the promotion rule
        assert answer["outcome"] == ("promoted" if better else "rejected"), answer
        served = sorted(p.name for p in (models / MODEL).iterdir())
        assert served == (["1", answer["new_version"]] if better else ["1"])
        assert client.calibration()["version"] == (answer["new_version"] if better else "1")
        old = client.infer("1", data.fresh.images)
    new = score_artifact(Path(answer["artifact_path"]), data.fresh.images)
    assert compare(old, new, data.fresh.labels).nll_diff.high < 0.02
