"""The artifact side of a version's section: the calibration map in use (from its manifest) and
the model's recalibration history (the loaded versions whose manifest records a lineage)."""

from __future__ import annotations

from calibration.manifest import Lineage, Manifest
from service.ui.text import esc, num

MAP_NAMES = {
    "none": "none (raw softmax)",
    "temperature": "temperature scaling",
    "focal_temperature": "focal temperature scaling",
    "vector": "vector scaling",
}


def calibration_map(manifest: Manifest | None) -> str:
    """Kind, parameters and fit of the fused map, the training loss, the classes (escaped)."""
    if manifest is None:
        return (
            '<div class="map"><h4>Calibration map</h4><p class="note">This version is not loaded any more; '
            "labels for its earlier predictions still count in its window.</p></div>"
        )
    m = manifest.calibration
    params = f"T = {num(m.temperature, 4)}" + ("" if m.kind != "focal_temperature" else f", \u03b3 = {num(m.gamma, 3)}")
    if m.weights is not None and m.biases is not None:
        params = f"w = [{', '.join(num(w, 3) for w in m.weights)}], b = [{', '.join(num(b, 3) for b in m.biases)}]"
    loss = manifest.training.loss + "".join(f", {k} = {num(v, 4)}" for k, v in manifest.training.loss_params.items())
    classes = ", ".join(esc(c) for c in manifest.classes)
    rows = (
        f"<tr><th>map</th><td>{esc(MAP_NAMES.get(m.kind, m.kind))}</td></tr>"
        f"<tr><th>parameters</th><td>{esc(params)}</td></tr>"
        f"<tr><th>fitted on</th><td>{esc(m.fitted_on)} data, minimising {esc(m.objective)}</td></tr>"
        f"<tr><th>training loss</th><td>{esc(loss)}</td></tr>"
        f"<tr><th>reference</th><td>{esc(manifest.reference.split)} split, n = {manifest.reference.n}</td></tr>"
        f'<tr><th>classes</th><td class="classes">{classes}</td></tr>'
    )
    caption = '<caption class="meta">calibration map in use</caption>'
    return f'<div class="map scroll"><table class="figures">{caption}{rows}</table></div>'


def recalibration(model: str, manifests: list[Manifest]) -> str:
    """Recalibration history: each loaded version written by a recalibration, with its lineage."""
    rows = "".join(
        _lineage_row(m.version, m.lineage) for m in sorted(manifests, key=lambda m: int(m.version)) if m.lineage
    )
    note = (
        '<p class="note">Versions written by <code>POST /v2/repository/models/{m}/recalibrate</code> '
        "(or <code>candor recalibrate</code>) and promoted; candidates not promoted stay under "
        "<code>STATE_DIR/candidates/</code>, and every run counts in <code>candor_recalibrations_total</code>.</p>"
    )
    table = ""
    if rows:
        head = "<tr><th>version</th><th>from</th><th>method</th><th>window</th><th>labels (fit / held-out)</th>"
        head += "<th>map</th></tr>"
        table = f'<div class="scroll"><table class="figures">{head}{rows}</table></div>'
    else:
        note += '<p class="note">No loaded version of this model was written by a recalibration.</p>'
    return (
        f'<section class="recalibration" data-model="{esc(model)}"><h3>Recalibration history</h3>'
        f"{note}{table}</section>"
    )


def _lineage_row(version: str, lineage: Lineage) -> str:
    m = lineage.map
    kind = "prior correction" if lineage.method == "prior-shift" else MAP_NAMES.get(m.kind, m.kind)
    params = "" if m.kind == "vector" else f", T = {num(m.temperature, 4)}"
    window = f"{lineage.window_start:%Y-%m-%d %H:%M} to {lineage.window_end:%H:%M} UTC"
    return (
        f"<tr><td>{esc(version)}</td><td>{esc(lineage.base_version)}</td><td>{esc(lineage.method)}</td>"
        f"<td>{esc(window)}</td><td>{lineage.n_labels_fit} / {lineage.n_labels_heldout}</td>"
        f"<td>{esc(kind + params)}</td></tr>"
    )
