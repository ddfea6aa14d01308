"""The results-table experiment, smoke-run on digits (--preset tiny): grid, selection, seeds, noise
arm, claims table, reports and reuse of finished runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench.calibration_table import PRESETS, main
from bench.experiment_plan import GRIDS, Candidate, Job, select

pytestmark = pytest.mark.usefixtures("one_thread")
ARGS = ["--preset", "tiny", "--methods", "ce,ls,focal", "--resamples", "50", "--threads", "1"]


def table_rows(markdown: str, heading: str) -> dict[str, list[str]]:
    """The rows of the Markdown table under ``heading``: first cell -> other cells."""
    section = markdown.split(heading, 1)[1].split("\n## ", 1)[0]
    rows = [line.strip("|").split("|") for line in section.splitlines() if line.startswith("| ")]
    return {cells[0].strip(): [c.strip() for c in cells[1:]] for cells in rows[1:]}


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("table")
    assert main([*ARGS, "--out", str(root / "out"), "--runs", str(root / "runs")]) == 0
    return root, (root / "out" / f"{PRESETS['tiny'].report}.md").read_text()


def test_claims_table_leads_and_gives_intervals_and_a_verdict(tiny_report: tuple[Path, str]) -> None:
    _, markdown = tiny_report
    assert markdown.index("## Claims tested here") < markdown.index("## Setup") < markdown.index("## Test split")
    rows = table_rows(markdown, "## Claims tested here")
    assert any(k.startswith("focal loss calibrates better") for k in rows)
    assert any(k.startswith("under class overlap") for k in rows)
    for cells in rows.values():
        assert re.fullmatch(r"[+-]\d+\.\d+ \[[+-]\d+\.\d+, [+-]\d+\.\d+\]", cells[2])
        assert cells[-1].strip("*") in ("supported", "not supported", "inconclusive at this power")


def test_protocol_is_written_before_the_numbers(tiny_report: tuple[Path, str]) -> None:
    _, markdown = tiny_report
    assert markdown.index("## Pre-registered protocol") < markdown.index("## Hyper-parameter selection")
    selection = markdown.split("## Hyper-parameter selection", 1)[1].split("\n## ", 1)[0]
    assert selection.count("**yes**") == 2  # one value each for ls and focal


def test_every_method_runs_on_every_seed_and_the_noise_arm_exists(tiny_report: tuple[Path, str]) -> None:
    root, markdown = tiny_report
    rows = table_rows(markdown, "## Test split, before post-hoc")
    assert list(rows) == ["ce", "ls", "focal"] and all(cells[0] == "2" for cells in rows.values())
    assert list(table_rows(markdown, "## Noise arm")) == ["ce", "mixup"]
    assert len(list((root / "runs" / "tiny").glob("*-noise0.2-seed*"))) == 4
    assert "ECE floor %" in markdown and "at an edge" in markdown


def test_a_rerun_reuses_the_finished_runs(tiny_report: tuple[Path, str]) -> None:
    root, _ = tiny_report
    before = {p: p.stat().st_mtime_ns for p in (root / "runs").rglob("best.pt")}
    assert main([*ARGS, "--out", str(root / "again"), "--runs", str(root / "runs")]) == 0
    assert {p: p.stat().st_mtime_ns for p in (root / "runs").rglob("best.pt")} == before
    assert "0 of" in (root / "again" / "digits-tiny.md").read_text()


def test_selection_rule_lowest_nll_then_ece_among_ties() -> None:
    a, b, c = Candidate({"x": 1}, 0.500, 0.05), Candidate({"x": 2}, 0.5015, 0.01), Candidate({"x": 3}, 0.49, 0.2)
    assert select([a, b]) is b  # within the tie of 0.002: lower ECE wins
    assert select([a, b, c]) is c  # a clearly lower NLL wins whatever its ECE


def test_job_keys_are_distinct_and_noise_is_only_in_the_noise_arm() -> None:
    jobs = [Job("grid", m, p, 0) for m, grid in GRIDS.items() for p in grid] + [Job("noise", "ce", {}, 0)]
    assert len({j.key for j in jobs}) == len(jobs)
    base = PRESETS["tiny"].config
    assert all(j.config(base).label_noise == 0 for j in jobs[:-1]) and jobs[-1].config(base).label_noise == 0.2


def test_report_only_trains_nothing_and_lists_the_runs_not_run(tiny_report: tuple[Path, str]) -> None:
    root, _ = tiny_report
    before = sorted(p.name for p in (root / "runs" / "tiny").iterdir())
    argv = [*ARGS, "--seeds", "0,1,2", "--report-only", "--out", str(root / "partial"), "--runs", str(root / "runs")]
    assert main(argv) == 0
    assert sorted(p.name for p in (root / "runs" / "tiny").iterdir()) == before
    markdown = (root / "partial" / "digits-tiny.md").read_text()
    assert "**not run**" in markdown and "ce-seed2" in markdown
