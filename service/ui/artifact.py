"""The artifact side of a version's section: the calibration map in use (from its manifest) and
the place where closed-loop recalibration's history will go."""

from __future__ import annotations

from calibration.manifest import Manifest
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


def recalibration(model: str) -> str:
    """Recalibration history: closed-loop recalibration has not landed, so nothing is listed."""
    return (
        f'<section class="recalibration" data-model="{esc(model)}"><h3>Recalibration history</h3>'
        '<p class="note">Closed-loop recalibration (<code>POST /v2/repository/models/{m}/recalibrate</code>) '
        "is not part of this Candor yet. When it lands, its runs will be listed here: the version each "
        "wrote, whether it was promoted, and the paired held-out comparison that decided it.</p></section>"
    )
