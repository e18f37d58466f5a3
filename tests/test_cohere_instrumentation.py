"""The cohere SDK's v2 client, instrumented, against the local fake Cohere API over real HTTP.
Expected costs use Cohere's published prices, on billed units."""

from __future__ import annotations

import asyncio
import gc
from decimal import Decimal
from typing import Any

import cohere
import pytest
from opentelemetry.trace import StatusCode

from costwarden import BudgetExceeded
from costwarden import semconv as sc
from costwarden._attribution import attribute
from costwarden.testing import Fault

# cohere.com/pricing, USD per million tokens: (input, output)
PUBLISHED = {
    "command-r-08-2024": (0.15, 0.60),
    "command-r-plus-08-2024": (2.50, 10.00),
    "embed-v4.0": (0.12, 0),
}
MESSAGES = [{"role": "user", "content": "Name three rivers in Europe."}]


def published_cost(model: str, attributes: Any) -> float:
    price_in, price_out = (Decimal(str(p)) for p in PUBLISHED[model])
    total = attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] * price_in
    total += attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] * price_out
    return float(total / Decimal(1_000_000))


def make_clients(fake: Any) -> tuple[Any, Any]:
    # cohere's Client.__init__ binds `chat` on the instance: create clients after instrumenting (as
    # opentelemetry-instrument does), so budget tests make theirs after configuring.
    return (
        cohere.ClientV2(api_key="test-key", base_url=fake.url),
        cohere.AsyncClientV2(api_key="test-key", base_url=fake.url),
    )


@pytest.fixture
def clients(telemetry: Any, fake: Any) -> tuple[Any, Any]:
    return make_clients(fake)


def chat(clients: tuple[Any, Any], mode: str, stream: bool, **kwargs: Any) -> Any:
    client, aclient = clients
    kwargs = {"model": "command-r-08-2024", "messages": MESSAGES, "max_tokens": 40, **kwargs}
    if mode == "sync":
        return list(client.chat_stream(**kwargs)) if stream else client.chat(**kwargs)

    async def go() -> Any:
        if stream:
            return [e async for e in aclient.chat_stream(**kwargs)]
        return await aclient.chat(**kwargs)

    return asyncio.run(go())


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("stream", [False, True])
def test_chat_becomes_one_priced_span(telemetry, fake, clients, mode, stream):
    with attribute(agent="writer", run_id="r-1"):
        result = chat(clients, mode, stream, temperature=0.3)

    span = telemetry.one_span()
    attributes = span.attributes
    billed = fake.requests[-1].usage["billed_units"]
    assert span.name == "chat command-r-08-2024"
    assert attributes[sc.GEN_AI_PROVIDER_NAME] == "cohere"
    assert attributes[sc.GEN_AI_REQUEST_MAX_TOKENS] == 40
    assert attributes[sc.GEN_AI_REQUEST_TEMPERATURE] == 0.3
    assert attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("complete",)
    assert attributes[sc.GEN_AI_RESPONSE_ID]
    assert attributes[sc.SERVER_ADDRESS] == "127.0.0.1"
    # billed units, not `tokens` (which adds the unbilled prompt template)
    assert attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == billed["input_tokens"]
    assert attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == billed["output_tokens"]
    expected = published_cost("command-r-08-2024", attributes)
    assert attributes[sc.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(expected, rel=1e-9)
    assert attributes[sc.GEN_AI_AGENT_NAME] == "writer"
    assert not any("test-key" in str(v) for v in attributes.values())
    if stream:
        assert result[-1].type == "message-end"


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_embed(telemetry, fake, clients, mode):
    kwargs = {
        "model": "embed-v4.0",
        "texts": ["one sentence", "another sentence"],
        "input_type": "search_document",
        "embedding_types": ["float"],
    }
    client, aclient = clients
    result = client.embed(**kwargs) if mode == "sync" else asyncio.run(aclient.embed(**kwargs))

    assert len(result.embeddings.float_) == 2
    span = telemetry.one_span()
    assert span.name == "embeddings embed-v4.0"
    assert span.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == fake.requests[-1].usage["input_tokens"]
    expected = published_cost("embed-v4.0", span.attributes)
    assert span.attributes[sc.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(expected, rel=1e-9)


def test_abandoned_stream_is_counted_when_garbage_collected(telemetry, fake, clients):
    def read_three_events() -> None:
        events = clients[0].chat_stream(model="command-r-08-2024", messages=MESSAGES)
        for _ in range(3):
            next(events)

    read_three_events()
    gc.collect()

    span = telemetry.one_span()
    assert span.attributes[sc.COSTWARDEN_USAGE_ESTIMATED] is True
    assert span.attributes[sc.GEN_AI_USAGE_COST_AMOUNT] > 0


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault("rate_limit", count=None), cohere.TooManyRequestsError),
        (Fault("bad_request"), cohere.BadRequestError),
    ],
)
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_provider_errors_reach_the_app_unchanged(telemetry, fake, clients, mode, fault, error):
    fake.inject(fault)
    with pytest.raises(error):
        chat(clients, mode, False)

    span = telemetry.one_span()
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes[sc.ERROR_TYPE].endswith(error.__name__)
    assert sc.GEN_AI_USAGE_COST_AMOUNT not in span.attributes


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("stream", [False, True])
def test_downgrade_is_what_the_server_receives(budgets, fake, mode, stream):
    downgrade = {"at": 0.0, "to": {"command-r-plus-08-2024": "command-r-08-2024"}}
    telemetry = budgets({"budgets": [{"name": "tiny", "limit_usd": 1, "downgrade": downgrade}]})
    clients = make_clients(fake)
    chat(clients, mode, stream, model="command-r-plus-08-2024")

    assert fake.requests[-1].model == "command-r-08-2024"
    span = telemetry.one_span()
    assert span.attributes[sc.COSTWARDEN_DOWNGRADED_FROM] == "command-r-plus-08-2024"
    expected = published_cost("command-r-08-2024", span.attributes)
    assert span.attributes[sc.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(
    ("mode", "stream"), [("sync", False), ("sync", True), ("async", False), ("async", True)]
)
def test_veto_sends_nothing_and_raises_budget_exceeded(budgets, fake, mode, stream):
    telemetry = budgets({"budgets": [{"name": "one-call", "per": ["run_id"], "limit_calls": 1}]})
    clients = make_clients(fake)
    with attribute(run_id="r-veto"):
        chat(clients, "sync", False)
        sent_before = len(fake.requests)
        with pytest.raises(BudgetExceeded):
            chat(clients, mode, stream)

    assert len(fake.requests) == sent_before, "a vetoed call must not reach the provider"
    assert telemetry.llm_spans()[-1].attributes[sc.COSTWARDEN_BUDGET_DECISION] == "veto"
