"""The Prometheus configuration and alert rules, checked and unit-tested with promtool."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import DEPLOY, require_tool
from tests.e2e.metric_names import exported_metric_names, metric_names_in

pytestmark = pytest.mark.e2e

PROMETHEUS_DIR = DEPLOY / "prometheus"
REQUIRED_ALERTS = {
    "MmDaemonDown",
    "MmMarketDown",
    "MmMarketStale",
    "MmNoLiveQuotes",
    "MmRiskHalted",
    "MmNetExposureNearLimit",
    "MmReconnectStorm",
    "MmResyncStorm",
    "MmPnlDrawdown",
    "MmPortfolioDrawdown",
    "MmTickToQuoteP99High",
    "MmJournalFailing",
    "MmRestartPositionMismatch",
    "MmQuotingPausedLong",
    "MmHaltedByOperator",
}


def _promtool(*args: str, cwd: Path = PROMETHEUS_DIR) -> subprocess.CompletedProcess[str]:
    promtool = require_tool("promtool")
    return subprocess.run(
        [promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def _rules() -> list[dict[str, object]]:
    data = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text(encoding="utf-8"))
    return [rule for group in data["groups"] for rule in group["rules"]]


def test_prometheus_config_passes_promtool_check_config() -> None:
    result = _promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_pass_promtool_check_rules() -> None:
    result = _promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rule_unit_tests_pass() -> None:
    result = _promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_catch_a_wrong_expectation(tmp_path: Path) -> None:
    # The rule tests compare labels and annotations exactly: a changed expectation fails.
    (tmp_path / "alerts.yml").write_text(
        (PROMETHEUS_DIR / "alerts.yml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    tests = (PROMETHEUS_DIR / "alerts_test.yml").read_text(encoding="utf-8")
    broken = tests.replace("severity: page, job: mm-daemon", "severity: warning, job: mm-daemon")
    assert broken != tests
    (tmp_path / "alerts_test.yml").write_text(broken, encoding="utf-8")
    result = _promtool("test", "rules", "alerts_test.yml", cwd=tmp_path)
    assert result.returncode != 0


def test_every_required_alert_is_defined() -> None:
    names = {str(rule["alert"]) for rule in _rules()}
    assert names >= REQUIRED_ALERTS, REQUIRED_ALERTS - names


def test_every_alert_has_a_severity_and_a_summary() -> None:
    for rule in _rules():
        labels = rule.get("labels")
        annotations = rule.get("annotations")
        assert isinstance(labels, dict), rule["alert"]
        assert isinstance(annotations, dict), rule["alert"]
        assert labels.get("severity") in {"page", "warning"}, rule["alert"]
        assert annotations.get("summary"), rule["alert"]


def test_every_alert_is_exercised_firing_by_the_rule_unit_tests() -> None:
    data = yaml.safe_load((PROMETHEUS_DIR / "alerts_test.yml").read_text(encoding="utf-8"))
    fired = {
        case["alertname"]
        for test in data["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    silent = {
        case["alertname"]
        for test in data["tests"]
        for case in test.get("alert_rule_test", [])
        if not case.get("exp_alerts")
    }
    names = {str(rule["alert"]) for rule in _rules()}
    assert names <= fired, f"never shown firing: {names - fired}"
    assert names <= silent, f"never shown silent: {names - silent}"


def test_alert_rules_use_only_metrics_the_daemon_exports() -> None:
    exported = exported_metric_names()
    used = set()
    for rule in _rules():
        used |= metric_names_in(str(rule["expr"]))
    assert used, "no metric found in the rules"
    assert used <= exported | {"up"}, f"not exported by the daemon: {used - exported - {'up'}}"


def test_rule_thresholds_are_documented() -> None:
    doc = (DEPLOY.parent / "docs" / "observability.md").read_text(encoding="utf-8")
    for rule in _rules():
        assert re.search(rf"\b{rule['alert']}\b", doc), f"{rule['alert']} not in the docs"
