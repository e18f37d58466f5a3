"""The fake provider, driven by the real openai SDK over real sockets."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from costwarden.testing import FakeProvider, count_tokens

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
