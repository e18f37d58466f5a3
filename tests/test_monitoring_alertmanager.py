"""Inhibition in a real Alertmanager (Debian's prometheus-alertmanager) with the shipped config: alerts
are posted to its API and their state read back."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import require_binary
from tests.test_monitoring_e2e import _free_port, _poll_until, _start, _stop
from tests.test_monitoring_rules import render_alertmanager_config

pytestmark = pytest.mark.server("alertmanager")

Key = tuple[str, str, str]  # alertname, budget, scope


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Alertmanager with alerts/alertmanager.tmpl.yml on loopback; yields its base URL."""
    binary = require_binary("prometheus-alertmanager", package="prometheus-alertmanager")
    tmp = tmp_path_factory.mktemp("alertmanager")
    port = _free_port()
    process = _start(
        [
            binary,
            f"--config.file={render_alertmanager_config(tmp / 'alertmanager.yml')}",
            f"--storage.path={tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        f"http://127.0.0.1:{port}/-/ready",
        "alertmanager",
        tmp / "am.log",
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(process)


def _alert(name: str, severity: str, budget: str, scope: str | None, period: str = "run") -> dict[str, Any]:
    labels = {
        "alertname": name,
        "severity": severity,
        "costwarden_budget": budget,
        "costwarden_unit": "usd",
        "costwarden_period": period,
    }
    if scope:
        labels["costwarden_scope"] = scope
    return {"labels": labels, "annotations": {"summary": name}}


def _post(base: str, alerts: list[dict[str, Any]]) -> None:
    request = urllib.request.Request(
        f"{base}/api/v2/alerts",
        data=json.dumps(alerts).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10):
        pass


def _states(base: str) -> dict[Key, str]:
    with urllib.request.urlopen(f"{base}/api/v2/alerts", timeout=10) as response:
        alerts = json.load(response)
    return {
        (
            a["labels"]["alertname"],
            a["labels"]["costwarden_budget"],
            a["labels"].get("costwarden_scope", ""),
        ): a["status"]["state"]
        for a in alerts
    }


def _settle(base: str, expected: dict[Key, str]) -> None:
    """Wait until every alert of ``expected`` is in its state; fail showing the states seen."""
    if not _poll_until(lambda: all(_states(base).get(k) == v for k, v in expected.items()), seconds=15):
        now = _states(base)
        assert {key: now.get(key) for key in expected} == expected


def test_a_scope_inhibits_only_its_own_lower_thresholds(alertmanager: str) -> None:
    """With metrics.high_cardinality each run of a per-run budget is its own scope: run-a at 85% does
    not silence run-b at 55%, and run-c's 100% silences run-c's 80% and 50% only."""
    _post(
        alertmanager,
        [
            _alert("CostwardenBudget80Percent", "warning", "conversation", "run_id=run-a"),
            _alert("CostwardenBudget50Percent", "info", "conversation", "run_id=run-b"),
            _alert("CostwardenBudgetExhausted", "critical", "conversation", "run_id=run-c"),
            _alert("CostwardenBudget80Percent", "warning", "conversation", "run_id=run-c"),
            _alert("CostwardenBudget50Percent", "info", "conversation", "run_id=run-c"),
            _alert("CostwardenBudget80Percent", "warning", "conversation", "run_id=run-d"),
        ],
    )
    _settle(
        alertmanager,
        {
            ("CostwardenBudget80Percent", "conversation", "run_id=run-a"): "active",
            ("CostwardenBudget50Percent", "conversation", "run_id=run-b"): "active",
            ("CostwardenBudgetExhausted", "conversation", "run_id=run-c"): "active",
            ("CostwardenBudget80Percent", "conversation", "run_id=run-c"): "suppressed",
            ("CostwardenBudget50Percent", "conversation", "run_id=run-c"): "suppressed",
            ("CostwardenBudget80Percent", "conversation", "run_id=run-d"): "active",
        },
    )


def test_the_daily_page_inhibits_only_its_own_scope(alertmanager: str) -> None:
    """A daily budget per user: u1's page silences u1's "exhausted", not u2's."""
    _post(
        alertmanager,
        [
            _alert("CostwardenDailyBudgetExceeded", "page", "per-user", "user_id=u1", "day"),
            _alert("CostwardenBudgetExhausted", "critical", "per-user", "user_id=u1", "day"),
            _alert("CostwardenBudgetExhausted", "critical", "per-user", "user_id=u2", "day"),
        ],
    )
    _settle(
        alertmanager,
        {
            ("CostwardenDailyBudgetExceeded", "per-user", "user_id=u1"): "active",
            ("CostwardenBudgetExhausted", "per-user", "user_id=u1"): "suppressed",
            ("CostwardenBudgetExhausted", "per-user", "user_id=u2"): "active",
        },
    )


def test_budgets_without_a_scope_still_inhibit(alertmanager: str) -> None:
    """No costwarden_scope on either alert (high_cardinality off): equal, so 80% silences 50%."""
    _post(
        alertmanager,
        [
            _alert("CostwardenBudget80Percent", "warning", "team-daily", None, "day"),
            _alert("CostwardenBudget50Percent", "info", "team-daily", None, "day"),
        ],
    )
    _settle(
        alertmanager,
        {
            ("CostwardenBudget80Percent", "team-daily", ""): "active",
            ("CostwardenBudget50Percent", "team-daily", ""): "suppressed",
        },
    )


def test_every_inhibit_rule_compares_the_scope() -> None:
    """Statically too, so a new inhibit rule cannot forget it."""
    config = yaml.safe_load(
        (Path(__file__).resolve().parent.parent / "alerts" / "alertmanager.tmpl.yml").read_text()
    )
    assert config["inhibit_rules"]
    for rule in config["inhibit_rules"]:
        assert "costwarden_scope" in rule["equal"], rule
