"""What every configuration in benchmarks/overhead.py shares: telemetry plumbing, the prompt, the client.

Each configuration runs in its own process (instrumentations must not see each other); this module
is imported by each of them and sets up the same things for all.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from costwarden.testing import make_text

MODEL = "gpt-4o"
MAX_TOKENS = 64
# ~4.7 KB of prompt: a system message and a user message, as an agent's turn would carry.
SYSTEM = make_text(150, seed=1)
USER = make_text(1025, seed=2)
MESSAGES = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}]
PROMPT_BYTES = len(SYSTEM.encode()) + len(USER.encode())
# The same prompt for the anthropic SDK, whose system prompt is a parameter of its own.
ANTHROPIC_MODEL = "claude-sonnet-4-5"
ANTHROPIC_MESSAGES = [{"role": "user", "content": USER}]

# Every name a span may carry output tokens under (current semconv, older semconv, OpenLLMetry's own).
OUTPUT_TOKEN_KEYS = (
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
    "llm.usage.completion_tokens",
)

# Ten budgets, none of which is ever hit (the cost of admitting and settling, not of acting); nine apply
# to a call by agent `researcher` (benchmarks/overhead.py, benchmarks/processor.py), `writer-only` does not.
BUDGETS: list[dict[str, Any]] = [
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
    {"name": "writer-only", "match": {"agent": "writer"}, "limit_usd": 1e9},
]


class DropExporter(SpanExporter):
    """Drops every span (what all configurations export to), unless told to keep them for a check."""

    def __init__(self) -> None:
        self.keep = False
        self.kept: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self.keep:
            self.kept.extend(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


class Telemetry:
    """The SDK tracer provider (batch processor + dropping exporter) and meter provider (in-memory
    reader) every configuration uses, installed as the global providers."""

    def __init__(self) -> None:
        self.exporter = DropExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(BatchSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        trace.set_tracer_provider(self.tracer_provider)
        metrics.set_meter_provider(self.meter_provider)
        _install_logger_provider()

    def flush(self) -> None:
        self.tracer_provider.force_flush()

    def spans_during(self, func: Any) -> list[ReadableSpan]:
        """The spans ended while ``func()`` ran."""
        self.flush()
        self.exporter.kept.clear()
        self.exporter.keep = True
        try:
            func()
            self.flush()
        finally:
            self.exporter.keep = False
        return list(self.exporter.kept)


def _install_logger_provider() -> None:
    """An SDK logger provider with no processor, so peers that emit events reuse it and send nothing."""
    try:
        from opentelemetry._logs import set_logger_provider
        from opentelemetry.sdk._logs import LoggerProvider
    except ImportError:  # pragma: no cover - old SDKs
        return
    set_logger_provider(LoggerProvider())


def output_tokens(spans: Sequence[ReadableSpan]) -> int | None:
    """The output-token count the spans report, if any does."""
    for span in spans:
        for key in OUTPUT_TOKEN_KEYS:
            value = (span.attributes or {}).get(key)
            if value is not None:
                return int(value)  # type: ignore[arg-type]
    return None


def read_rss_kib() -> int:
    """This process's resident set size in KiB, from /proc/self/status (0 where there is none)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def pin_to_cpu(cpu: int) -> None:
    """Keep this process on one CPU (client and server on different cores), if ``$BENCH_PIN`` is 1."""
    if os.environ.get("BENCH_PIN") == "1" and hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {cpu % (os.cpu_count() or 1)})
