"""Closed-loop recalibration on shifts we make, at full size (issue 18 item 7).

For each shift (bench/shift.py) and each method, on a fresh `candor serve` of the bundled
fashion-mnist-cnn version 1 (its own copy of the artifact and its own store):

1. the production window goes through predict and its true labels through feedback; the drift
   verdict of version 1 is read from ``GET /v1/models/{m}/calibration`` and /metrics;
2. ``POST /v2/repository/models/{m}/recalibrate`` with the method and ``promote: auto``;
3. the fresh set of the same shift (disjoint from the window) is scored by version 1 and by the new
   version (``/v2/models/{m}/versions/{v}/infer`` when promoted; from the candidate's files, which
   the service leaves aside in its state directory, with ONNX Runtime when not) and compared with paired bootstrap 95%
   intervals (bench/closed_loop.py);
4. the fresh set, labelled, then goes through predict as the continuing stream: the drift verdict
   of whichever version serves by default afterwards.

    .venv/bin/python -m bench.recalibration                       # prints the tables
    .venv/bin/python -m bench.recalibration --write docs/results  # and writes recalibration.md + PNGs

Sizes: Fashion-MNIST's test split has 1,000 images per class and every window/fresh image comes from
it (the training files fitted the model); --per-class 500 (the most) gives 5,000 + 5,000 images on
the contrast shift and 1,850 + 1,850 on the class-prior shift.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure as MplFigure
from numpy.typing import NDArray

from bench.closed_loop import (
    Comparison,
    LoopClient,
    VersionFigures,
    compare,
    interval,
    score_artifact,
    version_figures,
)
from bench.processes import REPO, candor_serve, free_port
from bench.shift import SHIFTS, ShiftedSplit, split
from calibration.manifest import load_manifest
from calibration.plots import as_bin_statistics, draw_reliability
from training.data import load_fashion_mnist

MODEL = "fashion-mnist-cnn"
TOKEN = "bench-recalibration"
METHODS = ("ts", "fts", "best", "prior-shift")
WINDOW_SECONDS = 3600.0
MIN_LABELS = 100
READING = "\n## Reading"  # a hand-written section from here on is kept when the file is rewritten
PREAMBLE = [
    "Written by `bench/recalibration.py` (its docstring has the protocol). Every run starts a fresh "
    "`candor serve` of the bundled `fashion-mnist-cnn` version 1 with its own store "
    "(`CANDOR_DRIFT_MIN_LABELS=100`, other settings default), sends the shift's production window through "
    "predict and its labels through feedback, then calls `POST /v2/repository/models/{m}/recalibrate` "
    '`{"method": M, "window_seconds": 3600, "promote": "auto"}`. Images come from the Fashion-MNIST test '
    "split only (the training files fitted the model); window and fresh sets are disjoint, same class mix "
    "(bench/shift.py, seed 0).",
    "",
    "- First table: the drift verdict of version 1 on the window (labelled ECE test; PSI: label-free "
    "confidence-histogram shift, flagged above 0.25; mix PSI: label-free class-mix shift, the window's mean "
    "served posterior against the reference class priors (uniform where the manifest has none), its "
    "threshold at n, and SHIFT when flagged), what the endpoint fitted, its own held-out comparison "
    "(paired bootstrap 95% intervals of new - old on the held-out half of the window, a seeded hash of the "
    "random prediction ids), its outcome, its wall time (s), the version serving by default afterwards, and "
    "that version's verdict once the fresh set, labelled, has gone through predict as the continuing stream.",
    "- Second table: version 1 and the new version on the fresh set (never seen by the fit or the decision); "
    "each figure with its 95% percentile bootstrap interval (1,000 resamples; binned ECE is biased upward at "
    "small n, so a small ECE can sit below its own interval), and the paired bootstrap interval of new - old "
    "(the same resampled rows for both). 'served': scored through `/v2/models/{m}/versions/{v}/infer`; "
    "'candidate on disk': not promoted, scored from the candidate's files (left in the state directory) "
    "with ONNX Runtime and the manifest's preprocessing.",
]


@dataclass(frozen=True)
class Outcome:
    """One (shift, method) run of the loop."""

    shift: str
    method: str
    window: int
    verdict_before: dict[str, Any]
    answer: dict[str, Any]
    new_version: str | None
    served_after: str
    scored_from: str
    old: VersionFigures
    comparison: Comparison | None
    verdict_after: dict[str, Any]
    recalibrate_seconds: float
    probs: dict[str, NDArray[np.float64]]


def run_loop(data: ShiftedSplit, method: str, workdir: Path) -> Outcome:
    """Steps 1-4 of the module docstring on a fresh server over a fresh copy of version 1."""
    models = workdir / "models"
    shutil.copytree(REPO / "models" / MODEL / "1", models / MODEL / "1")
    classes = load_manifest(models / MODEL / "1").classes
    env = {"CANDOR_AUTH_TOKEN": TOKEN, "CANDOR_DRIFT_MIN_LABELS": str(MIN_LABELS)}
    port = free_port()
    with candor_serve(models, port, env):
        client = LoopClient(f"http://127.0.0.1:{port}", MODEL, classes, token=TOKEN)
        before = label_stream(client, data.window.images, data.window.labels)
        start = time.perf_counter()
        try:
            answer = client.recalibrate(method, WINDOW_SECONDS, promote="auto")
        except RuntimeError as error:  # the endpoint refused: reported in the table, the run goes on
            answer = {"error": str(error)}
        seconds = time.perf_counter() - start
        new, artifact = answer.get("new_version"), answer.get("artifact_path")
        served = client.calibration()["version"]
        old_probs = client.infer("1", data.fresh.images)
        comparison, new_probs, scored_from = None, None, "-"
        if new is not None and artifact is not None:
            if client.http.get(f"/v2/models/{MODEL}/versions/{new}/ready").status_code == 200:
                new_probs, scored_from = client.infer(new, data.fresh.images), "served"
            else:  # left unpromoted, aside from models_dir: scored from its files
                new_probs, scored_from = score_artifact(Path(artifact), data.fresh.images), "candidate on disk"
            comparison = compare(old_probs, new_probs, data.fresh.labels)
        after = label_stream(client, data.fresh.images, data.fresh.labels)
        client.close()
    probs = {"1": old_probs} | ({new: new_probs} if new is not None and new_probs is not None else {})
    return Outcome(
        data.spec.name,
        method,
        len(data.window),
        before,
        answer,
        new,
        served,
        scored_from,
        version_figures(old_probs, data.fresh.labels),
        comparison,
        after,
        seconds,
        probs,
    )


def label_stream(client: LoopClient, images: NDArray[np.uint8], labels: NDArray[np.int64]) -> dict[str, Any]:
    """Predict (default version), send the labels, return the default version's status once counted."""
    labelled = client.calibration()["window"]["labels"]
    served = client.predict(images)
    client.feedback(served.ids, labels)
    return client.wait_for_labels(labelled + len(labels))


def verdict(status: dict[str, Any]) -> str:
    """'v1 drift (ECE 0.191, threshold 0.092, n 5000; PSI 1.73; mix PSI 0.01 / 0.10 ok)' from a
    calibration status: the labelled verdict, then the label-free confidence-histogram PSI (shift
    flagged above 0.25), then the class-mix PSI against its threshold and its flag."""
    d, psi = status["drift"], status["label_free"]["confidence_psi"]
    threshold = "-" if d["threshold"] is None else f"{d['threshold']:.3f}"
    psi_text = "-" if psi is None else f"{psi:.2f}"
    return (
        f"v{status['version']} {d['verdict']} (ECE {d['statistic']:.3f}, threshold {threshold}, n {d['n']}; "
        f"PSI {psi_text}; {mix_text(status['label_free'].get('class_mix'))})"
    )


def mix_text(mix: dict[str, Any] | None) -> str:
    """'mix PSI 0.84 / 0.10 SHIFT': the class-mix PSI, its threshold at n and the flag."""
    if mix is None:
        return "mix -"
    flag = "SHIFT" if mix["shift"] else "ok"
    return f"mix PSI {mix['psi']:.2f} / {mix['threshold']:.2f} {flag}"


def outcome_text(answer: dict[str, Any]) -> str:
    """What the endpoint said it did, in a table cell."""
    return str(answer.get("outcome") or answer.get("error", answer))


def loop_table(outcomes: list[Outcome]) -> list[str]:
    """Markdown: per run, the verdict before, what the endpoint did, and the verdict after."""
    lines = [
        "| shift | method | window | verdict before (v1) | fitted | held-out n | held-out NLL new - old | "
        "held-out ECE new - old | outcome | s | served after | verdict after (continuing stream) |",
        "| --- | --- | ---: | --- | --- | ---: | --- | --- | --- | ---: | --- | --- |",
    ]
    for o in outcomes:
        held_out = o.answer.get("comparison") or {}
        n = held_out.get("n", "-")
        nll, ece_ = (answer_interval(held_out.get(k)) for k in ("nll", "ece"))
        lines.append(
            f"| {o.shift} | {o.method} | {o.window} | {verdict(o.verdict_before)} | "
            f"{parameters_text(o.answer.get('parameters', {}))} | {n} | {nll} | {ece_} | "
            f"{outcome_text(o.answer)} (v{o.new_version}) | {o.recalibrate_seconds:.1f} | v{o.served_after} | "
            f"{verdict(o.verdict_after)} |"
        )
    return lines


def answer_interval(part: dict[str, float] | None) -> str:
    """'diff [low, high]' of one metric of the endpoint's held-out comparison."""
    return "-" if part is None else f"{part['diff']:+.4f} [{part['low']:+.4f}, {part['high']:+.4f}]"


def parameters_text(parameters: dict[str, Any]) -> str:
    """The fitted parameters, compactly: floats to 3 places, lists to 2; the parity checks' figures
    (graph against numpy, at most ~1e-6) left out."""

    def show(value: Any) -> str:
        if isinstance(value, list):
            return "(" + " ".join(f"{v:.2f}" for v in value) + ")"
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    shown = {k: v for k, v in parameters.items() if not k.startswith("parity")}
    return ", ".join(f"{k} {show(v)}" for k, v in shown.items()) or "-"


def figures_table(outcomes: list[Outcome]) -> list[str]:
    """Markdown: old vs new on the fresh set, each with its 95% interval, and paired differences."""
    lines = [
        "| shift | method | fresh n | new scored | ECE old | ECE new | ECE new - old | NLL old | NLL new | "
        "NLL new - old | accuracy old | accuracy new |",
        "| --- | --- | ---: | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for o in outcomes:
        c = o.comparison
        if c is None:
            n, old = len(next(iter(o.probs.values()))), o.old
            lines.append(
                f"| {o.shift} | {o.method} | {n} | no new version | {old.ece} | | | {old.nll} | | | {old.accuracy} | |"
            )
            continue
        lines.append(
            f"| {o.shift} | {o.method} | {c.n} | {o.scored_from} | {c.old.ece} | {c.new.ece} | {interval(c.ece_diff)} "
            f"| {c.old.nll} | {c.new.nll} | {interval(c.nll_diff)} | {c.old.accuracy} | {c.new.accuracy} |"
        )
    return lines


def reliability_png(shift: str, outcomes: list[Outcome], labels: NDArray[np.int64], path: Path) -> None:
    """Reliability diagrams on the fresh set of one shift: version 1, then each method's candidate."""
    panels = [("v1 (served before)", outcomes[0].probs["1"])]
    for o in outcomes:
        if o.new_version is not None and o.new_version in o.probs:
            panels.append((f"{o.method} (v{o.new_version}, {o.answer.get('outcome')})", o.probs[o.new_version]))
    fig = MplFigure(figsize=(3.3 * len(panels), 3.6))
    FigureCanvasAgg(fig)
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for index, (ax, (title, probs)) in enumerate(zip(axes, panels, strict=True)):
        stats = as_bin_statistics((probs.max(axis=1), (probs.argmax(axis=1) == labels).astype(np.float64)))
        draw_reliability(ax, stats, None)
        ax.set_title(f"{title}\nECE {100 * stats.compute_ece():.2f}%", fontsize="small")
        legend = ax.get_legend()
        if index and legend is not None:
            legend.remove()
    fig.suptitle(f"{shift} shift: fresh data ({len(labels)} images), 15 equal-width bins")
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.14, top=0.78, wspace=0.3)
    fig.savefig(path, dpi=80)


def host_lines() -> list[str]:
    """Machine, interpreter and onnxruntime, as Markdown bullets."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    return [
        f"- host: `nproc` = {len(os.sched_getaffinity(0))}, CPU {cpu}, {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}, onnxruntime {ort.__version__}",
        f"- date: {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-class", type=int, default=500, help="full-rate images per class per stream")
    parser.add_argument("--shifts", default=",".join(SHIFTS), help="comma-separated, of " + ", ".join(SHIFTS))
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated, of " + ", ".join(METHODS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", type=Path, default=None, help="directory for recalibration.md and the PNGs")
    args = parser.parse_args(argv)
    data = load_fashion_mnist()
    outcomes, splits = [], {}
    for shift in args.shifts.split(","):
        splits[shift] = split(data.test_x[:, 0], data.test_y, SHIFTS[shift], args.per_class, args.seed)
        for method in args.methods.split(","):
            with tempfile.TemporaryDirectory() as tmp:
                outcome = run_loop(splits[shift], method, Path(tmp))
            outcomes.append(outcome)
            print("\n".join(loop_table([outcome])[2:] + figures_table([outcome])[2:]), flush=True)
    command = "python -m bench.recalibration " + " ".join(argv if argv is not None else sys.argv[1:])
    report = [f"command: `{command.strip()}`", *host_lines(), "", *loop_table(outcomes), "", *figures_table(outcomes)]
    print("\n" + "\n".join(report))
    if args.write is not None:
        write_results(args.write, report, outcomes, splits)
    return 0


def write_results(directory: Path, report: list[str], outcomes: list[Outcome], splits: dict[str, ShiftedSplit]) -> None:
    """docs/results/recalibration.md (the report verbatim under a title) and one PNG per shift."""
    directory.mkdir(parents=True, exist_ok=True)
    for shift, data in splits.items():
        runs = [o for o in outcomes if o.shift == shift]
        reliability_png(shift, runs, data.fresh.labels, directory / f"recalibration-{shift}.png")
    path = directory / "recalibration.md"
    reading = path.read_text().partition(READING)[2] if path.exists() else ""
    text = ["# Closed-loop recalibration on shifts we make", "", *PREAMBLE, "", *report, ""]
    path.write_text("\n".join(text) + (READING + reading if reading else ""))


if __name__ == "__main__":
    raise SystemExit(main())
