"""The processor's instruments: GenAI client metrics, cost, and the budget gauges and decisions.

Attributes are low-cardinality: provider, model, operation, agent and workflow names, budget names,
units and decisions. Run ids, request ids and user ids appear only when ``metrics.high_cardinality``
is turned on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

from costwarden import semconv as sc

__all__ = ["Instruments"]

_DESCRIPTIONS = {
    sc.METRIC_TOKEN_USAGE: "Number of input and output tokens used",
    sc.METRIC_OPERATION_DURATION: "GenAI operation duration",
    sc.METRIC_COST: "Cost of LLM calls in USD",
    sc.METRIC_BUDGET_LIMIT: "A budget's limit, per unit (usd, tokens, calls)",
    sc.METRIC_BUDGET_SPENT: "What a budget has spent in its current period, per unit",
    sc.METRIC_BUDGET_DECISIONS: "Budget decisions taken at admission (alert, downgrade, throttle, veto ...)",
}


class Instruments:
    """Every instrument the processor records, made once from one meter."""

    def __init__(
        self,
        meter_provider: MeterProvider | None,
        observe_limits: Callable[[], Iterable[Observation]],
        observe_spent: Callable[[], Iterable[Observation]],
    ) -> None:
        from costwarden import __version__

        meter = metrics.get_meter("costwarden.processor", __version__, meter_provider=meter_provider)
        units = sc.METRIC_UNITS
        self.token_usage = meter.create_histogram(
            sc.METRIC_TOKEN_USAGE,
            unit=units[sc.METRIC_TOKEN_USAGE],
            description=_DESCRIPTIONS[sc.METRIC_TOKEN_USAGE],
            explicit_bucket_boundaries_advisory=list(sc.TOKEN_USAGE_BUCKETS),
        )
        self.duration = meter.create_histogram(
            sc.METRIC_OPERATION_DURATION,
            unit=units[sc.METRIC_OPERATION_DURATION],
            description=_DESCRIPTIONS[sc.METRIC_OPERATION_DURATION],
            explicit_bucket_boundaries_advisory=list(sc.DURATION_BUCKETS),
        )
        self.cost = meter.create_counter(
            sc.METRIC_COST, unit=units[sc.METRIC_COST], description=_DESCRIPTIONS[sc.METRIC_COST]
        )
        self.decisions = meter.create_counter(
            sc.METRIC_BUDGET_DECISIONS,
            unit=units[sc.METRIC_BUDGET_DECISIONS],
            description=_DESCRIPTIONS[sc.METRIC_BUDGET_DECISIONS],
        )
        meter.create_observable_gauge(
            sc.METRIC_BUDGET_LIMIT,
            callbacks=[_callback(observe_limits)],
            unit=units[sc.METRIC_BUDGET_LIMIT],
            description=_DESCRIPTIONS[sc.METRIC_BUDGET_LIMIT],
        )
        meter.create_observable_gauge(
            sc.METRIC_BUDGET_SPENT,
            callbacks=[_callback(observe_spent)],
            unit=units[sc.METRIC_BUDGET_SPENT],
            description=_DESCRIPTIONS[sc.METRIC_BUDGET_SPENT],
        )

    def decision(self, decision: str, budget: str, threshold: float | None = None) -> None:
        attributes: dict[str, str | float] = {
            sc.METRIC_ATTR_DECISION: decision,
            sc.METRIC_ATTR_BUDGET: budget,
        }
        if threshold is not None:
            attributes[sc.METRIC_ATTR_THRESHOLD] = threshold
        self.decisions.add(1, attributes)

    def call(
        self,
        attributes: dict[str, str],
        input_tokens: int,
        output_tokens: int,
        duration: float | None,
        duration_attributes: dict[str, str],
        cost: Decimal | None,
        cost_attributes: dict[str, str],
    ) -> None:
        """Record one own call's token usage, duration and cost."""
        self.token_usage.record(input_tokens, {**attributes, sc.METRIC_ATTR_TOKEN_TYPE: "input"})
        self.token_usage.record(output_tokens, {**attributes, sc.METRIC_ATTR_TOKEN_TYPE: "output"})
        if duration is not None:
            self.duration.record(duration, duration_attributes)
        if cost is not None:
            self.cost.add(float(cost), cost_attributes)


def _callback(
    observe: Callable[[], Iterable[Observation]],
) -> Callable[[CallbackOptions], Iterable[Observation]]:
    def callback(options: CallbackOptions) -> Iterable[Observation]:
        return list(observe())

    return callback
