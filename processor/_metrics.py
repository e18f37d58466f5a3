"""The processor's instruments: GenAI client metrics, cost, and the budget gauges and decisions.

Attributes are low-cardinality: provider, model, operation, agent and workflow names, budget names,
units and decisions. Run ids, request ids and user ids appear only when ``metrics.high_cardinality``
is turned on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any, NamedTuple

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

from costwarden import semconv as sc
from costwarden._fork import on_fork

__all__ = ["CallAttributes", "Instruments", "call_attributes"]

_CACHE_LIMIT = 10_000

_DESCRIPTIONS = {
    sc.METRIC_TOKEN_USAGE: "Number of input and output tokens used",
    sc.METRIC_OPERATION_DURATION: "GenAI operation duration",
    sc.METRIC_COST: "Cost of LLM calls in USD",
    sc.METRIC_BUDGET_LIMIT: "A budget's limit, per unit (usd, tokens, calls)",
    sc.METRIC_BUDGET_SPENT: "What a budget has spent in its current period, per unit",
    sc.METRIC_BUDGET_PERIOD_END: "When a budget's current period ends (UNIX time), in its time zone",
    sc.METRIC_BUDGET_DECISIONS: "Budget decisions taken at admission (alert, downgrade, throttle, veto ...)",
}


class Instruments:
    """Every instrument the processor records, made once from one meter."""

    def __init__(
        self,
        meter_provider: MeterProvider | None,
        observe_limits: Callable[[], Iterable[Observation]],
        observe_spent: Callable[[], Iterable[Observation]],
        observe_period_end: Callable[[], Iterable[Observation]],
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
        # The cost counter is summed here and observed at collection: one dict update per call
        # instead of an SDK measurement (the same cumulative sum reaches every exporter).
        self._cost_lock = threading.Lock()
        self._cost_totals: dict[tuple[tuple[str, str], ...], list[Any]] = {}
        on_fork(after_in_child=self._forked)
        meter.create_observable_counter(
            sc.METRIC_COST,
            callbacks=[self._observe_cost],
            unit=units[sc.METRIC_COST],
            description=_DESCRIPTIONS[sc.METRIC_COST],
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
        meter.create_observable_gauge(
            sc.METRIC_BUDGET_PERIOD_END,
            callbacks=[_callback(observe_period_end)],
            unit=units[sc.METRIC_BUDGET_PERIOD_END],
            description=_DESCRIPTIONS[sc.METRIC_BUDGET_PERIOD_END],
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
        attributes: CallAttributes,
        input_tokens: int,
        output_tokens: int,
        duration: float | None,
        error: Any,
        cost: Decimal | None,
    ) -> None:
        """Record one own call's token usage, duration and cost.

        A failed call with no tokens (the provider refused it, or the connection failed, before any
        usage) records no token usage: the semantic conventions say the metric MUST NOT be reported
        when the counts are not available, and 0/0 would pull tokens-per-call averages down. A failed
        call with tokens (a stream cut early, counted from costwarden's estimate; a billed response the
        SDK failed on) records them."""
        if error is None or input_tokens or output_tokens:
            self.token_usage.record(input_tokens, attributes.input)
            self.token_usage.record(output_tokens, attributes.output)
        if duration is not None:
            genai = attributes.genai
            self.duration.record(duration, genai if error is None else {**genai, sc.ERROR_TYPE: str(error)})
        if cost is not None:
            self.add_cost(cost, attributes)

    def add_cost(self, cost: Decimal, attributes: CallAttributes) -> None:
        """Count ``cost`` (USD) under the call's cost attributes in ``costwarden.cost``."""
        with self._cost_lock:
            total = self._cost_totals.get(attributes.cost_key)
            if total is None:
                if len(self._cost_totals) >= _CACHE_LIMIT:
                    return  # a flood of attribute sets (high-cardinality metrics on): stop growing
                total = self._cost_totals[attributes.cost_key] = [attributes.cost, 0.0]
            total[1] += float(cost)

    def _forked(self) -> None:
        """In a forked child: its cost counter counts its own calls (the parent reports its own)."""
        self._cost_lock = threading.Lock()
        self._cost_totals.clear()

    def _observe_cost(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._cost_lock:
            return [Observation(total, attributes) for attributes, total in self._cost_totals.values()]


class CallAttributes(NamedTuple):
    """The metric attributes of one kind of call, built once: GenAI ones, the same with each token
    type, and the cost counter's."""

    genai: dict[str, str]
    input: dict[str, str]
    output: dict[str, str]
    cost: dict[str, str]
    cost_key: tuple[tuple[str, str], ...]


_cache: dict[tuple[Any, ...], CallAttributes] = {}


def call_attributes(
    call: tuple[Any, ...],
    operation: Any,
    response_model: Any,
    request_model: Any = None,
    *,
    high_cardinality: bool,
) -> CallAttributes:
    """The metric attributes for a call key (see ``_budgets.CallKey``), cached per combination.
    ``request_model`` is the model sent, when a downgrade changed it from the call key's."""
    cache_key = (call, operation, response_model, request_model, high_cardinality)
    cached = _cache.get(cache_key)
    if cached is not None:
        return cached
    model = str(request_model) if request_model is not None else call[5]
    genai = {sc.GEN_AI_PROVIDER_NAME: call[6], sc.GEN_AI_REQUEST_MODEL: model}
    if operation is not None:
        genai[sc.GEN_AI_OPERATION_NAME] = str(operation)
    if response_model is not None:
        genai[sc.GEN_AI_RESPONSE_MODEL] = str(response_model)
    cost = {sc.GEN_AI_PROVIDER_NAME: call[6], sc.GEN_AI_REQUEST_MODEL: model}
    named: tuple[tuple[str, int], ...] = ((sc.GEN_AI_AGENT_NAME, 0), (sc.GEN_AI_WORKFLOW_NAME, 1))
    if high_cardinality:
        named += ((sc.GEN_AI_CONVERSATION_ID, 2), (sc.USER_ID, 3))
    for name, index in named:
        if call[index] is not None:
            cost[name] = str(call[index])
    if len(_cache) > _CACHE_LIMIT:
        _cache.clear()
    entry = _cache[cache_key] = CallAttributes(
        genai,
        {**genai, sc.METRIC_ATTR_TOKEN_TYPE: "input"},
        {**genai, sc.METRIC_ATTR_TOKEN_TYPE: "output"},
        cost,
        tuple(sorted(cost.items())),
    )
    return entry


def _callback(
    observe: Callable[[], Iterable[Observation]],
) -> Callable[[CallbackOptions], Iterable[Observation]]:
    def callback(options: CallbackOptions) -> Iterable[Observation]:
        return list(observe())

    return callback
