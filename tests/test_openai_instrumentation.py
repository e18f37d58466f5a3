"""The openai SDK, instrumented, against the local fake provider over real HTTP.

Each test is written once and parametrized over sync/async and stream/non-stream where that applies.
Expected costs use OpenAI's published prices, not costwarden's price code.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
from decimal import Decimal
from typing import Any

import openai
import pytest
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import StatusCode

from costwarden import semconv as sc
from costwarden._attribution import attribute
from costwarden.instrumentation.openai import provider_for_host
from costwarden.testing import Fault

OPENAI_MAJOR = int(openai.__version__.split(".")[0])
needs_responses_api = pytest.mark.skipif(
    not hasattr(openai.OpenAI, "responses"), reason=f"openai {openai.__version__} has no Responses API"
)
MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Name three rivers in Europe and say one thing about each."},
]

# USD per million tokens, from OpenAI's price page: (input, cached input, output)
PUBLISHED = {"gpt-4o": (2.5, 1.25, 10.0), "gpt-4o-mini": (0.15, 0.075, 0.6)}


def published_cost(model: str, attributes: Any) -> float:
    price_in, price_cached, price_out = PUBLISHED[model]
    cached = attributes.get(sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, 0)
    uncached = attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] - cached
    total = (
        Decimal(uncached) * Decimal(str(price_in))
        + Decimal(cached) * Decimal(str(price_cached))
        + Decimal(attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS]) * Decimal(str(price_out))
    ) / Decimal(1_000_000)
    return float(total)


def error_without_costwarden(action: Any) -> type[BaseException]:
    """The exception ``action`` raises with costwarden out of the way (instrumentation suppressed)."""
    with suppress_instrumentation():
        try:
            action()
        except Exception as exc:
            return type(exc)
    raise AssertionError("expected the action to fail")


def chat(client: Any, aclient: Any, mode: str, stream: bool, **kwargs: Any) -> list[Any] | Any:
    """One chat call through the sync or async client; a stream is read to the end (chunks returned)."""
    kwargs = {"model": "gpt-4o", "messages": MESSAGES, "max_tokens": 40, **kwargs}
    if mode == "sync":
        result = client.chat.completions.create(stream=stream, **kwargs)
        return list(result) if stream else result

    async def go() -> Any:
        result = await aclient.chat.completions.create(stream=stream, **kwargs)
        return [c async for c in result] if stream else result

    return asyncio.run(go())


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("stream", [False, True])
def test_chat_call_becomes_one_priced_span(telemetry, fake, openai_client, async_openai_client, mode, stream):
    with attribute(agent="researcher", workflow="brief", run_id="r-1", user="u-9", task="t-3"):
        chat(openai_client, async_openai_client, mode, stream)

    span = telemetry.one_span()
    attributes = span.attributes
    sent = fake.requests[-1]
    usage = sent.usage
    assert span.name == "chat gpt-4o"
    assert span.kind.name == "CLIENT"
    assert attributes[sc.GEN_AI_OPERATION_NAME] == "chat"
    assert attributes[sc.GEN_AI_PROVIDER_NAME] == "openai"
    assert attributes[sc.GEN_AI_REQUEST_MODEL] == "gpt-4o"
    assert attributes[sc.GEN_AI_REQUEST_MAX_TOKENS] == 40
    assert attributes[sc.GEN_AI_RESPONSE_MODEL].startswith("gpt-4o")
    assert attributes[sc.GEN_AI_RESPONSE_ID].startswith("chatcmpl-")
    assert attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS]
    assert attributes[sc.SERVER_ADDRESS] == "127.0.0.1"
    assert attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == usage["prompt_tokens"]
    assert attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == usage["completion_tokens"]
    assert sc.COSTWARDEN_USAGE_ESTIMATED not in attributes
    assert attributes[sc.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(
        published_cost("gpt-4o", attributes), rel=1e-9
    )
    assert attributes[sc.GEN_AI_USAGE_COST_CURRENCY] == "USD"
    assert attributes[sc.GEN_AI_USAGE_COST_SOURCE]
    assert attributes[sc.GEN_AI_AGENT_NAME] == "researcher"
    assert attributes[sc.GEN_AI_WORKFLOW_NAME] == "brief"
    assert attributes[sc.GEN_AI_CONVERSATION_ID] == "r-1"
    assert attributes[sc.USER_ID] == "u-9"
    assert attributes[sc.COSTWARDEN_TASK_ID] == "t-3"
    assert span.status.status_code != StatusCode.ERROR
    # never content, keys or headers by default
    assert sc.GEN_AI_INPUT_MESSAGES not in attributes
    assert not any("test-key" in str(v) or "authorization" in k.lower() for k, v in attributes.items())


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_stream_without_include_usage_is_counted_and_looks_unchanged(
    telemetry, fake, openai_client, async_openai_client, mode
):
    chunks = chat(openai_client, async_openai_client, mode, stream=True)

    assert fake.requests[-1].body["stream_options"] == {"include_usage": True}  # costwarden asked
    assert all(chunk.choices for chunk in chunks), "the usage-only chunk must be hidden from the app"
    assert all(chunk.usage is None for chunk in chunks)
    span = telemetry.one_span()
    assert span.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == fake.requests[-1].usage["completion_tokens"]
    assert sc.COSTWARDEN_USAGE_ESTIMATED not in span.attributes


def test_stream_chunks_match_an_uninstrumented_run(fake, openai_client):
    from tests._telemetry import start_telemetry, stop_telemetry

    bare = [c.model_dump(exclude={"id", "created"}) for c in chat(openai_client, None, "sync", stream=True)]
    start_telemetry()
    try:
        seen = [
            c.model_dump(exclude={"id", "created"}) for c in chat(openai_client, None, "sync", stream=True)
        ]
    finally:
        stop_telemetry()
    assert seen == bare


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_stream_with_include_usage_keeps_the_usage_chunk(
    telemetry, fake, openai_client, async_openai_client, mode
):
    chunks = chat(
        openai_client, async_openai_client, mode, stream=True, stream_options={"include_usage": True}
    )

    assert chunks[-1].usage is not None
    assert not chunks[-1].choices
    assert telemetry.one_span().attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == chunks[-1].usage.prompt_tokens


def test_stream_closed_early_is_counted_as_estimated(telemetry, fake, openai_client):
    stream = openai_client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, max_tokens=200, stream=True
    )
    iterator = iter(stream)
    first = [next(iterator) for _ in range(3)]
    stream.close()

    assert all(chunk.choices for chunk in first)
    span = telemetry.one_span()
    assert span.attributes[sc.COSTWARDEN_USAGE_ESTIMATED] is True
    assert span.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] >= 1
    assert span.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] > 0
    assert span.attributes[sc.GEN_AI_USAGE_COST_AMOUNT] > 0


def test_abandoned_stream_is_counted_when_garbage_collected(telemetry, fake, openai_client):
    def read_two_chunks() -> None:
        stream = openai_client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, max_tokens=200, stream=True
        )
        iterator = iter(stream)
        next(iterator)
        next(iterator)

    read_two_chunks()
    gc.collect()

    span = telemetry.one_span()
    assert span.attributes[sc.COSTWARDEN_USAGE_ESTIMATED] is True
    assert span.attributes[sc.GEN_AI_USAGE_COST_AMOUNT] > 0


def test_stream_used_as_context_manager(telemetry, fake, openai_client):
    with openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True) as stream:
        assert isinstance(stream, openai.Stream)
        assert stream.response.status_code == 200
        texts = [c.choices[0].delta.content for c in stream if c.choices]
    assert texts
    assert telemetry.one_span().attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] > 0


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_stream_cut_halfway_ends_the_span_with_an_error_and_counts(
    telemetry, fake, openai_client, async_openai_client, mode
):
    def cut_stream() -> None:
        fake.inject(Fault("cut_stream", after_chunks=3))
        chat(openai_client, async_openai_client, mode, stream=True, max_tokens=100)

    bare_error = error_without_costwarden(cut_stream)
    with pytest.raises(bare_error) as raised:
        cut_stream()

    span = telemetry.one_span()
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes[sc.ERROR_TYPE].endswith(type(raised.value).__name__)
    assert span.attributes[sc.COSTWARDEN_USAGE_ESTIMATED] is True


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault("rate_limit", retry_after=0), openai.RateLimitError),
        (Fault("server_error"), openai.InternalServerError),
        (Fault("bad_request"), openai.BadRequestError),
    ],
)
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_provider_errors_reach_the_app_unchanged(
    telemetry, fake, openai_client, async_openai_client, mode, fault, error
):
    fake.inject(fault)
    with pytest.raises(error):
        chat(openai_client, async_openai_client, mode, stream=False)

    span = telemetry.one_span()
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes[sc.ERROR_TYPE] == f"{error.__module__}.{error.__qualname__}"
    assert sc.GEN_AI_USAGE_COST_AMOUNT not in span.attributes


def test_malformed_response_behaves_as_without_costwarden(fake, openai_client):
    from tests._telemetry import start_telemetry, stop_telemetry

    def outcome() -> Any:
        fake.inject(Fault("malformed_json"))
        try:
            return ("ok", type(chat(openai_client, None, "sync", stream=False)).__name__)
        except Exception as exc:
            return ("raised", type(exc))

    bare = outcome()
    telemetry = start_telemetry()
    try:
        instrumented = outcome()
    finally:
        stop_telemetry()
    assert instrumented == bare
    assert len(telemetry.llm_spans()) == 1


def test_with_raw_response(telemetry, fake, openai_client):
    raw = openai_client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
    completion = raw.parse()

    assert raw.headers.get("content-type", "").startswith("application/json")
    assert completion.choices[0].message.content
    span = telemetry.one_span()
    assert span.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == completion.usage.prompt_tokens


def test_with_raw_response_stream(telemetry, fake, openai_client):
    raw = openai_client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=MESSAGES, stream=True
    )
    chunks = list(raw.parse())

    assert chunks
    assert all(c.choices for c in chunks)
    assert telemetry.one_span().attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] > 0


def test_with_streaming_response(telemetry, fake, openai_client):
    with openai_client.chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=MESSAGES
    ) as raw:
        completion = raw.parse()
    assert completion.usage.total_tokens > 0
    assert (
        telemetry.one_span().attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == completion.usage.completion_tokens
    )


def test_chat_stream_helper(telemetry, fake, openai_client):
    # openai < 1.5x has the helper under client.beta
    stream_helper = (
        getattr(openai_client.chat.completions, "stream", None) or openai_client.beta.chat.completions.stream
    )
    with stream_helper(model="gpt-4o", messages=MESSAGES) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()

    assert final.choices[0].message.content
    span = telemetry.one_span()
    assert span.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] > 0
    assert sc.COSTWARDEN_USAGE_ESTIMATED not in span.attributes


def test_chat_parse(telemetry, fake, openai_client):
    parse = (
        getattr(openai_client.chat.completions, "parse", None) or openai_client.beta.chat.completions.parse
    )
    completion = parse(model="gpt-4o", messages=MESSAGES)
    assert completion.choices
    assert telemetry.one_span().attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == completion.usage.prompt_tokens


@needs_responses_api
@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("stream", [False, True])
def test_responses_api(telemetry, fake, openai_client, async_openai_client, mode, stream):
    kwargs = {"model": "gpt-4o-mini", "input": "Summarise the plot of Hamlet.", "max_output_tokens": 50}

    async def go_async() -> Any:
        result = await async_openai_client.responses.create(stream=stream, **kwargs)
        return [e async for e in result] if stream else result

    if mode == "sync":
        result = openai_client.responses.create(stream=stream, **kwargs)
        result = list(result) if stream else result
    else:
        result = asyncio.run(go_async())

    final = result[-1].response if stream else result
    span = telemetry.one_span()
    assert span.name == "chat gpt-4o-mini"
    assert span.attributes[sc.GEN_AI_RESPONSE_ID] == final.id
    assert span.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == final.usage.input_tokens
    assert span.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == final.usage.output_tokens
    assert span.attributes[sc.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(
        published_cost("gpt-4o-mini", span.attributes), rel=1e-9
    )


@needs_responses_api
def test_responses_stream_helper(telemetry, fake, openai_client):
    with openai_client.responses.stream(model="gpt-4o-mini", input="Say hi.") as stream:
        for _ in stream:
            pass
        final = stream.get_final_response()
    assert telemetry.one_span().attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == final.usage.output_tokens


def test_reasoning_and_cached_tokens(telemetry, fake, openai_client):
    long_prompt = [{"role": "user", "content": "context " * 3000}]
    openai_client.chat.completions.create(model="o3-mini", messages=long_prompt, max_tokens=64)
    openai_client.chat.completions.create(model="o3-mini", messages=long_prompt, max_tokens=64)

    first, second = telemetry.llm_spans()
    usage = fake.requests[-1].usage
    assert (
        second.attributes[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS]
        == usage["prompt_tokens_details"]["cached_tokens"]
        > 0
    )
    assert (
        second.attributes[sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS]
        == usage["completion_tokens_details"]["reasoning_tokens"]
        > 0
    )
    assert second.attributes[sc.GEN_AI_USAGE_COST_AMOUNT] < first.attributes[sc.GEN_AI_USAGE_COST_AMOUNT]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_embeddings(telemetry, fake, openai_client, async_openai_client, mode):
    kwargs = {"model": "text-embedding-3-small", "input": ["one sentence", "another sentence"]}
    if mode == "sync":
        result = openai_client.embeddings.create(**kwargs)
    else:
        result = asyncio.run(async_openai_client.embeddings.create(**kwargs))

    span = telemetry.one_span()
    assert span.name == "embeddings text-embedding-3-small"
    assert span.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == result.usage.prompt_tokens
    assert span.attributes[sc.GEN_AI_USAGE_COST_AMOUNT] > 0


@pytest.mark.parametrize("stream", [False, True])
def test_legacy_completions(telemetry, fake, openai_client, stream):
    result = openai_client.completions.create(
        model="gpt-3.5-turbo-instruct", prompt="Once upon", max_tokens=20, stream=stream
    )
    if stream:
        chunks = list(result)
        assert all(c.choices for c in chunks)
    span = telemetry.one_span()
    assert span.attributes[sc.GEN_AI_OPERATION_NAME] == "text_completion"
    assert span.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == fake.requests[-1].usage["completion_tokens"]


def test_azure_client(telemetry, fake):
    client = openai.AzureOpenAI(
        azure_endpoint=fake.url, api_key="test-key", api_version="2024-10-21", max_retries=0
    )
    client.chat.completions.create(model="my-gpt4o-deployment", messages=MESSAGES)

    span = telemetry.one_span()
    assert span.attributes[sc.GEN_AI_PROVIDER_NAME] == "azure.ai.openai"
    assert "/openai/deployments/my-gpt4o-deployment/" in fake.requests[-1].path


@pytest.mark.parametrize(
    ("host", "provider"),
    [
        ("api.openai.com", "openai"),
        ("api.groq.com", "groq"),
        ("api.deepseek.com", "deepseek"),
        ("openrouter.ai", "openrouter"),
        ("api.mistral.ai", "mistral_ai"),
        ("api.x.ai", "x_ai"),
        ("my-resource.openai.azure.com", "azure.ai.openai"),
        ("llm.internal.example", "openai"),
    ],
)
def test_provider_from_host(host, provider):
    assert provider_for_host(host) == provider


def test_compatible_host_client(telemetry, fake):
    client = openai.OpenAI(base_url=f"http://localhost:{fake.port}/v1", api_key="k", max_retries=0)
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    span = telemetry.one_span()
    assert span.attributes[sc.GEN_AI_PROVIDER_NAME] == "openai"
    assert span.attributes[sc.SERVER_ADDRESS] == "localhost"
    assert span.attributes[sc.SERVER_PORT] == fake.port


def test_content_captured_only_when_asked(telemetry, fake, openai_client, monkeypatch):
    openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    quiet, captured = telemetry.llm_spans()
    assert sc.GEN_AI_INPUT_MESSAGES not in quiet.attributes
    assert "Name three rivers" in captured.attributes[sc.GEN_AI_INPUT_MESSAGES]
    assert sc.GEN_AI_OUTPUT_MESSAGES in captured.attributes


def test_unknown_model_gets_no_cost_and_one_warning(telemetry, fake, openai_client, caplog):
    with caplog.at_level(logging.WARNING, logger="costwarden"):
        openai_client.chat.completions.create(model="my-private-model-7", messages=MESSAGES)
        openai_client.chat.completions.create(model="my-private-model-7", messages=MESSAGES)

    for span in telemetry.llm_spans():
        assert span.attributes[sc.COSTWARDEN_COST_UNKNOWN_MODEL] is True
        assert sc.GEN_AI_USAGE_COST_AMOUNT not in span.attributes
        assert span.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] > 0
    assert len([r for r in caplog.records if "my-private-model-7" in r.getMessage()]) == 1


def test_suppressed_instrumentation_makes_no_span(telemetry, fake, openai_client):
    with suppress_instrumentation():
        openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert telemetry.llm_spans() == []


def test_metrics_are_recorded(telemetry, fake, openai_client):
    with attribute(agent="writer", run_id="r-secret"):
        openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    tokens = telemetry.metric_points(sc.METRIC_TOKEN_USAGE)
    assert {p.attributes[sc.METRIC_ATTR_TOKEN_TYPE] for p in tokens} == {"input", "output"}
    assert telemetry.metric_points(sc.METRIC_OPERATION_DURATION)
    cost = telemetry.metric_points(sc.METRIC_COST)
    assert sum(p.value for p in cost) == pytest.approx(
        telemetry.one_span().attributes[sc.GEN_AI_USAGE_COST_AMOUNT]
    )
    for name in (sc.METRIC_TOKEN_USAGE, sc.METRIC_COST, sc.METRIC_OPERATION_DURATION):
        for point in telemetry.metric_points(name):
            assert "r-secret" not in point.attributes.values(), f"{name} carries a run id"


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault("rate_limit", retry_after=0), openai.RateLimitError),
        (Fault("server_error"), openai.InternalServerError),
    ],
)
def test_failed_call_records_no_token_usage(telemetry, fake, openai_client, fault, error):
    """No usage came back, so no gen_ai.client.token.usage (semconv: MUST NOT report it when the
    counts are not available); the duration carries the error."""
    fake.inject(fault)
    with pytest.raises(error):
        openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    assert telemetry.metric_points(sc.METRIC_TOKEN_USAGE) == []
    (duration,) = telemetry.metric_points(sc.METRIC_OPERATION_DURATION)
    assert duration.count == 1
    assert duration.attributes[sc.ERROR_TYPE] == f"{error.__module__}.{error.__qualname__}"


def test_stream_cut_halfway_records_its_estimated_token_usage(telemetry, fake, openai_client):
    def read_cut_stream() -> None:
        fake.inject(Fault("cut_stream", after_chunks=3))
        for _ in openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True):
            pass

    bare_error = error_without_costwarden(read_cut_stream)  # the SDK's own error, by version
    with pytest.raises(bare_error):
        read_cut_stream()

    span = telemetry.one_span()
    assert span.attributes[sc.COSTWARDEN_USAGE_ESTIMATED] is True
    tokens = {
        p.attributes[sc.METRIC_ATTR_TOKEN_TYPE]: p for p in telemetry.metric_points(sc.METRIC_TOKEN_USAGE)
    }
    assert tokens["input"].sum == span.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] > 0
    assert tokens["output"].sum == span.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS]
    (duration,) = telemetry.metric_points(sc.METRIC_OPERATION_DURATION)
    assert sc.ERROR_TYPE in duration.attributes


def test_instrumenting_twice_makes_one_span(telemetry, fake, openai_client):
    from costwarden.instrumentation.openai import OpenAIInstrumentor

    OpenAIInstrumentor().instrument(skip_setup=True)
    openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert len(telemetry.llm_spans()) == 1


def test_concurrent_calls_each_get_their_own_span(telemetry, fake, openai_client):
    from concurrent.futures import ThreadPoolExecutor

    def call(i: int) -> None:
        with attribute(agent=f"agent-{i % 4}"):
            openai_client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=5 + i)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(call, range(40)))
    spans = telemetry.llm_spans()
    assert len(spans) == 40
    assert {s.attributes[sc.GEN_AI_REQUEST_MAX_TOKENS] - 5 for s in spans} == set(range(40))
    for span in spans:
        assert (
            span.attributes[sc.GEN_AI_AGENT_NAME]
            == f"agent-{(span.attributes[sc.GEN_AI_REQUEST_MAX_TOKENS] - 5) % 4}"
        )


def test_the_strict_input_bound_covers_images_bytes_and_deep_tool_schemas() -> None:
    from costwarden.instrumentation._usage import IMAGE_TOKEN_BOUND, input_token_bound

    by_url = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    assert input_token_bound([by_url]) >= IMAGE_TOKEN_BOUND  # the URL's bytes say nothing of the image
    gemini = {"file_data": {"file_uri": "gs://bucket/cat.png", "mime_type": "image/png"}}
    assert input_token_bound([gemini]) >= IMAGE_TOKEN_BOUND
    assert input_token_bound({"inline_data": {"data": b"\x00" * 50_000, "mime_type": "audio/wav"}}) >= 50_000
    deep: dict[str, object] = {"description": "x" * 500}
    for _ in range(10):  # nested schemas go deeper than messages and content parts do
        deep = {"type": "object", "properties": {"field": deep}}
    assert input_token_bound([{"type": "function", "function": {"parameters": deep}}]) >= 500


# -- responses the SDK fails on after they arrived, raw responses, stream helpers left early --------


def chat_parse(client: Any) -> Any:
    # openai < 1.5x has parse() under client.beta
    return getattr(client.chat.completions, "parse", None) or client.beta.chat.completions.parse


def run(mode: str, sync_action: Any, async_action: Any) -> Any:
    return sync_action() if mode == "sync" else asyncio.run(async_action())


def new_async_client(fake: Any) -> Any:
    """An async client for one event loop (a client's connections belong to the loop that opened them)."""
    return openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key="test-key", max_retries=0)


def assert_counted_from_the_server(span: Any, model: str = "gpt-4o") -> None:
    assert span.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] > 0
    assert sc.COSTWARDEN_USAGE_ESTIMATED not in span.attributes
    assert span.attributes[sc.GEN_AI_USAGE_COST_AMOUNT] == pytest.approx(
        published_cost(model, span.attributes), rel=1e-9
    )


def assert_estimated_and_priced(span: Any) -> None:
    assert span.attributes[sc.COSTWARDEN_USAGE_ESTIMATED] is True
    assert span.attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] > 0
    assert span.attributes[sc.GEN_AI_USAGE_COST_AMOUNT] > 0


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_parse_that_raises_on_a_truncated_reply_counts_the_billed_usage(telemetry, fake, openai_client, mode):
    from pydantic import BaseModel

    class Answer(BaseModel):
        text: str

    kwargs = {"model": "gpt-4o", "messages": MESSAGES, "response_format": Answer, "max_tokens": 5}

    async def parse_async() -> Any:
        return await chat_parse(new_async_client(fake))(**kwargs)

    def parse() -> Any:
        return run(mode, lambda: chat_parse(openai_client)(**kwargs), parse_async)

    bare_error = error_without_costwarden(parse)
    with pytest.raises(bare_error) as raised:
        parse()

    assert isinstance(raised.value, openai.LengthFinishReasonError)
    span = [s for s in telemetry.llm_spans() if sc.ERROR_TYPE in s.attributes][-1]
    assert span.status.status_code == StatusCode.ERROR
    if getattr(raised.value, "completion", None) is None:
        assert_estimated_and_priced(span)  # openai < 1.5x: the error does not carry the completion
        return
    assert span.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 5  # the server's, cut at max_tokens
    assert_counted_from_the_server(span)


@needs_responses_api
def test_responses_parse_of_truncated_json_counts_the_billed_usage(
    telemetry, fake, openai_client, monkeypatch
):
    from pydantic import BaseModel

    class Answer(BaseModel):
        text: str

    monkeypatch.setattr(fake.settings, "reply", '{"text": "a reply far longer than five tokens allow"}')

    def parse() -> Any:
        return openai_client.responses.parse(
            model="gpt-4o", input="Say hi.", text_format=Answer, max_output_tokens=5
        )

    bare_error = error_without_costwarden(parse)
    with pytest.raises(bare_error):
        parse()

    span = [s for s in telemetry.llm_spans() if sc.ERROR_TYPE in s.attributes][-1]
    assert span.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 5
    assert_counted_from_the_server(span)


def test_with_raw_response_of_a_truncated_parse_counts_the_billed_usage(telemetry, fake, openai_client):
    from pydantic import BaseModel

    class Answer(BaseModel):
        text: str

    raw = getattr(chat_parse(openai_client).__self__, "with_raw_response", None)
    raw_parse = getattr(raw, "parse", None)
    if raw_parse is None:
        pytest.skip(f"openai {openai.__version__} has no with_raw_response.parse")
    raw = raw_parse(model="gpt-4o", messages=MESSAGES, response_format=Answer, max_tokens=5)
    with pytest.raises(openai.LengthFinishReasonError):
        raw.parse()

    span = telemetry.one_span()
    assert span.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 5
    assert_counted_from_the_server(span)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_with_streaming_response_stream_read_as_lines(telemetry, fake, openai_client, mode):
    kwargs = {"model": "gpt-4o", "messages": MESSAGES, "stream": True}

    def read_sync() -> list[str]:
        with openai_client.chat.completions.with_streaming_response.create(**kwargs) as raw:
            return [line for line in raw.iter_lines() if line.startswith("data: ")]

    async def read_async() -> list[str]:
        aclient = new_async_client(fake)
        async with aclient.chat.completions.with_streaming_response.create(**kwargs) as raw:
            return [line async for line in raw.iter_lines() if line.startswith("data: ")]

    with suppress_instrumentation():
        bare = run(mode, read_sync, read_async)
    lines = run(mode, read_sync, read_async)

    assert len(lines) == len(bare)
    assert not any('"choices":[]' in line.replace(" ", "") for line in lines)  # no injected usage chunk
    assert "stream_options" not in fake.requests[-1].body
    assert_estimated_and_priced(telemetry.one_span())  # ended on exit, not when collected


def test_with_streaming_response_stream_parsed(telemetry, fake, openai_client):
    with openai_client.chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=MESSAGES, stream=True
    ) as raw:
        chunks = list(raw.parse())

    assert chunks
    assert all(c.choices for c in chunks)
    span = telemetry.one_span()
    assert span.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] > 0
    assert span.attributes[sc.GEN_AI_USAGE_COST_AMOUNT] > 0


@pytest.mark.parametrize("how", ["parse", "read", "json"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_with_streaming_response_body_is_the_apps_to_read(
    telemetry, fake, openai_client, async_openai_client, mode, how
):
    kwargs = {"model": "gpt-4o", "messages": MESSAGES}

    def read_sync() -> Any:
        with openai_client.chat.completions.with_streaming_response.create(**kwargs) as raw:
            return getattr(raw, how)()

    async def read_async() -> Any:
        async with async_openai_client.chat.completions.with_streaming_response.create(**kwargs) as raw:
            return await getattr(raw, how)()

    body = run(mode, read_sync, read_async)

    usage = body.usage.completion_tokens if how == "parse" else None
    if how != "parse":
        usage = (json.loads(body) if how == "read" else body)["usage"]["completion_tokens"]
    span = telemetry.one_span()
    assert span.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == usage
    assert_counted_from_the_server(span)


@pytest.mark.parametrize("how", ["parse", "read", "iter_bytes"])
def test_with_streaming_response_cut_body_raises_as_without_costwarden(
    telemetry, fake, openai_client, caplog, how
):
    def read() -> Any:
        fake.inject(Fault("cut_stream"))
        with openai_client.chat.completions.with_streaming_response.create(
            model="gpt-4o", messages=MESSAGES
        ) as raw:
            return b"".join(raw.iter_bytes()) if how == "iter_bytes" else getattr(raw, how)()

    bare_error = error_without_costwarden(read)
    with caplog.at_level(logging.WARNING, logger="costwarden"), pytest.raises(bare_error):
        read()

    assert not [r for r in caplog.records if r.name == "costwarden"]
    assert_estimated_and_priced(telemetry.one_span())


def test_with_streaming_response_never_read_ends_its_span_on_exit(telemetry, fake, openai_client):
    with openai_client.chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=MESSAGES
    ) as raw:
        assert raw.status_code == 200

    assert_estimated_and_priced(telemetry.one_span())


def _leave_chat_helper_early(client: Any) -> Any:
    helper = getattr(client.chat.completions, "stream", None) or client.beta.chat.completions.stream
    with helper(model="gpt-4o", messages=MESSAGES, max_tokens=200) as stream:
        for event in stream:
            if event.type == "content.delta" and len(event.snapshot) > 10:
                break
    return stream


async def _leave_chat_helper_early_async(client: Any) -> Any:
    helper = getattr(client.chat.completions, "stream", None) or client.beta.chat.completions.stream
    async with helper(model="gpt-4o", messages=MESSAGES, max_tokens=200) as stream:
        async for event in stream:
            if event.type == "content.delta" and len(event.snapshot) > 10:
                break
    return stream


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_stream_helper_left_early_ends_its_span_on_exit(
    telemetry, fake, openai_client, async_openai_client, mode
):
    stream = run(
        mode,
        lambda: _leave_chat_helper_early(openai_client),
        lambda: _leave_chat_helper_early_async(async_openai_client),
    )

    assert stream is not None  # still referenced: only the exit can have ended the span
    span = telemetry.one_span()
    assert span.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] >= 1
    assert_estimated_and_priced(span)


@needs_responses_api
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_responses_stream_helper_left_early_ends_its_span_on_exit(
    telemetry, fake, openai_client, async_openai_client, mode
):
    kwargs = {"model": "gpt-4o", "input": "Summarise the plot of Hamlet.", "max_output_tokens": 200}

    def leave_sync() -> Any:
        with openai_client.responses.stream(**kwargs) as stream:
            for event in stream:
                if event.type == "response.output_text.delta":
                    break
        return stream

    async def leave_async() -> Any:
        async with async_openai_client.responses.stream(**kwargs) as stream:
            async for event in stream:
                if event.type == "response.output_text.delta":
                    break
        return stream

    stream = run(mode, leave_sync, leave_async)

    assert stream is not None
    assert_estimated_and_priced(telemetry.one_span())


def test_stream_usage_asked_for_through_extra_body_reaches_the_app(telemetry, fake, openai_client):
    def read() -> list[Any]:
        return list(
            openai_client.chat.completions.create(
                model="gpt-4o",
                messages=MESSAGES,
                stream=True,
                extra_body={"stream_options": {"include_usage": True}},
            )
        )

    with suppress_instrumentation():
        bare = read()
    chunks = read()

    assert len(chunks) == len(bare)
    assert chunks[-1].usage is not None
    assert not chunks[-1].choices
    assert fake.requests[-1].body["stream_options"] == {"include_usage": True}
    span = telemetry.one_span()
    assert span.attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == chunks[-1].usage.completion_tokens
    assert_counted_from_the_server(span)
