"""The fake provider, driven by the real openai SDK over real sockets."""

from __future__ import annotations

import http.client
import importlib
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

import costwarden.testing
from costwarden.testing import FakeProvider, Fault, count_tokens, make_text

# A cut connection surfaces as the SDK's APIConnectionError, or, mid-stream with some SDK versions, as
# the HTTP library's own transport error (httpx for openai 1.x/2.x, httpx2 for 3.x).
_CONNECTION_ERRORS: tuple[type[Exception], ...] = (
    openai.APIConnectionError,
    *(
        importlib.import_module(name).TransportError
        for name in ("httpx", "httpx2")
        if importlib.util.find_spec(name) is not None
    ),
)

HELLO = [{"role": "user", "content": "hello there"}]  # 11 chars -> 3 tokens; +4 +3 = 10 prompt tokens


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as provider:
        yield provider


@pytest.fixture(autouse=True)
def _fresh(fake: FakeProvider) -> None:
    fake.clear()


@pytest.fixture
def client(fake: FakeProvider) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake.openai_base_url, api_key="test", max_retries=0)


@pytest.fixture
def aclient(fake: FakeProvider) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key="test", max_retries=0)


# ---------------------------------------------------------------- chat completions


def test_chat_json_usage_and_recording(client: openai.OpenAI, fake: FakeProvider) -> None:
    reply = client.chat.completions.create(model="gpt-4o", messages=HELLO)

    assert reply.id.startswith("chatcmpl-")
    assert reply.model == "gpt-4o"
    assert reply.choices[0].finish_reason == "stop"
    text = reply.choices[0].message.content
    assert text is not None
    assert count_tokens(text) == 24
    assert reply.usage is not None
    usage = reply.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (10, 24, 34)
    assert reply.usage.prompt_tokens_details is not None
    assert reply.usage.prompt_tokens_details.cached_tokens == 0
    [recorded] = fake.requests
    assert recorded.model == "gpt-4o"
    assert recorded.path == "/v1/chat/completions"
    assert recorded.body["messages"] == HELLO
    assert recorded.usage == reply.usage.model_dump(exclude_none=True)
    assert recorded.status == 200


def test_chat_max_tokens_cuts_with_length(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_tokens=5)
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 5
    assert count_tokens(reply.choices[0].message.content or "") == 5

    roomy = client.chat.completions.create(model="gpt-4o-mini", messages=HELLO, max_completion_tokens=500)
    assert roomy.choices[0].finish_reason == "stop"
    assert roomy.usage is not None
    assert roomy.usage.completion_tokens == 24


def test_chat_n_choices(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="gpt-4o", messages=HELLO, n=3, max_tokens=4)
    assert [c.index for c in reply.choices] == [0, 1, 2]
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 12


def test_chat_stream_with_include_usage(client: openai.OpenAI, fake: FakeProvider) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o", messages=HELLO, stream=True, stream_options={"include_usage": True}, max_tokens=6
    )
    chunks = list(stream)

    *content, last = chunks
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (10, 6)
    assert all(c.usage is None for c in content)
    assert content[0].choices[0].delta.role == "assistant"
    assert content[-1].choices[0].finish_reason == "length"
    text = "".join(c.choices[0].delta.content or "" for c in content)
    assert count_tokens(text) == 6
    assert fake.requests[0].stream is True
    assert fake.requests[0].usage == last.usage.model_dump(exclude_none=True)


def test_chat_stream_without_include_usage_has_no_usage(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=HELLO, stream=True))
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_chat_async_json_and_stream(aclient: openai.AsyncOpenAI) -> None:
    reply = await aclient.chat.completions.create(model="gpt-4o", messages=HELLO)
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 24
    stream = await aclient.chat.completions.create(
        model="gpt-4o", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 24


def test_chat_reasoning_model_reports_reasoning_tokens(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="o3-mini", messages=HELLO, max_completion_tokens=10)
    usage = reply.usage
    assert usage is not None
    assert usage.completion_tokens == 10
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 5
    assert count_tokens(reply.choices[0].message.content or "") == 5


def test_chat_prompt_cache_reports_cached_prefix(client: openai.OpenAI) -> None:
    document = "lorem ipsum " * 400  # 4800 chars: 1200 tokens
    first = [{"role": "system", "content": document}, {"role": "user", "content": "question one"}]
    second = [{"role": "system", "content": document}, {"role": "user", "content": "a different question"}]

    cold = client.chat.completions.create(model="gpt-4o", messages=first)
    warm = client.chat.completions.create(model="gpt-4o", messages=second)
    other_model = client.chat.completions.create(model="gpt-4o-mini", messages=second)

    def cached(reply: openai.types.chat.ChatCompletion) -> int:
        assert reply.usage is not None
        assert reply.usage.prompt_tokens_details is not None
        return reply.usage.prompt_tokens_details.cached_tokens or 0

    assert cached(cold) == 0
    assert cached(warm) == 1152  # the longest shared prefix, in 128-token steps from 1024
    assert cached(warm) % 128 == 0
    assert cached(other_model) == 0


def test_chat_tool_call_then_answer(client: openai.OpenAI) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ]
    call = client.chat.completions.create(model="gpt-4o", messages=HELLO, tools=tools)
    choice = call.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    [tool_call] = choice.message.tool_calls
    assert tool_call.function.name == "get_weather"
    assert tool_call.function.arguments == '{"city": "x"}'

    messages = [
        *HELLO,
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": tool_call.id, "content": "sunny"},
    ]
    answer = client.chat.completions.create(model="gpt-4o", messages=messages, tools=tools)
    assert answer.choices[0].finish_reason == "stop"
    assert answer.choices[0].message.content


def test_chat_stream_helper_accumulates_text_tools_and_usage(client: openai.OpenAI) -> None:
    with client.chat.completions.stream(
        model="gpt-4o", messages=HELLO, max_tokens=100, stream_options={"include_usage": True}
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_completion()
    assert "content.delta" in kinds
    assert "content.done" in kinds
    assert count_tokens(final.choices[0].message.content or "") == 24
    assert final.usage is not None
    assert final.usage.completion_tokens == 24

    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    with client.chat.completions.stream(model="gpt-4o", messages=HELLO, tools=tools) as stream:
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls
    assert calls is not None
    assert calls[0].function.name == "lookup"
    assert calls[0].function.arguments == "{}"


def test_settings_model_map_reply_and_output_header() -> None:
    with FakeProvider(model_map={"gpt-4o": "gpt-4o-2024-08-06"}, reply="Hello from the fake.") as fake:
        client = openai.OpenAI(base_url=fake.openai_base_url, api_key="test", max_retries=0)
        reply = client.chat.completions.create(model="gpt-4o", messages=HELLO)
        assert reply.model == "gpt-4o-2024-08-06"
        assert reply.choices[0].message.content == "Hello from the fake."
        assert fake.requests[0].model == "gpt-4o"
    with FakeProvider(output_tokens=3) as fake:
        client = openai.OpenAI(base_url=fake.openai_base_url, api_key="test", max_retries=0)
        short = client.chat.completions.create(model="gpt-4o", messages=HELLO)
        long = client.chat.completions.create(
            model="gpt-4o", messages=HELLO, extra_headers={"x-fake-output-tokens": "40"}
        )
        assert short.usage is not None
        assert short.usage.completion_tokens == 3
        assert long.usage is not None
        assert long.usage.completion_tokens == 40


# ---------------------------------------------------------------- responses


def test_responses_json(client: openai.OpenAI, fake: FakeProvider) -> None:
    reply = client.responses.create(model="gpt-4.1", input="hello there", instructions="be brief")
    assert reply.id.startswith("resp_")
    assert reply.status == "completed"
    assert reply.model == "gpt-4.1"
    assert count_tokens(reply.output_text) == 24
    usage = reply.usage
    assert usage is not None
    assert usage.input_tokens == 3 + (4 + 2) + (4 + 3)  # instructions and input are one message each
    assert usage.output_tokens == 24
    assert usage.total_tokens == usage.input_tokens + 24
    assert usage.input_tokens_details.cached_tokens == 0
    assert usage.output_tokens_details.reasoning_tokens == 0
    assert fake.requests[0].usage == usage.model_dump(exclude_none=True)


def test_responses_reasoning_model_capped_is_incomplete(client: openai.OpenAI) -> None:
    reply = client.responses.create(model="gpt-5-mini", input="hello there", max_output_tokens=16)
    assert reply.status == "incomplete"
    assert reply.incomplete_details is not None
    assert reply.incomplete_details.reason == "max_output_tokens"
    assert [item.type for item in reply.output] == ["reasoning", "message"]
    assert reply.usage is not None
    assert reply.usage.output_tokens == 16
    assert reply.usage.output_tokens_details.reasoning_tokens == 8


def test_responses_stream_event_sequence(client: openai.OpenAI) -> None:
    events = list(
        client.responses.create(model="gpt-4o", input="hello there", stream=True, max_output_tokens=50)
    )
    kinds = [e.type for e in events]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * 24,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    completed = events[-1]
    assert completed.type == "response.completed"
    usage = completed.response.usage
    assert usage is not None
    assert usage.output_tokens == 24
    assert usage.input_tokens_details.cached_tokens == 0
    assert usage.output_tokens_details.reasoning_tokens == 0
    assert events[0].response.usage is None


def test_responses_stream_helper_and_function_call(client: openai.OpenAI) -> None:
    with client.responses.stream(model="o4-mini", input="hello there") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text
    assert final.usage is not None
    assert final.usage.output_tokens_details.reasoning_tokens == 12

    tools = [{"type": "function", "name": "lookup", "parameters": {"type": "object"}, "strict": False}]
    with client.responses.stream(model="gpt-4o", input="find it", tools=tools) as stream:
        final = stream.get_final_response()
    [call] = final.output
    assert call.type == "function_call"
    assert call.name == "lookup"
    done = client.responses.create(
        model="gpt-4o",
        input=[
            {"role": "user", "content": "find it"},
            {"type": "function_call", "call_id": call.call_id, "name": "lookup", "arguments": "{}"},
            {"type": "function_call_output", "call_id": call.call_id, "output": "found"},
        ],
        tools=tools,
    )
    assert done.output_text


# ---------------------------------------------------------------- embeddings and legacy completions


def test_embeddings_float_and_base64(client: openai.OpenAI, fake: FakeProvider) -> None:
    floats = client.embeddings.create(
        model="text-embedding-3-small", input=["abcd", "abcdefgh"], encoding_format="float"
    )
    assert [len(d.embedding) for d in floats.data] == [1536, 1536]
    assert (floats.usage.prompt_tokens, floats.usage.total_tokens) == (3, 3)

    decoded = client.embeddings.create(model="text-embedding-3-large", input="abcd", dimensions=256)
    assert len(decoded.data[0].embedding) == 256
    assert fake.requests[-1].body["encoding_format"] == "base64"  # what the SDK asks for by default

    raw = client.embeddings.create(model="text-embedding-3-small", input="abcd", encoding_format="base64")
    assert isinstance(raw.data[0].embedding, str)
    assert fake.requests[-1].usage == {"prompt_tokens": 1, "total_tokens": 1}


def test_legacy_completions_json_and_stream(client: openai.OpenAI) -> None:
    reply = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hi", max_tokens=30)
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (2, 24)

    chunks = list(
        client.completions.create(
            model="gpt-3.5-turbo-instruct",
            prompt="Say hi",
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 16  # the endpoint's default max_tokens
    assert chunks[-2].choices[0].finish_reason == "length"

    plain = list(client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hi", stream=True))
    assert all(c.usage is None for c in plain)


# ---------------------------------------------------------------- Azure OpenAI


def test_azure_deployment_paths(fake: FakeProvider) -> None:
    azure = openai.AzureOpenAI(
        azure_endpoint=fake.azure_endpoint, api_version="2024-10-21", api_key="k", max_retries=0
    )
    chat = azure.chat.completions.create(model="prod-gpt4o", messages=HELLO)
    assert chat.model == "prod-gpt4o"
    recorded = fake.requests[-1]
    assert recorded.path == "/openai/deployments/prod-gpt4o/chat/completions"
    assert recorded.query == {"api-version": "2024-10-21"}
    assert recorded.model == "prod-gpt4o"

    stream = azure.chat.completions.create(
        model="prod-gpt4o", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    assert list(stream)[-1].usage is not None
    assert azure.embeddings.create(model="embedder", input="abcd").model == "embedder"
    assert azure.completions.create(model="instruct", prompt="x").model == "instruct"
    assert azure.responses.create(model="prod-gpt4o", input="x").model == "prod-gpt4o"
    assert fake.requests[-1].path == "/openai/responses"


def test_azure_v1_path(fake: FakeProvider) -> None:
    client = openai.OpenAI(base_url=f"{fake.url}/openai/v1", api_key="k", max_retries=0)
    assert client.chat.completions.create(model="gpt-4o", messages=HELLO).model == "gpt-4o"
    assert fake.requests[-1].route == "azure.chat/completions"


# ---------------------------------------------------------------- faults


def test_rate_limit_raises_without_retries(client: openai.OpenAI, fake: FakeProvider) -> None:
    fake.inject(Fault("rate_limit", retry_after=1.5))
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=HELLO)
    assert caught.value.response.headers["retry-after"] == "1.5"
    assert caught.value.response.headers["retry-after-ms"] == "1500"
    assert caught.value.code == "rate_limit_exceeded"
    assert fake.requests[0].fault == "rate_limit"
    assert fake.requests[0].status == 429
    assert fake.requests[0].usage is None
    assert client.chat.completions.create(model="gpt-4o", messages=HELLO).usage is not None


def test_rate_limit_count_is_consumed_by_sdk_retries(fake: FakeProvider) -> None:
    client = openai.OpenAI(base_url=fake.openai_base_url, api_key="test", max_retries=2)
    fake.inject(Fault("rate_limit", count=2, retry_after=0))
    reply = client.chat.completions.create(model="gpt-4o", messages=HELLO)
    assert reply.usage is not None
    assert [r.status for r in fake.requests] == [429, 429, 200]
    assert fake.faults == []


@pytest.mark.parametrize(
    ("kind", "error"),
    [("server_error", openai.InternalServerError), ("bad_request", openai.BadRequestError)],
)
def test_error_faults(client: openai.OpenAI, fake: FakeProvider, kind: str, error: type[Exception]) -> None:
    fake.inject(Fault(kind))
    with pytest.raises(error):
        client.chat.completions.create(model="gpt-4o", messages=HELLO)


def test_malformed_json(client: openai.OpenAI, fake: FakeProvider) -> None:
    fake.inject(Fault("malformed_json", count=2))
    with pytest.raises(ValueError, match="line 1"):
        client.chat.completions.create(model="gpt-4o", messages=HELLO)
    with pytest.raises(ValueError, match="line 1"):
        list(client.chat.completions.create(model="gpt-4o", messages=HELLO, stream=True))


def test_cut_stream_raises_after_k_chunks(client: openai.OpenAI, fake: FakeProvider) -> None:
    fake.inject(Fault("cut_stream", after_chunks=3))
    received: list[object] = []
    stream = client.chat.completions.create(
        model="gpt-4o", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    with pytest.raises(_CONNECTION_ERRORS):
        received.extend(stream)
    assert len(received) == 3
    assert all(c.usage is None for c in received)
    fake.inject(Fault("cut_stream"))
    with pytest.raises(_CONNECTION_ERRORS):
        client.chat.completions.create(model="gpt-4o", messages=HELLO)
    # the server is still healthy afterwards
    assert client.chat.completions.create(model="gpt-4o", messages=HELLO).usage is not None


def test_slow_fault_times_out_the_client(fake: FakeProvider) -> None:
    client = openai.OpenAI(base_url=fake.openai_base_url, api_key="test", max_retries=0, timeout=0.2)
    fake.inject(Fault("slow", delay=1.0))
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="gpt-4o", messages=HELLO)


def test_slow_chunks_still_deliver_the_whole_stream(client: openai.OpenAI, fake: FakeProvider) -> None:
    fake.inject(Fault("slow", chunk_delay=0.001))
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=HELLO, stream=True, max_tokens=5))
    assert chunks[-1].choices[0].finish_reason == "length"
    assert fake.requests[0].fault == "slow"


def test_fault_path_filter_and_validation(client: openai.OpenAI, fake: FakeProvider) -> None:
    fake.inject(Fault("server_error", path="/embeddings", count=None))
    assert client.chat.completions.create(model="gpt-4o", messages=HELLO).usage is not None
    with pytest.raises(openai.InternalServerError):
        client.embeddings.create(model="text-embedding-3-small", input="x")
    with pytest.raises(openai.InternalServerError):
        client.embeddings.create(model="text-embedding-3-small", input="x")
    fake.clear_faults()
    assert client.embeddings.create(model="text-embedding-3-small", input="x").usage.total_tokens == 1
    with pytest.raises(ValueError, match="'teapot' is unknown"):
        Fault("teapot")
    with pytest.raises(ValueError, match="count must be"):
        Fault("rate_limit", count=0)


async def test_async_faults(aclient: openai.AsyncOpenAI, fake: FakeProvider) -> None:
    fake.inject(Fault("rate_limit"))
    with pytest.raises(openai.RateLimitError):
        await aclient.chat.completions.create(model="gpt-4o", messages=HELLO)
    fake.inject(Fault("cut_stream", after_chunks=2))
    stream = await aclient.chat.completions.create(model="gpt-4o", messages=HELLO, stream=True)
    with pytest.raises(_CONNECTION_ERRORS):
        async for _ in stream:
            pass


# ---------------------------------------------------------------- server behaviour


def test_unknown_path_and_bad_request_body(client: openai.OpenAI, fake: FakeProvider) -> None:
    with pytest.raises(openai.NotFoundError):
        client.post("/nope", cast_to=object, body={})
    with pytest.raises(openai.BadRequestError, match="model"):
        client.chat.completions.create(model="", messages=HELLO)
    assert [r.status for r in fake.requests] == [404, 400]


def test_concurrent_clients(fake: FakeProvider) -> None:
    client = openai.OpenAI(base_url=fake.openai_base_url, api_key="test", max_retries=0)

    def call(i: int) -> str:
        if i % 2:
            return client.chat.completions.create(model=f"m{i}", messages=HELLO).id
        chunks = list(client.chat.completions.create(model=f"m{i}", messages=HELLO, stream=True))
        return chunks[0].id

    with ThreadPoolExecutor(max_workers=16) as pool:
        ids = list(pool.map(call, range(200)))
    assert len(set(ids)) == 200
    recorded = fake.wait_for_requests(200, timeout=5)
    assert sorted(r.model or "" for r in recorded) == sorted(f"m{i}" for i in range(200))


def test_wait_for_requests_times_out(fake: FakeProvider) -> None:
    with pytest.raises(TimeoutError, match="expected 1 recorded requests"):
        fake.wait_for_requests(1, timeout=0.05)


def test_not_started_is_a_clear_error_and_the_log_outlives_stop() -> None:
    with pytest.raises(RuntimeError, match="not started"):
        _ = FakeProvider().url
    with FakeProvider() as fake:
        openai.OpenAI(base_url=fake.openai_base_url, api_key="t").embeddings.create(model="e", input="abcd")
    assert [r.usage for r in fake.requests] == [{"prompt_tokens": 1, "total_tokens": 1}]


def test_public_names() -> None:
    assert set(costwarden.testing.__all__) == {
        "FakeProvider",
        "Fault",
        "FaultKind",
        "RecordedRequest",
        "RequestLog",
        "count_tokens",
        "make_text",
    }
    assert count_tokens(make_text(37)) == 37


def test_cli_serves_until_terminated() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "costwarden.testing",
            "--port",
            "0",
            "--model-map",
            "gpt-4o=gpt-4o-2024-08-06",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="test", max_retries=0)
        assert client.chat.completions.create(model="gpt-4o", messages=HELLO).model == "gpt-4o-2024-08-06"
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def test_raw_http_keep_alive_chunked_body_and_bad_request_line(fake: FakeProvider) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=5)
    body = json.dumps({"model": "gpt-4o", "messages": HELLO}).encode()
    conn.request("POST", "/v1/chat/completions", body, {"content-type": "application/json"})
    first = conn.getresponse()
    assert json.loads(first.read())["usage"]["prompt_tokens"] == 10
    sock = conn.sock
    conn.request("POST", "/v1/chat/completions", iter([body]), encode_chunked=True)
    second = conn.getresponse()
    assert json.loads(second.read())["usage"]["prompt_tokens"] == 10
    assert conn.sock is sock  # the same keep-alive connection served both
    conn.close()

    with socket.create_connection(("127.0.0.1", fake.port), timeout=5) as raw:
        raw.sendall(b"GARBAGE\r\n\r\n")
        assert raw.recv(100).startswith(b"HTTP/1.1 400")
