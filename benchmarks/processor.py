"""Admission + settlement per call with 10 budgets and the in-memory store.

Prints, in one run, the median time of a bare span start/end (an SDK tracer provider with no
processor), then the same span admitted and settled: by the processor floor (``_processor_floor.py``,
the least an exact per-call budget processor does, 9 counters), and by costwarden's budget processor
(the usage and cost reported on the admission, as costwarden's instrumentation does) with the ten
budgets stripped to their limits, the ten budgets as configured, and a per-agent set, each with a
no-op meter provider (admission + settlement alone); then once with the SDK's meter provider (plus
recording the token, duration and cost metrics). Each with the difference to the bare span and the
ratio.
Run: ``python benchmarks/processor.py [calls]``. No assertions on time.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import _common as common
from _processor_floor import FloorProcessor
from opentelemetry.metrics import MeterProvider, NoOpMeterProvider
from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind

from costwarden import semconv as sc
from costwarden._types import CallRequest, Usage
from costwarden.processor import BudgetSpanProcessor

# A more usual shape: one budget per agent (only the caller's applies), a per-run cap and a daily total.
BUDGETS_PER_AGENT = [
    *(
        {"name": f"agent-{agent}", "match": {"agent": agent}, "limit_usd": 1e9, "period": "day"}
        for agent in ("planner", "researcher", "writer", "critic", "coder", "tester", "summarizer", "router")
    ),
    {"name": "per-run", "per": ["run_id"], "limit_usd": 1e9, "alert_at": [0.5, 0.8]},
    {"name": "all-daily", "limit_usd": 1e9, "period": "day", "downgrade": {"at": 0.99, "to": "gpt-4o-mini"}},
]
# The ten budgets with their limits only: no thresholds, runaway-loop guard or throttle.
LIMITS_ONLY = [
    {
        k: v
        for k, v in b.items()
        if k in ("name", "per", "match", "limit_usd", "limit_tokens", "limit_calls", "period")
    }
    for b in common.BUDGETS
]
ATTRIBUTES = {
    sc.GEN_AI_OPERATION_NAME: "chat",
    sc.GEN_AI_PROVIDER_NAME: "openai",
    sc.GEN_AI_REQUEST_MODEL: "gpt-4o",
    sc.GEN_AI_AGENT_NAME: "researcher",
    sc.GEN_AI_WORKFLOW_NAME: "brief",
    sc.GEN_AI_CONVERSATION_ID: "run-1",
    sc.USER_ID: "u-1",
}
REQUEST = CallRequest("openai", "chat", "gpt-4o", 1200, max_output_tokens=200)
USAGE = Usage(input_tokens=1200, output_tokens=150)
COST = Decimal("0.0045")


def _medians_us(runs: list[Callable[[], None]], calls: int, rounds: int = 9) -> list[float]:
    """Median per-call time of each run; rounds interleave the runs so drift hits them alike."""
    samples: list[list[float]] = [[] for _ in runs]
    for _ in range(rounds):
        for run, out in zip(runs, samples, strict=True):
            start = time.perf_counter_ns()
            for _ in range(calls):
                run()
            out.append((time.perf_counter_ns() - start) / calls / 1000)
    return [statistics.median(s) for s in samples]


def _admitted(
    meter_provider: MeterProvider, budgets: list[dict[str, Any]] = common.BUDGETS
) -> tuple[Callable[[], None], BudgetSpanProcessor]:
    processor = BudgetSpanProcessor({"budgets": budgets}, meter_provider=meter_provider)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("costwarden.bench")

    def call() -> None:
        span = tracer.start_span("chat gpt-4o", kind=SpanKind.CLIENT, attributes=ATTRIBUTES)
        admission = processor.admit(span, REQUEST)
        span.set_attribute(sc.GEN_AI_USAGE_INPUT_TOKENS, 1200)
        span.set_attribute(sc.GEN_AI_USAGE_OUTPUT_TOKENS, 150)
        span.set_attribute(sc.GEN_AI_USAGE_COST_AMOUNT, 0.0045)
        admission.usage, admission.cost = USAGE, COST  # as costwarden's instrumentation reports them
        span.end()

    return call, processor


def _floor() -> tuple[Callable[[], None], FloorProcessor]:
    processor = FloorProcessor(9)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("floor.bench")

    def call() -> None:
        span = tracer.start_span("chat gpt-4o", kind=SpanKind.CLIENT, attributes=ATTRIBUTES)
        ticket = processor.admit(span, "gpt-4o", REQUEST.estimated_input_tokens, 200)
        span.set_attribute(sc.GEN_AI_USAGE_INPUT_TOKENS, 1200)
        span.set_attribute(sc.GEN_AI_USAGE_OUTPUT_TOKENS, 150)
        span.set_attribute(sc.GEN_AI_USAGE_COST_AMOUNT, 0.0045)
        ticket.cost, ticket.tokens = COST, USAGE.input_tokens + USAGE.output_tokens
        span.end()

    return call, processor


def main(argv: list[str]) -> int:
    calls = int(argv[1]) if len(argv) > 1 else 5_000
    bare_tracer = TracerProvider().get_tracer("bench")

    def bare() -> None:
        span = bare_tracer.start_span("chat gpt-4o", kind=SpanKind.CLIENT, attributes=ATTRIBUTES)
        span.set_attribute(sc.GEN_AI_USAGE_INPUT_TOKENS, 1200)
        span.set_attribute(sc.GEN_AI_USAGE_OUTPUT_TOKENS, 150)
        span.set_attribute(sc.GEN_AI_USAGE_COST_AMOUNT, 0.0045)
        span.end()

    floor, floor_processor = _floor()
    limits_only, limits_processor = _admitted(NoOpMeterProvider(), LIMITS_ONLY)
    lean, processor = _admitted(NoOpMeterProvider())
    per_agent, per_agent_processor = _admitted(NoOpMeterProvider(), BUDGETS_PER_AGENT)
    metered, _ = _admitted(SdkMeterProvider())
    runs = [bare, floor, limits_only, lean, per_agent, metered]
    for warm in runs:
        for _ in range(2000):
            warm()
    bare_us, *others = _medians_us(runs, calls)
    print(f"10 budgets configured; memory store; median of 9 rounds of {calls} calls")
    print(f"{'':62} {'per call':>10} {'added':>10} {'added/bare':>11}")
    print(f"{'bare span start/end':62} {bare_us:8.2f}us")
    labels = (
        "floor: the least exact processor, 9 counters with limits only",
        "costwarden, 9 of 10 budgets apply, their limits only",
        "costwarden, 9 of 10 budgets apply",
        "costwarden, 3 of 10 apply (per agent)",
        "costwarden, 9 of 10 apply, + the SDK metrics",
    )
    for label, value in zip(labels, others, strict=True):
        added = value - bare_us
        print(f"{label:62} {value:8.2f}us {added:8.2f}us {added / bare_us:10.2f}x")
    counted = [floor_processor.spent_usd() > 0] + [
        any(row.spent > Decimal(0) for row in p.status())
        for p in (limits_processor, processor, per_agent_processor)
    ]
    if not all(counted):
        print("warning: the calls were not counted")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
