"""The google-genai SDK, instrumented, against the local fake Gemini API over real HTTP.

Expected costs use Google's published Gemini prices (USD per million tokens), not costwarden's price
code. Gemini reports thinking tokens beside ``candidatesTokenCount``; costwarden's output includes them.
"""

from __future__ import annotations

import asyncio
import gc
from decimal import Decimal
from typing import Any

import pytest
from google import genai
from google.genai import errors, types
from opentelemetry.trace import StatusCode

from costwarden import BudgetExceeded
from costwarden import semconv as sc
from costwarden._attribution import attribute
from costwarden.testing import Fault, make_text

# ai.google.dev/gemini-api/docs/pricing: (input, cached input, output incl. thinking); 2.5 Pro above
# 200k prompt tokens: (2.50, 0.25, 15.00).
PUBLISHED = {
    "gemini-2.5-flash": (0.30, 0.03, 2.50),
    "gemini-2.5-pro": (1.25, 0.125, 10.00),
    "gemini-2.5-pro>200k": (2.50, 0.25, 15.00),
    "gemini-2.0-flash": (0.10, 0.025, 0.40),
}
EMBEDDING_PRICE = 0.15  # gemini-embedding-001, input only


def published_cost(model: str, attributes: Any) -> float:
    price_in, price_cached, price_out = (Decimal(str(p)) for p in PUBLISHED[model])
    cached = attributes.get(sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, 0)
    uncached = attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] - cached
    output = attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS]
    return float((uncached * price_in + cached * price_cached + output * price_out) / Decimal(1_000_000))


@pytest.fixture
def client(fake: Any) -> genai.Client:
    return genai.Client(api_key="test-key", http_options=types.HttpOptions(base_url=fake.url))


def generate(client: genai.Client, mode: str, stream: bool, **kwargs: Any) -> list[Any] | Any:
    """One generate call, sync or async; a stream is read to the end (its chunks returned)."""
    kwargs = {"model": "gemini-2.5-flash", "contents": "Name three rivers in Europe.", **kwargs}
    if mode == "sync":
        if stream:
            return list(client.models.generate_content_stream(**kwargs))
        return client.models.generate_content(**kwargs)

    async def go() -> Any:
        if stream:
            return [c async for c in await client.aio.models.generate_content_stream(**kwargs)]
        return await client.aio.models.generate_content(**kwargs)

    return asyncio.run(go())


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("stream", [False, True])
def test_generate_content_becomes_one_priced_span(telemetry, fake, client, mode, stream):
    config = types.GenerateContentConfig(max_output_tokens=40, temperature=0.2)
    with attribute(agent="researcher", workflow="brief", run_id="r-1"):
        generate(client, mode, stream, config=config)

    span = telemetry.one_span()
    attributes = span.attributes
    usage = fake.requests[-1].usage
    assert fake.requests[-1].query == ({"alt": "sse"} if stream else {})
    assert span.name == "generate_content gemini-2.5-flash"
    assert attributes[sc.GEN_AI_OPERATION_NAME] == "generate_content"
    assert attributes[sc.GEN_AI_PROVIDER_NAME] == "gcp.gemini"
    assert attributes[sc.GEN_AI_REQUEST_MAX_TOKENS] == 40
    assert attributes[sc.GEN_AI_REQUEST_TEMPERATURE] == 0.2
    assert attributes[sc.GEN_AI_RESPONSE_MODEL] == "gemini-2.5-flash"
    assert attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert attributes[sc.SERVER_ADDRESS] == "127.0.0.1"
    assert attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == usage["promptTokenCount"]
    # candidatesTokenCount excludes thinking; costwarden's output includes it
    assert usage["thoughtsTokenCount"] > 0
    assert (
        attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS]
        == usage["candidatesTokenCount"] + usage["thoughtsTokenCount"]
    )
    assert attributes[sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] == usage["thoughtsTokenCount"]
    assert sc.COSTWARDEN_USAGE_ESTIMATED not in attributes
    expected = published_cost("gemini-2.5-flash", attributes)
    assert attributes[sc.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(expected, rel=1e-9)
    assert attributes[sc.GEN_AI_AGENT_NAME] == "researcher"
    assert attributes[sc.GEN_AI_CONVERSATION_ID] == "r-1"
    assert span.status.status_code != StatusCode.ERROR
    assert sc.GEN_AI_INPUT_MESSAGES not in attributes
    assert not any("test-key" in str(v) for v in attributes.values())


def test_stream_chunks_reach_the_app_unchanged(telemetry, fake, client):
    chunks = generate(client, "sync", True)
    assert "".join(c.text for c in chunks) == make_text(fake.requests[-1].usage["candidatesTokenCount"])
    usage = chunks[-1].usage_metadata
    assert usage.total_token_count == fake.requests[-1].usage["totalTokenCount"]
    if hasattr(usage, "thoughts_token_count"):  # google-genai < 1.8 has no field for it
        assert usage.thoughts_token_count == fake.requests[-1].usage["thoughtsTokenCount"]


@pytest.mark.parametrize(
    ("tokens", "tier"), [(1_000, "gemini-2.5-pro"), (210_000, "gemini-2.5-pro>200k")], ids=["short", "long"]
)
def test_long_context_tier_of_gemini_2_5_pro(telemetry, fake, client, tokens, tier):
    client.models.generate_content(model="gemini-2.5-pro", contents=make_text(tokens))

    attributes = telemetry.one_span().attributes
    assert attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == tokens
    expected = published_cost(tier, attributes)
    assert attributes[sc.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(expected, rel=1e-9)


def test_cached_content_tokens_are_priced_as_cache_reads(telemetry, fake, client):
    prompt = make_text(3000)
    for _ in range(2):
        client.models.generate_content(model="gemini-2.0-flash", contents=prompt)

    first, second = telemetry.llm_spans()
    cached = fake.requests[-1].usage["cachedContentTokenCount"]
    assert cached > 0
    assert second.attributes[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == cached
    assert second.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == 3000  # promptTokenCount includes the cached
    assert second.attributes[sc.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(
        published_cost("gemini-2.0-flash", second.attributes), rel=1e-9
    )
    assert second.attributes[sc.GEN_AI_USAGE_COST_AMOUNT] < first.attributes[sc.GEN_AI_USAGE_COST_AMOUNT]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_embed_content(telemetry, fake, client, mode):
    kwargs = {"model": "gemini-embedding-001", "contents": ["one sentence", "another sentence"]}
    if mode == "sync":
        result = client.models.embed_content(**kwargs)
    else:
        result = asyncio.run(client.aio.models.embed_content(**kwargs))

    assert len(result.embeddings) == 2
    span = telemetry.one_span()
    assert span.name == "embeddings gemini-embedding-001"
    if "usage_metadata" in types.EmbedContentResponse.model_fields:
        tokens = fake.requests[-1].usage["promptTokenCount"]
        assert span.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == tokens
        assert sc.COSTWARDEN_USAGE_ESTIMATED not in span.attributes
    else:  # google-genai < 3.1 drops the usage block: the input is estimated from the request
        tokens = span.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS]
        assert tokens > 0
        assert span.attributes[sc.COSTWARDEN_USAGE_ESTIMATED] is True
    assert span.attributes[sc.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(
        tokens * EMBEDDING_PRICE / 1e6, rel=1e-9
    )


def test_vertex_ai_client_is_its_own_provider(telemetry, fake):
    vertex = genai.Client(
        vertexai=True, api_key="test-key", http_options=types.HttpOptions(base_url=fake.url)
    )
    vertex.models.generate_content(model="gemini-2.0-flash", contents="hi")

    span = telemetry.one_span()
    assert "/publishers/google/models/gemini-2.0-flash" in fake.requests[-1].path
    assert span.attributes[sc.GEN_AI_PROVIDER_NAME] == "gcp.vertex_ai"
    assert span.attributes[sc.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(
        published_cost("gemini-2.0-flash", span.attributes), rel=1e-9
    )


def test_abandoned_stream_is_counted_when_garbage_collected(telemetry, fake, client):
    def read_two_chunks() -> None:
        stream = client.models.generate_content_stream(model="gemini-2.0-flash", contents="hi")
        next(stream)
        next(stream)

    read_two_chunks()
    gc.collect()

    span = telemetry.one_span()
    assert span.attributes[sc.COSTWARDEN_USAGE_ESTIMATED] is True
    assert span.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] >= 1
    assert span.attributes[sc.GEN_AI_USAGE_COST_AMOUNT] > 0


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_stream_cut_halfway_ends_the_span_with_an_error_and_counts(telemetry, fake, client, mode):
    fake.inject(Fault("cut_stream", after_chunks=3))
    with pytest.raises(Exception) as raised:  # noqa: PT011 - the HTTP client's own error type
        generate(client, mode, True, model="gemini-2.0-flash")

    # httpx's RemoteProtocolError, or requests' ChunkedEncodingError(ProtocolError) (older SDKs' sync client)
    assert "ProtocolError" in repr(raised.value)

    span = telemetry.one_span()
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes[sc.ERROR_TYPE].endswith(type(raised.value).__name__)
    assert span.attributes[sc.COSTWARDEN_USAGE_ESTIMATED] is True


@pytest.mark.parametrize(
    ("fault", "error"),
    [(Fault("rate_limit"), errors.ClientError), (Fault("server_error"), errors.ServerError)],
)
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_provider_errors_reach_the_app_unchanged(telemetry, fake, client, mode, fault, error):
    fake.inject(fault)
    with pytest.raises(error):
        generate(client, mode, False)

    span = telemetry.one_span()
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes[sc.ERROR_TYPE] == f"{error.__module__}.{error.__qualname__}"
    assert sc.GEN_AI_USAGE_COST_AMOUNT not in span.attributes


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("stream", [False, True])
def test_downgrade_is_what_the_server_receives(budgets, fake, client, mode, stream):
    downgrade = {"at": 0.0, "to": {"gemini-2.5-pro": "gemini-2.5-flash"}}
    telemetry = budgets({"budgets": [{"name": "tiny", "limit_usd": 1, "downgrade": downgrade}]})
    generate(client, mode, stream, model="gemini-2.5-pro")

    assert fake.requests[-1].model == "gemini-2.5-flash"
    span = telemetry.one_span()
    assert span.attributes[sc.GEN_AI_REQUEST_MODEL] == "gemini-2.5-flash"
    assert span.attributes[sc.COSTWARDEN_DOWNGRADED_FROM] == "gemini-2.5-pro"
    assert span.attributes[sc.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(
        published_cost("gemini-2.5-flash", span.attributes), rel=1e-9
    )


@pytest.mark.parametrize(
    ("mode", "stream"), [("sync", False), ("sync", True), ("async", False), ("async", True)]
)
def test_veto_sends_nothing_and_raises_budget_exceeded(budgets, fake, client, mode, stream):
    telemetry = budgets({"budgets": [{"name": "one-call", "per": ["run_id"], "limit_calls": 1}]})
    with attribute(run_id="r-veto"):
        generate(client, "sync", False)
        sent_before = len(fake.requests)
        with pytest.raises(BudgetExceeded) as raised:
            generate(client, mode, stream)

    assert len(fake.requests) == sent_before, "a vetoed call must not reach the provider"
    assert raised.value.budget == "one-call"
    vetoed = telemetry.llm_spans()[-1]
    assert vetoed.attributes[sc.COSTWARDEN_BUDGET_DECISION] == "veto"
    assert sc.GEN_AI_USAGE_COST_AMOUNT not in vetoed.attributes


def get_weather(city: str) -> str:
    """Today's weather in a city."""
    return f"sunny in {city}"


# google-genai 1.0 reads a function's annotations as they are, and in this module they are strings
get_weather.__annotations__ = {"city": str, "return": str}


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("stream", [False, True])
def test_automatic_function_calling_counts_every_request(budgets, fake, client, mode, stream):
    # The SDK sends a request, calls get_weather for the model's functionCall, then sends its result.
    telemetry = budgets({"budgets": [{"name": "total", "limit_usd": 100}]})
    config = types.GenerateContentConfig(tools=[get_weather])
    with attribute(agent="researcher"):
        generate(client, mode, stream, model="gemini-2.0-flash", config=config)

    sent = list(fake.requests)
    spans = telemetry.llm_spans()
    assert len(sent) == 2
    assert "functionResponse" in str(sent[1].body["contents"])
    assert len(spans) == 2, "one span per request sent"
    for span, request in zip(spans, sent, strict=True):
        assert span.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == request.usage["promptTokenCount"]
        assert span.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == request.usage["candidatesTokenCount"]
        assert span.attributes[sc.GEN_AI_AGENT_NAME] == "researcher"
    assert sent[1].usage["promptTokenCount"] > sent[0].usage["promptTokenCount"]
    (status,) = telemetry.processor.status()
    costs = sum(s.attributes[sc.GEN_AI_USAGE_COST_AMOUNT] for s in spans)
    assert float(status.spent) == pytest.approx(costs, rel=1e-9), "counted once per request, never twice"


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("stream", [False, True])
def test_budget_stops_a_later_function_calling_round(budgets, fake, client, mode, stream):
    telemetry = budgets({"budgets": [{"name": "one-call", "limit_calls": 1}]})
    config = types.GenerateContentConfig(tools=[get_weather])
    with pytest.raises(BudgetExceeded) as raised:
        generate(client, mode, stream, model="gemini-2.0-flash", config=config)

    assert raised.value.budget == "one-call"
    assert len(fake.requests) == 1, "the round after the function call must not reach the provider"
    first, vetoed = telemetry.llm_spans()
    assert first.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == fake.requests[0].usage["promptTokenCount"]
    assert vetoed.attributes[sc.COSTWARDEN_BUDGET_DECISION] == "veto"
    assert sc.GEN_AI_USAGE_COST_AMOUNT not in vetoed.attributes
