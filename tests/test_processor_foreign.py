"""Spans from other GenAI instrumentations: priced, attributed and counted on end, never twice;
vetoed on start only with enforce_foreign_spans."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from costwarden import BudgetExceeded
from costwarden import semconv as sc
from tests._processor_kit import _test_prices, cost_of, make_harness  # noqa: F401

OPENLLMETRY = {  # older attribute names, as OpenLLMetry's openai instrumentation writes them
    "gen_ai.system": "OpenAI",
    "llm.request.type": "chat",
    "gen_ai.request.model": "big",
    "gen_ai.response.model": "big",
    "gen_ai.usage.prompt_tokens": 1000,
    "gen_ai.usage.completion_tokens": 100,
}
OTEL_GENAI = {  # OpenTelemetry's genai-openai instrumentation (current semconv)
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "big",
    "gen_ai.usage.input_tokens": 1000,
    "gen_ai.usage.output_tokens": 100,
}
OPENLIT = {**OTEL_GENAI, "gen_ai.usage.cost": 0.5}  # OpenLIT prices calls itself


def _foreign(
    h: Any,
    attributes: dict[str, Any],
    parent: Any = None,
    scope: str = "opentelemetry.instrumentation.openai",
) -> Any:
    context = trace.set_span_in_context(parent) if parent is not None else None
    tracer = h.provider.get_tracer(scope)
    return tracer.start_span("chat big", kind=SpanKind.CLIENT, attributes=attributes, context=context)


@pytest.mark.parametrize(
    ("attributes", "expected"), [(OPENLLMETRY, None), (OTEL_GENAI, None), (OPENLIT, "0.5")]
)
def test_foreign_spans_are_priced_attributed_and_counted(
    attributes: dict[str, Any], expected: str | None
) -> None:
    h = make_harness(
        {"budgets": [{"name": "team", "match": {"agent": "writer"}, "limit_usd": 10, "limit_calls": 10}]}
    )
    agent = h.tracer.start_span("invoke_agent writer", attributes={sc.GEN_AI_AGENT_NAME: "writer"})
    span = _foreign(h, attributes, parent=agent)
    span.end()
    agent.end()
    assert h.spent("team", "calls") == 1
    assert str(h.spent("team")) == (expected or str(cost_of("big", 1000, 100)))
    [(cost_attrs, _)] = h.points(sc.METRIC_COST)
    assert cost_attrs[sc.GEN_AI_AGENT_NAME] == "writer"
    assert not h.points(sc.METRIC_TOKEN_USAGE)  # their instrumentation records its own


def test_agent_and_tool_spans_are_not_counted_as_calls() -> None:
    h = make_harness({"budgets": [{"name": "all", "limit_calls": 10}]})
    _foreign(h, {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "a"}).end()
    _foreign(h, {"gen_ai.operation.name": "execute_tool"}).end()
    assert h.spent("all", "calls") == 0


def test_the_same_call_seen_by_two_instrumentations_counts_once() -> None:
    h = make_harness({"budgets": [{"name": "all", "limit_calls": 10, "limit_usd": 10}]})
    # theirs outside ours
    outer = _foreign(h, OTEL_GENAI)
    ours = h.start(parent=outer)
    h.finish(ours, h.processor.admit(ours, h.request()))
    outer.end()
    # ours outside theirs
    ours = h.start()
    admission = h.processor.admit(ours, h.request())
    _foreign(h, OTEL_GENAI, parent=ours).end()
    h.finish(ours, admission)
    assert h.spent("all", "calls") == 2


def test_foreign_spans_are_vetoed_on_start_only_when_enforced() -> None:
    config = {"budgets": [{"name": "tiny", "limit_usd": 0.001}]}
    lenient = make_harness(config)
    _foreign(lenient, {**OTEL_GENAI, sc.GEN_AI_REQUEST_MAX_TOKENS: 100}).end()  # counted, not stopped
    assert lenient.spent("tiny", "usd") > 0
    strict = make_harness({**config, "enforce_foreign_spans": True})
    with pytest.raises(BudgetExceeded):
        _foreign(strict, {**OTEL_GENAI, sc.GEN_AI_REQUEST_MAX_TOKENS: 100})
    assert strict.reserved().usd == 0
    assert strict.processor.in_flight() == 0


def test_a_vetted_foreign_span_around_ours_counts_once() -> None:
    """With enforce_foreign_spans, another instrumentation's span around our call is admitted at its
    start; once our call inside it is admitted, that reservation goes back and the call counts once."""
    h = make_harness({"enforce_foreign_spans": True, "budgets": [{"name": "all", "limit_calls": 2}]})
    for _ in range(2):
        outer = _foreign(h, OTEL_GENAI)
        ours = h.start(parent=outer)
        h.finish(ours, h.processor.admit(ours, h.request()))
        outer.end()
    assert h.spent("all", "calls") == 2
    assert h.processor.in_flight() == 0
    assert not h.processor._foreign_open
    assert h.processor.store.reserved_total().calls == 0


def test_foreign_spans_ending_while_the_store_is_down_are_queued_quietly(caplog: Any) -> None:
    """fail: open with a shared store that cannot be reached: the spend is queued for later, and no
    error is logged (the alert check has no totals to look at)."""
    import logging

    from tests._redis import free_port

    h = make_harness(
        {
            "store": f"redis://127.0.0.1:{free_port()}/0",
            "fail": "open",
            "store_timeout": 0.2,
            "budgets": [{"name": "daily", "period": "day", "limit_usd": 10, "alert_at": [0.5]}],
        }
    )
    with caplog.at_level(logging.WARNING, logger="costwarden"):
        for _ in range(3):
            _foreign(h, OTEL_GENAI).end()
    assert h.processor.store.pending == 3
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_foreign_span_with_more_cached_than_input_tokens_is_charged_not_refunded() -> None:
    """Some instrumentations pass Anthropic's raw ``input_tokens`` (the uncached part) on: the input is
    then read as that plus the cached tokens, and the budget grows by the call's price."""
    from costwarden._types import Usage
    from costwarden.pricing import get_price_book

    h = make_harness({"budgets": [{"name": "all", "limit_usd": 10}]})
    raw = {**OTEL_GENAI, "gen_ai.usage.input_tokens": 50, "gen_ai.usage.cache_read.input_tokens": 20_000}
    _foreign(h, raw).end()
    usage = Usage(input_tokens=20_050, output_tokens=100, cache_read_tokens=20_000)
    priced = get_price_book().cost("big", usage, "openai")
    assert priced is not None
    assert h.spent("all") == priced.amount > 0
