"""Generate costwarden's Grafana dashboards (the JSON files beside this script).

The dashboards are written here and nowhere else: edit this file, run
``python dashboards/generate.py``, commit both. ``tests/test_monitoring_dashboards.py`` fails when
the JSON is out of date. Datasource uids are the ones deploy/grafana/provisioning/datasources sets up.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

PROM = {"type": "prometheus", "uid": "prometheus"}
TEMPO = {"type": "tempo", "uid": "tempo"}
HERE = Path(__file__).resolve().parent

Panel = dict[str, Any]


def prom(expr: str, legend: str = "", *, instant: bool = False) -> dict[str, Any]:
    """A Prometheus query target."""
    return {
        "datasource": PROM,
        "expr": expr,
        "legendFormat": legend,
        "instant": instant,
        "range": not instant,
        "refId": "A",
    }


def traceql(query: str, limit: int = 20) -> dict[str, Any]:
    """A Tempo TraceQL search target."""
    return {"datasource": TEMPO, "queryType": "traceql", "query": query, "limit": limit, "refId": "A"}


def panel(
    title: str,
    kind: str,
    targets: list[dict[str, Any]],
    *,
    unit: str = "",
    w: int = 12,
    h: int = 8,
    links: list[dict[str, str]] | None = None,
    **extra: Any,
) -> Panel:
    """One panel; ids and positions are filled in by `dashboard`."""
    for ref, target in zip("ABCDEFGH", targets, strict=False):
        target["refId"] = ref
    return {
        "title": title,
        "type": kind,
        "datasource": targets[0]["datasource"],
        "targets": targets,
        "gridPos": {"w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit, "links": links or []}, "overrides": []},
        "options": {},
        **extra,
    }


def variable(name: str, query: str, label: str) -> dict[str, Any]:
    """A multi-value query variable on the Prometheus datasource."""
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": PROM,
        "query": {"query": query, "refId": f"{name}-var"},
        "definition": query,
        "refresh": 2,
        "multi": True,
        "includeAll": True,
        "allValue": ".*",
        "current": {"text": "All", "value": "$__all"},
    }


def dashboard(
    uid: str,
    title: str,
    panels: list[Panel],
    variables: list[dict[str, Any]] | None = None,
    links: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A whole dashboard, laying the panels out left to right, top to bottom."""
    x = y = row_h = 0
    for number, p in enumerate(panels, start=1):
        w, h = p["gridPos"]["w"], p["gridPos"]["h"]
        if x + w > 24:
            x, y, row_h = 0, y + row_h, 0
        p["id"] = number
        p["gridPos"] = {"x": x, "y": y, "w": w, "h": h}
        x, row_h = x + w, max(row_h, h)
    return {
        "uid": uid,
        "title": title,
        "tags": ["costwarden"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": variables or []},
        "links": links or [],
        "panels": panels,
        "annotations": {"list": []},
    }


TO_TRACES = [
    {
        "title": "Traces of ${__field.labels.gen_ai_agent_name}",
        "url": "/d/costwarden-traces?var-agent=${__field.labels.gen_ai_agent_name}&${__url_time_range}",
    }
]
TO_AGENT = [
    {
        "title": "Agent detail",
        "url": "/d/costwarden-agent?var-agent=${__field.labels.gen_ai_agent_name}&${__url_time_range}",
    }
]
TO_BUDGET = [
    {
        "title": "Budget detail",
        "url": "/d/costwarden-budget?var-budget=${__field.labels.costwarden_budget}&${__url_time_range}",
    }
]
NAV = [{"title": "costwarden", "type": "dashboards", "tags": ["costwarden"], "asDropdown": True}]


def spend_stat(title: str, since: str) -> Panel:
    return panel(
        title,
        "stat",
        [prom("sum(increase(costwarden_cost_USD_total[$__range]))", instant=True)],
        unit="currencyUSD",
        w=4,
        h=4,
        timeFrom=since,
        hideTimeOverride=False,
    )


def top(label: str, title: str, selector: str = "", links: list[dict[str, str]] | None = None) -> Panel:
    expr = f"topk(10, sum by ({label}) (increase(costwarden_cost_USD_total{selector}[$__range])))"
    return panel(
        title,
        "bargauge",
        [prom(expr, "{{" + label + "}}", instant=True)],
        unit="currencyUSD",
        w=8,
        links=links,
        options={"orientation": "horizontal", "displayMode": "gradient"},
    )


def cost_overview() -> dict[str, Any]:
    decisions = 'costwarden_decision=~"downgrade|veto|refuse|throttle"'
    panels = [
        spend_stat("Spend today", "now/d"),
        spend_stat("Spend this week", "now/w"),
        spend_stat("Spend this month", "now/M"),
        panel(
            "Spend rate (USD/h)",
            "stat",
            [prom("sum(rate(costwarden_cost_USD_total[$__rate_interval])) * 3600")],
            unit="currencyUSD",
            w=4,
            h=4,
        ),
        panel(
            "Vetoed or refused calls",
            "stat",
            [
                prom(
                    'sum(increase(costwarden_budget_decisions_total{costwarden_decision=~"veto|refuse"}[$__range]))',
                    instant=True,
                )
            ],
            w=4,
            h=4,
        ),
        panel(
            "Downgraded calls",
            "stat",
            [
                prom(
                    'sum(increase(costwarden_budget_decisions_total{costwarden_decision="downgrade"}[$__range]))',
                    instant=True,
                )
            ],
            w=4,
            h=4,
        ),
        panel(
            "Budgets used this period",
            "bargauge",
            [
                prom(
                    "costwarden:budget_used:ratio",
                    "{{costwarden_budget}} ({{costwarden_period}}, {{costwarden_unit}})",
                    instant=True,
                )
            ],
            unit="percentunit",
            w=12,
            links=TO_BUDGET,
            options={"orientation": "horizontal", "displayMode": "gradient"},
            fieldConfig={
                "defaults": {
                    "unit": "percentunit",
                    "min": 0,
                    "max": 1,
                    "links": TO_BUDGET,
                    "thresholds": {
                        "mode": "absolute",
                        "steps": [
                            {"color": "green", "value": None},
                            {"color": "yellow", "value": 0.5},
                            {"color": "orange", "value": 0.8},
                            {"color": "red", "value": 1},
                        ],
                    },
                },
                "overrides": [],
            },
        ),
        panel(
            "Forecast at the end of the period",
            "bargauge",
            [
                prom(
                    "costwarden:budget_forecast:ratio",
                    "{{costwarden_budget}} ({{costwarden_period}})",
                    instant=True,
                )
            ],
            unit="percentunit",
            w=12,
            links=TO_BUDGET,
            options={"orientation": "horizontal", "displayMode": "gradient"},
        ),
        panel(
            "Burn rate per budget (per hour)",
            "timeseries",
            [prom("costwarden:budget_burn:rate1h * 3600", "{{costwarden_budget}} ({{costwarden_unit}})")],
            w=12,
        ),
        panel(
            "Spend rate by provider (USD/h)",
            "timeseries",
            [
                prom(
                    "sum by (gen_ai_provider_name) (rate(costwarden_cost_USD_total[$__rate_interval])) * 3600",
                    "{{gen_ai_provider_name}}",
                )
            ],
            unit="currencyUSD",
            w=12,
        ),
        top("gen_ai_agent_name", "Top agents", links=TO_AGENT + TO_TRACES),
        top("gen_ai_workflow_name", "Top workflows"),
        top("gen_ai_request_model", "Top models"),
        top("gen_ai_provider_name", "Top providers"),
        top("user_id", "Top users (when user.id attribution is on)"),
        panel(
            "Tokens by type (per second)",
            "timeseries",
            [
                prom(
                    "sum by (gen_ai_token_type) (rate(gen_ai_client_token_usage_sum[$__rate_interval]))",
                    "{{gen_ai_token_type}}",
                )
            ],
            w=8,
        ),
        panel(
            "Downgrades, throttles, refusals and vetoes",
            "timeseries",
            [
                prom(
                    f"sum by (costwarden_decision) (rate(costwarden_budget_decisions_total{{{decisions}}}[$__rate_interval])) * 60",
                    "{{costwarden_decision}}",
                )
            ],
            unit="cpm",
            w=12,
        ),
        panel(
            "Cost per run (from traces)",
            "table",
            [
                traceql(
                    "{ span.gen_ai.conversation.id != nil } | by(span.gen_ai.conversation.id)"
                    " | sum(span.gen_ai.usage.cost.amount) > 0"
                )
            ],
            w=12,
        ),
    ]
    return dashboard("costwarden-overview", "costwarden / Cost overview", panels, links=NAV)


def budget_detail() -> dict[str, Any]:
    sel = 'costwarden_budget=~"$budget", costwarden_scope=~"$scope"'
    panels = [
        panel(
            "Used this period",
            "gauge",
            [
                prom(
                    f"costwarden:budget_used:ratio{{{sel}}}",
                    "{{costwarden_budget}} ({{costwarden_unit}})",
                    instant=True,
                )
            ],
            unit="percentunit",
            w=8,
        ),
        panel(
            "Forecast at the end of the period",
            "gauge",
            [
                prom(
                    f"costwarden:budget_forecast:ratio{{{sel}}}",
                    "{{costwarden_budget}} ({{costwarden_unit}})",
                    instant=True,
                )
            ],
            unit="percentunit",
            w=8,
        ),
        panel(
            "Burn rate (per hour)",
            "stat",
            [
                prom(
                    f"costwarden:budget_burn:rate1h{{{sel}}} * 3600",
                    "{{costwarden_budget}} ({{costwarden_unit}})",
                    instant=True,
                )
            ],
            w=8,
        ),
        panel(
            "Spent and limit",
            "timeseries",
            [
                prom(
                    f"costwarden_budget_spent{{{sel}}}", "spent {{costwarden_budget}} ({{costwarden_unit}})"
                ),
                # One limit for every scope of a budget: it carries no costwarden_scope.
                prom(
                    'costwarden_budget_limit{costwarden_budget=~"$budget"}',
                    "limit {{costwarden_budget}} ({{costwarden_unit}})",
                ),
            ],
            w=24,
        ),
        panel(
            "Decisions",
            "timeseries",
            [
                prom(
                    'sum by (costwarden_decision) (rate(costwarden_budget_decisions_total{costwarden_budget=~"$budget"}'
                    "[$__rate_interval])) * 60",
                    "{{costwarden_decision}}",
                )
            ],
            unit="cpm",
            w=12,
        ),
        panel(
            "Threshold alerts",
            "timeseries",
            [
                prom(
                    'sum by (costwarden_threshold) (increase(costwarden_budget_decisions_total{costwarden_budget=~"$budget",'
                    ' costwarden_decision="alert"}[$__rate_interval]))',
                    "{{costwarden_threshold}}",
                )
            ],
            w=12,
        ),
    ]
    variables = [
        variable("budget", "label_values(costwarden_budget_limit, costwarden_budget)", "Budget"),
        variable(
            "scope",
            'label_values(costwarden_budget_spent{costwarden_budget=~"$budget"}, costwarden_scope)',
            "Scope",
        ),
    ]
    return dashboard("costwarden-budget", "costwarden / Budget detail", panels, variables, links=NAV)


def agent_detail() -> dict[str, Any]:
    sel = '{gen_ai_agent_name=~"$agent"}'
    panels = [
        panel(
            "Spend",
            "stat",
            [prom(f"sum(increase(costwarden_cost_USD_total{sel}[$__range]))", instant=True)],
            unit="currencyUSD",
            w=6,
            h=5,
        ),
        panel(
            "Hourly spend vs usual",
            "timeseries",
            [
                prom(
                    'costwarden:agent_cost_usd:rate1h{gen_ai_agent_name=~"$agent"} * 3600',
                    "last hour {{gen_ai_agent_name}}",
                ),
                prom(
                    'costwarden:agent_cost_usd:rate1h_avg7d{gen_ai_agent_name=~"$agent"} * 3600',
                    "usual {{gen_ai_agent_name}}",
                ),
            ],
            unit="currencyUSD",
            w=18,
            h=5,
            links=TO_TRACES,
        ),
        panel(
            "Spend rate by model (USD/h)",
            "timeseries",
            [
                prom(
                    f"sum by (gen_ai_request_model) (rate(costwarden_cost_USD_total{sel}[$__rate_interval])) * 3600",
                    "{{gen_ai_request_model}}",
                )
            ],
            unit="currencyUSD",
            w=12,
            links=TO_TRACES,
        ),
        top("gen_ai_workflow_name", "Workflows", sel),
        top("user_id", "Users (when user.id attribution is on)", sel),
        panel(
            "Expensive calls of this agent",
            "table",
            [traceql('{ span.gen_ai.agent.name =~ "$agent" && span.gen_ai.usage.cost.amount > 0.01 }')],
            w=24,
        ),
    ]
    variables = [variable("agent", "label_values(costwarden_cost_USD_total, gen_ai_agent_name)", "Agent")]
    return dashboard("costwarden-agent", "costwarden / Agent detail", panels, variables, links=NAV)


def traces() -> dict[str, Any]:
    agent = 'span.gen_ai.agent.name =~ "$agent"'
    panels = [
        panel(
            "Most expensive traces",
            "table",
            [
                traceql(
                    f"{{ {agent} && span.gen_ai.usage.cost.amount != nil }} | sum(span.gen_ai.usage.cost.amount) > 0.05"
                )
            ],
            w=24,
        ),
        panel(
            "Vetoed calls",
            "table",
            [traceql(f'{{ {agent} && span.costwarden.budget.decision = "veto" }}')],
            w=12,
        ),
        panel(
            "Downgraded calls",
            "table",
            [traceql(f'{{ {agent} && span.costwarden.budget.decision = "downgrade" }}')],
            w=12,
        ),
        panel(
            "Failed GenAI calls",
            "table",
            [traceql(f"{{ {agent} && span.gen_ai.operation.name != nil && status = error }}")],
            w=12,
        ),
        panel(
            "Calls with no known price",
            "table",
            [traceql(f"{{ {agent} && span.costwarden.cost.unknown_model = true }}")],
            w=12,
        ),
    ]
    variables = [
        {
            "name": "agent",
            "label": "Agent (regex)",
            "type": "textbox",
            "query": ".*",
            "current": {"text": ".*", "value": ".*"},
        }
    ]
    return dashboard("costwarden-traces", "costwarden / Traces", panels, variables, links=NAV)


DASHBOARDS = {
    "cost-overview.json": cost_overview,
    "budget-detail.json": budget_detail,
    "agent-detail.json": agent_detail,
    "traces.json": traces,
}


def render() -> dict[str, str]:
    """Every dashboard file name and its JSON text."""
    return {name: json.dumps(build(), indent=2, sort_keys=True) + "\n" for name, build in DASHBOARDS.items()}


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else HERE
    for name, text in render().items():
        (out / name).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
