"""Which spans go into the ledger, and the row each one becomes."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import GenAiOperationNameValues
from opentelemetry.semconv.attributes.service_attributes import SERVICE_NAME

from costwarden import semconv as sc

__all__ = ["NANO", "is_ledger_span", "nanousd", "span_row"]

NANO = Decimal("1e-9")

# Any of these marks a span that used (or priced) a model.
_USAGE_KEYS = (
    sc.GEN_AI_USAGE_INPUT_TOKENS,
    sc.GEN_AI_USAGE_OUTPUT_TOKENS,
    sc.GEN_AI_USAGE_PROMPT_TOKENS,
    sc.GEN_AI_USAGE_COMPLETION_TOKENS,
    sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
    sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
    sc.GEN_AI_USAGE_COST_AMOUNT,
)

# Agent, tool, workflow and retrieval spans are not model calls: some of them repeat their children's
# usage, which would count the same tokens twice.
_NOT_MODEL_CALLS = frozenset(
    {
        GenAiOperationNameValues.CREATE_AGENT.value,
        GenAiOperationNameValues.INVOKE_AGENT.value,
        GenAiOperationNameValues.EXECUTE_TOOL.value,
        GenAiOperationNameValues.INVOKE_WORKFLOW.value,
        GenAiOperationNameValues.RETRIEVAL.value,
    }
)


def is_ledger_span(attributes: Mapping[str, Any]) -> bool:
    """True for a model call: a span with a GenAI operation (not an agent or tool one) or usage."""
    operation = attributes.get(sc.GEN_AI_OPERATION_NAME)
    if operation is not None:
        return operation not in _NOT_MODEL_CALLS
    return any(key in attributes for key in _USAGE_KEYS)


def span_row(span: ReadableSpan) -> tuple[Any, ...]:
    """The ledger row for ``span``, in :data:`costwarden._ledger._schema.COLUMNS` order."""
    a = span.attributes or {}
    ctx = span.get_span_context()
    start = span.start_time or 0
    end = span.end_time or start
    attribution = sc.ATTRIBUTION_ATTRIBUTES
    return (
        start,
        end,
        (end - start) / 1e9,
        format(ctx.trace_id if ctx else 0, "032x"),
        format(ctx.span_id if ctx else 0, "016x"),
        _text(span.resource.attributes.get(SERVICE_NAME)),
        _text(a.get(sc.GEN_AI_PROVIDER_NAME, a.get(sc.GEN_AI_SYSTEM))),
        _text(a.get(sc.GEN_AI_OPERATION_NAME)),
        _text(a.get(sc.GEN_AI_REQUEST_MODEL)),
        _text(a.get(sc.GEN_AI_RESPONSE_MODEL)),
        _int(a.get(sc.GEN_AI_USAGE_INPUT_TOKENS, a.get(sc.GEN_AI_USAGE_PROMPT_TOKENS))),
        _int(a.get(sc.GEN_AI_USAGE_OUTPUT_TOKENS, a.get(sc.GEN_AI_USAGE_COMPLETION_TOKENS))),
        _int(a.get(sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS)),
        _int(a.get(sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS)),
        _int(a.get(sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS)),
        nanousd(a.get(sc.GEN_AI_USAGE_COST_AMOUNT)),
        _text(a.get(sc.GEN_AI_USAGE_COST_SOURCE)),
        int(bool(a.get(sc.COSTWARDEN_COST_UNKNOWN_MODEL))),
        int(bool(a.get(sc.COSTWARDEN_USAGE_ESTIMATED))),
        _text(a.get(sc.COSTWARDEN_BUDGET_DECISION)),
        _text(a.get(sc.COSTWARDEN_BUDGET_NAME)),
        _text(a.get(sc.COSTWARDEN_DOWNGRADED_FROM)),
        _text(a.get(sc.ERROR_TYPE)),
        _text(a.get(attribution["agent"])),
        _text(a.get(attribution["workflow"])),
        _text(a.get(attribution["run_id"])),
        _text(a.get(attribution["user"])),
        _text(a.get(attribution["task"])),
    )


def nanousd(value: Any) -> int | None:
    """A cost attribute (a float, int or numeric string, in USD) as whole nano-dollars; None if absent
    or not a number. Stored as integers so that sums are exact."""
    if value is None or isinstance(value, bool):
        return None
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    if not amount.is_finite():
        return None
    return int((amount / NANO).to_integral_value())


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)
