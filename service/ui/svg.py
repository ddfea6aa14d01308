"""Inline SVG charts: the reliability diagram and the confidence histogram (no script, no style
attribute: classes only, so a strict Content-Security-Policy admits them).

Both use a square plot area of ``SIZE`` user units inside ``MARGIN``; the viewBox scales it to the
page. Every bin is one ``<g class="bin">`` (or ``hbin``) carrying its figures as data attributes
and a ``<title>`` tooltip, empty bins included, so a reader (or a test) counts the bins it drew.
"""

from __future__ import annotations

from collections.abc import Sequence

from service.monitor.schemas import ReliabilityBin
from service.ui.text import esc, num, pct

SIZE = 240.0
MARGIN = 40.0
FULL = SIZE + 2 * MARGIN


def _x(value: float) -> float:
    return MARGIN + SIZE * value


def _y(value: float) -> float:
    return MARGIN + SIZE * (1.0 - value)


def _rect(css: str, x0: float, x1: float, y0: float, y1: float) -> str:
    """A rectangle between data coordinates x0..x1 (0..1) and heights y0..y1 (0..1)."""
    top, bottom = _y(max(y0, y1)), _y(min(y0, y1))
    return (
        f'<rect class="{css}" x="{_x(x0):.2f}" y="{top:.2f}" '
        f'width="{SIZE * (x1 - x0):.2f}" height="{bottom - top:.2f}"/>'
    )


def _frame(title: str, x_label: str, y_label: str, y_max: float) -> list[str]:
    """Axes, ticks at 0, 0.5, 1 of each axis, and the axis labels."""
    parts = [f'<rect class="frame" x="{MARGIN}" y="{MARGIN}" width="{SIZE}" height="{SIZE}"/>']
    for t in (0.0, 0.5, 1.0):
        below = MARGIN + SIZE + 14
        parts.append(f'<text class="tick" x="{_x(t):.1f}" y="{below:.1f}" text-anchor="middle">{t:g}</text>')
        parts.append(
            f'<text class="tick" x="{MARGIN - 4:.1f}" y="{_y(t) + 4:.1f}" text-anchor="end">{num(t * y_max, 2)}</text>'
        )
    parts.append(f'<text class="axis" x="{_x(0.5):.1f}" y="{FULL - 4:.1f}" text-anchor="middle">{esc(x_label)}</text>')
    parts.append(
        f'<text class="axis" x="10" y="{_y(0.5):.1f}" text-anchor="middle" '
        f'transform="rotate(-90 10 {_y(0.5):.1f})">{esc(y_label)}</text>'
    )
    return [f"<title>{esc(title)}</title>", *parts]


def _svg(css: str, label: str, body: list[str]) -> str:
    return (
        f'<svg class="{css}" viewBox="0 0 {FULL:g} {FULL:g}" role="img" aria-label="{esc(label)}" '
        f'xmlns="http://www.w3.org/2000/svg">{"".join(body)}</svg>'
    )


def reliability_svg(bins: Sequence[ReliabilityBin]) -> str:
    """Per-bin accuracy bars, the gap to the bin's mean confidence, the diagonal, and the
    reference's (confidence, accuracy) points joined by a line."""
    body = _frame("reliability diagram", "confidence", "accuracy", 1.0)
    body.append(f'<line class="diagonal" x1="{_x(0):.1f}" y1="{_y(0):.1f}" x2="{_x(1):.1f}" y2="{_y(1):.1f}"/>')
    body.extend(_reliability_bin(b) for b in bins)
    reference = [(b.reference_confidence, b.reference_accuracy) for b in bins]
    points = [(c, a) for c, a in reference if c is not None and a is not None]
    if points:
        path = " ".join(f"{_x(c):.2f},{_y(a):.2f}" for c, a in points)
        body.append(f'<polyline class="ref" points="{path}"><title>reference (manifest)</title></polyline>')
        body.extend(f'<circle class="ref" cx="{_x(c):.2f}" cy="{_y(a):.2f}" r="2.5"/>' for c, a in points)
    return _svg("reliability", f"reliability diagram, {len(bins)} bins", body)


def _reliability_bin(b: ReliabilityBin) -> str:
    """One bin: its bar and gap when it holds labels; a tooltip either way."""
    span = f"{b.lower:.3f} < c \u2264 {b.upper:.3f}"
    data = f'data-lower="{b.lower!r}" data-upper="{b.upper!r}" data-count="{b.count}"'
    if b.count == 0 or b.accuracy is None or b.mean_confidence is None:
        return f'<g class="bin empty" {data}><title>{span}: no labels</title></g>'
    tip = f"{span}: {b.count} labels, accuracy {pct(b.accuracy)}, mean confidence {pct(b.mean_confidence)}"
    bar = _rect("acc", b.lower, b.upper, 0.0, b.accuracy)
    gap = _rect("gap", b.lower, b.upper, b.accuracy, b.mean_confidence)
    return (
        f'<g class="bin" {data} data-accuracy="{b.accuracy!r}" data-confidence="{b.mean_confidence!r}">'
        f"<title>{esc(tip)}</title>{bar}{gap}</g>"
    )


def histogram_svg(counts: Sequence[int], edges: Sequence[float], reference: Sequence[float] | None) -> str:
    """The window's confidence histogram as fractions (bars) against the reference fractions
    (outlined bars); the y axis runs to the largest fraction of either."""
    total = sum(counts)
    fractions = [c / total if total else 0.0 for c in counts]
    top = max([*fractions, *(reference or []), 1e-9])
    body = _frame("confidence histogram", "confidence", "fraction", top)
    for k, (lower, upper) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        ref = None if reference is None else reference[k]
        tip = f"{lower:.3f} < c \u2264 {upper:.3f}: {counts[k]} predictions ({pct(fractions[k])})"
        tip += "" if ref is None else f", reference {pct(ref)}"
        bars = _rect("live", lower, upper, 0.0, fractions[k] / top)
        bars += "" if ref is None else _rect("ref", lower, upper, 0.0, ref / top)
        body.append(f'<g class="hbin" data-count="{counts[k]}"><title>{esc(tip)}</title>{bars}</g>')
    return _svg("histogram", f"confidence histogram, {len(counts)} bins", body)
