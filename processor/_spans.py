"""Reading spans: attribution, and usage and cost from costwarden's own spans and from other
GenAI instrumentations' (OpenTelemetry GenAI, OpenLLMetry, OpenLIT, OpenInference)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

from costwarden import semconv as sc

__all__ = ["ATTRIBUTION_KEYS", "SpanUsage", "attributes_of", "is_genai", "is_llm_operation", "read_usage"]

ATTRIBUTION_KEYS = tuple(sc.ATTRIBUTION_ATTRIBUTES.values())
"""Span attributes of (agent, workflow, run_id, user, task), in the order of a call key."""

_INPUT = (
    sc.GEN_AI_USAGE_INPUT_TOKENS,
    sc.GEN_AI_USAGE_PROMPT_TOKENS,
    sc.FOREIGN_LLM_USAGE_PROMPT_TOKENS,
    sc.FOREIGN_LLM_TOKEN_COUNT_PROMPT,
)
_OUTPUT = (
    sc.GEN_AI_USAGE_OUTPUT_TOKENS,
    sc.GEN_AI_USAGE_COMPLETION_TOKENS,
    sc.FOREIGN_LLM_USAGE_COMPLETION_TOKENS,
    sc.FOREIGN_LLM_TOKEN_COUNT_COMPLETION,
)
_MODEL = (sc.GEN_AI_RESPONSE_MODEL, sc.GEN_AI_REQUEST_MODEL, sc.FOREIGN_LLM_MODEL_NAME)
_PROVIDER = (sc.GEN_AI_PROVIDER_NAME, sc.GEN_AI_SYSTEM, sc.FOREIGN_LLM_PROVIDER, sc.FOREIGN_LLM_SYSTEM)
_COST = (sc.GEN_AI_USAGE_COST_AMOUNT, sc.FOREIGN_GEN_AI_USAGE_COST)
_MARKERS = (
    sc.GEN_AI_OPERATION_NAME,
    sc.GEN_AI_SYSTEM,
    sc.GEN_AI_PROVIDER_NAME,
    sc.FOREIGN_LLM_REQUEST_TYPE,
    sc.FOREIGN_LLM_MODEL_NAME,
)


def attributes_of(span: Any) -> Mapping[str, Any]:
    """A span's attributes as a plain mapping, for reading only.

    The SDK hands out a read-only proxy whose ``get`` goes through ``Mapping.get`` and raises and
    catches a KeyError for every missing key (about 1 µs each); the processor looks up a dozen keys
    that are usually missing, so it reads the SDK's own dict when it can, and a copy otherwise."""
    inner = getattr(getattr(span, "_attributes", None), "_dict", None)
    if isinstance(inner, dict):
        return inner
    return dict(getattr(span, "attributes", None) or {})  # a span not recorded has none


def _first(attrs: Mapping[str, Any], names: tuple[str, ...]) -> Any:
    for name in names:
        value = attrs.get(name)
        if value is not None:
            return value
    return None


def is_genai(attrs: Mapping[str, Any] | None) -> bool:
    """Whether a span describes an LLM call by any instrumentation's conventions."""
    return bool(attrs) and any(name in attrs for name in _MARKERS)  # type: ignore[operator]


_LLM_OPERATIONS = frozenset(  # GenAI semconv names, and OpenLLMetry's llm.request.type values
    {"chat", "text_completion", "completion", "generate_content", "embeddings", "embedding", "responses"}
)


def is_llm_operation(attrs: Mapping[str, Any]) -> bool:
    """Whether a GenAI span is an LLM call (not an agent, workflow or tool span)."""
    if attrs.get(sc.FOREIGN_AG2_SPAN_TYPE, "llm") != "llm":
        return False  # AG2's record_usage spans: totals of calls counted already
    operation = attrs.get(sc.GEN_AI_OPERATION_NAME) or attrs.get(sc.FOREIGN_LLM_REQUEST_TYPE)
    return operation is None or str(operation) in _LLM_OPERATIONS


def model_of(attrs: Mapping[str, Any]) -> str | None:
    value = _first(attrs, _MODEL)
    return None if value is None else str(value)


def request_model_of(attrs: Mapping[str, Any]) -> str | None:
    value = attrs.get(sc.GEN_AI_REQUEST_MODEL) or attrs.get(sc.FOREIGN_LLM_MODEL_NAME)
    return None if value is None else str(value)


def provider_of(attrs: Mapping[str, Any]) -> str:
    value = _first(attrs, _PROVIDER)
    return "unknown" if value is None else str(value).lower()


class SpanUsage(NamedTuple):
    """What an ended LLM span used. ``cost`` is None when it could not be priced."""

    input_tokens: int
    output_tokens: int
    cost: Decimal | None
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0


def _int(value: Any) -> int:
    if value is None:
        return 0
    if type(value) is int:
        return value if value > 0 else 0
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return 0


def _decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return amount if amount.is_finite() and amount >= 0 else None


def read_usage(attrs: Mapping[str, Any]) -> SpanUsage:
    """Tokens and cost as an ended span states them (the cost attribute, when it has one).

    The GenAI conventions count cached tokens within the input tokens; an instrumentation that passes
    Anthropic's raw ``input_tokens`` (the uncached part only) on can state fewer input tokens than
    cached ones, and then the input is read as that plus the cached."""
    input_tokens = _int(_first(attrs, _INPUT))
    read = _int(attrs.get(sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS))
    write = _int(attrs.get(sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS))
    if read + write > input_tokens:
        input_tokens += read + write
    return SpanUsage(
        input_tokens=input_tokens,
        output_tokens=_int(_first(attrs, _OUTPUT)),
        cost=_decimal(_first(attrs, _COST)),
        cache_read_tokens=read,
        cache_write_tokens=write,
        reasoning_tokens=_int(attrs.get(sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS)),
    )
