"""deploy/grafana: every dashboard query parses and runs on a real Prometheus with our rules."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from monitor_procs import PrometheusServer

pytestmark = pytest.mark.e2e  # starts a real Prometheus
REPO = Path(__file__).resolve().parents[3]
GRAFANA = REPO / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "candor-calibration.json"
GRAFANA_INTERVALS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def expressions(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL) for every target, Grafana variables replaced by what they expand to."""
    out = []
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            expr = target["expr"]
            for name, value in GRAFANA_INTERVALS.items():
                expr = expr.replace(name, value)
            out.append((panel["title"], re.sub(r"\$\{?\w+\}?", ".*", expr)))
    return out


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    rules = REPO / "deploy" / "prometheus" / "rules.yml"
    server = PrometheusServer(tmp_path_factory.mktemp("prometheus"), [rules]).start()
    yield server
    server.stop()


def test_dashboard_has_the_panels_the_monitor_needs() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    titles = {p["title"] for p in panels(dashboard)}
    assert {
        "ECE over time vs reference",
        "Reliability diagram (last hour)",
        "Label coverage",
        "Label delay",
        "Drift verdicts",
        "Request rate",
        "Latency",
    } <= titles
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids))
    assert all(t["datasource"]["uid"] == "${datasource}" for p in panels(dashboard) for t in p.get("targets", []))


def test_every_panel_query_runs_on_prometheus(prometheus: PrometheusServer) -> None:
    queries = expressions(json.loads(DASHBOARD.read_text()))
    assert len(queries) >= 20
    failures = []
    for title, expr in queries:
        answer = prometheus.api("query", query=expr)
        if answer.get("status") != "success":
            failures.append(f"{title}: {expr}: {answer.get('error')}")
    assert not failures, "\n".join(failures)


def test_loaded_rules_evaluate_without_errors(prometheus: PrometheusServer) -> None:
    deadline = time.monotonic() + 20
    while True:
        groups = prometheus.api("rules")["data"]["groups"]
        health = [rule["health"] for group in groups for rule in group["rules"]]
        if "unknown" not in health or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(health) == 15 and set(health) == {"ok"}, health


def test_provisioning_points_at_prometheus_and_the_dashboard_folder() -> None:
    datasources = yaml.safe_load((GRAFANA / "provisioning/datasources/candor.yml").read_text())
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus" and source["url"].endswith(":9090")
    providers = yaml.safe_load((GRAFANA / "provisioning/dashboards/candor.yml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file" and provider["options"]["path"].startswith("/var/lib/grafana")
