"""Driving the budget processor directly: a real SDK tracer provider, in-memory span exporter and
metric reader, and helpers that play the instrumentation's part (start a GenAI span, admit, set
usage and cost, end)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from costwarden import semconv as sc
from costwarden._types import Admission, CallRequest, Usage
from costwarden.pricing import PriceBook, get_price_book, set_price_book
from costwarden.processor import BudgetSpanProcessor

# USD per million tokens: "big" costs $10/$30, "small" $1/$2. One call of 1000 in + 100 out on "big"
# costs $0.013; on "small" $0.0012.
PRICES = {"big": {"input": 10.0, "output": 30.0}, "small": {"input": 1.0, "output": 2.0}}

ATTR = {
    "agent": sc.GEN_AI_AGENT_NAME,
    "workflow": sc.GEN_AI_WORKFLOW_NAME,
    "run_id": sc.GEN_AI_CONVERSATION_ID,
    "user": sc.USER_ID,
    "task": sc.COSTWARDEN_TASK_ID,
}


def cost_of(model: str, input_tokens: int, output_tokens: int) -> Decimal:
    priced = get_price_book().cost(
        model, Usage(input_tokens=input_tokens, output_tokens=output_tokens), "openai"
    )
    assert priced is not None, model
    return Decimal(priced.amount)


class Clock:
    """An injectable clock a test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Harness:
    processor: BudgetSpanProcessor
    provider: TracerProvider
    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader
    spent_usd: Decimal = Decimal(0)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def tracer(self) -> Any:
        return self.provider.get_tracer("costwarden.instrumentation.test")

    def start(self, model: str = "big", *, parent: Any = None, **attribution: str) -> Any:
        from opentelemetry import trace

        attributes = {
            sc.GEN_AI_OPERATION_NAME: "chat",
            sc.GEN_AI_PROVIDER_NAME: "openai",
            sc.GEN_AI_REQUEST_MODEL: model,
            **{ATTR[k]: v for k, v in attribution.items()},
        }
        context = trace.set_span_in_context(parent) if parent is not None else None
        return self.tracer.start_span(
            f"chat {model}", kind=SpanKind.CLIENT, attributes=attributes, context=context
        )

    @staticmethod
    def request(
        model: str = "big", input_tokens: int = 1000, max_tokens: int | None = 100, **kw: Any
    ) -> CallRequest:
        return CallRequest("openai", "chat", model, input_tokens, max_output_tokens=max_tokens, **kw)

    def finish(
        self, span: Any, admission: Admission | None, input_tokens: int = 1000, output_tokens: int = 100
    ) -> Decimal:
        """What the instrumentation does after the response: usage and cost attributes, then end."""
        model = (admission.model if admission else None) or span.attributes[sc.GEN_AI_REQUEST_MODEL]
        cost = cost_of(model, input_tokens, output_tokens)
        span.set_attribute(sc.GEN_AI_USAGE_INPUT_TOKENS, input_tokens)
        span.set_attribute(sc.GEN_AI_USAGE_OUTPUT_TOKENS, output_tokens)
        span.set_attribute(sc.GEN_AI_USAGE_COST_AMOUNT, float(cost))
        span.end()
        with self.lock:
            self.spent_usd += cost
        return cost

    def fail(self, span: Any) -> None:
        """A call that raised with no usage: error status, no usage, no cost."""
        span.set_attribute(sc.ERROR_TYPE, "APIConnectionError")
        span.set_status(Status(StatusCode.ERROR, "connection refused"))
        span.end()

    def call(
        self,
        model: str = "big",
        input_tokens: int = 1000,
        output_tokens: int = 100,
        max_tokens: int | None = 100,
        **attribution: str,
    ) -> Admission:
        """One whole call; a veto ends the span with an error (as the wrapper does) and re-raises."""
        span = self.start(model, **attribution)
        try:
            admission = self.processor.admit(span, self.request(model, input_tokens, max_tokens))
        except BaseException:
            self.fail(span)
            raise
        self.finish(span, admission, input_tokens, output_tokens)
        return admission

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def points(self, name: str) -> list[tuple[dict[str, Any], Any]]:
        data = self.reader.get_metrics_data()
        out = []
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name == name:
                        for p in metric.data.data_points:
                            out.append(
                                (dict(p.attributes), getattr(p, "value", None) or getattr(p, "sum", None))
                            )
        return out

    def reserved(self) -> Any:
        return self.processor.store.reserved_total()  # type: ignore[attr-defined]

    def spent(self, budget: str, unit: str = "usd", **scope: str) -> Any:
        for row in self.processor.status():
            if row.budget == budget and row.unit == unit and row.scope == scope:
                return row.spent
        raise AssertionError(f"no status row for {budget} {unit} {scope}")


def make_harness(config: Mapping[str, Any], clock: Callable[[], datetime] | None = None) -> Harness:
    exporter = InMemorySpanExporter()
    reader = InMemoryMetricReader()
    processor = BudgetSpanProcessor(
        {"prices": PRICES, **config}, meter_provider=MeterProvider(metric_readers=[reader]), clock=clock
    )
    provider = TracerProvider()
    provider.add_span_processor(processor)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return Harness(processor, provider, exporter, reader)


@pytest.fixture(autouse=True)
def _test_prices() -> Iterator[None]:
    previous = get_price_book()
    set_price_book(PriceBook(PRICES))
    yield
    set_price_book(previous)
