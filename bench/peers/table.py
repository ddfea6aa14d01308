"""Rounds -> ratios and medians: each ratio is Candor's figure over the peer's in the same round
(neighbours in time on a host that drifts), and the table prints medians over rounds.

Ratios read: req/s > 1 means Candor answers more; latency and CPU per answer < 1 mean Candor is
faster / cheaper.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, fields

from bench.peers.measure import Figures

COLUMNS = ("rps", "p50_c1_ms", "p99_c1_ms", "p99_ms", "cpu_us")
HEADINGS = {
    "rps": "req/s c=32",
    "p50_c1_ms": "p50 c=1 ms",
    "p99_c1_ms": "p99 c=1 ms",
    "p99_ms": "p99 c=32 ms",
    "cpu_us": "CPU us/answer",
}


@dataclass(frozen=True)
class Round:
    """Candor and one peer on one kind of request, measured next to each other."""

    peer: str
    kind: str
    candor: Figures
    other: Figures

    def ratios(self) -> dict[str, float]:
        """Candor / peer for every column (inf when the peer's figure is 0)."""
        return {c: _ratio(getattr(self.candor, c), getattr(self.other, c)) for c in COLUMNS}


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("inf")


def median_figures(figures: list[Figures]) -> Figures:
    """Each field's median over rounds (failures summed)."""
    values = {f.name: statistics.median(getattr(x, f.name) for x in figures) for f in fields(Figures)}
    values["failed"] = sum(x.failed for x in figures)
    return Figures(**values)


def median_ratios(rounds: list[Round]) -> dict[str, float]:
    """Median over rounds of the per-round ratios (not the ratio of medians)."""
    per_round = [r.ratios() for r in rounds]
    return {c: statistics.median(r[c] for r in per_round) for c in COLUMNS}


def group(rounds: list[Round]) -> dict[tuple[str, str], list[Round]]:
    """Rounds by (peer, kind), in first-seen order."""
    out: dict[tuple[str, str], list[Round]] = {}
    for r in rounds:
        out.setdefault((r.peer, r.kind), []).append(r)
    return out


def fmt(value: float, column: str) -> str:
    return f"{value:,.0f}" if column in ("rps", "cpu_us") else f"{value:.2f}"


def markdown(rounds: list[Round]) -> str:
    """One row per (peer, kind): Candor's and the peer's medians and the median ratio per column."""
    head = (
        "| peer | protocol | rounds | "
        + " | ".join(f"{HEADINGS[c]} Candor / peer (ratio)" for c in COLUMNS)
        + " | failed |"
    )
    lines = [head, "|" + " --- |" * (len(COLUMNS) + 4)]
    for (peer, kind), rs in group(rounds).items():
        candor, other = median_figures([r.candor for r in rs]), median_figures([r.other for r in rs])
        ratios = median_ratios(rs)
        cells = [f"{fmt(getattr(candor, c), c)} / {fmt(getattr(other, c), c)} ({ratios[c]:.2f})" for c in COLUMNS]
        lines.append(f"| {peer} | {kind} | {len(rs)} | " + " | ".join(cells) + f" | {candor.failed} / {other.failed} |")
    return "\n".join(lines)


def round_line(r: Round, index: int) -> str:
    """One round, printed as it finishes."""
    parts = [f"{c} {fmt(getattr(r.candor, c), c)}/{fmt(getattr(r.other, c), c)}" for c in COLUMNS]
    share = (
        f" grpc client CPU {r.candor.client_cpu_share:.2f}/{r.other.client_cpu_share:.2f}" if r.kind == "grpc" else ""
    )
    return f"round {index} {r.peer} {r.kind}: candor/peer " + ", ".join(parts) + share
