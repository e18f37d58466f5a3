"""The processor floor: the least a span processor keeping exact per-call budgets can do.

At admission it keys the call by its attribution, estimates its cost, checks every counter's limit and
reserves the estimate in all of them under one lock, and writes its decision on the span; at span end
it swaps the reservation for the real cost. No thresholds (alerts, downgrade, throttle, refusing new
work), no runaway-loop guard, no periods, no reservation ids or expiry, no prices (a fixed rate), no
metrics, no error handling, no other store than a dict. ``benchmarks/processor.py`` measures it next
to costwarden's processor, so that the table shows how much of costwarden's time an exact processor
must spend anyway. Benchmark use only.
"""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

from costwarden import semconv as sc
from costwarden.processor._spans import attributes_of

__all__ = ["FloorProcessor"]

_KEYS = tuple(sc.ATTRIBUTION_ATTRIBUTES.values())
_INPUT_USD, _OUTPUT_USD = Decimal("0.0000025"), Decimal("0.00001")  # gpt-4o's rates per token
_LIMIT = Decimal(10**9)


class Ticket:
    """One admitted call: what it reserved, and what it cost (filled in by the caller, as costwarden's
    instrumentation reports usage and cost on its admission)."""

    __slots__ = ("cost", "counters", "reserved_tokens", "reserved_usd", "tokens")

    def __init__(self, counters: list[list[Any]], usd: Decimal, tokens: int) -> None:
        self.counters = counters
        self.reserved_usd, self.reserved_tokens = usd, tokens
        self.cost, self.tokens = Decimal(0), 0


class FloorProcessor(SpanProcessor):
    """``counters`` budgets that all apply to every call, each with a dollar limit never reached."""

    def __init__(self, counters: int) -> None:
        self._counters = counters
        self._lock = threading.Lock()
        self._plans: dict[tuple[Any, ...], list[list[Any]]] = {}
        self._tickets: dict[int, Ticket] = {}

    def admit(self, span: Any, model: str, input_tokens: int, max_output_tokens: int) -> Ticket:
        get = attributes_of(span).get  # the SDK's dict, as costwarden reads it
        call = (*(get(key) for key in _KEYS), model)
        plan = self._plans.get(call)
        if plan is None:  # spent and committed (spent + reserved) usd, tokens and calls per counter
            plan = self._plans[call] = [[Decimal(0), 0, 0, Decimal(0), 0, 0] for _ in range(self._counters)]
        usd = input_tokens * _INPUT_USD + max_output_tokens * _OUTPUT_USD
        tokens = input_tokens + max_output_tokens
        with self._lock:
            for counter in plan:
                if counter[3] + usd > _LIMIT:
                    raise RuntimeError("over budget")
            for counter in plan:
                counter[3] += usd
                counter[4] += tokens
                counter[5] += 1
        ticket = self._tickets[span.get_span_context().span_id] = Ticket(plan, usd, tokens)
        span.set_attribute(sc.COSTWARDEN_BUDGET_DECISION, "allow")
        return ticket

    def on_end(self, span: ReadableSpan) -> None:
        """Swap the span's reservation for what it cost."""
        context = span.get_span_context()
        ticket = self._tickets.pop(context.span_id if context is not None else 0, None)
        if ticket is None:
            return
        usd, tokens = ticket.cost, ticket.tokens
        more_usd, more_tokens = usd - ticket.reserved_usd, tokens - ticket.reserved_tokens
        with self._lock:
            for counter in ticket.counters:
                counter[0] += usd
                counter[1] += tokens
                counter[2] += 1
                counter[3] += more_usd
                counter[4] += more_tokens

    def spent_usd(self) -> Decimal:
        """What the first counter of every plan has spent (to check the calls were counted)."""
        return sum((plan[0][0] for plan in self._plans.values()), Decimal(0))
