"""``candor evaluate``: every metric before and after the map, measured through ONNX Runtime.

The artifact is run exactly as served (the manifest's preprocessing, the fused graph); "before" reads
the logits tensor the map consumes (recorded in the graph's metadata) and applies a plain softmax.
A run directory is exported to a temporary artifact first. Writes metrics.json, report.md and PNG
reliability diagrams (before / after).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from tqdm import tqdm

from calibration import metrics
from calibration.manifest import MANIFEST_FILE, CalibrationMap, Manifest, verify_artifact
from calibration.maps import softmax
from calibration.plots import figure_png, plot_reliability
from candor.maps import describe_map
from candor.onnx_graph import LOGITS_KEY
from candor.onnx_run import open_cpu_session, run_chunked
from training.data import load_dataset, split_train_validation
from training.errors import TrainingError

METRICS = ("accuracy", "ece", "mce", "adaptive_ece", "classwise_ece", "sece", "smooth_ece", "nll", "brier")


def evaluation_split(manifest: Manifest, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Raw images and labels of the artifact's data set: the official test split, or its validation."""
    if split not in ("test", "validation"):
        raise TrainingError(f"--split {split!r}: choose test or validation")
    data = load_dataset(manifest.training.data)
    if split == "test":
        return data.test_x, data.test_y
    n = len(data.train_y)
    carve = split_train_validation(n, manifest.training.validation_size / n, manifest.training.seed)
    return data.train_x[carve.validation], data.train_y[carve.validation]


def probabilities_before_after(artifact: Path, manifest: Manifest, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(softmax of the graph's logits, the served calibrated probabilities), float64.

    Inputs go through the manifest's preprocessing (as the service does); the graph gets its logits tensor as a second
    output, so both come from one ONNX Runtime pass of the served graph.
    """
    model = (artifact / manifest.onnx_file).read_bytes()
    graph = onnx.load_from_string(model)
    logits_name = {p.key: p.value for p in graph.metadata_props}.get(LOGITS_KEY)
    if logits_name is None:
        raise TrainingError(f"{artifact}: the graph does not record its logits tensor; re-export it")
    x = manifest.preprocessing.normalise(raw.astype(np.float64), manifest.instance_shape, "instances")
    graph.graph.output.append(onnx.helper.make_tensor_value_info(logits_name, onnx.TensorProto.FLOAT, None))
    calibrated, logits = run_chunked(open_cpu_session(graph.SerializeToString()), manifest.input.name, x)
    return softmax(logits.astype(np.float64)), calibrated.astype(np.float64)


def metric_table(probs: np.ndarray, labels: np.ndarray, ci: bool, resamples: int) -> dict[str, Any]:
    """Every metric (fractions), with a 95% bootstrap interval per metric when ``ci``."""
    table: dict[str, Any] = {}
    for name in tqdm(METRICS, desc="metrics", leave=False):
        fn = getattr(metrics, name)
        entry: dict[str, Any] = {"value": fn(probs, labels)}
        if ci:
            entry["ci95"] = list(metrics.bootstrap_ci(fn, probs, labels, n_resamples=resamples))
        table[name] = entry
    return table


def markdown_report(result: dict[str, Any]) -> str:
    """The table: metric, before, after (ECE-type metrics in %)."""
    percent = {"accuracy", "ece", "mce", "adaptive_ece", "classwise_ece", "sece", "smooth_ece"}
    cmap = CalibrationMap.model_validate(result["map"])
    lines = [
        f"# Evaluation of {result['model']} v{result['version']} ({result['split']} split, n = {result['n']})",
        "",
        f"Map: {describe_map(cmap)}; before = the network's softmax, after = served output.",
        "ECE-type metrics in %; brackets: 95% bootstrap interval (ECE is biased upwards by resampling).",
        "",
        "| metric | before | after |",
        "|---|---|---|",
    ]
    for name in METRICS:
        cells = [format_cell(result[stage][name], name in percent) for stage in ("before", "after")]
        lines.append(f"| {name}{' (%)' if name in percent else ''} | {cells[0]} | {cells[1]} |")
    lines += ["", "![before](reliability-before.png) ![after](reliability-after.png)", ""]
    return "\n".join(lines)


def format_cell(entry: dict[str, Any], percent: bool) -> str:
    scale = 100.0 if percent else 1.0
    text = f"{entry['value'] * scale:.3f}"
    if "ci95" in entry:
        text += f" [{entry['ci95'][0] * scale:.3f}, {entry['ci95'][1] * scale:.3f}]"
    return text


def evaluate_artifact(
    artifact: Path, split: str, out_dir: Path, ci: bool = False, resamples: int = 200
) -> dict[str, Any]:
    """Evaluate an artifact directory; writes metrics.json, report.md and two reliability PNGs."""
    manifest = verify_artifact(artifact)
    raw, labels = evaluation_split(manifest, split)
    before, after = probabilities_before_after(artifact, manifest, raw)
    result: dict[str, Any] = {
        "model": manifest.name,
        "version": manifest.version,
        "split": split,
        "n": int(len(labels)),
        "map": manifest.calibration.model_dump(),
        "before": metric_table(before, labels, ci, resamples),
        "after": metric_table(after, labels, ci, resamples),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    (out_dir / "report.md").write_text(markdown_report(result))
    for stage, probs in (("before", before), ("after", after)):
        conf, correct = metrics.confidence_and_correct(probs, labels)
        figure = plot_reliability((conf, correct), title=f"{manifest.name} v{manifest.version}: {stage} the map")
        (out_dir / f"reliability-{stage}.png").write_bytes(figure_png(figure))
    return result


def evaluate(target: Path, split: str, out_dir: Path, ci: bool = False, resamples: int = 200) -> dict[str, Any]:
    """An artifact directory is evaluated as is; a run directory is exported to a temp artifact first."""
    if (target / MANIFEST_FILE).is_file():
        return evaluate_artifact(target, split, out_dir, ci, resamples)
    from training.export import export_run

    with tempfile.TemporaryDirectory() as tmp:
        artifact = export_run(target, "evaluated-run", "1", Path(tmp))
        return evaluate_artifact(artifact, split, out_dir, ci, resamples)
