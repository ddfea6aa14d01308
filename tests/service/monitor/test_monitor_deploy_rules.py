"""deploy/prometheus: promtool checks the config and rules and runs the rules' unit tests."""

from __future__ import annotations

from pathlib import Path

from monitor_procs import promtool

DEPLOY = Path(__file__).resolve().parents[3] / "deploy" / "prometheus"


def test_prometheus_config_and_its_rule_files_are_valid() -> None:
    result = promtool("check", "config", str(DEPLOY / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_are_valid() -> None:
    result = promtool("check", "rules", str(DEPLOY / "rules.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 15 rules found" in result.stdout


def test_rules_unit_tests_pass() -> None:
    """Hand-computed fleet ECE and reliability bins; each alert fires and stays quiet on cue."""
    result = promtool("test", "rules", str(DEPLOY / "rules_test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_drift_alert_points_to_the_recalibration_action() -> None:
    """The drift alerts name the fix: the recalibrate endpoint and command (README, Recalibration)."""
    import yaml

    rules = yaml.safe_load((DEPLOY / "rules.yml").read_text())
    alerts = [r for group in rules["groups"] for r in group["rules"] if "alert" in r]
    drift = [a for a in alerts if "Drift" in a["alert"]]
    assert [a["alert"] for a in drift] == ["CandorCalibrationDrift", "CandorCalibrationDriftVerdict"]
    for alert in drift:
        action = alert["annotations"]["action"]
        assert "/versions/{{ $labels.version }}/recalibrate" in action
        assert "candor recalibrate {{ $labels.model }}/{{ $labels.version }}" in action


def test_the_class_mix_alert_points_to_prior_shift_recalibration() -> None:
    """The label-free class-mix alert names the fix for a label shift: prior-shift, no labels needed."""
    import yaml

    rules = yaml.safe_load((DEPLOY / "rules.yml").read_text())
    alerts = {r["alert"]: r for group in rules["groups"] for r in group["rules"] if "alert" in r}
    alert = alerts["CandorClassMixShift"]
    assert "candor_calibration_class_mix_shift_detected" in alert["expr"]
    action = alert["annotations"]["action"]
    assert "/v2/repository/models/{{ $labels.model }}/versions/{{ $labels.version }}/recalibrate" in action
    assert '"method": "prior-shift"' in action and "--method prior-shift" in action
