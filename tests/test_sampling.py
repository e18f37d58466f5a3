"""Budgets, cost metrics and the ledger count every LLM call, whatever the trace sampler keeps: the
calls it drops are recorded (``RECORD_ONLY``), not exported."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased, Sampler, TraceIdRatioBased
from opentelemetry.trace import SpanKind, use_span

from costwarden import BudgetExceeded, configure
from costwarden import semconv as sc
from costwarden.processor import RecordLLMCalls
from tests._telemetry import stop_telemetry

DROPPING: dict[str, Sampler] = {
    "always_off": ALWAYS_OFF,
    "parentbased_traceidratio_0": ParentBased(TraceIdRatioBased(0.0)),
}
MESSAGES = [{"role": "user", "content": "Draft the release notes."}]


@dataclass
class Dropped:
    provider: TracerProvider
    exporter: InMemorySpanExporter
    metrics: InMemoryMetricReader
    ledger: Path


@pytest.fixture(params=list(DROPPING))
def dropped(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Dropped]:
    """costwarden configured on a tracer provider whose sampler drops every trace."""
    exporter, metrics = InMemorySpanExporter(), InMemoryMetricReader()
    provider = TracerProvider(sampler=DROPPING[request.param])
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    ledger = tmp_path / "ledger.db"
    configure(
        {"budgets": [{"name": "two-calls", "limit_calls": 2}], "ledger": {"path": str(ledger)}},
        tracer_provider=provider,
        meter_provider=MeterProvider(metric_readers=[metrics]),
    )
    yield Dropped(provider, exporter, metrics, ledger)
    stop_telemetry()
    provider.shutdown()


def _points(reader: InMemoryMetricReader, name: str) -> list[Any]:
    data = reader.get_metrics_data()
    return [
        point
        for resource in (data.resource_metrics if data else ())
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == name
        for point in metric.data.data_points
    ]


def test_calls_the_sampler_drops_are_budgeted_metered_and_in_the_ledger(
    dropped: Dropped, fake: Any, openai_client: Any
) -> None:
    for _ in range(2):
        openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    with pytest.raises(BudgetExceeded) as vetoed:
        openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    assert vetoed.value.budget == "two-calls"
    assert len(fake.requests) == 2, "the vetoed call was not sent"
    assert dropped.exporter.get_finished_spans() == (), "exporters still get only what the sampler keeps"
    (cost,) = _points(dropped.metrics, sc.METRIC_COST)
    assert cost.value > 0
    assert sum(p.count for p in _points(dropped.metrics, sc.METRIC_TOKEN_USAGE)) == 2 * 2  # input, output
    assert dropped.provider.force_flush()
    with sqlite3.connect(dropped.ledger) as ledger:
        calls = ledger.execute(
            "SELECT count(*), sum(cost_nanousd > 0), sum(decision = 'veto') FROM calls"
        ).fetchone()
    assert calls == (3, 2, 1), "two priced calls and the vetoed one, as with a sampler that keeps them"


def test_an_agents_attribution_reaches_its_calls_through_spans_the_sampler_drops(
    dropped: Dropped, fake: Any, openai_client: Any
) -> None:
    """agent span -> an ordinary step span of the framework -> the LLM call: the step is recorded too
    (it carries the agent's attribution down), so a per-agent budget holds as with a sampler that keeps
    everything."""
    stop_telemetry()
    configure(
        {"budgets": [{"name": "researcher", "match": {"agent": "researcher"}, "limit_calls": 1}],
         "ledger": {"enabled": False}},
        tracer_provider=dropped.provider,
        meter_provider=MeterProvider(),
    )  # fmt: skip
    tracer = dropped.provider.get_tracer("a.framework")
    agent = {sc.GEN_AI_OPERATION_NAME: "invoke_agent", sc.GEN_AI_AGENT_NAME: "researcher"}
    sent = []
    for _ in range(2):
        with (
            tracer.start_as_current_span("invoke_agent researcher", attributes=agent),
            tracer.start_as_current_span("plan step"),
        ):
            try:
                openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
                sent.append("sent")
            except BudgetExceeded:
                sent.append("vetoed")
    assert sent == ["sent", "vetoed"]
    assert dropped.exporter.get_finished_spans() == ()


def test_only_genai_spans_the_sampler_drops_are_recorded_and_none_becomes_sampled() -> None:
    tracer = TracerProvider(sampler=RecordLLMCalls(ALWAYS_OFF)).get_tracer("test")
    genai = {sc.GEN_AI_OPERATION_NAME: "chat", sc.GEN_AI_REQUEST_MODEL: "gpt-4o"}

    http = tracer.start_span("GET /orders", kind=SpanKind.SERVER)
    llm = tracer.start_span("chat gpt-4o", kind=SpanKind.CLIENT, attributes=genai)

    assert not http.is_recording()
    assert llm.is_recording()
    with use_span(http, end_on_exit=False):
        assert not tracer.start_span("SELECT orders").is_recording(), "no attribution to carry"
    assert not llm.get_span_context().trace_flags.sampled
    assert dict(llm.attributes or {}) == genai  # the attributes the span was started with

    kept = TracerProvider(sampler=RecordLLMCalls(ALWAYS_ON)).get_tracer("test")
    assert kept.start_span("chat gpt-4o", attributes=genai).get_span_context().trace_flags.sampled
    assert RecordLLMCalls(ALWAYS_OFF).get_description() == "RecordLLMCalls{AlwaysOffSampler}"


def test_configure_wraps_the_providers_sampler_once() -> None:
    provider = TracerProvider(sampler=ALWAYS_OFF)
    try:
        for _ in range(2):
            configure({"ledger": {"enabled": False}}, tracer_provider=provider, instrument=False)
        assert isinstance(provider.sampler, RecordLLMCalls)
        assert provider.sampler.sampler is ALWAYS_OFF
    finally:
        stop_telemetry()
