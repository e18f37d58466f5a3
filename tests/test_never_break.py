"""One test per guarantee that must never break: costwarden failing inside must not change the app's
call. These run with internal errors logged (as in production), not raised (as in the rest of the suite)."""

from __future__ import annotations

import logging

import pytest
from opentelemetry.sdk.trace import SpanProcessor

from costwarden import semconv as sc
from costwarden._state import get_processor, set_processor
from costwarden.pricing import PriceBook, get_price_book, set_price_book

MESSAGES = [{"role": "user", "content": "Hello there."}]


@pytest.fixture(autouse=True)
def production_mode(monkeypatch):
    monkeypatch.delenv("COSTWARDEN_RAISE_INTERNAL_ERRORS", raising=False)


class _BrokenPriceBook(PriceBook):
    def cost(self, *args, **kwargs):
        raise RuntimeError("price data exploded")


def test_pricing_failure_keeps_the_call_and_the_tokens(telemetry, fake, openai_client, caplog):
    original = get_price_book()
    set_price_book(_BrokenPriceBook())
    try:
        with caplog.at_level(logging.WARNING, logger="costwarden"):
            reply = openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
            openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    finally:
        set_price_book(original)
    assert reply.choices[0].message.content
    spans = telemetry.llm_spans()
    assert len(spans) == 2
    assert all(s.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] > 0 for s in spans)
    assert len([r for r in caplog.records if "price data exploded" in r.getMessage()]) == 1


class _RaisingProcessor(SpanProcessor):
    def on_start(self, span, parent_context=None):
        raise RuntimeError("on_start bug")

    def on_end(self, span):
        raise RuntimeError("on_end bug")


def test_a_span_processor_that_raises_does_not_reach_the_app(telemetry, fake, openai_client):
    telemetry.tracer_provider.add_span_processor(_RaisingProcessor())
    reply = openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=False)
    chunks = list(openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    assert reply.choices
    assert chunks


def test_a_budget_processor_bug_lets_the_call_through(telemetry, fake, openai_client):
    installed = get_processor()

    class Broken(type(installed)):
        def admit(self, span, request):
            raise RuntimeError("admission bug")

    set_processor(Broken(installed.config))
    try:
        reply = openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    finally:
        set_processor(installed)
    assert reply.choices[0].message.content
    assert fake.requests[-1].body["model"] == "gpt-4o"
