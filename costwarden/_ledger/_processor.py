"""The span processor that feeds the ledger: every model call, sampled or not."""

from __future__ import annotations

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import SpanContext, TraceFlags

from costwarden._ledger._rows import is_ledger_span

__all__ = ["LedgerSpanProcessor"]


class LedgerSpanProcessor(SpanProcessor):
    """Batches model-call spans into a :class:`~costwarden.ledger.LedgerExporter` off the call path.

    A plain ``BatchSpanProcessor`` passes sampled spans only, but the ledger says where the money
    went, and a call the trace sampler dropped was paid for too: costwarden records such calls
    (:class:`costwarden.processor.RecordLLMCalls`), and this processor hands them to the batch as
    copies marked sampled (the ledger keeps no sampling flag). Other unsampled spans are left out.
    This is what ``costwarden.configure()`` installs; ``OTEL_TRACES_EXPORTER=costwarden`` puts the
    exporter behind the SDK's own batch processor, which writes sampled calls only."""

    def __init__(self, exporter: SpanExporter) -> None:
        self._batch = BatchSpanProcessor(exporter)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Nothing to do until the span ends."""

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if context is not None and not context.trace_flags.sampled:
            if not is_ledger_span(span.attributes or {}):
                return
            span = _marked_sampled(span, context)
        self._batch.on_end(span)

    def shutdown(self) -> None:
        self._batch.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._batch.force_flush(timeout_millis)


def _marked_sampled(span: ReadableSpan, context: SpanContext) -> ReadableSpan:
    sampled = SpanContext(
        context.trace_id,
        context.span_id,
        context.is_remote,
        TraceFlags(context.trace_flags | TraceFlags.SAMPLED),
        context.trace_state,
    )
    return ReadableSpan(
        name=span.name,
        context=sampled,
        parent=span.parent,
        resource=span.resource,
        attributes=span.attributes,
        events=span.events,
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )
