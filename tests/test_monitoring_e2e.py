"""End to end: an instrumented app (tests/monitoring_app.py: a multi-agent workflow through the real
openai SDK against the fake provider, costwarden's metrics on a Prometheus endpoint) is scraped by a
real Prometheus, which evaluates the rules, and a real Alertmanager delivers the budget alerts to
webhook receivers in this test. Every PromQL expression in the rules and dashboards is then run against
that Prometheus."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml

from tests.conftest import require_binary
from tests.test_monitoring_rules import render_alertmanager_config

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "alerts" / "costwarden.rules.yml"
DEADLINE = 60.0

# Alert conditions the app does not meet within a test's seconds of history, and why. Their firing and
# silence are proven by promtool (alerts/tests/); here each must still evaluate, and every series it
# names must exist.
CONDITIONS_NOT_MET = {
    "CostwardenAgentSpendAboveUsual": "needs hours of steady spend before a doubling",
    "CostwardenRunawayTokens": "needs a day's typical tokens per call before a jump",
    "CostwardenTelemetrySilent": "fires only after 15 minutes without telemetry",
    "CostwardenBudgetForecastOverrun": (
        "the burn rate is over an hour and the time left is the period's: seconds of spend forecast "
        "a total that depends on the time of day"
    ),
}
GRAFANA_VARIABLES = {
    "$__rate_interval": "10s",
    "$__range": "5m",
    "$__interval": "1s",
    "$budget": ".*",
    "$scope": ".*",
    "$agent": ".*",
}

# Series names (not label names) in an expression: recorded series and costwarden's metrics.
_METRIC_NAME = re.compile(
    r"\b(costwarden:[\w:]+|costwarden_(?:cost|budget_limit|budget_spent|budget_period_end|budget_decisions)\w*"
    r"|gen_ai_client_\w+)"
)

pytestmark = pytest.mark.server("prometheus")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Webhook(BaseHTTPRequestHandler):
    received: list[tuple[str, dict[str, Any]]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, json.loads(body)))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def webhook() -> Iterator[tuple[str, list[tuple[str, dict[str, Any]]]]]:
    received: list[tuple[str, dict[str, Any]]] = []
    handler = type("Handler", (_Webhook,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()


def _wait_ready(url: str, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{what} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{what} not ready at {url} after {DEADLINE}s")


def _start(argv: list[str], ready: str, what: str, log: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(argv, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        _wait_ready(ready, process, what)
    except AssertionError:
        process.kill()
        raise AssertionError(log.read_text()[-3000:]) from None
    return process


def _stop(*processes: subprocess.Popen[bytes]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


class Stack(NamedTuple):
    prometheus: str
    alertmanager: str


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, webhook: tuple[str, list[Any]]) -> Iterator[Stack]:
    """The instrumented app, Alertmanager and Prometheus on loopback; yields their base URLs."""
    prometheus = require_binary("prometheus", package="prometheus")
    alertmanager = require_binary("prometheus-alertmanager", package="prometheus-alertmanager")
    tmp = tmp_path_factory.mktemp("stack")
    hook, _ = webhook
    app_port, am_port, prom_port = _free_port(), _free_port(), _free_port()

    am_config = render_alertmanager_config(
        tmp / "alertmanager.yml",
        COSTWARDEN_ALERT_CHAT_WEBHOOK_URL=f"{hook}/chat",
        COSTWARDEN_ALERT_PAGERDUTY_URL=f"{hook}/page",
        COSTWARDEN_ALERT_GROUP_WAIT="1s",
        COSTWARDEN_ALERT_PAGE_GROUP_WAIT="1s",
    )
    # The rules as shipped, evaluated every second instead of every minute.
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        group["interval"] = "1s"
    (tmp / "costwarden.rules.yml").write_text(yaml.safe_dump(rules))
    (tmp / "prometheus.yml").write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(tmp / "costwarden.rules.yml")],
                "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]},
                "scrape_configs": [
                    {"job_name": "app", "static_configs": [{"targets": [f"127.0.0.1:{app_port}"]}]}
                ],
            }
        )
    )

    app = _start(
        [sys.executable, str(ROOT / "tests" / "monitoring_app.py"), str(app_port)],
        f"http://127.0.0.1:{app_port}/metrics",
        "instrumented app",
        tmp / "app.log",
    )
    am = _start(
        [
            alertmanager,
            f"--config.file={am_config}",
            f"--storage.path={tmp / 'am'}",
            f"--web.listen-address=127.0.0.1:{am_port}",
            "--cluster.listen-address=",
        ],
        f"http://127.0.0.1:{am_port}/-/ready",
        "alertmanager",
        tmp / "am.log",
    )
    prom = _start(
        [
            prometheus,
            f"--config.file={tmp / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        f"http://127.0.0.1:{prom_port}/-/ready",
        "prometheus",
        tmp / "prom.log",
    )
    try:
        yield Stack(f"http://127.0.0.1:{prom_port}", f"http://127.0.0.1:{am_port}")
    finally:
        _stop(prom, am, app)


def _query(base: str, expr: str) -> list[dict[str, Any]]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.load(response)
    assert body["status"] == "success", f"{expr}: {body}"
    return list(body["data"]["result"])


def _wait_for(what: str, check: Any) -> Any:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _notified(received: list[tuple[str, dict[str, Any]]], path: str) -> list[str]:
    """The alert titles (chat) or summaries (page) delivered to one receiver."""
    if path == "/chat":
        return [a["title"] for p, body in received if p == path for a in body["attachments"]]
    return [body["payload"]["summary"] for p, body in received if p == path]


def test_budget_alerts_reach_the_receivers(stack: Stack, webhook: tuple[str, list[Any]]) -> None:
    _, received = webhook
    pages = _wait_for(
        "the daily budget page",
        lambda: [s for s in _notified(received, "/page") if "CostwardenDailyBudgetExceeded" in s],
    )
    assert "all-agents-daily" in pages[0]
    assert any(body["routing_key"] == "test-routing-key" for p, body in received if p == "/page")
    chat = _wait_for(
        "budget alerts in chat",
        lambda: (
            [t for t in _notified(received, "/chat") if "Budget80Percent" in t]
            and _notified(received, "/chat")
        ),
    )
    assert any("CostwardenDailyBudgetExceeded" in t for t in chat)  # pages are posted to chat too
    # researcher-daily passed 80%: 80% inhibits 50%, and info-level 50% never goes to chat anyway.
    assert not any("Budget50Percent" in t for t in chat)


def test_lower_thresholds_are_inhibited_in_alertmanager(stack: Stack) -> None:
    """researcher-daily's 50% is silenced by its 80%; all-agents-daily's 50% and 80% by its 100%, and
    its 100% by the daily page."""
    expected = {
        ("CostwardenBudget50Percent", "researcher-daily"): "suppressed",
        ("CostwardenBudget80Percent", "researcher-daily"): "active",
        ("CostwardenBudget50Percent", "all-agents-daily"): "suppressed",
        ("CostwardenBudget80Percent", "all-agents-daily"): "suppressed",
        ("CostwardenBudgetExhausted", "all-agents-daily"): "suppressed",
        ("CostwardenDailyBudgetExceeded", "all-agents-daily"): "active",
    }

    def states() -> dict[tuple[str, str], str]:
        with urllib.request.urlopen(f"{stack.alertmanager}/api/v2/alerts", timeout=10) as response:
            alerts = json.load(response)
        return {
            (a["labels"]["alertname"], a["labels"].get("costwarden_budget", "")): a["status"]["state"]
            for a in alerts
        }

    def reached() -> bool:
        now = states()
        return all(now.get(key) == state for key, state in expected.items())

    if not _poll_until(reached):
        now = states()
        assert {key: now.get(key) for key in expected} == expected


def test_budget_alerts_are_firing_in_prometheus(stack: Stack) -> None:
    # Alerts with a `for:` of minutes stay pending in a test's seconds: their condition holds.
    expected = {
        ("CostwardenDailyBudgetExceeded", "all-agents-daily", "firing"),
        ("CostwardenBudget80Percent", "researcher-daily", "firing"),
        ("CostwardenWeeklyBudgetDayBurst", "team-weekly", "firing"),
        ("CostwardenVetoSpike", "researcher-daily", "pending"),
        ("CostwardenProviderErrors", "openai", "pending"),
    }

    def alerts() -> set[tuple[str, str, str]]:
        return {
            (m["alertname"], m.get("costwarden_budget") or m.get("gen_ai_provider_name", ""), m["alertstate"])
            for m in (a["metric"] for a in _query(stack.prometheus, "ALERTS"))
        }

    seen = _wait_for("the expected alerts", lambda: (now := alerts()) >= expected and now)
    # The veto keeps the researcher under its limit: 80% fires, 100% never does.
    assert not {(name, budget) for name, budget, _ in seen} & {
        ("CostwardenBudgetExhausted", "researcher-daily"),
        ("CostwardenDailyBudgetExceeded", "researcher-daily"),
    }
    (used,) = _query(stack.prometheus, 'costwarden:budget_used:ratio{costwarden_budget="researcher-daily"}')
    assert 0.8 <= float(used["value"][1]) < 1


def test_per_scope_budgets_have_a_ratio_per_scope(stack: Stack) -> None:
    """With metrics.high_cardinality, each run of the per-run budget is its own series, and the rules
    match each one to the budget's single limit."""
    runs = _wait_for(
        "per-run usage",
        lambda: _query(stack.prometheus, 'costwarden:budget_used:ratio{costwarden_budget="conversation"}'),
    )
    scopes = {r["metric"].get("costwarden_scope") for r in runs}
    assert len(scopes) > 1, scopes
    assert all(s and s.startswith("run_id=run-") for s in scopes), scopes
    # A run scraped while its first call is in flight (or whose calls all failed) has spent nothing yet.
    ratios = {r["metric"]["costwarden_scope"]: float(r["value"][1]) for r in runs}
    assert all(0 <= ratio < 1 for ratio in ratios.values()), ratios
    assert any(ratio > 0 for ratio in ratios.values()), ratios


def test_every_dashboard_variable_has_values(stack: Stack) -> None:
    for path in sorted((ROOT / "dashboards").glob("*.json")):
        for variable in json.loads(path.read_text())["templating"]["list"]:
            if variable.get("type") != "query":
                continue
            query = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"]["query"])
            assert query, variable
            selector, label = _substitute(query.group(1)), query.group(2)
            values = _wait_for(
                f"{path.stem}: values of variable {variable['name']}",
                lambda label=label, selector=selector: _label_values(stack.prometheus, label, match=selector),
            )
            assert all(values), values


def _rule_exprs() -> list[tuple[str, str]]:
    rules = yaml.safe_load(RULES.read_text())
    return [(r.get("record") or r["alert"], r["expr"]) for g in rules["groups"] for r in g["rules"]]


def _dashboard_exprs() -> list[tuple[str, str]]:
    exprs = []
    for path in sorted((ROOT / "dashboards").glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel["targets"]:
                if target["datasource"]["type"] == "prometheus":
                    exprs.append((f"{path.stem}: {panel['title']}", target["expr"]))
        for variable in board["templating"]["list"]:
            if variable.get("type") == "query":
                query = re.fullmatch(r"label_values\((.+), \w+\)", variable["query"]["query"])
                assert query, variable
                exprs.append((f"{path.stem}: variable {variable['name']}", query.group(1)))
    return exprs


def _substitute(expr: str) -> str:
    for name, value in sorted(GRAFANA_VARIABLES.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(name, value)
    assert "$" not in expr, f"unknown Grafana variable in {expr}"
    return expr


def test_every_rule_and_dashboard_expression_returns_data(stack: Stack) -> None:
    prometheus = stack.prometheus
    # Recording rules over recorded series need a few evaluations first.
    _wait_for("recorded series", lambda: _query(prometheus, "costwarden:agent_cost_usd:rate1h_avg7d"))
    _wait_for("forecast", lambda: _query(prometheus, "costwarden:budget_forecast:ratio"))
    names = set(_wait_for("metric names", lambda: _label_values(prometheus, "__name__")))
    empty = []
    for where, expr in _rule_exprs() + _dashboard_exprs():
        expr = _substitute(expr)
        for name in _METRIC_NAME.findall(expr):
            assert name in names, f"{where}: {name} is not a series in Prometheus"
        if where in CONDITIONS_NOT_MET:
            _query(prometheus, expr)  # must still evaluate
            continue
        # Rates over minutes start small: give each expression a few seconds to cross its threshold.
        if not _poll(prometheus, expr):
            empty.append(where)
    assert not empty, f"expressions returned no data: {empty}"


def _poll(base: str, expr: str, seconds: float = 15.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + seconds
    while not (result := _query(base, expr)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return result


def _poll_until(check: Any, seconds: float = DEADLINE) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def _label_values(base: str, label: str, match: str | None = None) -> list[str]:
    query = "?" + urllib.parse.urlencode({"match[]": match}) if match else ""
    with urllib.request.urlopen(f"{base}/api/v1/label/{label}/values{query}", timeout=10) as response:
        return list(json.load(response)["data"])
