"""Admission + settlement per call with 10 budgets and the in-memory store.

Prints, in one run, the median time of a bare span start/end (an SDK tracer provider with no
processor), then the same span with the budget processor admitting and settling it (the usage and
cost reported on the admission, as costwarden's instrumentation does): once with a no-op meter
provider (admission + settlement alone) and once with the SDK's meter provider (plus recording the
token, duration and cost metrics). Each with the difference to the bare span and the ratio.
Run: ``python benchmarks/processor.py [calls]``. No assertions on time.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from decimal import Decimal

from opentelemetry.metrics import MeterProvider, NoOpMeterProvider
from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind

from costwarden import semconv as sc
from costwarden._types import CallRequest, Usage
from costwarden.processor import BudgetSpanProcessor

BUDGETS = [
    {
        "name": "conversation",
        "per": ["run_id"],
        "limit_usd": 1e9,
        "alert_at": [0.5, 0.8],
        "downgrade": {"at": 0.99, "to": {"gpt-4o": "gpt-4o-mini"}},
    },
    {
        "name": "researcher-daily",
        "match": {"agent": "research*"},
        "limit_usd": 1e9,
        "period": "day",
        "throttle": {"at": 0.99, "max_concurrency": 4},
    },
    {
        "name": "all-daily",
        "limit_usd": 1e9,
        "limit_tokens": 10**15,
        "period": "day",
        "refuse_new_work_at": 0.99,
    },
    {"name": "weekly", "limit_usd": 1e9, "period": "week"},
    {"name": "monthly", "limit_usd": 1e9, "period": "month"},
    {"name": "per-user", "per": ["user"], "limit_usd": 1e9, "period": "day"},
    {"name": "per-agent", "per": ["agent"], "limit_calls": 10**12, "period": "hour"},
    {"name": "per-model", "per": ["model"], "limit_tokens": 10**15},
    {"name": "turns", "per": ["run_id"], "limit_calls": 10**12, "max_repeats": 10**9},
    {"name": "writer-only", "match": {"agent": "writer"}, "limit_usd": 1},  # does not apply
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


def _admitted(meter_provider: MeterProvider) -> tuple[Callable[[], None], BudgetSpanProcessor]:
    processor = BudgetSpanProcessor({"budgets": BUDGETS}, meter_provider=meter_provider)
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


def main(argv: list[str]) -> int:
    calls = int(argv[1]) if len(argv) > 1 else 5_000
    bare_tracer = TracerProvider().get_tracer("bench")

    def bare() -> None:
        span = bare_tracer.start_span("chat gpt-4o", kind=SpanKind.CLIENT, attributes=ATTRIBUTES)
        span.set_attribute(sc.GEN_AI_USAGE_INPUT_TOKENS, 1200)
        span.set_attribute(sc.GEN_AI_USAGE_OUTPUT_TOKENS, 150)
        span.set_attribute(sc.GEN_AI_USAGE_COST_AMOUNT, 0.0045)
        span.end()

    lean, processor = _admitted(NoOpMeterProvider())
    metered, _ = _admitted(SdkMeterProvider())
    for warm in (bare, lean, metered):
        for _ in range(2000):
            warm()
    bare_us, lean_us, metered_us = _medians_us([bare, lean, metered], calls)
    applied = sum(1 for b in processor.budgets if b.name != "writer-only")
    print(
        f"{applied} of {len(BUDGETS)} budgets apply to each call; memory store; median of 9 rounds of {calls}"
    )
    print(f"{'':44} {'per call':>10} {'added':>10} {'ratio':>7}")
    print(f"{'bare span start/end':44} {bare_us:8.2f}us {'':>10} {1:6.2f}x")
    for label, value in (
        ("span + admission + settlement", lean_us),
        ("span + admission + settlement + SDK metrics", metered_us),
    ):
        print(f"{label:44} {value:8.2f}us {value - bare_us:8.2f}us {value / bare_us:6.2f}x")
    if not any(row.spent > Decimal(0) for row in processor.status()):
        print("warning: the calls were not counted")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
