"""Text helpers of the status page: HTML escaping and number formatting ("-" for None)."""

from __future__ import annotations

import html

MISSING = "\u2013"


def esc(value: object) -> str:
    """``value`` as text with &, <, >, " and ' escaped: safe in element content and in quoted
    attribute values."""
    return html.escape(str(value), quote=True)


def pct(value: float | None, digits: int = 2) -> str:
    """0.0412 -> '4.12%'; None -> an en dash."""
    return MISSING if value is None else f"{100 * value:.{digits}f}%"


def num(value: float | None, digits: int = 3) -> str:
    """A number with at most ``digits`` decimals (trailing zeros dropped); None -> an en dash."""
    if value is None:
        return MISSING
    text = f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def seconds(value: float | None) -> str:
    """A duration: '42 s', '7.5 min', '3.2 h', '2.1 d'; None -> an en dash."""
    if value is None:
        return MISSING
    for unit, size in (("d", 86_400.0), ("h", 3600.0), ("min", 60.0)):
        if value >= size:
            return f"{num(value / size, 1)} {unit}"
    return f"{num(value, 1)} s"
