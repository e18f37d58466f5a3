"""A stand-in app for the monitoring tests: exposes costwarden's metrics on a Prometheus endpoint.

It records what an instrumented multi-agent workflow would (token and duration histograms, the cost
counter, budget gauges and decisions) with the OpenTelemetry SDK and opentelemetry-exporter-prometheus,
under the names and units in ``costwarden.semconv``. Run: ``python tests/monitoring_target.py PORT``.
It serves until killed, adding a few calls every ``TICK`` seconds so rates are never zero.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from prometheus_client import start_http_server

from costwarden import semconv as sc

TICK = 0.5
START = time.monotonic()

# (budget, unit, period, limit, spent at start, spent per second)
BUDGETS = [
    ("all-agents-daily", "usd", "day", 200.0, 210.0, 0.5),
    ("researcher-daily", "usd", "day", 50.0, 42.0, 0.01),
    ("team-weekly", "usd", "week", 500.0, 120.0, 0.2),
    ("all-agents-daily-tokens", "tokens", "day", 5_000_000.0, 1_000_000.0, 100.0),
    ("monthly", "usd", "month", 3000.0, 400.0, 0.1),
]
# (agent, workflow, provider, model, input tokens, output tokens, cost USD, user)
CALLS = [
    ("researcher", "report", "openai", "gpt-4o", 3000, 500, 0.0125, "u-alice"),
    ("writer", "report", "openai", "gpt-4o-mini", 1500, 800, 0.0007, "u-bob"),
    ("critic", "review", "anthropic", "claude-3-5-haiku", 2000, 300, 0.0028, "u-alice"),
]


def _budget_observer(field: int):
    def observe(_options: CallbackOptions) -> Iterable[Observation]:
        elapsed = time.monotonic() - START
        for name, unit, period, limit, spent, per_second in BUDGETS:
            value = limit if field == 0 else spent + per_second * elapsed
            yield Observation(
                value,
                {sc.METRIC_ATTR_BUDGET: name, sc.METRIC_ATTR_UNIT: unit, sc.METRIC_ATTR_PERIOD: period},
            )

    return observe


def main(argv: list[str]) -> int:
    port = int(argv[0])
    views = [
        View(instrument_name=sc.METRIC_TOKEN_USAGE,
             aggregation=ExplicitBucketHistogramAggregation(sc.TOKEN_USAGE_BUCKETS)),
        View(instrument_name=sc.METRIC_OPERATION_DURATION,
             aggregation=ExplicitBucketHistogramAggregation(sc.DURATION_BUCKETS)),
    ]  # fmt: skip
    provider = MeterProvider(metric_readers=[PrometheusMetricReader()], views=views)
    meter = provider.get_meter("costwarden.processor")
    tokens = meter.create_histogram(sc.METRIC_TOKEN_USAGE, unit=sc.METRIC_UNITS[sc.METRIC_TOKEN_USAGE])
    duration = meter.create_histogram(
        sc.METRIC_OPERATION_DURATION, unit=sc.METRIC_UNITS[sc.METRIC_OPERATION_DURATION]
    )
    cost = meter.create_counter(sc.METRIC_COST, unit=sc.METRIC_UNITS[sc.METRIC_COST])
    decisions = meter.create_counter(
        sc.METRIC_BUDGET_DECISIONS, unit=sc.METRIC_UNITS[sc.METRIC_BUDGET_DECISIONS]
    )
    meter.create_observable_gauge(
        sc.METRIC_BUDGET_LIMIT, [_budget_observer(0)], unit=sc.METRIC_UNITS[sc.METRIC_BUDGET_LIMIT]
    )
    meter.create_observable_gauge(
        sc.METRIC_BUDGET_SPENT, [_budget_observer(1)], unit=sc.METRIC_UNITS[sc.METRIC_BUDGET_SPENT]
    )
    start_http_server(port, addr="127.0.0.1")
    tick = 0
    while True:
        for agent, workflow, provider_name, model, n_in, n_out, usd, user in CALLS:
            call = {
                sc.GEN_AI_PROVIDER_NAME: provider_name,
                sc.GEN_AI_REQUEST_MODEL: model,
                sc.GEN_AI_RESPONSE_MODEL: model,
                sc.GEN_AI_OPERATION_NAME: "chat",
            }
            tokens.record(n_in, {**call, sc.METRIC_ATTR_TOKEN_TYPE: "input"})
            tokens.record(n_out, {**call, sc.METRIC_ATTR_TOKEN_TYPE: "output"})
            failed = provider_name == "anthropic" and tick % 3 == 0
            duration.record(0.8, {**call, sc.ERROR_TYPE: "RateLimitError"} if failed else call)
            # user.id on the cost counter is opt-in; this stand-in has it turned on.
            cost.add(usd, {**call, sc.GEN_AI_AGENT_NAME: agent, sc.GEN_AI_WORKFLOW_NAME: workflow,
                           sc.USER_ID: user})  # fmt: skip
        decisions.add(10, {sc.METRIC_ATTR_BUDGET: "all-agents-daily", sc.METRIC_ATTR_DECISION: "veto"})
        decisions.add(1, {sc.METRIC_ATTR_BUDGET: "researcher-daily", sc.METRIC_ATTR_DECISION: "downgrade"})
        decisions.add(1, {sc.METRIC_ATTR_BUDGET: "researcher-daily", sc.METRIC_ATTR_DECISION: "alert",
                          sc.METRIC_ATTR_THRESHOLD: "0.8"})  # fmt: skip
        tick += 1
        time.sleep(TICK)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
