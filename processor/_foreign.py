"""Span start: pass attribution down to child spans, and watch LLM spans from other instrumentations
(vetted at start only with ``enforce_foreign_spans``, because that means raising from ``on_start``)."""

from __future__ import annotations

from typing import Any

from opentelemetry.trace import SpanKind

from costwarden import semconv as sc
from costwarden._errors import BudgetExceeded
from costwarden._types import CallRequest
from costwarden.processor._admission import Admitter
from costwarden.processor._core import Core
from costwarden.processor._spans import (
    ATTRIBUTION_KEYS,
    attributes_of,
    is_genai,
    is_llm_operation,
    model_of,
    provider_of,
)

__all__ = ["SpanStart"]

_NOTHING = (None,) * len(ATTRIBUTION_KEYS)
_AGENT, _WORKFLOW, _RUN, _USER, _TASK = ATTRIBUTION_KEYS


class SpanStart:
    """What ``on_start`` does: inherit attribution, and watch (or vet) foreign LLM spans."""

    def __init__(self, core: Core, admitter: Admitter) -> None:
        self._core = core
        self._frames = core.frames
        self._foreign_open = core.foreign_open
        self._tickets = core.tickets
        self._admitter = admitter

    def on_start(self, span: Any) -> None:
        self._inherit(span)
        self._watch_foreign(span)

    def _inherit(self, span: Any) -> None:
        """Give the span the attribution its nearest attributed ancestor carries (where it has none)."""
        parent = span.parent
        inherited = self._frames.get(parent.span_id) if parent is not None and self._frames else None
        if inherited is None and span.kind is SpanKind.CLIENT:
            return  # an LLM call with nothing to inherit: its own attributes are all it has
        attrs = attributes_of(span)
        get = attrs.get
        own = (get(_AGENT), get(_WORKFLOW), get(_RUN), get(_USER), get(_TASK))
        if inherited is not None:
            merged = tuple(o if o is not None else i for o, i in zip(own, inherited, strict=True))
            for key, value, mine in zip(ATTRIBUTION_KEYS, merged, own, strict=True):
                if mine is None and value is not None:
                    span.set_attribute(key, value)
            own = merged
        if span.kind is not SpanKind.CLIENT and own != _NOTHING:
            self._frames[span.context.span_id] = own

    def _watch_foreign(self, span: Any) -> None:
        scope = span.instrumentation_scope
        if scope is not None and scope.name.startswith("costwarden"):
            return  # our own spans are admitted by our instrumentation
        attrs = attributes_of(span)
        genai = is_genai(attrs)
        if not genai and span.kind is not SpanKind.CLIENT:
            return
        # a CLIENT span may say it is an LLM call only after its start (AG2's do): watched all the same,
        # so that a call of ours inside it claims it (on_end counts only LLM spans with a model)
        sid = span.context.span_id
        parent = span.parent
        shadowed = parent is not None and parent.span_id in self._tickets  # the same call, inside ours
        self._foreign_open[sid] = shadowed
        if not genai:
            return
        if self._core.config.enforce_foreign_spans and not shadowed and is_llm_operation(attrs):
            self._admit(span, attrs)

    def _admit(self, span: Any, attrs: Any) -> None:
        max_tokens = attrs.get(sc.GEN_AI_REQUEST_MAX_TOKENS)
        request = CallRequest(
            provider=provider_of(attrs),
            operation=str(attrs.get(sc.GEN_AI_OPERATION_NAME) or "chat"),
            model=model_of(attrs) or "unknown",
            estimated_input_tokens=0,
            max_output_tokens=int(max_tokens) if isinstance(max_tokens, int) else None,
        )
        try:
            self._admitter.reserve(span, request, foreign=True)
        except BudgetExceeded:
            sid = span.context.span_id
            self._foreign_open.pop(sid, None)
            self._tickets.pop(sid, None)  # a span vetoed in on_start never ends
            raise
