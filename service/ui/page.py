"""HTML of the status page: one article per model, one section per version. Every text that
comes from a model, a class name or a request is escaped (``esc``); every figure also carries the
value ``GET /v1/models/{m}/calibration`` answers in ``data-value`` (JSON), under its dotted key in
``data-key``, so what the page shows can be checked against the API."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from itertools import groupby
from urllib.parse import quote

from service.monitor import CalibrationStatus
from service.monitor.schemas import LabelDelay
from service.ui.artifact import calibration_map, recalibration
from service.ui.style import CSS
from service.ui.svg import histogram_svg, reliability_svg
from service.ui.text import MISSING, esc, num, pct, seconds
from service.ui.view import VersionView

VERDICTS = {"ok": "ok", "drift": "drift", "insufficient_data": "insufficient data"}


def document(title: str, body: str, refresh_s: int = 0) -> str:
    """A complete page: viewport for phones, the hashed stylesheet, an optional meta refresh."""
    refresh = f'<meta http-equiv="refresh" content="{refresh_s}">' if refresh_s > 0 else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'{refresh}<title>{esc(title)}</title><link rel="icon" href="data:,">'
        f"<style>{CSS}</style></head><body>{body}</body></html>"
    )


def figure(key: str, value: object, text: str) -> str:
    """A figure as shown, with the API's value of ``key`` in data-value (JSON)."""
    return f'<span class="v" data-key="{esc(key)}" data-value="{esc(json.dumps(value))}">{esc(text)}</span>'


def model_url(model: str) -> str:
    return "/ui/models/" + quote(model, safe="")


def status_page(views: list[VersionView], refresh_s: int, scope: str | None, signed_in: bool) -> str:
    """/ui (scope None: a summary table, then every model) or /ui/models/{scope}."""
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    window = views[0].status.window_seconds if views else None
    crumbs = '<a href="/ui">all models</a> \u00b7 ' if scope is not None else ""
    reloads = f" \u00b7 reloads every {refresh_s} s" if refresh_s > 0 else ""
    signout = '<form class="inline" method="post" action="/ui/logout"><button>sign out</button></form>'
    head = (
        f"<header><h1>Candor calibration{'' if scope is None else ': ' + esc(scope)}</h1>"
        f'<p class="meta">{crumbs}{len(views)} model versions \u00b7 window {seconds(window)} \u00b7 '
        f"as of {now}{reloads}"
        f"{' ' + signout if signed_in else ''}</p></header>"
    )
    summary = summary_table(views) if scope is None else ""
    articles = "".join(
        model_article(model, list(group)) for model, group in groupby(views, key=lambda v: v.status.model)
    )
    empty = "" if views else '<p class="note">No model is loaded.</p>'
    return document("Candor calibration", f"{head}<main>{summary}{empty}{articles}</main>{footer()}", refresh_s)


def summary_table(views: list[VersionView]) -> str:
    rows = "".join(
        f'<tr><td><a href="{esc(model_url(s.model))}">{esc(s.model)}</a></td><td>{esc(s.version)}</td>'
        f"<td>{verdict_badge(s.drift.verdict)}</td><td>{pct(s.window.ece)}</td><td>{s.window.labels}</td>"
        f"<td>{pct(s.label_coverage, 1)}</td><td>{num(s.label_free.confidence_psi)}</td></tr>"
        for s in (v.status for v in views)
    )
    head = "<tr><th>model</th><th>version</th><th>verdict</th><th>window ECE</th><th>labels</th>"
    head += "<th>label coverage</th><th>confidence PSI</th></tr>"
    return f'<div class="scroll"><table class="summary">{head}{rows}</table></div>'


def verdict_badge(verdict: str) -> str:
    return f'<span class="verdict verdict-{esc(verdict)}">{esc(VERDICTS.get(verdict, verdict))}</span>'


def model_article(model: str, views: list[VersionView]) -> str:
    sections = "".join(version_section(v) for v in views)
    return (
        f'<article class="model" data-model="{esc(model)}"><h2><a href="{esc(model_url(model))}">{esc(model)}</a></h2>'
        f"{sections}{recalibration(model, [v.manifest for v in views if v.manifest is not None])}</article>"
    )


def version_section(view: VersionView) -> str:
    s = view.status
    reliability = reliability_svg(s.reliability)
    histogram = histogram_svg(view.histogram, view.edges, view.reference_fractions)
    ref = "" if s.reference is None else f" (n = {s.reference.n})"
    return (
        f'<section class="version" data-model="{esc(s.model)}" data-version="{esc(s.version)}" '
        f'id="{esc(s.model)}-v{esc(s.version)}"><div class="head"><h3>version {esc(s.version)}</h3>'
        f"{figure('drift.verdict', s.drift.verdict, '')}{verdict_badge(s.drift.verdict)}</div>"
        f'<p class="explain">{esc(explain(s))}</p><div class="grid">'
        f'<div class="scroll">{window_table(s)}</div><div class="scroll">{label_free_table(s)}</div></div>'
        f'<div class="grid"><figure>{reliability}<figcaption>Reliability, last {seconds(s.window_seconds)}: '
        "bars are the accuracy "
        f"per confidence bin, red the gap to its mean confidence, the line the manifest's reference{ref}."
        f"</figcaption></figure><figure>{histogram}<figcaption>Confidence of every prediction in the window "
        f"(filled) against the reference histogram (outlined).</figcaption></figure>"
        f"</div>{calibration_map(view.manifest)}</section>"
    )


def explain(s: CalibrationStatus) -> str:
    """The verdict in one sentence, with the figures it rests on."""
    d = s.drift
    if d.verdict == "insufficient_data":
        return f"{d.n} labels in the window; a verdict needs {d.min_labels}."
    compare = "exceeds" if d.verdict == "drift" else "is within"
    return (
        f"Window ECE {pct(d.statistic)} {compare} {pct(d.threshold)}, the {num(100 * d.quantile, 2)}th percentile "
        f"of the ECE the reference calibration shows on {d.n} labels (p = {num(d.p_value, 4)})."
    )


def row(label: str, cells: str) -> str:
    return f"<tr><th>{esc(label)}</th><td>{cells}</td></tr>"


def window_table(s: CalibrationStatus) -> str:
    """Labelled figures of the window beside the reference's, the drift test's, coverage, delay."""
    w, d, ref, delay = s.window, s.drift, s.reference, s.label_delay
    interval = MISSING if d.ece_interval is None else "95% interval {} \u2013 {}".format(*map(pct, d.ece_interval))
    ece = f"{figure('window.ece', w.ece, pct(w.ece))} ({figure('drift.ece_interval', d.ece_interval, interval)})"
    accuracy = figure("window.accuracy", w.accuracy, pct(w.accuracy))
    confidence = figure("window.mean_confidence", w.mean_confidence, pct(w.mean_confidence))
    since = s.since_start
    rows = [
        row("labels in window", figure("window.labels", w.labels, str(w.labels))),
        row("window ECE", ece),
        row("drift threshold", figure("drift.threshold", d.threshold, pct(d.threshold))),
        row("accuracy", accuracy + versus("reference.accuracy", None if ref is None else ref.accuracy)),
        row(
            "mean confidence",
            confidence + versus("reference.mean_confidence", None if ref is None else ref.mean_confidence),
        ),
        row("label coverage", figure("label_coverage", s.label_coverage, pct(s.label_coverage, 1))),
        row("label delay", label_delay(delay)),
        row(
            "reference ECE",
            figure("reference.ece", None if ref is None else ref.ece, pct(None if ref is None else ref.ece)),
        ),
        row(
            "since start",
            f"{figure('since_start.labels', since.labels, str(since.labels))} labels, "
            f"ECE {figure('since_start.ece', since.ece, pct(since.ece))}, "
            + figure("predictions_since_start", s.predictions_since_start, str(s.predictions_since_start))
            + " predictions",
        ),
    ]
    return table(f"labelled, last {seconds(s.window_seconds)}", rows)


def table(caption: str, rows: list[str]) -> str:
    return f'<table class="figures"><caption class="meta">{esc(caption)}</caption>{"".join(rows)}</table>'


def versus(key: str, value: float | None) -> str:
    return f" (reference {figure(key, value, pct(value))})"


def label_delay(delay: LabelDelay | None) -> str:
    """Mean delay and the bound on the median, since start."""
    mean = None if delay is None else delay.mean_seconds
    median = None if delay is None else delay.median_at_most_seconds
    median_text = MISSING if median is None else f"\u2264 {seconds(median)}"
    return (
        f"mean {figure('label_delay.mean_seconds', mean, seconds(mean))}, "
        f"median {figure('label_delay.median_at_most_seconds', median, median_text)} (since start)"
    )


def label_free_table(s: CalibrationStatus) -> str:
    """Signals of every prediction, labelled or not, against the reference histogram."""
    f = s.label_free
    shift = "shifted (PSI > 0.25)" if f.confidence_shift else "no shift"
    confidence = figure("label_free.mean_confidence", f.mean_confidence, pct(f.mean_confidence))
    rows = [
        row("predictions in window", figure("label_free.predictions", f.predictions, str(f.predictions))),
        row(
            "mean confidence", confidence + versus("label_free.reference_mean_confidence", f.reference_mean_confidence)
        ),
        row("confidence PSI", figure("label_free.confidence_psi", f.confidence_psi, num(f.confidence_psi))),
        row("histogram", figure("label_free.confidence_shift", f.confidence_shift, shift)),
        *class_mix_rows(s),
    ]
    return table("label-free, every prediction", rows)


def class_mix_rows(s: CalibrationStatus) -> list[str]:
    """The class-mix PSI against its threshold and the flag (none without a class mix)."""
    mix = s.label_free.class_mix
    if mix is None:
        return []
    psi = figure("label_free.class_mix.psi", mix.psi, num(mix.psi))
    threshold = figure("label_free.class_mix.threshold", mix.threshold, num(mix.threshold))
    verdict = "shifted: try prior-shift recalibration" if mix.shift else "no shift"
    return [
        row(f"class-mix PSI (vs {mix.reference_source} priors)", f"{psi} (threshold {threshold})"),
        row("class mix", figure("label_free.class_mix_shift", s.label_free.class_mix_shift, verdict)),
    ]


def footer() -> str:
    return (
        '<footer class="note">This page shows this replica\'s own window. JSON: '
        "<code>GET /v1/models/{m}/calibration</code>. For a fleet of replicas, watch Prometheus and the "
        "Grafana dashboard (deploy/grafana), which sum every replica's counters.</footer>"
    )
