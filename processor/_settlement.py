"""Settlement: when a span ends, swap its reservation for what it used, fire the thresholds the new
totals reach, and record the cost, token and duration metrics. Foreign LLM spans (other
instrumentations') are priced and counted here too."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

from costwarden import semconv as sc
from costwarden._types import Usage
from costwarden.processor._admission import price_book
from costwarden.processor._alerts import Alerts
from costwarden.processor._budgets import Plan
from costwarden.processor._core import Core, Ticket, call_key
from costwarden.processor._metrics import CallAttributes, call_attributes
from costwarden.processor._spans import (
    SpanUsage,
    attributes_of,
    is_llm_operation,
    model_of,
    provider_of,
    read_usage,
)
from costwarden.stores._base import Amounts, Committed, StoreUnavailable

__all__ = ["Settler"]

_ZERO = Decimal(0)


class Settler:
    """Settles own spans' tickets and counts foreign LLM spans."""

    def __init__(self, core: Core, alerts: Alerts) -> None:
        self._core = core
        self._store = core.store
        self._instruments = core.instruments
        self._alerts = alerts
        self._high_cardinality = core.config.metrics.high_cardinality

    def settle(self, span: ReadableSpan, ticket: Ticket) -> None:
        """Swap ``ticket``'s reservation for what the call used: as the instrumentation reported it
        on the admission, or else as ``span`` states it."""
        attrs = attributes_of(span)
        reported = ticket.admission
        usage: SpanUsage | Usage
        if reported is not None and reported.usage is not None:
            usage, cost = reported.usage, reported.cost
        else:
            usage = read_usage(attrs)
            cost = usage.cost
            if cost is None and ticket.foreign:
                cost = self._price(attrs, usage)
        ticket.released = True
        actual = Amounts(cost or _ZERO, usage.input_tokens + usage.output_tokens, 1)
        try:
            spent = self._settle_store(ticket.rid or "", ticket.keys, actual) if ticket.keys else []
        finally:
            for gate in ticket.gates:
                gate.release()
        if ticket.plan is not None:
            self._check_alerts(ticket.plan, spent)
        if not ticket.foreign:
            self._record(span, attrs, ticket, usage, cost)
        elif cost is not None:
            self._record_cost(attrs, ticket.call, cost)

    def count_foreign(self, span: ReadableSpan, *, shadowed: bool) -> None:
        """Count an ended LLM span from another instrumentation (not one of ours seen from outside)."""
        attrs = attributes_of(span)
        parent = span.parent
        if (
            shadowed
            or (parent is not None and parent.span_id in self._core.tickets)
            or not is_llm_operation(attrs)
        ):
            return  # the same call as one of ours, or not an LLM call (an agent or tool span)
        model = model_of(attrs)
        if model is None:
            return
        usage = read_usage(attrs)
        cost = usage.cost if usage.cost is not None else self._price(attrs, usage)
        call = call_key(attrs, model, provider_of(attrs))
        plan = self._core.plan(call)
        if plan.keys:
            actual = Amounts(cost or _ZERO, usage.input_tokens + usage.output_tokens, 1)
            self._check_alerts(plan, self._settle_store("", plan.keys, actual))
        if cost is not None:
            self._record_cost(attrs, call, cost)

    def _settle_store(self, rid: str, keys: Any, actual: Amounts) -> list[Committed]:
        """The store's settle; ``[]`` (nothing to check alerts on) when it cannot be reached."""
        try:
            return self._store.settle(rid, keys, actual)
        except StoreUnavailable as exc:
            self._store_down(exc)
            return []

    def _check_alerts(self, plan: Plan, spent: list[Committed]) -> None:
        """Fire the thresholds the settled totals reached (none known while the store is down: a
        ResilientStore queues the settlement and answers ``[]``)."""
        if not spent or not plan.alert_slots:
            return
        try:
            for slot in plan.alert_slots:
                self._alerts.check(plan, slot, spent[slot], None)
        except StoreUnavailable as exc:
            self._store_down(exc)

    def _store_down(self, exc: StoreUnavailable) -> None:
        self._core.warn_once(
            "store-settle",
            f"costwarden: budget store unreachable ({exc}); a settlement or an alert was not recorded",
        )

    def _price(self, attrs: Any, usage: SpanUsage) -> Decimal | None:
        model = model_of(attrs)
        if model is None:
            return None
        book = price_book()
        asked = attrs.get(sc.GEN_AI_REQUEST_MODEL)
        if isinstance(asked, str) and book.overrides(asked) and not book.overrides(model):
            model = asked  # prices: overrides the model asked for; the response names a dated version
        provider = provider_of(attrs)
        priced = book.cost(
            model,
            Usage(
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cache_read_tokens=usage.cache_read_tokens,
                cache_write_tokens=usage.cache_write_tokens,
                reasoning_tokens=usage.reasoning_tokens,
            ),
            provider,
        )
        if priced is None:
            self._core.warn_once(
                f"price:{provider}:{model}",
                f"costwarden: no price known for model {model!r} ({provider}); "
                "counted in tokens and calls only",
            )
            return None
        return Decimal(priced.amount)

    def _attributes(self, attrs: Any, call: Any, plan: Plan | None = None) -> CallAttributes:
        operation, response_model = attrs.get(sc.GEN_AI_OPERATION_NAME), attrs.get(sc.GEN_AI_RESPONSE_MODEL)
        # The model sent, which a downgrade may have changed since admission keyed the call.
        request_model = attrs.get(sc.GEN_AI_REQUEST_MODEL)
        if plan is None:
            return call_attributes(
                call, operation, response_model, request_model, high_cardinality=self._high_cardinality
            )
        cache = plan.metric_attributes
        key = (operation, response_model, request_model)
        found = cache.get(key)
        if found is None:
            found = cache[key] = call_attributes(
                call, operation, response_model, request_model, high_cardinality=self._high_cardinality
            )
        return found

    def _record(
        self, span: ReadableSpan, attrs: Any, ticket: Ticket, usage: SpanUsage | Usage, cost: Decimal | None
    ) -> None:
        start, end = span.start_time, span.end_time
        duration = (end - start) / 1e9 if start is not None and end is not None else None
        self._instruments.call(
            self._attributes(attrs, ticket.call, ticket.plan),
            usage.input_tokens,
            usage.output_tokens,
            duration,
            attrs.get(sc.ERROR_TYPE),
            cost,
        )

    def _record_cost(self, attrs: Any, call: Any, cost: Decimal) -> None:
        self._instruments.add_cost(cost, self._attributes(attrs, call))
