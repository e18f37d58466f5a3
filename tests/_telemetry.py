"""Test fixtures: an SDK tracer and meter provider with in-memory exporters, costwarden configured on
them, and the local fake provider with real SDK clients pointed at it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

NO_LEDGER: dict[str, Any] = {"ledger": {"enabled": False}}


@dataclass
class Telemetry:
    exporter: InMemorySpanExporter
    metrics: InMemoryMetricReader
    tracer_provider: TracerProvider
    processor: Any

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def llm_spans(self) -> list[ReadableSpan]:
        return [s for s in self.spans() if "gen_ai.operation.name" in (s.attributes or {})]

    def one_span(self) -> ReadableSpan:
        spans = self.llm_spans()
        assert len(spans) == 1, [s.name for s in spans]
        return spans[0]

    def metric_points(self, name: str) -> list[Any]:
        data = self.metrics.get_metrics_data()
        points = []
        for resource_metrics in data.resource_metrics if data else ():
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    if metric.name == name:
                        points.extend(metric.data.data_points)
        return points


def start_telemetry(config: Mapping[str, Any] | None = None) -> Telemetry:
    from costwarden import configure

    exporter = InMemorySpanExporter()
    reader = InMemoryMetricReader()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    meter_provider = MeterProvider(metric_readers=[reader])
    processor = configure(
        {**NO_LEDGER, **(config or {})}, tracer_provider=tracer_provider, meter_provider=meter_provider
    )
    return Telemetry(exporter, reader, tracer_provider, processor)


def stop_telemetry() -> None:
    from costwarden._state import set_processor
    from costwarden.instrumentation.openai import OpenAIInstrumentor

    OpenAIInstrumentor().uninstrument()
    _uninstrument_optional(
        "costwarden.instrumentation.google_genai:GoogleGenAIInstrumentor",
        "costwarden.instrumentation.anthropic:AnthropicInstrumentor",
        "costwarden.instrumentation.bedrock:BedrockInstrumentor",
        "costwarden.instrumentation.cohere:CohereInstrumentor",
        "costwarden.instrumentation.openai_agents:OpenAIAgentsInstrumentor",
        "costwarden.instrumentation.pydantic_ai:PydanticAIInstrumentor",
        "costwarden.instrumentation.langgraph:LangGraphInstrumentor",
    )
    previous = set_processor(None)
    if previous is not None:
        previous.shutdown()


def _uninstrument_optional(*targets: str) -> None:
    """Uninstrument instrumentors whose SDK may not be installed in this environment."""
    import importlib

    for target in targets:
        module, _, name = target.partition(":")
        try:
            instrumentor = getattr(importlib.import_module(module), name)()
        except ImportError:
            continue
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    """costwarden configured with no budgets, the openai SDK instrumented."""
    yield start_telemetry()
    stop_telemetry()


@pytest.fixture
def budgets() -> Iterator[Any]:
    """A factory: ``budgets({...config...})`` configures costwarden with those budgets."""
    started = []

    def start(config: Mapping[str, Any]) -> Telemetry:
        started.append(1)
        return start_telemetry(config)

    yield start
    if started:
        stop_telemetry()
