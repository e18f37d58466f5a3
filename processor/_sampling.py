"""Every LLM call is recorded, whatever the trace sampler decides: budgets, cost metrics and the ledger
count calls, and a call the sampler drops costs money all the same."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind, get_current_span
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

from costwarden.processor._spans import ATTRIBUTION_KEYS, attributes_of, is_genai

__all__ = ["RecordLLMCalls"]


class RecordLLMCalls(Sampler):
    """Wraps the app's sampler: a GenAI span (an LLM call, an agent or workflow) that it drops is
    recorded instead (``RECORD_ONLY``), and so is a span inside a recorded span that carries attribution
    (a framework's step between an agent span and its LLM calls), so that the agent's attribution
    still reaches the calls beneath it.

    A recorded span reaches span processors, so the budget processor admits and settles the call and
    the ledger writes it; it is not sampled, so exporters leave it out and its children follow the
    wrapped sampler as before. ``costwarden.configure()`` (and so ``opentelemetry-instrument``) wraps
    the tracer provider's sampler with it; tracers obtained before that keep the sampler they had."""

    def __init__(self, sampler: Sampler) -> None:
        self.sampler = sampler

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        result = self.sampler.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )
        if result.decision is Decision.DROP and (is_genai(attributes) or _attributed(parent_context)):
            # the span is created with the result's attributes: a dropping result carries none
            return SamplingResult(Decision.RECORD_ONLY, attributes, result.trace_state)
        return result

    def get_description(self) -> str:
        return f"RecordLLMCalls{{{self.sampler.get_description()}}}"


def _attributed(parent_context: Context | None) -> bool:
    """Whether the parent span is recorded and carries attribution (an agent, workflow, run...)."""
    parent = get_current_span(parent_context)
    if not parent.is_recording():
        return False
    attributes = attributes_of(parent)
    return any(key in attributes for key in ATTRIBUTION_KEYS)
