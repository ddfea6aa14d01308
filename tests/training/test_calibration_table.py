"""The results-table benchmark, smoke-run on digits (--preset tiny): a row per loss, sane values."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench.calibration_table import PRESETS, TABLE_LOSSES, main

pytestmark = pytest.mark.usefixtures("one_thread")


def table_rows(markdown: str, heading: str) -> dict[str, list[str]]:
    """The rows of the Markdown table under ``heading``: loss -> cells."""
    section = markdown.split(heading, 1)[1].split("\n## ", 1)[0]
    rows = [line.strip("|").split("|") for line in section.splitlines() if line.startswith("| ")]
    return {cells[0].strip(): [c.strip() for c in cells[1:]] for cells in rows[1:]}


def mean_of(cell: str) -> float:
    return float(cell.split("±")[0])


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("table")
    assert (
        main(
            [
                "--preset",
                "tiny",
                "--out",
                str(root / "out"),
                "--runs",
                str(root / "runs"),
                "--threads",
                "1",
            ]
        )
        == 0
    )
    return root, (root / "out" / f"{PRESETS['tiny'].report}.md").read_text()


def test_headline_has_one_row_per_loss_and_ece_in_range(tiny_report: tuple[Path, str]) -> None:
    _, markdown = tiny_report
    rows = table_rows(markdown, "## Headline")
    assert list(rows) == list(TABLE_LOSSES)
    for cells in rows.values():
        accuracy, gap, *eces = (mean_of(c) for c in cells[:8])
        assert 0 < accuracy <= 100 and -100 <= gap <= 100
        assert all(0 <= e <= 100 for e in eces)
        assert 0.05 <= mean_of(cells[8]) <= 20  # T within the fit's bounds


@pytest.mark.parametrize("stage", ["before post-hoc", "after temperature scaling", "after focal temperature scaling"])
def test_every_metric_of_every_stage_is_in_range(tiny_report: tuple[Path, str], stage: str) -> None:
    _, markdown = tiny_report
    rows = table_rows(markdown, f"## All metrics, {stage}")
    assert list(rows) == list(TABLE_LOSSES)
    for cells in rows.values():
        assert len(cells) == 8 and all(re.fullmatch(r"-?\d+\.\d+ ± \d+\.\d+", c) for c in cells)
        *percent, nll, brier = (mean_of(c) for c in cells)
        assert all(0 <= p <= 100 for p in percent) and nll >= 0 and 0 <= brier <= 2


def test_report_names_command_machine_and_wall_time_and_draws_diagrams(
    tiny_report: tuple[Path, str],
) -> None:
    root, markdown = tiny_report
    assert "python -m bench.calibration_table --preset tiny" in markdown
    assert "`nproc` =" in markdown and "wall time:" in markdown
    for stage in ("raw", "ts", "fts"):
        png = root / "out" / f"{PRESETS['tiny'].report}-reliability-{stage}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_rerun_reuses_the_finished_runs(tiny_report: tuple[Path, str]) -> None:
    root, _ = tiny_report
    before = {p: p.stat().st_mtime_ns for p in (root / "runs").rglob("best.pt")}
    assert (
        main(
            [
                "--preset",
                "tiny",
                "--losses",
                "ce",
                "--out",
                str(root / "again"),
                "--runs",
                str(root / "runs"),
            ]
        )
        == 0
    )
    assert {p: p.stat().st_mtime_ns for p in (root / "runs").rglob("best.pt")} == before
    heading = "## All metrics, before"
    first = table_rows((root / "out" / "digits-tiny.md").read_text(), heading)
    again = table_rows((root / "again" / "digits-tiny.md").read_text(), heading)
    assert list(again) == ["ce"] and again["ce"] == first["ce"]
